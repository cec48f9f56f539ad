"""Listen to "Hygie Avatar Mic" the way a call app does and measure when the voice really arrives.

The voice output knows when its samples should leave the sink; what happens after (the null
sink's rendering, the remapped source, a reader's fragment) is the sound server's. This probe
records the microphone by name at 16 kHz, timestamps what arrives, and finds by cross-correlation
with the microphone input (the same waveform) the true capture -> arrival delay. The voice output
corrects its estimate by the difference, so the delay it steers is the one a receiver sees.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque

import numpy as np

from hygie.core.audio.ring_buffer import SampleRing

log = logging.getLogger(__name__)

RATE = 16000


class _Timeline:
    """Samples with absolute indices and a capture-time map fitted from (index, time) anchors."""

    def __init__(self, seconds: float):
        self.ring = SampleRing(int(RATE * seconds))
        self.anchors: deque[tuple[int, float]] = deque(maxlen=400)
        self._off: float | None = None

    def add(self, x: np.ndarray, t_last: float) -> None:
        self.ring.write(x)
        self.anchors.append((self.ring.write_pos, t_last))

    def offset(self) -> float | None:
        """Time of sample 0: the least-delayed anchor of the last 2 s (a late arrival is never early)."""
        if not self.anchors:
            return None
        a = np.array(self.anchors, np.float64)
        recent = a[:, 1] > a[-1, 1] - 2.0
        return float(np.min(a[recent, 1] - a[recent, 0] / RATE))

    def window(self, t0: float, n: int) -> tuple[np.ndarray, float] | None:
        """n samples starting at the one captured nearest t0, and that sample's exact time."""
        off = self.offset()
        if off is None:
            return None
        i0 = int(round((t0 - off) * RATE))
        wp, cap = self.ring.write_pos, self.ring.capacity
        if i0 < wp - cap + 1 or i0 + n > wp:
            return None
        idx = np.arange(i0, i0 + n) % cap
        return self.ring._buf[idx].copy(), off + i0 / RATE


def measure_delay(ref: np.ndarray, probe: np.ndarray, max_lag: int) -> tuple[int, float]:
    """Lag (samples, probe[k + lag] ~ ref[k]) in [0, max_lag] and its normalised correlation."""
    n = len(ref)
    size = 1 << int(np.ceil(np.log2(n + len(probe))))
    c = np.fft.irfft(np.conj(np.fft.rfft(ref, size)) * np.fft.rfft(probe, size), size)[: max_lag + 1]
    lag = int(np.argmax(c))
    seg = probe[lag:lag + n]
    denom = float(np.sqrt(np.sum(ref ** 2) * np.sum(seg ** 2))) + 1e-12
    return lag, float(c[lag] / denom)


class VoiceProbe:
    def __init__(self, source: str, window_s: float = 1.5, max_delay_s: float = 0.6, every_s: float = 1.0,
                 min_rms: float = 0.01, min_corr: float = 0.6):
        from hygie.core.live.pulse_stream import PulseStream

        self.source = source
        self.window_s, self.max_delay_s, self.every_s = window_s, max_delay_s, every_s
        self.min_rms, self.min_corr = min_rms, min_corr
        self.ref = _Timeline(4.0)  # what the microphone captured (fed by the voice output)
        self.got = _Timeline(4.0)  # what arrived at "Hygie Avatar Mic"
        self.delay_s: float | None = None  # last measured capture -> arrival delay
        self.corr = 0.0
        self.n_measures = 0
        self._lock = threading.Lock()
        self._stream = PulseStream("record", source, RATE, name="hygie probe", buffer_ms=5)
        self._run = True
        self._thread = threading.Thread(target=self._loop, name="voice-probe", daemon=True)
        self._thread.start()
        self._next = time.perf_counter() + every_s

    def _loop(self) -> None:
        buf = np.zeros(80, np.float32)
        while self._run:
            try:
                self._stream.read(80, buf)
            except Exception as e:
                log.warning("voice probe stopped: %s", e)
                return
            now = time.perf_counter()
            with self._lock:
                self.got.add(buf, now)

    def reference(self, x16k: np.ndarray, t_last: float) -> None:
        """The microphone's samples (16 kHz) whose newest was captured at `t_last` (agent thread)."""
        self.ref.add(np.asarray(x16k, np.float32), t_last)

    def poll(self, now: float) -> tuple[float, float] | None:
        """Measure once a second (agent thread, ~2 ms): (delay, capture time of the window's start), or None."""
        if now < self._next:
            return None
        self._next = now + self.every_s
        n = int(self.window_s * RATE)
        t0 = now - self.window_s - self.max_delay_s - 0.1
        r = self.ref.window(t0, n)
        if r is None:
            return None
        ref, t_ref = r
        if float(np.sqrt(np.mean(ref ** 2))) < self.min_rms:
            return None  # silence says nothing about delay
        with self._lock:
            p = self.got.window(t_ref, n + int(self.max_delay_s * RATE))
        if p is None:
            return None
        probe, t_probe = p
        lag, corr = measure_delay(ref - ref.mean(), probe - probe.mean(), int(self.max_delay_s * RATE))
        self.corr = corr
        if corr < self.min_corr:
            return None
        self.delay_s = t_probe - t_ref + lag / RATE
        self.n_measures += 1
        return self.delay_s, t_ref

    def close(self) -> None:
        self._run = False
        self._thread.join(timeout=1.0)  # a read returns within 5 ms
        if not self._thread.is_alive():
            self._stream.close()
