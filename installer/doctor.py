"""`hygie doctor`: check every prerequisite and say the exact fix.

Each check returns a ``Check`` (status ok / warn / fail / skip). ``fail`` means `hygie run`
cannot work; ``warn`` means a part is missing that only some users need (e.g. OBS control).
Checks take their OS facts as arguments (sysfs root, platform) so tests can fake them.
"""
from __future__ import annotations

import logging
import platform as _platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hygie.core.live.camera_identity import CAMERA_NAME, MODPROBE, SYS_V4L2, UNITY_REGISTER, linux_cameras

log = logging.getLogger(__name__)

MIN_PYTHON = (3, 10)
# DirectShow "video input device" category: where Unity Capture and OBS Virtual Camera register
DSHOW_VIDEO_CATEGORY = r"CLSID\{860BB310-5D01-11d0-BD3B-00A0C911CE86}\Instance"
MAC_CAMERA_EXTENSION = "com.obsproject.obs-studio.mac-camera-extension"


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str = ""

    @property
    def blocking(self) -> bool:
        return self.status == "fail"


def check_python(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> Check:
    v = ".".join(map(str, version[:3]))
    if tuple(version[:2]) >= MIN_PYTHON:
        return Check("Python", "ok", f"Python {v}")
    return Check("Python", "fail", f"Python {v} is too old",
                 f"install Python >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]} and re-run installer/install.sh (or install.ps1)")


def _portaudio_fix(plat: str) -> str:
    if plat.startswith("linux"):
        return "sudo apt install libportaudio2 (Fedora: sudo dnf install portaudio)"
    if plat == "darwin":
        return "brew install portaudio, then pip install --force-reinstall sounddevice"
    return "pip install --force-reinstall sounddevice (its Windows wheel bundles PortAudio)"


def check_portaudio(plat: str = sys.platform) -> tuple[Check, object | None]:
    try:
        import sounddevice as sd
        return Check("PortAudio", "ok", sd.get_portaudio_version()[1]), sd
    except (OSError, ImportError) as e:
        return Check("PortAudio", "fail", f"cannot load PortAudio: {e}", _portaudio_fix(plat)), None


def check_input_device(sd: object | None, plat: str = sys.platform) -> Check:
    if sd is None:
        return Check("audio input", "skip", "PortAudio missing (see above)")
    try:
        devs = [d for d in sd.query_devices() if d.get("max_input_channels", 0) > 0]  # type: ignore[attr-defined]
    except Exception as e:
        devs, err = [], str(e)
    else:
        err = ""
    if devs:
        try:
            default = sd.query_devices(kind="input")["name"]  # type: ignore[attr-defined]
        except Exception:
            default = devs[0]["name"]
        return Check("audio input", "ok", f"{len(devs)} input device(s); default: {default}")
    fix = ("plug in a microphone; on Linux make sure PulseAudio/PipeWire runs (pactl info) and "
           "your user is in the 'audio' group" if plat.startswith("linux") else
           "plug in a microphone and allow microphone access for the terminal/Python "
           "(Windows: Settings > Privacy > Microphone; macOS: System Settings > Privacy & Security > Microphone)")
    return Check("audio input", "fail", f"no audio input device found{': ' + err if err else ''}", fix)


# ------------------------------------------------------------------- virtual camera
def secure_boot_enabled(efivars: Path = Path("/sys/firmware/efi/efivars")) -> bool | None:
    """True/False from the SecureBoot EFI variable, None when unknown (BIOS boot, container)."""
    try:
        for p in efivars.glob("SecureBoot-*"):
            data = p.read_bytes()
            return bool(data[-1])  # 4 attribute bytes, then 1 value byte
    except OSError:
        return None
    return None


def check_camera_linux(sys_root: Path = Path("/sys"), modules_root: Path = Path("/lib/modules"),
                       kernel: str | None = None) -> Check:
    kernel = kernel or _platform.release()
    names = {c.device: c.name for c in linux_cameras(sys_root / SYS_V4L2.relative_to("/sys"))}
    ours = [dev for dev, n in names.items() if n == CAMERA_NAME]
    mod = sys_root / "module" / "v4l2loopback"
    sb = secure_boot_enabled(sys_root / "firmware" / "efi" / "efivars")
    sb_note = (" Secure Boot is ON: the module must be signed (DKMS enrolls a key: reboot and accept "
               "the MOK prompt) or Secure Boot disabled, else modprobe fails with 'Key was rejected'.") if sb else ""
    if ours:
        excl = (mod / "parameters" / "exclusive_caps")
        caps = excl.read_text().strip() if excl.is_file() else ""
        if caps and not caps.upper().startswith("Y"):
            return Check("virtual camera", "warn", f"{ours[0]} is named '{CAMERA_NAME}' but exclusive_caps is off "
                         "(Chrome/Zoom/Teams may not list it)",
                         f"sudo modprobe -r v4l2loopback && {MODPROBE}")
        return Check("virtual camera", "ok", f"v4l2loopback device {ours[0]} named '{CAMERA_NAME}'")
    if mod.is_dir():
        others = ", ".join(f"{d} '{n}'" for d, n in names.items()) or "none"
        return Check("virtual camera", "fail",
                     f"v4l2loopback is loaded but no device is named '{CAMERA_NAME}' (devices: {others})",
                     f"sudo modprobe -r v4l2loopback && {MODPROBE} (or run installer/install.sh to make it "
                     f"persistent).{sb_note}")
    if not (modules_root / kernel).is_dir():
        return Check("virtual camera", "fail",
                     f"this kernel ({kernel}) has no loadable module support here (container or VM without "
                     "/lib/modules): v4l2loopback cannot be loaded from inside it",
                     f"load it on the host: {MODPROBE}, and pass /dev/videoN into the container")
    return Check("virtual camera", "fail", "v4l2loopback is not loaded",
                 f"sudo apt install v4l2loopback-dkms (Fedora: akmod-v4l2loopback), then {MODPROBE}; "
                 f"installer/install.sh can make it persistent.{sb_note}")


def _dshow_names() -> list[str]:
    import winreg  # type: ignore[import-not-found]
    out = []
    try:
        key = winreg.OpenKey(winreg.HKEY_CLASSES_ROOT, DSHOW_VIDEO_CATEGORY)
    except OSError:
        return out
    i = 0
    while True:
        try:
            sub = winreg.EnumKey(key, i)
        except OSError:
            break
        i += 1
        try:
            with winreg.OpenKey(key, sub) as k:
                out.append(str(winreg.QueryValueEx(k, "FriendlyName")[0]))
        except OSError:
            pass
    return out


def check_camera_windows(names: list[str] | None = None) -> Check:
    names = _dshow_names() if names is None else names
    if CAMERA_NAME in names:
        return Check("virtual camera", "ok", f"DirectShow camera '{CAMERA_NAME}' (Unity Capture)")
    if "OBS Virtual Camera" in names:
        return Check("virtual camera", "ok", "OBS Virtual Camera (Zoom/Teams will list it as 'OBS Virtual Camera')")
    return Check("virtual camera", "fail", f"neither Unity Capture '{CAMERA_NAME}' nor OBS Virtual Camera is registered",
                 "run installer/install.ps1 -UnityCaptureDir DIR (DIR: the unzipped Unity Capture release), or "
                 f"in an admin prompt: {UNITY_REGISTER} "
                 "(or install OBS Studio and click Start Virtual Camera once)")


def check_camera_macos(systemextensions: str | None = None) -> Check:
    if systemextensions is None:
        try:
            systemextensions = subprocess.run(["systemextensionsctl", "list"], capture_output=True,
                                              text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            systemextensions = ""
    lines = [ln for ln in systemextensions.splitlines() if MAC_CAMERA_EXTENSION in ln]
    if any("activated enabled" in ln for ln in lines):
        return Check("virtual camera", "ok", "OBS camera extension activated")
    if lines:
        return Check("virtual camera", "fail", "OBS camera extension installed but not approved",
                     "System Settings > Privacy & Security > allow the OBS system extension, then restart OBS")
    return Check("virtual camera", "fail", "OBS (>= 30) camera extension not found",
                 "install OBS Studio >= 30, click Start Virtual Camera once and approve the camera extension "
                 "in System Settings > Privacy & Security")


def check_camera(plat: str = sys.platform) -> Check:
    if plat.startswith("linux"):
        return check_camera_linux()
    if plat.startswith("win"):
        return check_camera_windows()
    if plat == "darwin":
        return check_camera_macos()
    return Check("virtual camera", "fail", f"no virtual camera support for {plat}")


# --------------------------------------------------------------------- virtual microphone
def check_virtual_mic(plat: str = sys.platform, output_names: list[str] | None = None) -> Check:
    """Linux: a PulseAudio/PipeWire server with pactl (hygie run makes "Hygie Avatar Mic" there);
    Windows/macOS: VB-CABLE / BlackHole found by name. A warning only: the camera works without it."""
    from hygie.core.live import virtual_mic as vm

    name = "virtual microphone"
    if plat.startswith("linux"):
        try:
            info = vm.server_info()
        except Exception as e:
            return Check(name, "warn", f"no PulseAudio/PipeWire server reachable ({e})", vm.manual_fix("linux"))
        server = info.get("Server Name", "sound server")
        try:
            mods = [m for m in vm.list_modules() if m.is_ours]
        except Exception:
            mods = []
        live = [m for m in mods if m.owner_pid and vm._pid_alive(m.owner_pid)]
        if live:
            return Check(name, "ok", f'"{vm.MIC_NAME}" is up on {server} (hygie pid {live[0].owner_pid})')
        if mods:
            return Check(name, "ok", f"{server}: {len(mods)} module(s) left by a crashed run; the next "
                                     "`hygie run` removes them")
        return Check(name, "ok", f'{server} with pactl: `hygie run` makes "{vm.MIC_NAME}" and removes it on exit')
    if output_names is None:
        try:
            from hygie.core.audio.capture import list_devices
            output_names = [d["name"] for d in list_devices("output")]
        except Exception:
            output_names = []
    found = vm.manual_device(output_names, plat)
    if found:
        return Check(name, "ok", f"{found[0]!r}: in the call app choose the microphone {found[1]!r}")
    return Check(name, "warn", "no virtual audio cable: the call hears your voice ~80 ms before your face moves",
                 vm.manual_fix(plat))


# ------------------------------------------------------------------------------ OBS
def check_obs(host: str | None = None, port: int | None = None, password: str | None = None) -> Check:
    """OBS is optional (Zoom/Teams alone work), so problems here are warnings."""
    from hygie.plugin.obs.config import discover
    from hygie.plugin.obs.link import ObsAuthError, ObsError, ObsLink
    try:
        conn = discover(host, port, password)
    except Exception as e:
        return Check("OBS websocket", "warn", str(e))
    if conn.server_enabled is False:
        return Check("OBS websocket", "warn", f"the websocket server is disabled in {conn.source}",
                     "OBS: Tools -> WebSocket Server Settings -> Enable WebSocket server (port 4455)")
    link = ObsLink(conn, request_timeout=3.0, connect_timeout=2.0)
    try:
        link.connect()
    except ObsAuthError as e:
        return Check("OBS websocket", "warn", "OBS refused the password", str(e))
    except ObsError:
        where = "" if conn.source == "defaults" else f" (settings from {conn.source})"
        return Check("OBS websocket", "warn", f"OBS not reachable at {conn.url}{where}",
                     "start OBS and enable Tools -> WebSocket Server Settings -> Enable WebSocket server; "
                     "needed only to switch the avatar from OBS")
    finally:
        link.close()
    return Check("OBS websocket", "ok", f"OBS {link.obs_version} (obs-websocket {link.websocket_version}) "
                                        f"at {conn.url}")


# --------------------------------------------------------------------------- avatar
def check_avatar(path: str | None) -> Check:
    from hygie.core.errors import HygieError
    what = path or "the bundled default avatar"
    try:
        from hygie.core.package.avatar import load_package  # lazy: heavy imports, and optional in tests
    except ImportError as e:
        return Check("avatar package", "fail", f"cannot import the package loader ({e})",
                     "reinstall: pip install -e . (or re-run installer/install.sh)")
    try:
        load_package(path)
    except HygieError as e:  # PackageError: its message says the fix
        return Check("avatar package", "fail", f"{what}: invalid", str(e))
    except Exception as e:
        return Check("avatar package", "fail", f"{what}: cannot be read ({type(e).__name__}: {e})",
                     "make a new one with 'hygie enroll VIDEO -o PACKAGE'")
    return Check("avatar package", "ok", f"{what} is valid")


def run_checks(avatar: str | None = None, obs_host: str | None = None, obs_port: int | None = None,
               obs_password: str | None = None, skip_obs: bool = False,
               plat: str = sys.platform) -> list[Check]:
    checks = [check_python()]
    pa, sd = check_portaudio(plat)
    checks += [pa, check_input_device(sd, plat), check_camera(plat), check_virtual_mic(plat)]
    checks.append(Check("OBS websocket", "skip", "--no-obs") if skip_obs
                  else check_obs(obs_host, obs_port, obs_password))
    checks.append(check_avatar(avatar))
    return checks


SYMBOLS = {"ok": "[ ok ]", "warn": "[warn]", "fail": "[FAIL]", "skip": "[skip]"}


def format_checks(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        lines.append(f"{SYMBOLS[c.status]} {c.name}: {c.detail}")
        if c.fix and c.status != "ok":
            lines.append(f"       fix: {c.fix}")
    n_fail = sum(c.blocking for c in checks)
    n_warn = sum(c.status == "warn" for c in checks)
    lines.append(f"{n_fail} blocking problem(s), {n_warn} warning(s)" if n_fail or n_warn else "all good")
    return "\n".join(lines)

