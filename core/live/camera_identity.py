"""Who the virtual camera is: its name, how it is created per OS, how it is found, and the fix when it is not.

The one owner of these facts: the live agent, `hygie devices`, `hygie doctor` and `hygie obs setup`
import them. The installers (install.sh, install.ps1) cannot import Python; a test checks that
their copies of the name and the modprobe options match these.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

CAMERA_NAME = "Hygie Avatar"
# v4l2loopback: one device at /dev/video10 carrying our name; exclusive_caps=1 so that browsers,
# Zoom and Teams list it as a camera (capture-only once a writer has opened it)
MODPROBE_OPTIONS = f'devices=1 video_nr=10 card_label="{CAMERA_NAME}" exclusive_caps=1'
MODPROBE = f"sudo modprobe v4l2loopback {MODPROBE_OPTIONS}"
# Windows: Unity Capture registered under our name (admin prompt, in the unzipped release folder)
UNITY_REGISTER = f'regsvr32 /s "/i:UnityCaptureName={CAMERA_NAME}" UnityCaptureFilter64bit.dll'
SYS_V4L2 = Path("/sys/class/video4linux")


@dataclass
class CameraInfo:
    device: str  # what pyvirtualcam's `device` expects (/dev/videoN or a camera name)
    name: str
    backend: str


def linux_cameras(sys_root: str | os.PathLike = SYS_V4L2) -> list[CameraInfo]:
    """v4l2 devices and their names (loopback devices report their card_label), by device number."""
    root = Path(sys_root)
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.glob("video*"), key=lambda p: int(p.name[5:] or 0) if p.name[5:].isdigit() else 1 << 30):
        try:
            name = (d / "name").read_text().strip()
        except OSError:
            continue
        out.append(CameraInfo(f"/dev/{d.name}", name, "v4l2loopback"))
    return out


def find_linux_camera(sys_root: str | os.PathLike = SYS_V4L2, name: str = CAMERA_NAME) -> str | None:
    """/dev/videoN whose v4l2 card name is ours (not merely the first loopback device)."""
    for c in linux_cameras(sys_root):
        if c.name == name:
            return c.device
    return None


def no_camera_fix(system: str | None = None) -> str:
    """What to do when no camera named CAMERA_NAME exists on this OS."""
    system = system or platform.system()
    if system == "Linux":
        return (f"Load the virtual camera: {MODPROBE}\n"
                "(Debian/Ubuntu: `sudo apt install v4l2loopback-dkms` first; with Secure Boot the module must be "
                "signed or Secure Boot disabled. `hygie doctor` checks all of this.)")
    if system == "Windows":
        return (f'Install Unity Capture and register it with the name "{CAMERA_NAME}" (in an admin prompt: '
                f"{UNITY_REGISTER}), or install OBS Studio >= 26 and start its Virtual Camera once.")
    if system == "Darwin":
        return ("Install OBS Studio >= 30, click Start Virtual Camera once and approve the camera extension in "
                "System Settings > Privacy & Security.")
    return "No virtual camera backend exists for this OS."
