"""Settings of the live agent: defaults < TOML config file < command-line flags.

The config file is `config.toml` in the user's config folder (`hygie run --help`
prints the path); keys go in a `[run]` table, named like the flags:

    [run]
    avatar = "~/avatars/me.hygie"
    input = "USB Microphone"
    fps = 30
    size = "1280x720"
    audio_out = "hygie_mic"
"""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hygie.core.errors import HygieError
from hygie.core.user_dirs import config_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger(__name__)


@dataclass
class AgentConfig:
    avatar: str | None = None  # None: the bundled default avatar
    input: str | None = None  # audio input: name substring or index; None: system default
    camera: str | None = None  # virtual camera device; None: the one named "Hygie Avatar"
    camera_backend: str | None = None  # pyvirtualcam backend; None: per OS
    fps: float = 30.0
    size: str | None = None  # "WxH" output size; None: the avatar's own frame size
    preview: bool = False
    audio_out: str | None = None  # pass the microphone through to this output, delayed to match video
    obs: bool = True  # follow OBS scene/source events when the OBS plugin is available
    duration: float | None = None  # seconds; None: until Ctrl-C
    threads: int = 1  # onnxruntime threads for the lip model
    report_every_s: float = 5.0
    fade_ms: float = 100.0  # idle <-> speaking ease time
    vad_margin_db: float = 6.0  # speech = level this far above the tracked noise floor
    vad_min_db: float = -55.0  # and above this absolute level (dBFS)
    vad_hangover_ms: float = 250.0  # keep "speaking" this long after the level drops
    watchdog_ms: float = 500.0
    block_ms: float = 5.0  # audio callback block; smaller = fresher audio at each frame tick
    camera_kwargs: dict[str, Any] = field(default_factory=dict)  # extra backend arguments (tests)


def config_path() -> Path:
    env = os.environ.get("HYGIE_CONFIG")
    return Path(env).expanduser() if env else config_dir() / "config.toml"


def load_file(path: Path | None = None) -> dict[str, Any]:
    path = path or config_path()
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise HygieError(f"{path}: not valid TOML ({e}). Fix the line shown or delete the file.") from e
    table = data.get("run", data)
    known = {f.name for f in dataclasses.fields(AgentConfig)} - {"camera_kwargs"}
    unknown = sorted(k for k in table if k not in known and not isinstance(table[k], dict))
    if unknown:
        raise HygieError(f"{path}: unknown setting(s) {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
    log.info("settings from %s", path)
    return {k: v for k, v in table.items() if k in known}


def build_config(overrides: dict[str, Any] | None = None, path: Path | None = None) -> AgentConfig:
    """Defaults, then the config file, then `overrides` (flags the user actually gave: not None)."""
    values = load_file(path)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    cfg = AgentConfig(**values)
    if cfg.fps <= 0 or cfg.fps > 120:
        raise HygieError(f"fps {cfg.fps}: choose a value between 1 and 120 (30 is what video calls use).")
    if cfg.avatar:
        cfg.avatar = str(Path(cfg.avatar).expanduser())
    return cfg
