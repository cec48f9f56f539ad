"""The virtual-camera sink: "Hygie Avatar" through pyvirtualcam, BGR frames.

Which device:
- Linux: the v4l2loopback device whose /sys/class/video4linux/*/name is "Hygie Avatar"
  (not just the first loopback device, which may belong to OBS or another app);
- Windows: Unity Capture registered as "Hygie Avatar", else OBS Virtual Camera;
- macOS: OBS Virtual Camera (OBS >= 30 camera extension).
Errors say the exact fix for the OS.
"""
from __future__ import annotations

import logging
import platform

import numpy as np

from hygie.core.errors import DeviceError
from hygie.core.live.camera_identity import CAMERA_NAME, CameraInfo, find_linux_camera, linux_cameras, no_camera_fix
from hygie.core.live.clock import FrameClock

log = logging.getLogger(__name__)


def default_targets(system: str | None = None) -> list[tuple[str | None, str | None]]:
    """(backend, device) pairs to try, in order, when the user named none."""
    system = system or platform.system()
    if system == "Linux":
        dev = find_linux_camera()
        return [("v4l2loopback", dev)] if dev else []
    if system == "Windows":
        return [("unitycapture", CAMERA_NAME), ("obs", None)]
    if system == "Darwin":
        return [("obs", None)]
    return []


def list_virtual_cameras() -> list[CameraInfo]:
    system = platform.system()
    if system == "Linux":
        return linux_cameras()
    try:
        import pyvirtualcam
        names = list(pyvirtualcam.camera.BACKENDS)
    except Exception:
        names = []
    return [CameraInfo(CAMERA_NAME if b == "unitycapture" else "OBS Virtual Camera", b, b) for b in names]


class VirtualCamera:
    """Opens pyvirtualcam with BGR frames; `send` and `sleep_until_next_frame`."""

    def __init__(self, width: int, height: int, fps: float, device: str | None = None,
                 backend: str | None = None, **backend_kw):
        try:
            import pyvirtualcam
        except Exception as e:
            raise DeviceError(f"pyvirtualcam cannot be imported ({e}). Reinstall: pip install pyvirtualcam") from e
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        if backend is not None or device is not None:
            targets = [(backend, device)]
        else:
            targets = default_targets()
            if not targets:
                found = ", ".join(f"{c.device} ({c.name!r})" for c in list_virtual_cameras()) or "none"
                raise DeviceError(f'No virtual camera named "{CAMERA_NAME}" (found: {found}).\n{no_camera_fix()}\n'
                                  "Or pass --camera DEVICE to use another one.")
        errors = []
        self.cam = None
        for be, dev in targets:
            try:
                self.cam = pyvirtualcam.Camera(self.width, self.height, self.fps, fmt=pyvirtualcam.PixelFormat.BGR,
                                               device=dev, backend=be, **backend_kw)
                break
            except Exception as e:
                errors.append((be, dev, str(e)))
        if self.cam is None:
            msg = "; ".join(f"{be or 'any'} {dev or ''}: {e}" for be, dev, e in errors)
            if any("busy" in e.lower() or "in use" in e.lower() for _, _, e in errors):
                raise DeviceError(f"The virtual camera is busy ({msg}). Another program (another `hygie run`, OBS's "
                                  "own virtual camera, a video app) is writing to it: close it, or give this one its "
                                  "own device with --camera.")
            raise DeviceError(f"Cannot open the virtual camera ({msg}).\n{no_camera_fix()}")
        self.device = self.cam.device
        self.backend = self.cam.backend
        self.clock = FrameClock(self.fps)
        log.info("virtual camera %s (%s) %dx%d @ %.0f fps", self.device, self.backend, self.width, self.height, self.fps)

    def send(self, frame_bgr: np.ndarray) -> None:
        if frame_bgr.shape[:2] != (self.height, self.width):
            import cv2
            frame_bgr = cv2.resize(frame_bgr, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        self.cam.send(np.ascontiguousarray(frame_bgr, dtype=np.uint8))

    def sleep_until_next_frame(self) -> int:
        """Wait for the next tick of the absolute frame clock; returns the tick index."""
        return self.clock.wait()

    @property
    def frames_sent(self) -> int:
        return self.cam.frames_sent if self.cam else 0

    def close(self) -> None:
        if self.cam is not None:
            try:
                self.cam.close()
            finally:
                self.cam = None

    def __enter__(self) -> "VirtualCamera":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
