"""OBS decides when the avatar is on: scene, source visibility, custom event, mute.

API for the live agent (the whole contract)::

    from hygie.plugin.obs.control import AvatarControl, AvatarState, ObsControlConfig

    state = AvatarState()                    # on=True, lips_paused=False until OBS says otherwise
    control = AvatarControl(ObsControlConfig(mode="scene"), state).start()
    ...                                      # each frame, from any thread:
    if not state.on:        send idle frames (the camera never stops)
    elif state.lips_paused: keep the mouth closed
    ...
    control.stop()                           # on exit

``start()`` never raises and never blocks: when OBS is closed, not yet started or the
password is wrong, it logs once, keeps retrying in the background (backoff ≤ 0.5 s, 10 s after a
refused password) and the state keeps its last value. ``state.version`` increases on every
change; ``state.wait_change(version, timeout)`` and ``state.add_listener(fn)`` exist for code
that prefers not to poll. ``control.status`` / ``state.connected`` say whether OBS is linked.

Modes (``ObsControlConfig.mode``):
- ``scene``  (default): ON while the program scene is one of ``scenes`` (default "Hygie Avatar").
  While OBS has none of those scenes (never set up), the scene rule is not applied: the avatar stays on.
- ``source``: ON while a source named ``source`` (default "Hygie Avatar"; the scene of that
  name nested in another scene qualifies) is visible in the program scene, so OBS's own
  per-source Show/Hide hotkeys toggle it. Scene item ids come from GetSceneItemId, cached
  per scene, refreshed when scenes or items change.
- ``event``: only custom events decide.
In every mode ``BroadcastCustomEvent`` with ``{"hygie": {"avatar": "on"|"off"|"toggle"}}``
switches the avatar (Stream Deck, scripts, the OBS script's hotkey) until OBS's next relevant
change. With ``mute_input`` set, muting that OBS audio input pauses the lips.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from hygie.core.live.camera_identity import CAMERA_NAME
from hygie.core.live.state import AvatarState
from hygie.plugin.obs.config import ObsConnection, discover
from hygie.plugin.obs.link import ObsEvent, ObsLink, ObsRequestError, ObsSession

log = logging.getLogger(__name__)

AVATAR_NAME = CAMERA_NAME  # the OBS scene / source that shows the avatar is named like the camera
MODES = ("scene", "source", "event")


@dataclass
class ObsControlConfig:
    mode: str = "scene"
    scenes: tuple[str, ...] = (AVATAR_NAME,)
    source: str = AVATAR_NAME
    mute_input: str | None = None  # an OBS audio input whose mute pauses the lips
    connection: ObsConnection | None = None  # None: discovered from OBS's config + env
    host: str | None = None  # overrides for discovery (CLI flags)
    port: int | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            from hygie.core.errors import HygieError
            raise HygieError(f"OBS control mode {self.mode!r} is unknown; use one of {', '.join(MODES)}")
        if isinstance(self.scenes, str):
            self.scenes = (self.scenes,)
        self.scenes = tuple(self.scenes)


def parse_custom_event(data: dict) -> str | None:
    """'on' | 'off' | 'toggle' from a CustomEvent payload, else None (not for us)."""
    hygie = data.get("hygie") if isinstance(data, dict) else None
    if not isinstance(hygie, dict):
        return None
    cmd = str(hygie.get("avatar", "")).strip().lower()
    return cmd if cmd in ("on", "off", "toggle") else None


class AvatarControl:
    """Maps OBS events to an AvatarState. Handler methods run on the ObsSession thread."""

    def __init__(self, config: ObsControlConfig | None = None, state: AvatarState | None = None):
        self.config = config or ObsControlConfig()
        self.state = state or AvatarState()
        self.session: ObsSession | None = None
        self._program = ""
        self._item_ids: dict[tuple[str, str], int | None] = {}  # (scene, source) -> id / absent
        self._warned: set[str] = set()
        self._hinted = False

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> "AvatarControl":
        try:
            conn = self.config.connection or discover(self.config.host, self.config.port,
                                                      self.config.password)
            self.session = ObsSession(conn, self).start()
        except Exception as e:  # never raise into the agent: it must keep streaming
            log.error("OBS control disabled: %s", e)
        return self

    def stop(self) -> None:
        if self.session is not None:
            self.session.stop()

    @property
    def status(self) -> str:
        return self.session.status if self.session else "disabled"

    @property
    def last_error(self) -> str:
        return self.session.last_error if self.session else ""

    # -- ObsHandler ------------------------------------------------------------------
    def on_connected(self, link: ObsLink) -> None:
        self._item_ids.clear()
        self.state.connected = True
        self._program = link.call("GetCurrentProgramScene").get("currentProgramSceneName", "")
        self._recompute(link, f"OBS connected, program scene '{self._program}'")
        self._refresh_mute(link)

    def on_disconnected(self, reason: str) -> None:
        self.state.connected = False  # keep the last on/off: the agent keeps streaming

    def on_event(self, link: ObsLink, ev: ObsEvent) -> None:
        d, cfg = ev.data, self.config
        if ev.name == "CurrentProgramSceneChanged":
            self._program = d.get("sceneName", "")
            self._recompute(link, f"program scene '{self._program}'")
        elif ev.name == "CustomEvent":
            cmd = parse_custom_event(d)
            if cmd == "toggle":
                self.state.toggle("custom event: toggle")
            elif cmd is not None:
                self.state.set(on=cmd == "on", reason=f"custom event: {cmd}")
        elif ev.name == "SceneItemEnableStateChanged":
            if cfg.mode == "source" and d.get("sceneName") == self._program:
                item = self._item_id(link, self._program)
                if item is not None and d.get("sceneItemId") == item:
                    state = "shown" if d.get("sceneItemEnabled") else "hidden"
                    self.state.set(on=bool(d.get("sceneItemEnabled")),
                                   reason=f"source '{cfg.source}' {state}")
        elif ev.name in ("SceneItemCreated", "SceneItemRemoved"):
            self._item_ids.pop((d.get("sceneName", ""), cfg.source), None)
            if d.get("sceneName") == self._program:
                self._recompute(link, f"items of '{self._program}' changed")
        elif ev.name in ("SceneNameChanged", "InputNameChanged", "SceneListChanged"):
            if ev.name == "SceneNameChanged" and d.get("oldSceneName") == self._program:
                self._program = d.get("sceneName", self._program)
            self._item_ids.clear()
            self._recompute(link, "names changed")
        elif ev.name == "InputMuteStateChanged" and cfg.mute_input and d.get("inputName") == cfg.mute_input:
            muted = bool(d.get("inputMuted"))
            self.state.set(lips_paused=muted, reason=f"input '{cfg.mute_input}' {'muted' if muted else 'unmuted'}")

    # -- helpers ---------------------------------------------------------------------
    def _recompute(self, link: ObsLink, reason: str) -> None:
        cfg = self.config
        if cfg.mode == "scene":
            if not self._avatar_scene_exists(link):
                return  # OBS without our scene must not switch the avatar off: nothing to follow yet
            self.state.set(on=self._program in cfg.scenes, reason=reason)
        elif cfg.mode == "source":
            item = self._item_id(link, self._program)
            visible = False
            if item is not None:
                visible = bool(link.call("GetSceneItemEnabled", sceneName=self._program,
                                         sceneItemId=item).get("sceneItemEnabled"))
            self.state.set(on=visible, reason=f"{reason}; source '{cfg.source}' "
                                              f"{'visible' if visible else 'not visible'}")
        # mode "event": only custom events change it

    def _avatar_scene_exists(self, link: ObsLink) -> bool:
        try:
            names = {sc.get("sceneName") for sc in link.call("GetSceneList").get("scenes", [])}
        except ObsRequestError:
            return True
        if names & set(self.config.scenes):
            return True
        if not self._hinted:
            self._hinted = True
            log.info("OBS has no scene named %s: the avatar stays on. Run 'hygie obs setup' to create it, "
                     "then switching to that scene turns the avatar on and any other scene turns it off.",
                     " / ".join(repr(x) for x in self.config.scenes))
        return False

    def _item_id(self, link: ObsLink, scene: str) -> int | None:
        key = (scene, self.config.source)
        if key not in self._item_ids:
            try:
                self._item_ids[key] = int(link.call("GetSceneItemId", sceneName=scene,
                                                    sourceName=self.config.source)["sceneItemId"])
            except (ObsRequestError, KeyError):
                self._item_ids[key] = None  # not in this scene: avatar off there
        return self._item_ids[key]

    def _refresh_mute(self, link: ObsLink) -> None:
        name = self.config.mute_input
        if not name:
            return
        try:
            muted = bool(link.call("GetInputMute", inputName=name).get("inputMuted"))
        except ObsRequestError:
            if name not in self._warned:
                log.warning("OBS has no audio input named '%s'; lips will not pause on mute. "
                            "Fix the name (--obs-mute-input) to one listed in OBS's Audio Mixer.", name)
                self._warned.add(name)
            return
        self.state.set(lips_paused=muted, reason=f"input '{name}' {'muted' if muted else 'unmuted'}")


def start_obs_control(state: AvatarState, config: ObsControlConfig | None = None) -> list:
    """Follow OBS (scene/source/custom events) for `hygie run`; never fatal. Returns the close functions."""
    try:
        ctl = AvatarControl(config or ObsControlConfig(), state)
        ctl.start()
        return [ctl.stop]
    except Exception as e:
        log.warning("OBS control not started (%s); the avatar stays on. Use --no-obs to silence this.", e)
        return []
