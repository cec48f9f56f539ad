"""The virtual microphone "Hygie Avatar Mic": made on PulseAudio / PipeWire-pulse, removed on exit.

Two modules, loaded with `pactl` (no extra dependency):

- a null sink `hygie_avatar_mic_sink` the agent plays the delayed voice into;
- a remapped source `hygie_avatar_mic` of that sink's monitor, described as "Hygie Avatar Mic",
  so call apps list it as a microphone (a sink monitor would read "Monitor of ...", and many
  apps hide monitors).

Both carry `hygie.owner.pid=<pid>` in their properties. On start, modules of ours whose owner is
dead (a crash, a kill -9) are unloaded first, so nothing a previous run left breaks this one; a
live owner means another `hygie run` uses the mic (refused, with the fix). On exit only the
modules this object loaded are unloaded, and only if they still carry our pid. PulseAudio makes
a new device the default when none was chosen; the previous defaults are put back so the
system's sound never goes into the avatar's microphone, nor the avatar listens to itself.

Windows (VB-CABLE) and macOS (BlackHole) have no API to create a device: `manual_device()` finds
the one the user installed, by name (docs/live_agent.md says how).
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

from hygie.core.errors import DeviceError

log = logging.getLogger(__name__)

MIC_NAME = "Hygie Avatar Mic"  # what call apps show
SINK_NAME = "hygie_avatar_mic_sink"
SOURCE_NAME = "hygie_avatar_mic"
OWNER_PROP = "hygie.owner.pid"
RATE = 48000
# (OS, output the agent plays into, input the call app picks)
MANUAL_DEVICES = {
    "win32": ("CABLE Input", "CABLE Output (VB-Audio Virtual Cable)"),
    "darwin": ("BlackHole", "BlackHole 2ch"),
}
_PID_RE = re.compile(re.escape(OWNER_PROP) + r"=(\d+)")


@dataclass
class PulseModule:
    index: int
    name: str
    args: str

    @property
    def owner_pid(self) -> int | None:
        m = _PID_RE.search(self.args)
        return int(m.group(1)) if m else None

    @property
    def is_ours(self) -> bool:
        return (self.name == "module-null-sink" and f"sink_name={SINK_NAME}" in self.args.split()) or \
               (self.name == "module-remap-source" and f"source_name={SOURCE_NAME}" in self.args.split())


def pactl(*args: str, timeout: float = 5.0) -> str:
    """Run pactl (it follows PULSE_SERVER); raise DeviceError with its message on failure."""
    exe = shutil.which("pactl")
    if exe is None:
        raise DeviceError("pactl not found: install it (Debian/Ubuntu `sudo apt install pulseaudio-utils`, "
                          "Fedora `sudo dnf install pulseaudio-utils`) or run with --no-virtual-mic.")
    try:
        r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DeviceError(f"pactl {args[0]} did not answer within {timeout:.0f} s: is PulseAudio/PipeWire "
                          "stuck? Restart it (systemctl --user restart pipewire-pulse or pulseaudio -k).") from None
    if r.returncode != 0:
        raise DeviceError(f"pactl {' '.join(args[:2])} failed: {(r.stderr or r.stdout).strip()}. "
                          "Is PulseAudio/PipeWire running (pactl info)?")
    return r.stdout


def server_info() -> dict[str, str]:
    """`pactl info` as a dict ("Server Name", "Default Sink", ...)."""
    out = {}
    for line in pactl("info").splitlines():
        k, _, v = line.partition(":")
        if v:
            out[k.strip()] = v.strip()
    return out


def list_modules() -> list[PulseModule]:
    mods = []
    for line in pactl("list", "short", "modules").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0].strip().isdigit():
            mods.append(PulseModule(int(parts[0]), parts[1], parts[2] if len(parts) > 2 else ""))
    return mods


def list_sources() -> list[str]:
    return [ln.split("\t")[1] for ln in pactl("list", "short", "sources").splitlines() if "\t" in ln]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _props(description: str, pid: int, extra: str = "") -> str:
    # modargs: the whole value in single quotes, the description with spaces in double quotes
    return f"'device.description=\"{description}\" {OWNER_PROP}={pid}{extra}'"


class VirtualMic:
    """Create "Hygie Avatar Mic" (`create()`), play into `SINK_NAME`, `remove()` on exit."""

    def __init__(self, rate: int = RATE):
        self.rate = int(rate)
        self.pid = os.getpid()
        self.loaded: list[int] = []  # module indices this object loaded, in load order
        self.removed_stale = 0

    # -- start --------------------------------------------------------------------------------
    def create(self) -> "VirtualMic":
        info = server_info()
        before_sink, before_source = info.get("Default Sink"), info.get("Default Source")
        self._clean_stale()
        try:
            self.loaded.append(int(pactl(
                "load-module", "module-null-sink", f"sink_name={SINK_NAME}", f"rate={self.rate}", "channels=1",
                "channel_map=mono", f"sink_properties={_props(MIC_NAME + ' (feed)', self.pid)}").strip()))
            self.loaded.append(int(pactl(
                "load-module", "module-remap-source", f"master={SINK_NAME}.monitor", f"source_name={SOURCE_NAME}",
                "channels=1", "channel_map=mono",
                f"source_properties={_props(MIC_NAME, self.pid, ' device.icon_name=audio-input-microphone')}"
            ).strip()))
            t_end = time.monotonic() + 5.0
            while SOURCE_NAME not in list_sources():
                if time.monotonic() > t_end:
                    raise DeviceError(f"the source {SOURCE_NAME!r} did not appear after loading its module; "
                                      "check `pactl list short modules` and run with --no-virtual-mic meanwhile.")
                time.sleep(0.05)
        except BaseException:
            self.remove()
            raise
        self._restore_defaults(before_sink, before_source)
        log.info('virtual microphone "%s" ready (PulseAudio source %s; pick it as the microphone in the call app)',
                 MIC_NAME, SOURCE_NAME)
        return self

    def _clean_stale(self) -> None:
        ours = [m for m in list_modules() if m.is_ours]
        busy = [m for m in ours if m.owner_pid not in (None, self.pid) and _pid_alive(m.owner_pid)]
        if busy:
            raise DeviceError(f'"{MIC_NAME}" is in use by another hygie process (pid {busy[0].owner_pid}): stop it, '
                              "or start this one with --no-virtual-mic.")
        # sources before sinks: a remap source holds its master sink's monitor
        for m in sorted(ours, key=lambda m: m.name != "module-remap-source"):
            try:
                pactl("unload-module", str(m.index))
                self.removed_stale += 1
                log.info("removed %s #%d left by a previous run (pid %s)", m.name, m.index, m.owner_pid)
            except DeviceError as e:
                log.warning("could not remove stale %s #%d: %s", m.name, m.index, e)

    def _restore_defaults(self, sink: str | None, source: str | None) -> None:
        """A new device may have become the default: put the user's defaults back."""
        try:
            info = server_info()
        except DeviceError:
            return
        if sink and sink != SINK_NAME and info.get("Default Sink") == SINK_NAME:
            pactl("set-default-sink", sink)
        if source and source not in (SOURCE_NAME, f"{SINK_NAME}.monitor") and \
                info.get("Default Source") in (SOURCE_NAME, f"{SINK_NAME}.monitor"):
            pactl("set-default-source", source)

    # -- stop ---------------------------------------------------------------------------------
    def remove(self) -> None:
        """Unload what this object loaded (newest first), only while it still carries our pid."""
        if not self.loaded:
            return
        try:
            current = {m.index: m for m in list_modules()}
        except DeviceError as e:
            log.warning("virtual microphone not removed (%s); the next start cleans it up", e)
            return
        for idx in reversed(self.loaded):
            m = current.get(idx)
            if m is None or not m.is_ours or m.owner_pid != self.pid:
                continue  # gone already (server restarted): the index may belong to someone else now
            try:
                pactl("unload-module", str(idx))
            except DeviceError as e:
                log.warning("could not remove %s #%d: %s", m.name, idx, e)
        self.loaded.clear()
        log.info('virtual microphone "%s" removed', MIC_NAME)

    def __enter__(self) -> "VirtualMic":
        return self.create()

    def __exit__(self, *exc) -> None:
        self.remove()


def pulse_available() -> bool:
    """pactl exists and a PulseAudio-compatible server answers."""
    if not shutil.which("pactl"):
        return False
    try:
        server_info()
        return True
    except DeviceError:
        return False


def manual_device(output_names: list[str], plat: str = sys.platform) -> tuple[str, str] | None:
    """Windows/macOS: (output to play into, input the call app picks) when the user installed it."""
    want = MANUAL_DEVICES.get("win32" if plat.startswith("win") else plat)
    if want is None:
        return None
    hit = next((n for n in output_names if want[0].lower() in n.lower()), None)
    return (hit, want[1]) if hit else None


def manual_fix(plat: str = sys.platform) -> str:
    if plat.startswith("win"):
        return ("install VB-CABLE (vb-audio.com/Cable), then in the call app choose the microphone "
                "'CABLE Output (VB-Audio Virtual Cable)'")
    if plat == "darwin":
        return "install BlackHole 2ch (brew install blackhole-2ch), then choose the microphone 'BlackHole 2ch'"
    return "install PulseAudio or PipeWire-pulse and pulseaudio-utils (pactl)"
