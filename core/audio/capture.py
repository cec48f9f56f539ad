"""Microphone capture: sounddevice InputStream -> ring buffer -> 16 kHz, with a watchdog.

Threads:
- PortAudio's callback copies the device's native-rate samples into a preallocated
  ring and notes when it ran (no allocation, no I/O, no lock);
- the consumer (the agent loop) calls `read()`: new samples, resampled to 16 kHz
  with a low-delay streaming resampler (resample.py), plus their absolute 16 kHz index;
- a watchdog thread reopens the device by name, with backoff, when the stream
  errored or no callback came for `watchdog_ms` (device unplugged, sound server
  restarted). Each (re)open is a new *generation*; `read()` flags the change so the
  consumer resets its streaming state, and the avatar idles meanwhile.

Timestamps: `capture_time(i)` maps a 16 kHz sample index to the `time.perf_counter()`
moment that sample reached us. The mapping is offset + i / 16000 where offset comes
from the least-delayed callback of the last second: a callback can run late but
never before its samples exist.
"""
from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from hygie.core.errors import DeviceError
from hygie.core.audio.resample import LowDelayResampler
from hygie.core.audio.ring_buffer import SampleRing

log = logging.getLogger(__name__)

TARGET_RATE = 16000
_N_ANCHORS = 512  # callbacks remembered for the clock offset
ANCHOR_WINDOW_S = 1.0


@dataclass
class AudioChunk:
    samples: np.ndarray  # float32 mono at 16 kHz
    start: int  # absolute 16 kHz index (within the generation) of samples[0]
    generation: int  # changes when the device was reopened: reset streaming state
    alive: bool  # False while the device is gone


def _sd():
    try:
        import sounddevice as sd
    except OSError as e:  # PortAudio library missing
        raise DeviceError(
            f"PortAudio is not available ({e}). Install it: Debian/Ubuntu `sudo apt install libportaudio2`, "
            "Fedora `sudo dnf install portaudio`, macOS `brew install portaudio`."
        ) from e
    return sd


def _describe(devs: list[dict], kind: str) -> str:
    sd = _sd()
    apis = sd.query_hostapis()
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    lines = [f"  [{d['index']}] {d['name']} ({apis[d['hostapi']]['name']}, {d['default_samplerate']:.0f} Hz)"
             for d in devs if d[key] > 0]
    return "\n".join(lines) or "  (none)"


def list_devices(kind: str) -> list[dict]:
    """All devices usable as `kind` ('input' or 'output'), each with its index."""
    sd = _sd()
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    out = []
    for i, d in enumerate(sd.query_devices()):
        if d[key] > 0:
            d = dict(d)
            d["index"] = i
            out.append(d)
    return out


def resolve_device(name: str | int | None, kind: str = "input") -> dict:
    """Find a device the way sounddevice does (index, or a unique name substring).

    Unknown or ambiguous names raise DeviceError listing the candidates.
    """
    sd = _sd()
    cands = list_devices(kind)
    if name is None or name == "" or name == "default":
        idx = sd.default.device[0 if kind == "input" else 1]
        if idx is None or idx < 0:
            if not cands:
                raise DeviceError(f"No audio {kind} device found. Plug in a microphone or check that your "
                                  "sound server (PulseAudio/PipeWire) runs, then `hygie devices`.")
            idx = cands[0]["index"]
        name = int(idx)
    if isinstance(name, str) and name.strip().isdigit():
        name = int(name)
    try:
        d = dict(sd.query_devices(name, kind))
    except (ValueError, sd.PortAudioError) as e:
        raise DeviceError(
            f"Audio {kind} device {name!r}: {e}.\nAvailable {kind} devices:\n{_describe(cands, kind)}\n"
            f"Pass a unique part of a name or an index, e.g. --{'input' if kind == 'input' else 'audio-out'} "
            f"\"{cands[0]['name'] if cands else 'pulse'}\"."
        ) from None
    if isinstance(name, int):
        d["index"] = name
    else:
        d["index"] = next((c["index"] for c in cands if c["name"] == d["name"] and c["hostapi"] == d["hostapi"]), -1)
    return d


class _Capture:
    """One open stream (one generation): its ring, clock anchors and resampler."""

    def __init__(self, generation: int, rate: float, ring_seconds: float):
        self.generation = generation
        self.rate = float(rate)
        self.ring = SampleRing(int(rate * ring_seconds))
        self.anchor_idx = np.zeros(_N_ANCHORS, np.float64)
        self.anchor_t = np.full(_N_ANCHORS, np.inf, np.float64)
        self.n_anchors = 0
        self.last_callback = 0.0
        self.opened_at = time.perf_counter()
        self.n_callbacks = 0
        self.status_overflows = 0
        self.errored = False
        # not soxr "HQ" alone: its linear-phase filter would add 12.8 ms of latency (see resample.py)
        self.resampler = None if int(rate) == TARGET_RATE else LowDelayResampler(self.rate, TARGET_RATE)
        self.out_pos = 0  # 16 kHz index of the next sample handed out
        self.native_pos = 0  # native index of the next sample to read

    def offset(self) -> float | None:
        """perf_counter time of native sample 0: the least-delayed callback of the last second.

        Only the last second counts: at start-up PulseAudio hands over blocks in
        bursts that would bias the estimate by hundreds of ms for as long as they stay
        in the window, and a short window also follows clock drift.
        """
        n = self.n_anchors  # read once: the callback thread raises it while we look
        if n == 0:
            return None
        t = self.anchor_t[:n]
        recent = t > self.last_callback - ANCHOR_WINDOW_S
        if not recent.any():
            return None
        return float(np.min(t[recent] - self.anchor_idx[:n][recent] / self.rate))


# A stream that stops calling back for this long is reopened. Long enough that a loaded machine's
# stalls (the sound server starved for 0.5 s at load 12 on 2 cores) do not reset the stream, whose
# first callback after a reopen takes 1-2 s on PulseAudio; short enough to recover from a restart.
WATCHDOG_MS = 1500.0


class AudioInput:
    """A microphone by name, resampled to 16 kHz, that survives unplugging."""

    def __init__(self, device: str | int | None = None, block_ms: float = 10.0, ring_seconds: float = 3.0,
                 watchdog_ms: float = WATCHDOG_MS, open_grace_s: float = 4.0, max_backoff_s: float = 5.0):
        self.device = device
        self.block_ms = block_ms
        self.ring_seconds = ring_seconds
        self.watchdog_s = watchdog_ms / 1000.0
        self.open_grace_s = open_grace_s  # first callback can take 1-2 s (PulseAudio)
        self.max_backoff_s = max_backoff_s
        self.device_info = resolve_device(device, "input")  # fail fast with the list of devices
        self.name = self.device_info["name"]
        self._stream: Any = None
        self._cap: _Capture | None = None
        self._generation = 0
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._lock = threading.Lock()  # open/close only; never taken by the callback
        self.reopen_count = 0
        self.open_failures = 0
        self._reader_gen = -1

    # --- stream management -------------------------------------------------------------
    @staticmethod
    def _make_callback(cap: _Capture):
        # Weakly: a sounddevice stream is a reference cycle of its own (its callback wrapper holds the
        # stream), freed only by a full garbage collection; a strong reference from here kept each
        # reopened generation's ring, anchors and resampler alive with it until then.
        cap_ref = weakref.ref(cap)
        perf = time.perf_counter

        def callback(indata, frames, time_info, status):  # real-time thread: copy only
            now = perf()
            cap = cap_ref()
            if cap is None:  # a stream the watchdog already replaced, still draining
                return
            ring, a_idx, a_t = cap.ring, cap.anchor_idx, cap.anchor_t
            if status.input_overflow:
                cap.status_overflows += 1
            ring.write(indata[:, 0])
            # When the host API gives the ADC time, the last sample was captured
            # (currentTime - adcTime) - (frames-1)/rate seconds before now.
            adc, cur = time_info.inputBufferAdcTime, time_info.currentTime
            if adc > 0 and cur > adc:
                now -= max(0.0, (cur - adc) - (frames - 1) / cap.rate)
            k = cap.n_callbacks % _N_ANCHORS
            a_idx[k] = ring.write_pos
            a_t[k] = now
            cap.n_callbacks += 1
            cap.n_anchors = min(cap.n_callbacks, _N_ANCHORS)
            cap.last_callback = now

        return callback

    @staticmethod
    def _make_finished(cap: _Capture):
        cap_ref = weakref.ref(cap)  # weakly, as the callback (see _make_callback)

        def finished() -> None:
            cap = cap_ref()
            if cap is not None:
                cap.errored = True

        return finished

    def _open(self) -> None:
        sd = _sd()
        info = resolve_device(self.device, "input") if self._cap is not None else self.device_info
        rate = float(info["default_samplerate"]) or float(TARGET_RATE)
        cap = _Capture(self._generation + 1, rate, self.ring_seconds)
        channels = 1
        try:
            stream = sd.InputStream(device=info["index"] if info.get("index", -1) >= 0 else self.device,
                                    samplerate=rate, channels=channels, dtype="float32",
                                    blocksize=int(rate * self.block_ms / 1000), latency="low",
                                    callback=self._make_callback(cap),
                                    finished_callback=self._make_finished(cap))
            stream.start()
        except Exception as e:
            raise DeviceError(f"Cannot open audio input {self.name!r}: {e}. Is it in use or unplugged? "
                              "Check `hygie devices`.") from e
        self._generation = cap.generation
        self._stream, self._cap = stream, cap
        log.info("audio input %r open at %.0f Hz (generation %d)", info["name"], rate, cap.generation)

    def _close(self) -> None:
        s, self._stream = self._stream, None
        if s is not None:
            try:
                s.abort()
                s.close()
            except Exception as e:  # a dead stream may refuse to close cleanly
                log.debug("closing audio stream: %s", e)

    def start(self) -> "AudioInput":
        if self._watchdog is not None and self._watchdog.is_alive():
            return self  # already running: a second stream would leak the first (and crash at GC)
        with self._lock:
            self._open()
        self._stop.clear()
        self._watchdog = threading.Thread(target=self._watch, name="audio-watchdog", daemon=True)
        self._watchdog.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=2)
        with self._lock:
            self._close()
            if self._cap is not None:
                # soxr's nanobind object must not outlive the interpreter (it prints "leaked" warnings at exit)
                self._cap.resampler = None

    def __enter__(self) -> "AudioInput":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _dead_reason(self) -> str | None:
        cap, s = self._cap, self._stream
        if s is None or cap is None:
            return "not open"
        now = time.perf_counter()
        if cap.errored or not s.active:
            return "stream stopped with an error"
        if now - cap.opened_at < self.open_grace_s:
            return None  # PulseAudio delivers the first blocks late and in bursts
        if cap.n_callbacks == 0:
            return f"no audio within {self.open_grace_s:.0f} s of opening"
        if now - cap.last_callback > self.watchdog_s:
            return f"no audio for {1000 * (now - cap.last_callback):.0f} ms"
        return None

    def _watch(self) -> None:
        backoff = 0.5
        while not self._stop.wait(0.05):
            reason = self._dead_reason()
            if reason is None:
                backoff = 0.5
                continue
            log.warning("audio input %r: %s; reopening", self.name, reason)
            with self._lock:
                self._close()
            while not self._stop.is_set():
                try:
                    with self._lock:
                        self._open()
                    self.reopen_count += 1
                    break
                except Exception as e:
                    self.open_failures += 1
                    log.warning("audio input %r: reopen failed (%s); retrying in %.1f s", self.name, e, backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self.max_backoff_s)

    # --- consumer side -------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        cap = self._cap
        return cap is not None and cap.n_callbacks > 0 and self._dead_reason() is None

    @property
    def overflows(self) -> int:
        cap = self._cap
        return 0 if cap is None else cap.ring.overflows + cap.status_overflows

    @property
    def native_rate(self) -> float:
        return self._cap.rate if self._cap else float(self.device_info["default_samplerate"])

    def read(self) -> AudioChunk:
        """Everything that arrived since the last call, at 16 kHz. Never blocks."""
        cap = self._cap
        if cap is None or self._stop.is_set():
            return AudioChunk(np.zeros(0, np.float32), 0, self._generation, False)
        start_native, raw = cap.ring.read()
        if start_native != cap.native_pos:  # the ring overflowed: keep indices tied to real time
            cap.out_pos += int(round((start_native - cap.native_pos) * TARGET_RATE / cap.rate))
        cap.native_pos = start_native + raw.size
        if cap.resampler is not None:
            y = cap.resampler.resample_chunk(raw) if raw.size else np.zeros(0, np.float32)
        else:
            y = raw
        y = np.asarray(y, np.float32).ravel()
        start = cap.out_pos
        cap.out_pos += y.size
        self._reader_gen = cap.generation
        return AudioChunk(y, start, cap.generation, self.alive)

    def capture_time(self, index16: float, generation: int | None = None) -> float | None:
        """perf_counter time at which 16 kHz sample `index16` was captured (None if unknown)."""
        cap = self._cap
        if cap is None or (generation is not None and generation != cap.generation):
            return None
        off = cap.offset()
        return None if off is None else off + index16 / TARGET_RATE

    def stats(self) -> dict:
        return {"device": self.name, "rate": self.native_rate, "overflows": self.overflows,
                "reopens": self.reopen_count, "alive": self.alive}


class FileAudioSource:
    """A file played in real time with the AudioInput interface (bench, tests, no sound server).

    Loops the file; `loop=False` sends silence after the end.
    """

    def __init__(self, path: str, loop: bool = True):
        from hygie.core.media.audio_file import load_audio

        self.name = f"file:{path}"
        self.audio = load_audio(path, TARGET_RATE)
        self.loop = loop
        self.t0: float | None = None
        self.pos = 0
        self.reopen_count = 0
        self.overflows = 0
        self.native_rate = float(TARGET_RATE)
        self.alive = True

    def start(self) -> "FileAudioSource":
        self.t0 = time.perf_counter()
        return self

    def stop(self) -> None:
        pass

    def read(self) -> AudioChunk:
        if self.t0 is None:
            self.start()
        end = int((time.perf_counter() - self.t0) * TARGET_RATE)
        n = end - self.pos
        idx = np.arange(self.pos, end)
        if self.loop:
            y = self.audio[idx % len(self.audio)]
        else:
            y = np.zeros(n, np.float32)
            m = idx < len(self.audio)
            y[m] = self.audio[idx[m]]
        start, self.pos = self.pos, end
        return AudioChunk(y.astype(np.float32), start, 1, True)

    def capture_time(self, index16: float, generation: int | None = None) -> float | None:
        return None if self.t0 is None else self.t0 + index16 / TARGET_RATE

    def stats(self) -> dict:
        return {"device": self.name, "rate": self.native_rate, "overflows": 0, "reopens": 0, "alive": True}
