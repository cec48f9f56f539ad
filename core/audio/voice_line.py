"""The voice delay line, keyed by capture time: each sample is heard at (its capture time + the target delay).

The microphone side `push`es samples (at the output's rate) with the capture time of the line's sample 0;
the output side `fill`s each buffer it is about to hand over, saying when the buffer's first sample
will be heard (the output's own figure: PulseAudio's stream latency, PortAudio's DAC time). The line
picks the samples whose capture time is (heard time - target). Nothing is queued between the two
sides, so a stall on either one cannot add delay: the schedule is absolute and cannot drift.

The output reads on with a continuous position; small errors (clock skew, a target that moved a few
ms, noise in the latency figure) are corrected by a tiny change of rate (linear interpolation, at
most `max_ratio` = 0.5 %: 8.6 cents, inaudible). A larger settled error moves the position in one
cut, with a short cross-fade, only where the voice is quiet, or at once when the output itself just
broke continuity (an underrun: the gap is already there), or when the error is too large to wait
for (`force_jump_s`: start-up, a device that restarted). Samples not yet pushed when their time
comes (the producer stalled) play as silence and are skipped: the voice keeps its schedule.
"""
from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from hygie.core.audio.ring_buffer import SampleRing

log = logging.getLogger(__name__)


@dataclass
class VoiceLineConfig:
    rate: float = 48000.0
    capacity_s: float = 2.0  # the longest delay the line can hold (plus what an output queues)
    jump_s: float = 0.012  # a settled error above this is cut at the next quiet moment
    force_jump_s: float = 0.100  # an error above this is cut at once
    gap_s: float = 0.008  # heard time later than continuity by this much: the output underran
    max_ratio: float = 0.005  # rate correction bound (0.5 % = 8.6 cents)
    tau_s: float = 1.0  # rate correction: error / tau_s, bounded
    smooth: float = 0.05  # weight of one buffer's error in the settled error
    fade_s: float = 0.005  # cross-fade of a cut
    quiet_margin_db: float = 10.0  # quiet: below the tracked noise floor + this ...
    quiet_min_db: float = -60.0  # ... or below this level (dBFS)
    floor_rise_db_s: float = 6.0  # the noise floor follows drops at once and rises this slowly


class VoiceLine:
    """One producer thread calls `push` and `set_target`; one output thread calls `fill`."""

    def __init__(self, cfg: VoiceLineConfig | None = None):
        self.cfg = cfg or VoiceLineConfig()
        self.rate = float(self.cfg.rate)
        self.ring = SampleRing(int(self.rate * self.cfg.capacity_s))
        self.origin: float | None = None  # capture time of line sample 0 (one store: atomic)
        self.target_s: float | None = None
        self.pos: float | None = None  # line position of the next sample handed to the output
        self.error_s: float | None = None  # settled (smoothed) error: >0 the voice would be heard too early
        self.ratio = 1.0
        self.floor_db: float | None = None  # level of the quietest recent buffer played (dBFS)
        self.jumps = 0  # cuts after start-up
        self.gaps = 0  # output discontinuities seen (underruns)
        self.late = 0  # samples whose time came before they were pushed (played as silence)
        self.delay_s: float | None = None  # heard - captured, for the last buffer's first sample
        self.history: deque[tuple[float, float]] = deque(maxlen=4000)  # (capture time, delay) per buffer
        self._next_heard: float | None = None  # heard time of the next buffer if the output stayed continuous
        self._fade = np.linspace(0.0, 1.0, max(2, int(self.rate * self.cfg.fade_s)), dtype=np.float32)

    # -- producer side -----------------------------------------------------------------------
    def push(self, x: np.ndarray, origin: float | None) -> None:
        """Append samples; `origin` = capture time of line sample 0 (None: keep the last one)."""
        x = np.ascontiguousarray(x, np.float32)
        if x.size:
            self.ring.write(x)
        if origin is not None:
            self.origin = float(origin)

    def set_target(self, delay_s: float | None) -> None:
        """Capture -> heard delay wanted (seconds)."""
        if delay_s is not None:
            self.target_s = min(max(float(delay_s), 0.0), self.cfg.capacity_s - 0.2)

    @property
    def written(self) -> int:
        return self.ring.write_pos

    # -- output side -------------------------------------------------------------------------
    def _samples(self, positions: np.ndarray) -> tuple[np.ndarray, int]:
        """Linear interpolation at fractional line positions; missing samples read 0 (and are counted)."""
        i = np.floor(positions).astype(np.int64)
        f = (positions - i).astype(np.float32)
        a, ok_a = self.ring.at(i)
        b, ok_b = self.ring.at(i + 1)
        b = np.where(ok_b, b, a)
        y = a + (b - a) * f
        return y, int(np.count_nonzero(~ok_a))

    def _level_db(self, lo: float, hi: float) -> float:
        """Level (dBFS) of the line between two positions (what has not been written counts as silence)."""
        lo_i, hi_i = int(math.floor(lo)), int(math.ceil(hi))
        if hi_i <= lo_i:
            return -120.0
        x, _ = self.ring.at(np.arange(lo_i, hi_i))
        return 10.0 * math.log10(float(np.mean(x.astype(np.float64) ** 2)) + 1e-12)

    def _quiet(self, a: float, b: float) -> bool:
        """No voice around a cut from position a to position b: the part skipped or held, 10 ms either side."""
        pad = 0.010 * self.rate
        lo, hi = min(a, b) - pad, max(a, b) + pad
        level = self._level_db(lo, min(hi, lo + self.cfg.force_jump_s * self.rate + 2 * pad))
        floor = self.cfg.quiet_min_db if self.floor_db is None else self.floor_db
        return level < max(floor + self.cfg.quiet_margin_db, self.cfg.quiet_min_db)

    def fill(self, out: np.ndarray, t_heard: float) -> None:
        """Fill `out` (1-D float32) with the samples to be heard from `t_heard` (perf_counter seconds) on."""
        n = out.shape[0]
        cfg, origin, target = self.cfg, self.origin, self.target_s
        gap = self._next_heard is not None and t_heard - self._next_heard > cfg.gap_s
        self._next_heard = t_heard + n / self.rate
        if origin is None or target is None:
            out[:] = 0.0
            return
        want = (t_heard - target - origin) * self.rate  # line position that should be heard at t_heard
        if self.pos is None:
            self.pos, started = want, False
        else:
            started = True
        e = (self.pos - want) / self.rate
        settled = e if self.error_s is None else self.error_s + cfg.smooth * (e - self.error_s)
        cut = (not started or abs(e) > cfg.force_jump_s or (gap and abs(e) > 0.002)
               or (abs(settled) > cfg.jump_s and self._quiet(self.pos, want)))
        if cut:
            ratio = 1.0
            steps = np.arange(n, dtype=np.float64)
            y, missing = self._samples(want + steps)
            if started:
                k = min(len(self._fade), n)
                old, _ = self._samples(self.pos + steps[:k])
                y[:k] = old * (1.0 - self._fade[:k]) + y[:k] * self._fade[:k]
                self.jumps += 1
                self.gaps += gap
                log.debug("voice line cut by %.1f ms%s", 1000 * e, " (output gap)" if gap else "")
            self.pos = want + n
            self.error_s = 0.0
        else:
            self.error_s = settled
            ratio = 1.0 - float(np.clip(settled / cfg.tau_s, -cfg.max_ratio, cfg.max_ratio))
            y, missing = self._samples(self.pos + ratio * np.arange(n, dtype=np.float64))
            self.pos += ratio * n
        self.ratio = ratio
        self.late += missing
        out[:] = y
        if not missing:  # noise floor of what is played: follows drops at once, rises slowly
            level = 10.0 * math.log10(float(np.mean(y.astype(np.float64) ** 2)) + 1e-12)
            self.floor_db = level if self.floor_db is None else \
                min(level, self.floor_db + cfg.floor_rise_db_s * n / self.rate)
        first = self.pos - ratio * n if not cut else want
        self.delay_s = t_heard - (origin + first / self.rate)
        self.history.append((origin + first / self.rate, self.delay_s))
