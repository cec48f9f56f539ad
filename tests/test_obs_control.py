"""The avatar state machine, driven by a fake OBS link (no OBS needed)."""
from __future__ import annotations

import threading
import time

import pytest

from hygie.core.errors import HygieError
from hygie.plugin.obs.control import (AvatarControl, AvatarState, ObsControlConfig,
                                         parse_custom_event)
from hygie.plugin.obs.config import ObsConnection
from hygie.plugin.obs.link import ObsEvent, ObsRequestError


class FakeObs:
    """Scenes -> {source: (item id, enabled)}; counts requests to check caching."""

    def __init__(self, program="Scene"):
        self.program = program
        self.scenes = {"Scene": {"Hygie Avatar": [7, False]}, "Other": {}, "Hygie Avatar": {}}
        self.muted = {"Mic": False}
        self.calls: list[str] = []

    def call(self, req, **d):
        self.calls.append(req)
        if req == "GetCurrentProgramScene":
            return {"currentProgramSceneName": self.program}
        if req == "GetSceneList":
            return {"scenes": [{"sceneName": n} for n in self.scenes]}
        if req == "GetSceneItemId":
            item = self.scenes.get(d["sceneName"], {}).get(d["sourceName"])
            if item is None:
                raise ObsRequestError("No scene items were found", 600)
            return {"sceneItemId": item[0]}
        if req == "GetSceneItemEnabled":
            for it in self.scenes[d["sceneName"]].values():
                if it[0] == d["sceneItemId"]:
                    return {"sceneItemEnabled": it[1]}
            raise ObsRequestError("no item", 600)
        if req == "GetInputMute":
            if d["inputName"] not in self.muted:
                raise ObsRequestError("No source was found", 600)
            return {"inputMuted": self.muted[d["inputName"]]}
        raise AssertionError(req)


def make(mode="scene", **kw):
    fake = FakeObs(kw.pop("program", "Scene"))
    state = AvatarState(on=kw.pop("initial_on", True))
    ctl = AvatarControl(ObsControlConfig(mode=mode, **kw), state)
    ctl.on_connected(fake)
    return fake, state, ctl


def ev(name, **data):
    return ObsEvent(name, data)


def test_scene_mode():
    fake, st, ctl = make("scene", scenes=("Hygie Avatar", "Talk"))
    assert st.on is False and st.connected
    ctl.on_event(fake, ev("CurrentProgramSceneChanged", sceneName="Talk"))
    assert st.on is True and "Talk" in st.reason
    ctl.on_event(fake, ev("CurrentProgramSceneChanged", sceneName="Other"))
    assert st.on is False
    ctl.on_event(fake, ev("CurrentProgramSceneChanged", sceneName="Hygie Avatar"))
    assert st.on is True


def test_scene_rename_of_program_scene_is_followed():
    fake, st, ctl = make("scene", program="Talk", scenes=("Hygie Avatar", "Talk"))
    fake.scenes["Talk"] = {}
    assert st.on
    fake.scenes["Renamed"] = fake.scenes.pop("Talk")
    ctl.on_event(fake, ev("SceneNameChanged", oldSceneName="Talk", sceneName="Renamed"))
    assert st.on is False


def test_obs_without_the_avatar_scene_leaves_the_avatar_on():
    fake = FakeObs("Scene")
    del fake.scenes["Hygie Avatar"]
    state = AvatarState(on=True)
    ctl = AvatarControl(ObsControlConfig(mode="scene"), state)
    ctl.on_connected(fake)
    assert state.on is True  # a user who never ran 'hygie obs setup' still gets a talking avatar
    ctl.on_event(fake, ev("CurrentProgramSceneChanged", sceneName="Other"))
    assert state.on is True
    fake.scenes["Hygie Avatar"] = {}  # now set up: the scene rule applies
    ctl.on_event(fake, ev("SceneListChanged", scenes=[]))
    assert state.on is False


def test_source_mode_show_hide_and_cache():
    fake, st, ctl = make("source")
    assert st.on is False  # item 7 hidden
    n = fake.calls.count("GetSceneItemId")
    ctl.on_event(fake, ev("SceneItemEnableStateChanged", sceneName="Scene", sceneItemId=7, sceneItemEnabled=True))
    assert st.on is True
    ctl.on_event(fake, ev("SceneItemEnableStateChanged", sceneName="Scene", sceneItemId=7, sceneItemEnabled=False))
    assert st.on is False
    assert fake.calls.count("GetSceneItemId") == n  # cached
    # another item, or the same id in a non-program scene: ignored
    ctl.on_event(fake, ev("SceneItemEnableStateChanged", sceneName="Scene", sceneItemId=8, sceneItemEnabled=True))
    ctl.on_event(fake, ev("SceneItemEnableStateChanged", sceneName="Other", sceneItemId=7, sceneItemEnabled=True))
    assert st.on is False


def test_source_mode_scene_change_and_item_recreated():
    fake, st, ctl = make("source")
    fake.scenes["Scene"]["Hygie Avatar"][1] = True
    ctl.on_event(fake, ev("CurrentProgramSceneChanged", sceneName="Other"))
    assert st.on is False  # not in 'Other'
    ctl.on_event(fake, ev("CurrentProgramSceneChanged", sceneName="Scene"))
    assert st.on is True
    # the user deletes the source and adds it again: new id, cache must refresh
    fake.scenes["Scene"]["Hygie Avatar"] = [12, True]
    ctl.on_event(fake, ev("SceneItemRemoved", sceneName="Scene", sourceName="Hygie Avatar", sceneItemId=7))
    ctl.on_event(fake, ev("SceneItemEnableStateChanged", sceneName="Scene", sceneItemId=12, sceneItemEnabled=False))
    assert st.on is False


def test_custom_events_in_every_mode():
    for mode in ("scene", "source", "event"):
        fake, st, ctl = make(mode, initial_on=False)
        st.set(on=False)
        ctl.on_event(fake, ev("CustomEvent", hygie={"avatar": "on"}))
        assert st.on is True, mode
        ctl.on_event(fake, ev("CustomEvent", hygie={"avatar": "toggle"}))
        assert st.on is False, mode
        ctl.on_event(fake, ev("CustomEvent", hygie={"avatar": "TOGGLE"}))
        assert st.on is True, mode
        ctl.on_event(fake, ev("CustomEvent", hygie={"avatar": "off"}))
        assert st.on is False, mode
        ctl.on_event(fake, ev("CustomEvent", hygie={"avatar": "explode"}))
        ctl.on_event(fake, ev("CustomEvent", other={"avatar": "on"}))
        assert st.on is False, mode


def test_event_mode_ignores_scenes():
    fake, st, ctl = make("event", initial_on=True)
    ctl.on_event(fake, ev("CurrentProgramSceneChanged", sceneName="Other"))
    assert st.on is True


def test_mute_pauses_lips_and_unknown_input_warns_once(caplog):
    fake, st, ctl = make("scene", mute_input="Mic")
    assert st.lips_paused is False
    ctl.on_event(fake, ev("InputMuteStateChanged", inputName="Mic", inputMuted=True))
    assert st.lips_paused is True
    ctl.on_event(fake, ev("InputMuteStateChanged", inputName="Desktop", inputMuted=False))
    assert st.lips_paused is True
    ctl.on_event(fake, ev("InputMuteStateChanged", inputName="Mic", inputMuted=False))
    assert st.lips_paused is False
    fake2, st2, ctl2 = make("scene", mute_input="Nope")
    ctl2.on_connected(fake2)
    assert caplog.text.count("no audio input named 'Nope'") == 1


def test_disconnect_keeps_last_state():
    fake, st, ctl = make("scene", program="Hygie Avatar")
    ctl.on_disconnected("gone")
    assert st.on is True and st.connected is False


def test_parse_custom_event():
    assert parse_custom_event({"hygie": {"avatar": "on"}}) == "on"
    assert parse_custom_event({"hygie": {"avatar": " Off "}}) == "off"
    assert parse_custom_event({"hygie": "on"}) is None
    assert parse_custom_event({}) is None


def test_bad_mode_is_a_clear_error():
    with pytest.raises(HygieError, match="use one of scene, source, event"):
        ObsControlConfig(mode="scenes")


def test_state_thread_safety_and_wait():
    st = AvatarState(on=False)
    seen = []
    st.add_listener(lambda s: seen.append(s.on))
    v = st.version
    threading.Timer(0.05, lambda: st.set(on=True, reason="t")).start()
    assert st.wait_change(v, 2.0) and st.on is True and seen == [True]
    assert not st.set(on=True)  # no change, no version bump
    assert not st.wait_change(st.version, 0.05)
    # many writers: version counts every real change exactly once
    def flip():
        for _ in range(500):
            st.toggle()
    ts = [threading.Thread(target=flip) for _ in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert st.version == 1 + 2000 and st.on is True  # even number of toggles


def test_start_without_obs_never_raises_and_retries():
    st = AvatarState(on=True)
    ctl = AvatarControl(ObsControlConfig(connection=ObsConnection("127.0.0.1", 1, "")), st)
    t0 = time.monotonic()
    ctl.start()
    assert time.monotonic() - t0 < 0.5  # does not block the agent
    time.sleep(0.8)
    assert ctl.status == "connecting" and "cannot reach OBS" in ctl.last_error
    assert st.on is True and st.connected is False
    ctl.stop()
    assert ctl.status == "stopped"
