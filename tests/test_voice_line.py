"""The voice delay line on synthetic clocks: every sample is heard at its capture time + the target, whatever the
microphone's and the output's clocks do, however late the producer is, without cuts in the voice.

The "voice" is a ramp: each sample's value is its own index on the microphone's clock, so the output says which
sample is heard when, and the delay is read from what comes out (not from the line's own bookkeeping).
"""
import numpy as np

from hygie.core.audio.voice_line import VoiceLine, VoiceLineConfig

RATE = 48000.0
BLOCK = 240  # 5 ms output blocks, like the PulseAudio writer


class Sim:
    """A microphone (clock skewed by `mic_ppm`) pushed in chunks, and an output (skewed by `out_ppm`) that fills
    a block `queue_s` before it is heard; optional producer stalls and output underruns."""

    def __init__(self, line: VoiceLine, signal, mic_ppm: float = 0.0, out_ppm: float = 0.0, queue_s: float = 0.025,
                 chunk: int = 384, stalls: tuple[float, ...] = (), stall_s: float = 0.06,
                 gaps: tuple[float, ...] = (), gap_s: float = 0.03):
        self.line, self.signal = line, signal
        self.mic_rate = RATE * (1 + mic_ppm * 1e-6)
        self.out_rate = RATE * (1 + out_ppm * 1e-6)
        self.queue_s, self.chunk = queue_s, chunk
        self.stalls, self.stall_s, self.gaps, self.gap_s = stalls, stall_s, gaps, gap_s
        self.t0 = 1000.0  # capture time of the microphone's sample 0 (perf_counter-like)
        self.pushed = 0
        self.heard_t = self.t0 + 0.3  # heard time of the next output sample

    def _push_until(self, now: float, target: float) -> None:
        while True:
            end = self.pushed + self.chunk
            t_end = self.t0 + end / self.mic_rate  # capture time just after the chunk's last sample
            # the producer reads 5 ms after capture, and not at all during a stall
            t_read = t_end + 0.005
            if any(s <= t_read < s + self.stall_s for s in self.stalls):
                t_read = next(s for s in self.stalls if s <= t_read < s + self.stall_s) + self.stall_s
            if t_read > now:
                return
            idx = np.arange(self.pushed, end)
            self.line.set_target(target)
            # like AudioInput.capture_time: origin = capture time of the end - index / nominal rate
            self.line.push(self.signal(idx), t_end - end / RATE)
            self.pushed = end

    def run(self, seconds: float, target, out: list) -> None:
        """`target(t)` is the wanted delay at time t; appends (heard times, values, jumps before) per block."""
        buf = np.zeros(BLOCK, np.float32)
        t_stop = self.heard_t + seconds
        while self.heard_t < t_stop:
            if any(g <= self.heard_t < g + self.gap_s for g in self.gaps):
                self.heard_t += self.gap_s  # the output ran dry: what comes next is heard later
                self.gaps = tuple(g for g in self.gaps if not g <= self.heard_t - self.gap_s < g + self.gap_s)
            now = self.heard_t - self.queue_s
            self._push_until(now, target(now))
            jumps = self.line.jumps
            self.line.fill(buf, self.heard_t)
            out.append((self.heard_t + np.arange(BLOCK) / self.out_rate, buf.copy(), jumps))
            self.heard_t += BLOCK / self.out_rate


def _delays(sim: Sim, out: list, speech=lambda v: np.ones(v.shape, bool)) -> tuple[np.ndarray, np.ndarray]:
    """(heard time, heard - captured) of every output sample that carries a voice sample."""
    t = np.concatenate([o[0] for o in out])
    v = np.concatenate([o[1] for o in out]).astype(np.float64)
    keep = (v >= 1.0) & speech(v)
    return t[keep], t[keep] - (sim.t0 + v[keep] / sim.mic_rate)


def test_heard_at_capture_plus_target_without_drift_despite_skew_stalls_and_underruns():
    line = VoiceLine(VoiceLineConfig(rate=RATE))
    sim = Sim(line, lambda i: i.astype(np.float32), mic_ppm=300, out_ppm=-200,
              stalls=tuple(1010.0 + 7 * k for k in range(12)), stall_s=0.06,  # the agent thread stalls
              gaps=(1020.0, 1050.0), gap_s=0.03)  # the output underruns twice
    out: list = []
    sim.run(90.0, lambda t: 0.090, out)
    t, d = _delays(sim, out)
    settled = t > t[0] + 2.0
    err_ms = 1000 * (d[settled] - 0.090)
    print("delay error ms: p50 %.3f p99 %.3f max %.3f; jumps %d gaps %d late %d ratio %.5f" % (
        np.median(err_ms), np.percentile(np.abs(err_ms), 99), np.abs(err_ms).max(), line.jumps, line.gaps,
        line.late, line.ratio))
    assert np.percentile(np.abs(err_ms), 99) < 1.0  # heard at capture + 90 ms, to the sample
    first = d[(t > t[0] + 2) & (t < t[0] + 62)]
    last = d[t > t[-1] - 60]
    assert abs(1000 * (np.median(last) - np.median(first))) < 0.5  # no drift: 300 + 200 ppm is 45 ms in 90 s
    assert line.gaps == 2  # both underruns were re-synchronised at once...
    assert line.jumps == 2  # ...and nothing else needed a cut: skew is absorbed by the rate
    assert abs(line.ratio - 1.0) <= 0.005
    assert line.late > 0  # the stalls cost samples (played as silence), never delay


def _speech(v: np.ndarray) -> np.ndarray:
    """Speech: 0.6 s on, 0.4 s off (on the microphone's clock, 48 kHz)."""
    return (np.asarray(v) % 48000) < 0.6 * 48000


def test_a_new_target_is_reached_by_cuts_in_silence_only():
    # voice = the ramp during "speech", a faint noise between (quiet, but not digital silence)
    def signal(i):
        rng = np.random.default_rng(int(i[0]))
        return np.where(_speech(i), i, 1e-3 * rng.standard_normal(i.size)).astype(np.float32)

    line = VoiceLine(VoiceLineConfig(rate=RATE))
    sim = Sim(line, signal)
    out: list = []
    sim.run(20.0, lambda t: 0.080 if t < 1008.0 else 0.120, out)  # the video latency moves by 40 ms
    t, d = _delays(sim, out, _speech)
    assert line.jumps >= 1
    assert np.percentile(np.abs(1000 * (d[t < 1007.5] - 0.080)), 99) < 1.0
    assert np.percentile(np.abs(1000 * (d[t > 1011.0] - 0.120)), 99) < 1.0
    # in speech the samples follow each other (no cut, no repeat): steps of one sample, give or take the rate
    v = np.concatenate([o[1] for o in out]).astype(np.float64)
    th = np.concatenate([o[0] for o in out])
    both = (v[:-1] >= 1) & (v[1:] >= 1) & _speech(v[:-1]) & _speech(v[1:]) & (th[:-1] > th[0] + 0.1)
    steps = np.diff(v)[both]
    assert np.abs(steps - 1.0).max() < 0.04, np.abs(steps - 1.0).max()  # float32 holds these indices to 1/32


def test_small_errors_are_corrected_by_an_inaudible_change_of_rate():
    line = VoiceLine(VoiceLineConfig(rate=RATE))
    sim = Sim(line, lambda i: i.astype(np.float32))  # never quiet: no cut allowed after the start
    out: list = []
    sim.run(10.0, lambda t: 0.100 if t < 1003.0 else 0.108, out)  # 8 ms: below the cut threshold
    t, d = _delays(sim, out)
    assert line.jumps == 0
    assert np.percentile(np.abs(1000 * (d[t > 1008.0] - 0.108)), 99) < 1.0
    v = np.concatenate([o[1] for o in out]).astype(np.float64)
    rate = (v[100:] - v[:-100])[5:] / 100  # over 100 samples: float32 holds these indices to 1/32
    assert rate.min() >= 1 - 0.0058 and rate.max() <= 1 + 0.0058  # at most 0.5 % (8.6 cents)
    assert rate.min() < 1 - 0.004  # and it did slow down to catch the 8 ms


def test_silence_until_the_first_audio_and_the_target():
    line = VoiceLine(VoiceLineConfig(rate=RATE))
    buf = np.ones(BLOCK, np.float32)
    line.fill(buf, 5.0)
    assert not buf.any() and line.delay_s is None
    line.push(np.ones(4800, np.float32), 4.9)
    line.fill(buf, 5.0)
    assert not buf.any()  # no target yet
    line.set_target(0.05)
    line.fill(buf, 5.0)
    assert np.allclose(buf, 1.0) and abs(line.delay_s - 0.05) < 1e-9
