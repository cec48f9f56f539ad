"""A pyvirtualcam backend that keeps what it receives, registered under the name "hygie_null".

Frames go through the real `pyvirtualcam.Camera` API (shape/dtype checks, BGR format,
reshape) exactly as with v4l2loopback; the backend stores a timestamp per frame and
whatever `keep(frame_hwc)` returns (a crop, a statistic) so long runs stay small.
Benches (and tests) measure the live agent through it on machines without a virtual camera.
`capacity=N` keeps the first N timestamps in an array allocated up front, so a soak's memory
figure is the agent's, not a list of timestamps growing beside it.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import pyvirtualcam
from pyvirtualcam.util import encode_fourcc

BACKEND = "hygie_null"


class RecordingBackend:
    instances: list["RecordingBackend"] = []

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None,
                 keep: Callable[[np.ndarray], Any] | None = None, fail_open: str | None = None,
                 capacity: int | None = None, **kw):
        if fail_open:
            raise RuntimeError(fail_open)
        if fourcc != encode_fourcc(pyvirtualcam.PixelFormat.BGR.value):
            raise RuntimeError("the agent must send BGR")
        self.width, self.height, self.fps = width, height, fps
        self._device = device or "/dev/video-test"
        self.keep = keep
        self._times: list[float] | np.ndarray = [] if capacity is None else np.zeros(int(capacity), np.float64)
        self.n_sent = 0
        self.kept: list[Any] = []
        self.closed = False
        RecordingBackend.instances.append(self)

    @property
    def times(self) -> list[float] | np.ndarray:
        """Send times (perf_counter); with a capacity, the first `capacity` of them."""
        if isinstance(self._times, list):
            return self._times
        return self._times[:min(self.n_sent, len(self._times))]

    def send(self, frame: np.ndarray) -> None:
        t = time.perf_counter()
        if isinstance(self._times, list):
            self._times.append(t)
        elif self.n_sent < len(self._times):
            self._times[self.n_sent] = t
        self.n_sent += 1
        if self.keep is not None:
            self.kept.append(self.keep(frame.reshape(self.height, self.width, 3)))

    def close(self) -> None:
        self.closed = True

    def device(self) -> str:
        return self._device

    def native_fourcc(self):
        return None


pyvirtualcam.register_backend(BACKEND, RecordingBackend)
