"""OBS websocket settings discovery across OS layouts, with fake config folders."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hygie.core.errors import HygieError
from hygie.plugin.obs.config import discover, obs_config_dirs

INI = "\ufeff[General]\nFirstRun=true\n\n[OBSWebSocket]\nServerEnabled={en}\nServerPort={port}\nAuthRequired={auth}\nServerPassword={pw}\n"


def write_ini(d: Path, port=4455, pw="s3cret", auth="true", en="true") -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "global.ini").write_text(INI.format(port=port, pw=pw, auth=auth, en=en), encoding="utf-8")


def write_json(d: Path, port=4456, pw="json-pw", auth=True, en=True) -> None:
    p = d / "plugin_config" / "obs-websocket"
    p.mkdir(parents=True, exist_ok=True)
    (p / "config.json").write_text(json.dumps({"server_enabled": en, "server_port": port, "auth_required": auth,
                                               "server_password": pw, "alerts_enabled": False}))


def test_linux_global_ini_obs29(tmp_path):
    write_ini(tmp_path / ".config" / "obs-studio", port=4460, pw="pw29")
    c = discover(env={"HOME": str(tmp_path)}, platform="linux")
    assert (c.host, c.port, c.password, c.server_enabled) == ("localhost", 4460, "pw29", True)
    assert c.source.endswith("global.ini")


def test_linux_json_obs30_wins_over_ini(tmp_path):
    d = tmp_path / "xdg" / "obs-studio"
    write_ini(d, port=4460, pw="old")
    write_json(d, port=4470, pw="new")
    c = discover(env={"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}, platform="linux")
    assert (c.port, c.password) == (4470, "new") and c.source.endswith("config.json")


def test_flatpak_layout(tmp_path):
    write_json(tmp_path / ".var" / "app" / "com.obsproject.Studio" / "config" / "obs-studio", port=4471, pw="fp")
    c = discover(env={"HOME": str(tmp_path)}, platform="linux")
    assert (c.port, c.password) == (4471, "fp")


def test_windows_appdata(tmp_path):
    write_ini(tmp_path / "Roaming" / "obs-studio", port=4462, pw="win")
    c = discover(env={"APPDATA": str(tmp_path / "Roaming"), "USERPROFILE": str(tmp_path)}, platform="win32")
    assert (c.port, c.password) == (4462, "win")


def test_macos_application_support(tmp_path):
    write_json(tmp_path / "Library" / "Application Support" / "obs-studio", port=4463, pw="mac")
    c = discover(env={"HOME": str(tmp_path)}, platform="darwin")
    assert (c.port, c.password) == (4463, "mac")
    assert obs_config_dirs("darwin", {"HOME": "/h"}) == [Path("/h/Library/Application Support/obs-studio")]


def test_auth_disabled_means_no_password_and_disabled_server_reported(tmp_path):
    write_ini(tmp_path / ".config" / "obs-studio", pw="ignored", auth="false", en="false")
    c = discover(env={"HOME": str(tmp_path)}, platform="linux")
    assert c.password == "" and c.server_enabled is False


def test_defaults_when_no_obs_config(tmp_path):
    c = discover(env={"HOME": str(tmp_path)}, platform="linux")
    assert (c.host, c.port, c.password, c.server_enabled, c.source) == ("localhost", 4455, "", None, "defaults")


def test_env_then_flags_override(tmp_path):
    write_ini(tmp_path / ".config" / "obs-studio", port=4460, pw="file")
    env = {"HOME": str(tmp_path), "HYGIE_OBS_HOST": "10.0.0.2", "HYGIE_OBS_PORT": "4500", "HYGIE_OBS_PASSWORD": "env"}
    c = discover(env=env, platform="linux")
    assert (c.host, c.port, c.password) == ("10.0.0.2", 4500, "env")
    c = discover("obs.local", 4501, "flag", env=env, platform="linux")
    assert (c.host, c.port, c.password) == ("obs.local", 4501, "flag")


def test_bad_port_env_is_a_clear_error(tmp_path):
    with pytest.raises(HygieError, match="HYGIE_OBS_PORT='abc' is not a port"):
        discover(env={"HOME": str(tmp_path), "HYGIE_OBS_PORT": "abc"}, platform="linux")


def test_password_never_in_repr_or_logs(tmp_path, caplog):
    write_ini(tmp_path / ".config" / "obs-studio", pw="TopSecret123")
    with caplog.at_level(logging.DEBUG):
        c = discover(env={"HOME": str(tmp_path)}, platform="linux")
    assert c.password == "TopSecret123"
    assert "TopSecret123" not in repr(c) and "TopSecret123" not in str(c)
    assert "TopSecret123" not in caplog.text and "password=set" in caplog.text


def test_corrupt_json_falls_back_to_ini(tmp_path):
    d = tmp_path / ".config" / "obs-studio"
    write_ini(d, port=4460, pw="ini")
    (d / "plugin_config" / "obs-websocket").mkdir(parents=True)
    (d / "plugin_config" / "obs-websocket" / "config.json").write_text("{not json")
    c = discover(env={"HOME": str(tmp_path)}, platform="linux")
    assert (c.port, c.password) == (4460, "ini")


def test_obs_script_discovery_matches(tmp_path):
    """The OBS script (stdlib only) has its own copy of the lookup: it must agree."""
    from hygie.plugin import hygie_obs
    d = tmp_path / ".config" / "obs-studio"
    write_ini(d, port=4460, pw="ini")
    assert hygie_obs.websocket_settings({"HOME": str(tmp_path)}, "linux") == (4460, "ini")
    write_json(d, port=4470, pw="json")
    assert hygie_obs.websocket_settings({"HOME": str(tmp_path)}, "linux") == (4470, "json")
    env = {"HOME": str(tmp_path), "HYGIE_OBS_PORT": "4480", "HYGIE_OBS_PASSWORD": "e"}
    assert hygie_obs.websocket_settings(env, "linux") == (4480, "e")
    w = tmp_path / "AppData"
    write_ini(w / "obs-studio", port=4490, pw="w")
    assert hygie_obs.websocket_settings({"APPDATA": str(w)}, "win32") == (4490, "w")
