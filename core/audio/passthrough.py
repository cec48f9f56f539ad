"""The voice passed on to a virtual microphone, delayed to arrive with the face it moves.

A call app takes its microphone from that output ("Hygie Avatar Mic", VB-CABLE, BlackHole) and
receives voice and face aligned. The agent thread resamples and writes into a ring; the output
callback only copies out of it and notes when its buffer will be heard.

The controlled quantity is absolute, so it cannot drift: for the newest sample written,
(time it will leave the output) - (time it was captured), both on `time.perf_counter()`, is
steered toward the measured video latency (microphone -> frame sent). The play time comes from
the output callback's own timing (`outputBufferDacTime`: PortAudio's buffer plus, through the
ALSA "pulse" device, the sound server's latency), so a change anywhere on either path is followed.

Changes never click:
- small errors are corrected by a tiny change of playback rate (linear interpolation at the
  output rate, at most `max_ratio` = 0.5 %: 8.6 cents of pitch, far below what anyone hears);
- a large error (start-up, the video latency moved by tens of ms) is corrected in one jump,
  but only while the voice gate says silence, with a 5 ms fade-in after the cut.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from hygie.core.audio.capture import TARGET_RATE, _sd, resolve_device
from hygie.core.errors import DeviceError
from hygie.core.audio.ring_buffer import SampleRing

log = logging.getLogger(__name__)


class VariableRateResampler:
    """Streaming linear interpolation by a ratio that may change every chunk (no discontinuity)."""

    def __init__(self) -> None:
        self.prev = 0.0  # last input sample of the previous chunk (index 0 of the extended chunk)
        self.pos = 0.0  # next output position, in extended-chunk coordinates

    def process(self, x: np.ndarray, ratio: float) -> np.ndarray:
        """`ratio` = output samples per input sample (1.0: unchanged)."""
        n_in = x.shape[0]
        if n_in == 0:
            return np.zeros(0, np.float32)
        step = 1.0 / ratio
        if self.pos > n_in:
            self.pos -= n_in
            self.prev = float(x[-1])
            return np.zeros(0, np.float32)
        n = int(np.floor((n_in - self.pos) / step)) + 1
        t = self.pos + step * np.arange(n)
        ext = np.empty(n_in + 1, np.float64)
        ext[0] = self.prev
        ext[1:] = x
        i = np.minimum(t.astype(np.int64), n_in)
        f = t - i
        y = ext[i] * (1.0 - f) + ext[np.minimum(i + 1, n_in)] * f
        self.pos = t[-1] + step - n_in
        self.prev = float(x[-1])
        return y.astype(np.float32)


class AudioPassthrough:
    def __init__(self, device: str | int, backend: str = "portaudio", env: dict[str, str] | None = None,
                 jump_ms: float = 20.0,
                 force_jump_ms: float = 200.0, max_ratio: float = 0.005, tau_s: float = 2.0,
                 max_delay_s: float = 1.0, fade_ms: float = 5.0, buffer_s: float = 0.02, probe: Any = None):
        """`backend` "portaudio": `device` is a sounddevice output (name part or index); "pulse": a PulseAudio
        sink name, played through libpulse whose latency includes the server's buffers and the sink.
        `env`: variables set while a PortAudio stream opens (e.g. PULSE_SINK for the ALSA "pulse" device).
        `probe`: a VoiceProbe listening to the microphone fed here; its measured delay corrects the estimate."""
        from hygie.core.audio.resample import LowDelayResampler

        self.backend = backend
        saved = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})
        try:
            if backend == "pulse":
                from hygie.core.live.virtual_mic import RATE
                self.info, self.name, self.rate = {}, str(device), float(RATE)
            else:
                self.info = resolve_device(device, "output")
                self.name = self.info["name"]
                self.rate = float(self.info["default_samplerate"]) or 48000.0
            self.ring = SampleRing(int(self.rate * (max_delay_s + 1.0)))
            self.max_delay_s = max_delay_s
            self.buffer_s = buffer_s  # output buffer: its delay is measured and taken from the ring's share
            self.jump_s, self.force_jump_s = jump_ms / 1000, force_jump_ms / 1000
            self.max_ratio, self.tau_s = max_ratio, tau_s
            self.fade = np.linspace(0.0, 1.0, max(2, int(self.rate * fade_ms / 1000)), dtype=np.float32)
            # 0.4 ms of delay (soxr "HQ" alone would hold the voice back 12.8 ms, see resample.py)
            self.resampler = None if int(self.rate) == TARGET_RATE else LowDelayResampler(TARGET_RATE, int(self.rate))
            self.vrate = VariableRateResampler()
            self.underruns = 0
            self.jumps = 0
            self.ratio = 1.0
            self.error_s: float | None = None  # audio delay minus target, smoothed
            self.delay_s: float | None = None  # capture -> arrival delay of the newest sample (estimate + bias)
            self.probe = probe
            self.bias_s = 0.0  # measured arrival - estimated departure (the server's part after the sink)
            self._history: deque[tuple[float, float]] = deque(maxlen=2000)  # (capture time, estimated delay)
            self._lat = 0.0
            self._started = False
            # written by the callback, read by push(): (perf time of callback, its buffer's lead, frames)
            self._cb = (0.0, 0.0, 0)
            self._tmp = np.zeros(int(self.rate), np.float32)  # callback scratch, preallocated
            self._writer: threading.Thread | None = None
            self._skip_asked = 0  # samples the consumer should drop from the ring (producer adds)
            self._skip_done = 0  # ... and has dropped (consumer adds): one writer each, no lock
            self._writes = 0
            self._run = False
            self.stream = self._open_pulse() if backend == "pulse" else self._open(_sd())
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        self.output_latency = float(self.stream.latency) if backend != "pulse" else self.buffer_s
        log.info("voice to %r at %.0f Hz (output latency %.0f ms)%s", self.name, self.rate,
                 1000 * self.output_latency, f" with {env}" if env else "")

    def _open(self, sd: Any) -> Any:
        ring, tmp, perf = self.ring, self._tmp, time.perf_counter

        def callback(outdata, frames, time_info, status):  # real-time: copy only
            now = perf()
            if self._skip_asked > self._skip_done:
                asked = self._skip_asked
                ring.skip(asked - self._skip_done)
                self._skip_done = asked
            buf = tmp[:frames]
            if ring.read_into(buf) < frames and self._started:
                self.underruns += 1
            outdata[:, 0] = buf
            if outdata.shape[1] > 1:
                outdata[:, 1:] = outdata[:, :1]
            lead = time_info.outputBufferDacTime - time_info.currentTime
            self._cb = (now, lead if 0.0 <= lead < 2.0 else 0.0, frames)  # one tuple store: atomic

        channels = 1 if self.info["max_output_channels"] >= 1 else 2
        try:
            stream = sd.OutputStream(device=self.info["index"], samplerate=self.rate, channels=channels,
                                     dtype="float32", callback=callback, latency=self.buffer_s)
            stream.start()
        except Exception as e:
            raise DeviceError(f"Cannot open audio output {self.name!r} for the voice: {e}. "
                              "Check `hygie devices` for outputs.") from e
        return stream

    def _open_pulse(self) -> Any:
        from hygie.core.live.pulse_stream import PulseStream

        stream = PulseStream("playback", self.name, int(self.rate), buffer_ms=1000 * self.buffer_s)
        self._run = True
        self._writer = threading.Thread(target=self._write_loop, args=(stream,), name="voice-out", daemon=True)
        self._writer.start()
        # a null sink nobody listened to sleeps in 2-s blocks: wait until it takes samples at our pace
        t_end = time.perf_counter() + 3.0
        n0 = self._writes
        while time.perf_counter() < t_end and self._writes - n0 < int(0.2 / 0.005):
            time.sleep(0.01)
        return stream

    def _write_loop(self, stream: Any) -> None:
        """Keep the server's buffer full from the ring (silence when it is empty); the write blocks."""
        buf = np.zeros(int(self.rate * 0.005), np.float32)
        perf = time.perf_counter
        while self._run:
            if self._skip_asked > self._skip_done:
                asked = self._skip_asked
                self.ring.skip(asked - self._skip_done)
                self._skip_done = asked
            if self.ring.available() < buf.size and self._started and self._lat > 0.008:
                time.sleep(0.002)  # the server still has audio queued: wait for ours rather than insert silence
                self._lat -= 0.002
                continue
            if self.ring.read_into(buf) < buf.size and self._started:
                self.underruns += 1
            try:
                stream.write(buf)
                lat = stream.latency() or self._lat  # until the last sample written is heard (0: not known yet)
                self._lat = lat
                self._writes += 1
            except DeviceError as e:
                log.error("voice output stopped: %s", e)
                return
            self._cb = (perf(), lat, 0)

    def play_time_of_next(self) -> float | None:
        """perf_counter time at which the next sample written will leave the output (None before audio flows)."""
        t_cb, lead, frames = self._cb
        if t_cb == 0.0:
            return None
        # an output that stopped taking samples (a stalled writer, a suspended sink) plays nothing meanwhile:
        # then the ring starts no earlier than now
        start = max(t_cb + lead + frames / self.rate, time.perf_counter() + 0.5 * self.buffer_s)
        return start + max(0, self.ring.available() - (self._skip_asked - self._skip_done)) / self.rate

    def push(self, samples16k: np.ndarray, t_last: float | None = None, target_s: float | None = None,
             silent: bool = False) -> None:
        """Queue microphone audio whose newest sample was captured at `t_last`; steer its delay to `target_s`."""
        if self.probe is not None and t_last is not None and samples16k.size:
            self._calibrate(samples16k, t_last)
        y = samples16k
        if self.resampler is not None and y.size:
            y = self.resampler.resample_chunk(np.asarray(y, np.float32))
        if not y.size:
            return
        t_play = self.play_time_of_next()
        ratio, insert, drop = 1.0, 0, 0
        if t_play is not None and t_last is not None and target_s is not None:
            target = min(max(target_s, 0.0), self.max_delay_s)
            est = t_play + y.size / self.rate - t_last
            self._history.append((t_last, est))
            self.delay_s = est + self.bias_s
            e = self.delay_s - target
            smooth = e if self.error_s is None else self.error_s + 0.1 * (e - self.error_s)
            # jump only on a settled error (not one noisy reading), in silence; or when far off
            big = abs(e) > self.force_jump_s or (abs(smooth) > self.jump_s and silent) or not self._started
            if big:
                n = int(round(abs(e) * self.rate))
                insert, drop = (n, 0) if e < 0 else (0, min(n, y.size))
                if e > 0 and n > drop:  # the rest of a long delay is dropped by the consumer, from the ring
                    self._skip_asked += n - drop
                self.error_s = 0.0
                self.jumps += self._started
                self._started = True
            else:
                self.error_s = smooth
                ratio = 1.0 - float(np.clip(self.error_s / self.tau_s, -self.max_ratio, self.max_ratio))
        self.ratio = ratio
        y = self.vrate.process(y, ratio)
        if insert or drop:
            y = y[drop:].copy()
            k = min(len(self.fade), y.size)
            y[:k] *= self.fade[:k]
            if insert:
                self.ring.write(np.zeros(insert, np.float32))
        if y.size:
            self.ring.write(np.ascontiguousarray(y, np.float32))

    def _calibrate(self, x16k: np.ndarray, t_last: float) -> None:
        self.probe.reference(x16k, t_last)
        m = self.probe.poll(time.perf_counter())
        if m is None:
            return
        measured, t0 = m
        est = [d for t, d in self._history if t0 <= t <= t0 + self.probe.window_s]
        if len(est) < 5:
            return
        b = measured - float(np.mean(est))
        self.bias_s = b if self.probe.n_measures <= 1 else self.bias_s + 0.3 * (b - self.bias_s)

    @property
    def queued_s(self) -> float:
        return self.ring.available() / self.rate

    def stats(self) -> dict:
        return {"device": self.name, "delay_ms": None if self.delay_s is None else 1000 * self.delay_s,
                "error_ms": None if self.error_s is None else 1000 * self.error_s, "ratio": self.ratio,
                "jumps": self.jumps, "underruns": self.underruns, "bias_ms": 1000 * self.bias_s,
                "probe_measures": getattr(self.probe, "n_measures", None)}

    def close(self) -> None:
        if self.probe is not None:
            self.probe.close()
        try:
            if self.backend == "pulse":
                self._run = False
                if self._writer is not None:
                    self._writer.join(timeout=2.0)  # a blocked write returns within the buffer time
                if self._writer is None or not self._writer.is_alive():
                    self.stream.close()
            else:
                self.stream.abort()
                self.stream.close()
        except Exception as e:
            log.debug("closing pass-through: %s", e)
        self.resampler = None
