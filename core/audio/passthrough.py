"""The voice passed on to a virtual microphone, delayed to arrive with the face it moves.

A call app takes its microphone from that output ("Hygie Avatar Mic", VB-CABLE, BlackHole) and
receives voice and face aligned. The agent thread `push`es the microphone's 16 kHz audio with its
capture time; it is resampled to the output's rate into a `VoiceLine` (voice_line.py), which the
output side reads by time: every sample is heard at its capture time + the measured video latency.

Two outputs:
- "pulse" (the Linux virtual mic): a writer thread, paced by the server (the write blocks), asks
  libpulse how long until the last sample written is heard (`pa_simple_get_latency`: the
  server's buffers and the sink), and fills the next block for the moment after it;
- "portaudio" (`--audio-out`, VB-CABLE, BlackHole): the output callback fills its buffer for its
  own `outputBufferDacTime`.

`probe`: a VoiceProbe listening to "Hygie Avatar Mic" like a call app; the difference between the
delay it measures (by cross-correlation with the microphone) and the one the line scheduled is
what the sound server adds after the sink (the null sink, the remapped source), and is taken off
the line's target.
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
from hygie.core.audio.voice_line import VoiceLine, VoiceLineConfig
from hygie.core.errors import DeviceError

log = logging.getLogger(__name__)

BLOCK_S = 0.005  # the pulse writer's block
PROBE_STILL_S = 0.003  # a probe window counts when the scheduled delay moved less than this in it


class AudioPassthrough:
    def __init__(self, device: str | int, backend: str = "portaudio", env: dict[str, str] | None = None,
                 line: VoiceLineConfig | None = None, buffer_s: float = 0.04, probe: Any = None,
                 max_delay_s: float = 1.0):
        """`backend` "portaudio": `device` is a sounddevice output (name part or index); "pulse": a PulseAudio
        sink name, played through libpulse whose latency includes the server's buffers and the sink.
        `env`: variables set while a PortAudio stream opens (e.g. PULSE_SINK for the ALSA "pulse" device).
        `probe`: a VoiceProbe listening to the microphone fed here; its measured delay corrects the target."""
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
            cfg = line or VoiceLineConfig()
            cfg.rate = self.rate
            cfg.capacity_s = max(cfg.capacity_s, max_delay_s + 1.0)
            self.line = VoiceLine(cfg)
            self.max_delay_s = max_delay_s
            self.buffer_s = buffer_s
            # soxr aligns its output with its input (delay compensated), so line sample j stands for 16 kHz sample
            # j * 16000 / rate: one origin maps both. Its cubic "QQ" holds 0.1 ms back, "MQ" 7-40 ms: the voice
            # would come too late for its slot
            self.resampler = None if int(self.rate) == TARGET_RATE else \
                LowDelayResampler(TARGET_RATE, int(self.rate), quality="QQ")
            self.n16 = 0  # 16 kHz samples pushed
            self.probe = probe
            self.bias_s = 0.0  # measured arrival delay - scheduled delay (the server's part after the sink)
            self._measures: deque[float] = deque(maxlen=5)
            self.target_s: float | None = None
            self.writes = 0
            self.lat_log: deque[float] = deque(maxlen=2000)  # the output's queue before each block (pulse)
            self.age_log: deque[float] = deque(maxlen=2000)  # how old the newest sample is when pushed
            self._run = False
            self._writer: threading.Thread | None = None
            self.stream = self._open_pulse() if backend == "pulse" else self._open(_sd())
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        log.info("voice to %r at %.0f Hz%s", self.name, self.rate, f" with {env}" if env else "")

    # -- outputs -------------------------------------------------------------------------------
    def _open(self, sd: Any) -> Any:
        line, perf = self.line, time.perf_counter
        tmp = np.zeros(int(self.rate), np.float32)  # callback scratch, preallocated

        def callback(outdata, frames, time_info, status):
            now = perf()
            lead = time_info.outputBufferDacTime - time_info.currentTime
            buf = tmp[:frames]
            line.fill(buf, now + (lead if 0.0 <= lead < 2.0 else 0.0))
            outdata[:] = buf[:, None]
            self.writes += 1

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
        n0 = self.writes
        while time.perf_counter() < t_end and self.writes - n0 < int(0.2 / BLOCK_S):
            time.sleep(0.01)
        return stream

    def _write_loop(self, stream: Any) -> None:
        """Fill each block for the moment it will be heard (now + what the server still has queued)."""
        buf = np.zeros(int(round(self.rate * BLOCK_S)), np.float32)
        perf = time.perf_counter
        while self._run:
            try:
                lat = stream.latency()  # until the last sample written is heard (0: not known yet)
                self.lat_log.append(lat)
                self.line.fill(buf, perf() + lat)
                stream.write(buf)  # blocks until the server has room: the server paces us
            except DeviceError as e:
                log.error("voice output stopped: %s", e)
                return
            self.writes += 1

    # -- the agent's side ----------------------------------------------------------------------
    def push(self, samples16k: np.ndarray, t_last: float | None = None, target_s: float | None = None,
             silent: bool = False) -> None:
        """Queue microphone audio whose newest sample was captured at `t_last` (the time just after it, as
        `capture_time(start + n)` gives); heard `target_s` after capture (the video latency). `silent` is
        not needed: the line finds quiet moments in the voice itself."""
        x = np.asarray(samples16k, np.float32)
        self.n16 += x.size
        if t_last is not None and x.size:
            self.age_log.append(time.perf_counter() - t_last)
        if self.probe is not None and t_last is not None and x.size:
            self._calibrate(x, t_last)
        if target_s is not None:
            self.target_s = min(max(float(target_s), 0.0), self.max_delay_s)
            self.line.set_target(max(0.0, self.target_s - self.bias_s))
        y = x
        if self.resampler is not None and x.size:
            y = self.resampler.resample_chunk(x)
        origin = None if t_last is None else t_last - self.n16 / TARGET_RATE
        self.line.push(y, origin)

    def _calibrate(self, x16k: np.ndarray, t_last: float) -> None:
        """Take the probe's measure where the schedule held still over its window (a cut or an output gap
        inside it makes the correlation peak meaningless); the bias is the median of the last measures, so
        one wrong peak moves nothing."""
        self.probe.reference(x16k, t_last)
        m = self.probe.poll(time.perf_counter())
        if m is None:
            return
        measured, t0 = m
        sched = np.array([d for t, d in list(self.line.history) if t0 <= t <= t0 + self.probe.window_s])
        if len(sched) < 5 or float(np.ptp(sched)) > PROBE_STILL_S:
            return
        b = measured - float(np.median(sched))
        if abs(b) > 0.2:
            log.debug("voice probe: %.0f ms off the schedule, ignored", 1000 * b)
            return
        self._measures.append(b)
        if len(self._measures) >= 3:
            self.bias_s = float(np.median(self._measures))

    # -- figures ---------------------------------------------------------------------------------
    @property
    def delay_s(self) -> float | None:
        """Capture -> arrival delay of the voice now (scheduled + what the probe measured after the sink)."""
        d = self.line.delay_s
        return None if d is None else d + self.bias_s

    @property
    def jumps(self) -> int:
        return self.line.jumps

    @property
    def underruns(self) -> int:
        return self.line.gaps

    def stats(self) -> dict:
        ln = self.line
        return {"device": self.name, "delay_ms": None if self.delay_s is None else 1000 * self.delay_s,
                "target_ms": None if self.target_s is None else 1000 * self.target_s,
                "error_ms": None if ln.error_s is None else 1000 * ln.error_s, "ratio": ln.ratio,
                "jumps": ln.jumps, "output_gaps": ln.gaps, "late_ms": 1000 * ln.late / self.rate,
                "bias_ms": 1000 * self.bias_s, "probe_measures": getattr(self.probe, "n_measures", None),
                "probe_used": len(self._measures),
                "output_queue_ms": [round(float(v), 1) for v in np.percentile(1000 * np.array(self.lat_log), [5, 50, 95, 100])]
                if self.lat_log else None,
                "push_age_ms": [round(float(v), 1) for v in np.percentile(1000 * np.array(self.age_log), [5, 50, 95, 100])]
                if self.age_log else None}

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
