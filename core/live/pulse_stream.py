"""PulseAudio / PipeWire-pulse streams through libpulse-simple (ctypes: no extra dependency).

Used where the timing must be the sound server's own: the voice played into "Hygie Avatar Mic"
(`pa_simple_get_latency` counts the server's buffers and the sink, which PortAudio's ALSA
"pulse" device does not see) and the benches' "call app" recording a source by name.
libpulse-simple ships with every PulseAudio or PipeWire-pulse desktop (Debian: libpulse0).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

import numpy as np

from hygie.core.errors import DeviceError

log = logging.getLogger(__name__)

_PA_SAMPLE_FLOAT32LE = 5
_PA_STREAM_PLAYBACK, _PA_STREAM_RECORD = 1, 2
_NO_VALUE = 0xFFFFFFFF


class _SampleSpec(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("rate", ctypes.c_uint32), ("channels", ctypes.c_uint8)]


class _BufferAttr(ctypes.Structure):
    _fields_ = [("maxlength", ctypes.c_uint32), ("tlength", ctypes.c_uint32), ("prebuf", ctypes.c_uint32),
                ("minreq", ctypes.c_uint32), ("fragsize", ctypes.c_uint32)]


_lib = None


def _libs():
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("pulse-simple") or "libpulse-simple.so.0"
        base = ctypes.util.find_library("pulse") or "libpulse.so.0"
        try:
            simple, pulse = ctypes.CDLL(name), ctypes.CDLL(base)
        except OSError as e:
            raise DeviceError(f"libpulse is not available ({e}): install it (Debian/Ubuntu `sudo apt install "
                              "libpulse0`) or run with --no-virtual-mic.") from None
        simple.pa_simple_new.restype = ctypes.c_void_p
        simple.pa_simple_new.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                         ctypes.c_char_p, ctypes.POINTER(_SampleSpec), ctypes.c_void_p,
                                         ctypes.POINTER(_BufferAttr), ctypes.POINTER(ctypes.c_int)]
        simple.pa_simple_write.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                           ctypes.POINTER(ctypes.c_int)]
        simple.pa_simple_read.argtypes = simple.pa_simple_write.argtypes
        simple.pa_simple_get_latency.restype = ctypes.c_uint64
        simple.pa_simple_get_latency.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
        simple.pa_simple_free.argtypes = [ctypes.c_void_p]
        pulse.pa_strerror.restype = ctypes.c_char_p
        pulse.pa_strerror.argtypes = [ctypes.c_int]
        _lib = (simple, pulse)
    return _lib


class PulseStream:
    """One mono float32 stream to a sink (`playback`) or from a source (`record`), by device name."""

    def __init__(self, direction: str, device: str | None, rate: int, name: str = "hygie",
                 buffer_ms: float = 20.0):
        simple, self._pulse = _libs()
        self._simple = simple
        self.rate, self.device, self.direction = int(rate), device, direction
        ss = _SampleSpec(_PA_SAMPLE_FLOAT32LE, self.rate, 1)
        nbytes = int(self.rate * buffer_ms / 1000) * 4
        if direction == "playback":
            # tlength: what the server keeps queued; a small prebuf starts at once
            attr = _BufferAttr(_NO_VALUE, nbytes, nbytes // 4, nbytes // 4, _NO_VALUE)
            d = _PA_STREAM_PLAYBACK
        else:
            attr = _BufferAttr(_NO_VALUE, _NO_VALUE, _NO_VALUE, _NO_VALUE, nbytes)
            d = _PA_STREAM_RECORD
        err = ctypes.c_int(0)
        self._s = simple.pa_simple_new(None, name.encode(), d, device.encode() if device else None,
                                       f"{name} {direction}".encode(), ctypes.byref(ss), None,
                                       ctypes.byref(attr), ctypes.byref(err))
        if not self._s:
            raise DeviceError(f"cannot open PulseAudio {direction} stream on {device or 'the default device'}: "
                              f"{self._err(err)}. Check `pactl list short sinks` / `sources`.")

    def _err(self, err: ctypes.c_int) -> str:
        return self._pulse.pa_strerror(err.value).decode(errors="replace")

    def write(self, x: np.ndarray) -> None:
        """Blocks until the server has room: the server paces the writer."""
        x = np.ascontiguousarray(x, np.float32)
        err = ctypes.c_int(0)
        if self._simple.pa_simple_write(self._s, x.ctypes.data, x.nbytes, ctypes.byref(err)) < 0:
            raise DeviceError(f"PulseAudio write failed: {self._err(err)}")

    def read(self, n: int, out: np.ndarray | None = None) -> np.ndarray:
        out = np.empty(n, np.float32) if out is None else out
        err = ctypes.c_int(0)
        if self._simple.pa_simple_read(self._s, out.ctypes.data, n * 4, ctypes.byref(err)) < 0:
            raise DeviceError(f"PulseAudio read failed: {self._err(err)}")
        return out

    def latency(self) -> float:
        """Playback: seconds until the last sample written is heard. Record: seconds of audio waiting."""
        err = ctypes.c_int(0)
        us = self._simple.pa_simple_get_latency(self._s, ctypes.byref(err))
        return 0.0 if us == 0xFFFFFFFFFFFFFFFF else us / 1e6

    def close(self) -> None:
        if self._s:
            self._simple.pa_simple_free(self._s)
            self._s = None
