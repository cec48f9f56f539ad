"""The virtual-camera sink through the real pyvirtualcam.Camera API (registered test backend)."""
import numpy as np
import pytest

import vcam_fixtures
from hygie.core.errors import DeviceError, HygieError
from hygie.core.limits import parse_size
from hygie.core.live import camera_identity, vcam
from hygie.core.live.clock import FrameClock


def test_bgr_frames_reach_the_backend_unchanged():
    kept = []
    with vcam.VirtualCamera(64, 48, 30, backend=vcam_fixtures.BACKEND, keep=lambda f: f.copy()) as cam:
        f = np.zeros((48, 64, 3), np.uint8)
        f[..., 0] = 255  # blue in BGR
        cam.send(f)
        cam.send(np.full((96, 128, 3), 200, np.uint8))  # wrong size: resized, not rejected
        backend = vcam_fixtures.RecordingBackend.instances[-1]
        kept = backend.kept
    assert backend.closed
    assert kept[0].shape == (48, 64, 3) and kept[0][0, 0].tolist() == [255, 0, 0]
    assert kept[1].shape == (48, 64, 3) and int(kept[1].mean()) == 200


def test_linux_device_is_chosen_by_name_not_first(tmp_path):
    for i, name in [(0, "Integrated Camera"), (2, "OBS Virtual Camera"), (10, "Hygie Avatar")]:
        d = tmp_path / f"video{i}"
        d.mkdir()
        (d / "name").write_text(name + "\n")
    assert camera_identity.find_linux_camera(str(tmp_path)) == "/dev/video10"
    assert [c.name for c in camera_identity.linux_cameras(str(tmp_path))][0] == "Integrated Camera"


def test_no_camera_error_says_the_fix(monkeypatch):
    monkeypatch.setattr(vcam, "default_targets", lambda system=None: [])
    with pytest.raises(DeviceError) as e:
        vcam.VirtualCamera(64, 48, 30)
    msg = str(e.value)
    assert 'card_label="Hygie Avatar" exclusive_caps=1' in msg and "modprobe" in msg


def test_fix_per_os():
    assert "Unity Capture" in camera_identity.no_camera_fix("Windows") and "OBS" in camera_identity.no_camera_fix("Windows")
    assert "OBS" in camera_identity.no_camera_fix("Darwin")


def test_busy_camera_error():
    with pytest.raises(DeviceError, match="busy"):
        vcam.VirtualCamera(64, 48, 30, backend=vcam_fixtures.BACKEND, fail_open="device or resource busy")


def test_parse_size():
    assert parse_size("1280x720") == (1280, 720)
    with pytest.raises(HygieError):
        parse_size("1280")


def test_frame_clock_absolute_schedule_and_resync():
    c = FrameClock(100)
    c.start(0.0)
    assert c.next_due() == 0.0
    c.start()
    ticks = [c.wait() for _ in range(5)]
    assert ticks == [0, 1, 2, 3, 4]
    c.t0 -= 1.0  # pretend we stalled for a second
    c.wait()
    assert c.resyncs == 1
