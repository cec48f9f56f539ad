"""`hygie obs setup`: create the "Hygie Avatar" scene in OBS, idempotently.

The scene holds the virtual camera as a video capture input and the microphone; the
microphone's sync offset is set to the agent's latency so voice and face leave OBS together.
Running it again changes nothing that exists except the settings it owns (device, offset).
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hygie.core.live.camera_identity import CAMERA_NAME, SYS_V4L2, find_linux_camera, no_camera_fix
from hygie.plugin.obs.control import AVATAR_NAME
from hygie.plugin.obs.link import ObsLink, ObsRequestError

log = logging.getLogger(__name__)

CAMERA_INPUT = "Hygie Avatar Camera"
MIC_INPUT = "Hygie Avatar Mic"
DEFAULT_LATENCY_MS = 100  # the design's end-to-end target; the measured value is better


@dataclass(frozen=True)
class PlatformKinds:
    video_kind: str
    video_device_setting: str  # the setting that names the device
    mic_kind: str
    mic_device_setting: str


KINDS = {
    "linux": PlatformKinds("v4l2_input", "device_id", "pulse_input_capture", "device_id"),
    "win32": PlatformKinds("dshow_input", "video_device_id", "wasapi_input_capture", "device_id"),
    "darwin": PlatformKinds("av_capture_input", "device", "coreaudio_input_capture", "device_id"),
}


def platform_kinds(platform: str | None = None) -> PlatformKinds:
    platform = platform or sys.platform
    return KINDS["win32" if platform.startswith("win") else "darwin" if platform == "darwin" else "linux"]


@dataclass
class SetupReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"created:  {x}" for x in self.created]
        out += [f"exists:   {x}" for x in self.existing]
        out += [f"set:      {x}" for x in self.updated]
        out += [f"WARNING:  {x}" for x in self.warnings]
        return out


def _inputs(link: ObsLink) -> dict[str, str]:
    return {i["inputName"]: i.get("inputKind", "") for i in link.call("GetInputList").get("inputs", [])}


def _in_scene(link: ObsLink, scene: str, source: str) -> bool:
    try:
        link.call("GetSceneItemId", sceneName=scene, sourceName=source)
        return True
    except ObsRequestError:
        return False


def _pick_device_item(link: ObsLink, input_name: str, prop: str, wanted: str) -> str | None:
    """Ask the input's own device list for an item called `wanted` (works for dshow/avfoundation)."""
    try:
        items = link.call("GetInputPropertiesListPropertyItems", inputName=input_name,
                          propertyName=prop).get("propertyItems", [])
    except ObsRequestError:
        return None
    for it in items:
        if str(it.get("itemName", "")).strip().startswith(wanted) and it.get("itemEnabled", True):
            return it.get("itemValue")
    return None


def _ensure_input(link: ObsLink, rep: SetupReport, scene: str, name: str, kind: str,
                  settings: dict, inputs: dict[str, str]) -> None:
    if name in inputs:
        if inputs[name] != kind:
            rep.warnings.append(f"an input '{name}' of kind {inputs[name]} already exists (expected {kind}); "
                                "left as is. Rename or delete it in OBS and run setup again.")
        if _in_scene(link, scene, name):
            rep.existing.append(f"input '{name}' in scene '{scene}'")
        else:
            link.call("CreateSceneItem", sceneName=scene, sourceName=name, sceneItemEnabled=True)
            rep.created.append(f"scene item '{name}' in scene '{scene}'")
        if settings:
            link.call("SetInputSettings", inputName=name, inputSettings=settings, overlay=True)
        return
    link.call("CreateInput", sceneName=scene, inputName=name, inputKind=kind,
              inputSettings=settings, sceneItemEnabled=True)
    rep.created.append(f"input '{name}' ({kind}) in scene '{scene}'")


def run_setup(link: ObsLink, *, latency_ms: int, mic_device: str = "default",
              platform: str | None = None, scene: str = AVATAR_NAME,
              add_to_scene: str | None = None, sysfs: Path = SYS_V4L2) -> SetupReport:
    rep = SetupReport()
    kinds = platform_kinds(platform)
    available = set(link.call("GetInputKindList", unversioned=True).get("inputKinds", []))

    scenes = {s["sceneName"] for s in link.call("GetSceneList").get("scenes", [])}
    if scene in scenes:
        rep.existing.append(f"scene '{scene}'")
    else:
        link.call("CreateScene", sceneName=scene)
        rep.created.append(f"scene '{scene}'")
    inputs = _inputs(link)

    # video: the virtual camera the agent writes to
    video_settings: dict = {}
    plat = platform or sys.platform
    if kinds.video_kind not in available:
        rep.warnings.append(f"this OBS has no '{kinds.video_kind}' source; add the 'Hygie Avatar' "
                            "camera to the scene by hand (Sources -> + -> Video Capture Device).")
    else:
        dev = find_linux_camera(sysfs, AVATAR_NAME) if plat.startswith("linux") else None
        if dev:
            video_settings[kinds.video_device_setting] = dev
        _ensure_input(link, rep, scene, CAMERA_INPUT, kinds.video_kind, video_settings, inputs)
        if not dev:
            picked = _pick_device_item(link, CAMERA_INPUT, kinds.video_device_setting, AVATAR_NAME)
            if picked:
                link.call("SetInputSettings", inputName=CAMERA_INPUT,
                          inputSettings={kinds.video_device_setting: picked}, overlay=True)
                dev = picked
        if dev:
            rep.updated.append(f"'{CAMERA_INPUT}' device = {dev}")
        else:
            rep.warnings.append(_no_camera_fix(plat))

    # audio: the person's microphone, delayed to match the video
    if kinds.mic_kind not in available:
        rep.warnings.append(f"this OBS has no '{kinds.mic_kind}' source; add your microphone by hand "
                            f"and set its Sync Offset to {latency_ms} ms (Audio Mixer -> Advanced Audio Properties).")
    else:
        _ensure_input(link, rep, scene, MIC_INPUT, kinds.mic_kind,
                      {kinds.mic_device_setting: mic_device}, inputs)
        link.call("SetInputAudioSyncOffset", inputName=MIC_INPUT, inputAudioSyncOffset=int(latency_ms))
        rep.updated.append(f"'{MIC_INPUT}' device = {mic_device}, sync offset = {int(latency_ms)} ms")

    if add_to_scene:
        if add_to_scene not in scenes:
            rep.warnings.append(f"scene '{add_to_scene}' does not exist; not nesting '{scene}' into it")
        elif _in_scene(link, add_to_scene, scene):
            rep.existing.append(f"'{scene}' nested in scene '{add_to_scene}'")
        else:
            link.call("CreateSceneItem", sceneName=add_to_scene, sourceName=scene, sceneItemEnabled=True)
            rep.created.append(f"'{scene}' nested in scene '{add_to_scene}' (for --obs-mode source)")
    return rep


def _no_camera_fix(platform: str) -> str:
    if platform.startswith("win"):
        where = f"no camera named '{CAMERA_NAME}' found"
        system = "Windows"
    elif platform == "darwin":
        where = f"no '{CAMERA_NAME}' camera found"
        system = "Darwin"
    else:
        where = f"no /dev/video* named '{CAMERA_NAME}' (see {SYS_V4L2}/*/name)"
        system = "Linux"
    return (f"{where}: the '{CAMERA_INPUT}' input has no device yet. {no_camera_fix(system)} "
            f"Then pick it in the '{CAMERA_INPUT}' properties or run `hygie obs setup` again.")
