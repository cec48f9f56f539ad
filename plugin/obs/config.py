"""Where OBS's websocket server listens, read from OBS's own configuration.

Lookup order (first hit wins, each field separately):
1. explicit values (CLI flags),
2. environment: HYGIE_OBS_HOST, HYGIE_OBS_PORT, HYGIE_OBS_PASSWORD,
3. OBS 30+: ``<obs config>/plugin_config/obs-websocket/config.json``,
4. OBS 28-29: ``<obs config>/global.ini`` section ``[OBSWebSocket]``,
5. defaults: localhost:4455, no password.

``<obs config>`` is tried per OS: Linux ``$XDG_CONFIG_HOME/obs-studio`` (default
``~/.config``) then the Flatpak ``~/.var/app/com.obsproject.Studio/config/obs-studio``;
Windows ``%APPDATA%/obs-studio``; macOS ``~/Library/Application Support/obs-studio``.

The password is never logged: ``ObsConnection.__repr__`` masks it.
"""
from __future__ import annotations

import configparser
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 4455  # obs-websocket v5; 4444 would mean the legacy v4 protocol
FLATPAK_ID = "com.obsproject.Studio"


@dataclass
class ObsConnection:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    password: str = field(default="", repr=False)  # never printed
    server_enabled: bool | None = None  # None: unknown (no OBS config found)
    source: str = "defaults"  # where the settings came from, for messages

    def __repr__(self) -> str:
        pw = "set" if self.password else "none"
        return (f"ObsConnection(host={self.host!r}, port={self.port}, password={pw}, "
                f"server_enabled={self.server_enabled}, source={self.source!r})")

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"


def obs_config_dirs(platform: str | None = None, env: dict[str, str] | None = None,
                    home: Path | None = None) -> list[Path]:
    """Candidate OBS config folders for this OS, most likely first (existence not checked)."""
    platform = platform or sys.platform
    env = dict(os.environ) if env is None else env
    home = home or Path(env.get("HOME") or env.get("USERPROFILE") or Path.home())
    if platform.startswith("win"):
        appdata = env.get("APPDATA") or str(home / "AppData" / "Roaming")
        return [Path(appdata) / "obs-studio"]
    if platform == "darwin":
        return [home / "Library" / "Application Support" / "obs-studio"]
    xdg = env.get("XDG_CONFIG_HOME") or str(home / ".config")
    return [Path(xdg) / "obs-studio",
            home / ".var" / "app" / FLATPAK_ID / "config" / "obs-studio"]


def _read_v30_json(cfg_dir: Path) -> dict | None:
    p = cfg_dir / "plugin_config" / "obs-websocket" / "config.json"
    if not p.is_file():
        return None
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("cannot read %s (%s); ignoring it", p, e)
        return None
    out: dict = {"file": str(p)}
    if "server_port" in d:
        out["port"] = int(d["server_port"])
    if "server_enabled" in d:
        out["enabled"] = bool(d["server_enabled"])
    auth = bool(d.get("auth_required", True))
    out["password"] = str(d.get("server_password", "")) if auth else ""
    return out


def _read_global_ini(cfg_dir: Path) -> dict | None:
    p = cfg_dir / "global.ini"
    if not p.is_file():
        return None
    # OBS writes a UTF-8 BOM on Windows; strict=False tolerates duplicate keys it sometimes leaves.
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str  # keys are CamelCase
    try:
        cp.read_string(p.read_text(encoding="utf-8-sig"))
    except (OSError, configparser.Error) as e:
        log.warning("cannot read %s (%s); ignoring it", p, e)
        return None
    if not cp.has_section("OBSWebSocket"):
        return None
    s = cp["OBSWebSocket"]
    out: dict = {"file": str(p)}
    if "ServerPort" in s:
        out["port"] = int(s["ServerPort"])
    if "ServerEnabled" in s:
        out["enabled"] = s["ServerEnabled"].strip().lower() == "true"
    auth = s.get("AuthRequired", "true").strip().lower() == "true"
    out["password"] = s.get("ServerPassword", "") if auth else ""
    return out


def read_obs_websocket_settings(cfg_dirs: list[Path]) -> dict | None:
    """The websocket settings of the first OBS config folder that has any (v30 JSON before v28 ini)."""
    for d in cfg_dirs:
        for reader in (_read_v30_json, _read_global_ini):
            found = reader(d)
            if found is not None:
                return found
    return None


def discover(host: str | None = None, port: int | None = None, password: str | None = None,
             *, platform: str | None = None, env: dict[str, str] | None = None,
             home: Path | None = None) -> ObsConnection:
    """Resolve the connection settings (explicit > env > OBS config > defaults)."""
    env = dict(os.environ) if env is None else env
    found = read_obs_websocket_settings(obs_config_dirs(platform, env, home)) or {}
    conn = ObsConnection(source=found.get("file", "defaults"), server_enabled=found.get("enabled"))
    conn.port = found.get("port", DEFAULT_PORT)
    conn.password = found.get("password", "")

    if env.get("HYGIE_OBS_HOST"):
        conn.host = env["HYGIE_OBS_HOST"]
    if env.get("HYGIE_OBS_PORT"):
        conn.port = _port(env["HYGIE_OBS_PORT"], "HYGIE_OBS_PORT")
    if "HYGIE_OBS_PASSWORD" in env:
        conn.password = env["HYGIE_OBS_PASSWORD"]
    if host:
        conn.host = host
    if port:
        conn.port = _port(port, "--obs-port")
    if password is not None:
        conn.password = password
    log.debug("OBS websocket settings: %r", conn)
    return conn


def _port(value: object, what: str) -> int:
    from hygie.core.errors import HygieError
    try:
        p = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise HygieError(f"{what}={value!r} is not a port number; use e.g. 4455") from None
    if not 0 < p < 65536:
        raise HygieError(f"{what}={p} is out of range; use e.g. 4455")
    return p
