"""The virtual-camera sink: "Hygie Avatar" through pyvirtualcam, BGR frames.

Which device:
- Linux: the v4l2loopback device whose /sys/class/video4linux/*/name is "Hygie Avatar"
  (not just the first loopback device, which may belong to OBS or another app);
- Windows: Unity Capture registered as "Hygie Avatar", else OBS Virtual Camera;
- macOS: OBS Virtual Camera (OBS >= 30 camera extension).
Errors say the exact fix for the OS.
"""
from __future__ import annotations

import glob
import logging
import os
import platform
from dataclasses import dataclass

import numpy as np

from hygie.core.errors import DeviceError
from hygie.core.frame_clock import FrameClock

log = logging.getLogger(__name__)

CAMERA_NAME = "Hygie Avatar"
MODPROBE = f'sudo modprobe v4l2loopback devices=1 video_nr=10 card_label="{CAMERA_NAME}" exclusive_caps=1'


@dataclass
class CameraInfo:
    device: str  # what pyvirtualcam's `device` expects (/dev/videoN or a camera name)
    name: str
    backend: str


def linux_cameras(sys_root: str = "/sys/class/video4linux") -> list[CameraInfo]:
    """v4l2 devices and their names (loopback devices report their card_label)."""
    out = []
    for d in sorted(glob.glob(os.path.join(sys_root, "video*")), key=lambda p: int(p.rsplit("video", 1)[1] or 0)):
        try:
            name = open(os.path.join(d, "name")).read().strip()
        except OSError:
            continue
        out.append(CameraInfo(f"/dev/{os.path.basename(d)}", name, "v4l2loopback"))
    return out


def find_linux_camera(sys_root: str = "/sys/class/video4linux") -> str | None:
    for c in linux_cameras(sys_root):
        if c.name == CAMERA_NAME:
            return c.device
    return None


def no_camera_fix(system: str | None = None) -> str:
    system = system or platform.system()
    if system == "Linux":
        return (f"Load the virtual camera: {MODPROBE}\n"
                "(Debian/Ubuntu: `sudo apt install v4l2loopback-dkms` first; with Secure Boot the module must be "
                "signed or Secure Boot disabled. `hygie doctor` checks all of this.)")
    if system == "Windows":
        return ('Install Unity Capture and register it with the name "Hygie Avatar" '
                '(Install.bat /n "Hygie Avatar"), or install OBS Studio >= 26 and start its Virtual Camera once.')
    if system == "Darwin":
        return ("Install OBS Studio >= 30, click Start Virtual Camera once and approve the camera extension in "
                "System Settings > Privacy & Security.")
    return "No virtual camera backend exists for this OS."


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


def parse_size(s: str | None) -> tuple[int, int] | None:
    if not s:
        return None
    try:
        w, h = s.lower().split("x")
        w, h = int(w), int(h)
    except ValueError:
        raise DeviceError(f"--size {s!r}: expected WIDTHxHEIGHT, e.g. 1280x720") from None
    if w <= 0 or h <= 0 or w % 2 or h % 2:
        raise DeviceError(f"--size {s!r}: width and height must be positive and even, e.g. 1280x720")
    return w, h
