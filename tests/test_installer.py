"""installer/install.sh for real: venv + pip install, idempotent re-run, v4l2loopback step
(written to a private /etc root with shimmed modprobe/modinfo/sudo), skip without module support."""
from __future__ import annotations

import os
import platform
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "installer" / "install.sh"
OPTIONS = 'options v4l2loopback devices=1 video_nr=10 card_label="Hygie Avatar" exclusive_caps=1'

pytestmark = pytest.mark.skipif(sys.platform.startswith("win"), reason="install.sh is for Linux/macOS")


def run(args, env_extra=None, timeout=600):
    env = dict(os.environ)
    env.pop("HYGIE_INSTALL_YES", None)
    env.update(env_extra or {})
    return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def shims(tmp_path: Path) -> tuple[Path, Path]:
    """modinfo/modprobe/sudo stand-ins that log their arguments (nothing touches the kernel)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for name, body in {"modinfo": "exit 0", "modprobe": "exit 0", "sudo": 'exec "$@"'}.items():
        p = bin_dir / name
        p.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n{body}\n')
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    return bin_dir, log


def test_venv_install_and_idempotent_rerun(tmp_path):
    venv = tmp_path / "venv"
    args = ["--yes", "--no-v4l2", "--venv", str(venv), "--pip-args", "--no-deps"]
    r1 = run(args)
    assert r1.returncode == 0, r1.stdout + r1.stderr
    assert "creating virtual environment" in r1.stdout and (venv / "bin" / "hygie").exists()
    site = list(venv.glob("lib/python*/site-packages/hygie_avatar-*.dist-info"))
    assert site, "the package was not installed into the venv"
    assert "Next steps:" in r1.stdout and "hygie doctor" in r1.stdout
    cfg_mtime = (venv / "pyvenv.cfg").stat().st_mtime_ns
    r2 = run(args)
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert "virtual environment exists" in r2.stdout and "creating" not in r2.stdout
    assert (venv / "pyvenv.cfg").stat().st_mtime_ns == cfg_mtime  # not recreated
    assert "skipped: --no-v4l2" in r2.stdout


@pytest.mark.skipif(platform.system() != "Linux", reason="v4l2loopback is Linux-only")
def test_v4l2loopback_persistent_config_idempotent(tmp_path):
    bin_dir, log = shims(tmp_path)
    mods = tmp_path / "modules"
    (mods / platform.release()).mkdir(parents=True)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HYGIE_ETC_ROOT": str(tmp_path / "root"),
           "HYGIE_MODULES_DIR": str(mods)}
    r = run(["--camera-only", "--yes"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    conf = tmp_path / "root" / "etc" / "modprobe.d" / "hygie-avatar.conf"
    load = tmp_path / "root" / "etc" / "modules-load.d" / "hygie-avatar.conf"
    assert conf.read_text().strip() == OPTIONS
    assert load.read_text().strip() == "v4l2loopback"
    calls = log.read_text()
    if not any((Path("/sys/class/video4linux")).glob("*")) and not Path("/sys/module/v4l2loopback").exists():
        assert "modprobe v4l2loopback" in calls  # loaded now, options come from modprobe.d
    r2 = run(["--camera-only", "--yes"], env)
    assert r2.returncode == 0 and r2.stdout.count("unchanged:") == 2 and "wrote:" not in r2.stdout
    assert "installing hygie-avatar" not in r2.stdout  # --camera-only


@pytest.mark.skipif(platform.system() != "Linux", reason="v4l2loopback is Linux-only")
def test_v4l2loopback_skipped_without_module_support_or_consent(tmp_path):
    bin_dir, log = shims(tmp_path)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HYGIE_ETC_ROOT": str(tmp_path / "root"),
           "HYGIE_MODULES_DIR": str(tmp_path / "no-modules")}
    r = run(["--camera-only", "--yes"], env)
    assert r.returncode == 0 and "has no loadable module support" in r.stdout and "on the host" in r.stdout
    assert not (tmp_path / "root").exists() and not log.exists()
    (tmp_path / "modules" / platform.release()).mkdir(parents=True)
    env["HYGIE_MODULES_DIR"] = str(tmp_path / "modules")
    r = run(["--camera-only"], env)  # no --yes and no terminal: asks nobody, changes nothing
    assert r.returncode == 0 and "re-run with --yes" in r.stdout
    assert not (tmp_path / "root").exists()


def test_unknown_option_fails_clearly():
    r = run(["--frobnicate"])
    assert r.returncode == 2 and "unknown option '--frobnicate'" in r.stderr


def test_powershell_installer_parses():
    """install.ps1 tokenizes and nests (tests/ps1_check.py), and PowerShell's own parser agrees where it exists."""
    from ps1_check import check

    script = REPO / "installer" / "install.ps1"
    text = script.read_text()
    assert check(text) == []
    # the check can fail: broken copies of the real script are caught, at the right line
    assert check(text.replace("}", "", 1)) and check(text + '\n"unterminated')
    assert check(text + "\n@'\nno end\n") and check("if ($a) { (1 + 2 }")[0].startswith("line 1")
    if __import__("shutil").which("pwsh"):
        r = subprocess.run(["pwsh", "-NoProfile", "-Command",
                            "$e = $null; [System.Management.Automation.Language.Parser]::ParseFile("
                            f"'{script}', [ref]$null, [ref]$e) | Out-Null; if ($e.Count) {{ $e; exit 1 }}"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
