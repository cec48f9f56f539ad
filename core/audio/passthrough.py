"""`--audio-out`: the microphone passed on to an output device, delayed like the video.

A call app then takes its microphone from that output (a PulseAudio null sink's
monitor, VB-Cable, BlackHole) and receives voice and face aligned. The agent thread
resamples and writes into a ring; the output callback only copies out of it. The
delay is the ring's fill level, steered toward a target by writing a little silence
(too short) or dropping a few incoming samples (too long), at most every 0.5 s so
it does not click.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from hygie.core.audio.capture import TARGET_RATE, _sd, resolve_device
from hygie.core.errors import DeviceError
from hygie.core.audio.ring_buffer import SampleRing

log = logging.getLogger(__name__)


class AudioPassthrough:
    def __init__(self, device: str | int, tolerance_ms: float = 15.0, max_delay_s: float = 1.0):
        import soxr

        sd = _sd()
        self.info = resolve_device(device, "output")
        self.name = self.info["name"]
        self.rate = float(self.info["default_samplerate"]) or 48000.0
        self.ring = SampleRing(int(self.rate * (max_delay_s + 1.0)))
        self.tol = int(self.rate * tolerance_ms / 1000)
        self.max_delay = int(self.rate * max_delay_s)
        self.resampler = None if int(self.rate) == TARGET_RATE else soxr.ResampleStream(
            TARGET_RATE, self.rate, 1, dtype="float32", quality="HQ")
        self.underruns = 0
        self.adjustments = 0
        self._last_adjust = 0.0
        self._tmp = np.zeros(int(self.rate), np.float32)  # callback scratch, preallocated
        ring, tmp = self.ring, self._tmp

        def callback(outdata, frames, time_info, status):  # real-time: copy only
            buf = tmp[:frames]
            if ring.read_into(buf) < frames:
                self.underruns += 1
            outdata[:, 0] = buf
            if outdata.shape[1] > 1:
                outdata[:, 1:] = outdata[:, :1]

        channels = 1 if self.info["max_output_channels"] >= 1 else 2
        try:
            self.stream = sd.OutputStream(device=self.info["index"], samplerate=self.rate, channels=channels,
                                          dtype="float32", callback=callback, latency="low")
            self.stream.start()
        except Exception as e:
            raise DeviceError(f"Cannot open audio output {self.name!r} for --audio-out: {e}. "
                              "Check `hygie devices` for outputs.") from e
        self.output_latency = float(self.stream.latency)
        log.info("audio pass-through to %r at %.0f Hz (output latency %.0f ms)", self.name, self.rate,
                 1000 * self.output_latency)

    def push(self, samples16k: np.ndarray, delay_s: float | None) -> None:
        """Queue mic audio; steer the queue toward `delay_s` seconds (None: keep as is)."""
        y = samples16k
        if self.resampler is not None and y.size:
            y = self.resampler.resample_chunk(y)
        if delay_s is not None:
            target = int(min(max(delay_s, 0.0), self.max_delay / self.rate) * self.rate)
            queued = self.ring.available()
            now = time.perf_counter()
            if abs(queued + y.size - target) > self.tol and now - self._last_adjust > 0.5:
                diff = target - (queued + y.size)
                if diff > 0:
                    self.ring.write(np.zeros(diff, np.float32))
                else:
                    y = y[min(-diff, y.size):]
                self.adjustments += 1
                self._last_adjust = now
        if y.size:
            self.ring.write(np.ascontiguousarray(y, np.float32))

    @property
    def queued_s(self) -> float:
        return self.ring.available() / self.rate

    def close(self) -> None:
        try:
            self.stream.abort()
            self.stream.close()
        except Exception as e:
            log.debug("closing pass-through: %s", e)
