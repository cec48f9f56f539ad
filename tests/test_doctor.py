"""`hygie doctor`: each check on faked OS facts, the real machine, a real OBS and real packages."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hygie.installer import doctor
from hygie.installer.doctor import (Check, check_avatar, check_camera_linux, check_camera_macos,
                                    check_camera_windows, check_python, format_checks)
from tests.obs_fixtures import needs_obs, obs, obs_server  # noqa: F401


def fake_sys(tmp_path: Path, devices: dict[str, str], module: bool, exclusive: str | None = "Y",
             secure_boot: bool | None = None) -> Path:
    root = tmp_path / "sys"
    for dev, name in devices.items():
        d = root / "class" / "video4linux" / dev
        d.mkdir(parents=True)
        (d / "name").write_text(name + "\n")
    if module:
        p = root / "module" / "v4l2loopback" / "parameters"
        p.mkdir(parents=True)
        if exclusive is not None:
            (p / "exclusive_caps").write_text(exclusive + "\n")
    if secure_boot is not None:
        e = root / "firmware" / "efi" / "efivars"
        e.mkdir(parents=True)
        (e / "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c").write_bytes(b"\x06\x00\x00\x00" + bytes([secure_boot]))
    return root


def test_linux_camera_ok(tmp_path):
    root = fake_sys(tmp_path, {"video0": "Integrated Webcam", "video10": "Hygie Avatar"}, module=True)
    c = check_camera_linux(root, tmp_path / "mods", "6.1.0")
    assert c.status == "ok" and "/dev/video10" in c.detail


def test_linux_camera_wrong_label(tmp_path):
    root = fake_sys(tmp_path, {"video0": "Dummy video device (0x0000)"}, module=True)
    c = check_camera_linux(root, tmp_path / "mods", "6.1.0")
    assert c.status == "fail" and "Dummy video device" in c.detail
    assert 'card_label="Hygie Avatar" exclusive_caps=1' in c.fix and "modprobe -r" in c.fix


def test_linux_camera_exclusive_caps_off_warns(tmp_path):
    root = fake_sys(tmp_path, {"video3": "Hygie Avatar"}, module=True, exclusive="N")
    c = check_camera_linux(root, tmp_path / "mods", "6.1.0")
    assert c.status == "warn" and "exclusive_caps" in c.detail


def test_linux_not_loaded_with_secure_boot_caveat(tmp_path):
    root = fake_sys(tmp_path, {}, module=False, secure_boot=True)
    (tmp_path / "mods" / "6.1.0").mkdir(parents=True)
    c = check_camera_linux(root, tmp_path / "mods", "6.1.0")
    assert c.status == "fail" and "not loaded" in c.detail
    assert "v4l2loopback-dkms" in c.fix and "Secure Boot is ON" in c.fix and "MOK" in c.fix
    root2 = fake_sys(tmp_path / "b", {}, module=False, secure_boot=False)
    assert "Secure Boot" not in check_camera_linux(root2, tmp_path / "mods", "6.1.0").fix


def test_linux_no_module_support(tmp_path):
    c = check_camera_linux(fake_sys(tmp_path, {}, module=False), tmp_path / "nomods", "6.18.0-container")
    assert c.status == "fail" and "no loadable module support" in c.detail and "on the host" in c.fix


def test_windows_and_macos_camera():
    assert check_camera_windows(["Integrated Camera", "Hygie Avatar"]).status == "ok"
    assert "OBS Virtual Camera" in check_camera_windows(["OBS Virtual Camera"]).detail
    bad = check_camera_windows(["Integrated Camera"])
    assert bad.status == "fail" and 'UnityCaptureName=Hygie Avatar' in bad.fix
    line = "*\t*\tABCDE12345\tcom.obsproject.obs-studio.mac-camera-extension (30.0/30.0)\tOBS Virtual Camera\t[%s]"
    assert check_camera_macos(line % "activated enabled").status == "ok"
    waiting = check_camera_macos(line % "activated waiting for user")
    assert waiting.status == "fail" and "Privacy & Security" in waiting.fix
    assert "OBS Studio >= 30" in check_camera_macos("0 extension(s)").fix


def test_python_version():
    assert check_python((3, 11, 7)).status == "ok"
    old = check_python((3, 8, 10))
    assert old.status == "fail" and ">= 3.10" in old.fix


def test_avatar_invalid_dir_and_missing(tmp_path):
    c = check_avatar(str(tmp_path / "nope"))
    assert c.status == "fail" and "hygie enroll" in c.fix
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "avatar.json").write_text(json.dumps({"format": "something else"}))
    c = check_avatar(str(tmp_path / "fake"))
    assert c.status == "fail" and c.fix


@pytest.mark.slow
def test_avatar_real_package_then_tampered(grid_avatar_copy):
    assert check_avatar(str(grid_avatar_copy)).status == "ok"
    name = sorted(json.loads((grid_avatar_copy / "avatar.json").read_text())["files"])[0]
    victim = grid_avatar_copy / name  # a file the package's sha256 list covers
    data = victim.read_bytes()
    victim.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    c = check_avatar(str(grid_avatar_copy))
    assert c.status == "fail" and "sha256" in c.fix


def test_format_and_exit_code_on_this_machine(tmp_path):
    """The real checks, end to end through the CLI: exit code follows the blocking checks."""
    out = subprocess.run([sys.executable, "-m", "hygie.core.cli.main", "doctor", "--avatar", str(tmp_path / "none"),
                          "--obs-port", "1"], capture_output=True, text=True, timeout=120)
    for name in ("Python", "PortAudio", "audio input", "virtual camera", "OBS websocket", "avatar package"):
        assert f" {name}:" in out.stdout, out.stdout
    assert "[FAIL] avatar package" in out.stdout and out.returncode == 1
    assert "[warn] OBS websocket" in out.stdout and "fix: start OBS" in out.stdout


def test_exit_zero_when_only_warnings(monkeypatch, capsys):
    from hygie.core.cli.main import main
    monkeypatch.setattr(doctor, "run_checks", lambda **kw: [Check("Python", "ok", "3.11"),
                                                            Check("OBS websocket", "warn", "off", "enable it")])
    assert main(["doctor"]) == 0
    assert "fix: enable it" in capsys.readouterr().out
    assert "[FAIL] x: y\n       fix: z" in format_checks([Check("x", "fail", "y", "z")])


@pytest.mark.obs
@needs_obs
def test_obs_check_against_real_obs(obs):
    c = doctor.check_obs("127.0.0.1", obs.port, obs.password)
    assert c.status == "ok" and "OBS 29" in c.detail
    bad = doctor.check_obs("127.0.0.1", obs.port, "wrong")
    assert bad.status == "warn" and "refused the password" in bad.detail and "wrong" not in bad.fix
