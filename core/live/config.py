"""Settings of the live agent: defaults < TOML config file < command-line flags.

The config file is `config.toml` in the user's config folder (`hygie run --help`
prints the path); keys go in a `[run]` table, named like the flags:

    [run]
    avatar = "~/avatars/me.hygie"
    input = "USB Microphone"
    fps = 30
    size = "1280x720"
    audio_out = "hygie_mic"
    badge = true                 # visible "AI avatar" badge (EU AI Act Art. 50 disclosure)
    badge_position = "top-right"
    badge_size = 0.06            # fraction of the frame height

Every frame also carries the invisible watermark (hygie.core.provenance); it has no switch.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hygie.core.audio.capture import WATCHDOG_MS
from hygie.core.errors import HygieError
from hygie.core.limits import MAX_FPS, check_duration, check_number, parse_size
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
    virtual_mic: bool = True  # make "Hygie Avatar Mic" and play the delayed voice into it (ignored with audio_out)
    obs: bool = True  # follow OBS scene/source events when the OBS plugin is available
    duration: float | None = None  # seconds; None: until Ctrl-C
    threads: int = 1  # onnxruntime threads for the lip model
    report_every_s: float = 5.0
    fade_ms: float = 100.0  # idle <-> speaking ease time
    vad_margin_db: float = 6.0  # speech = level this far above the tracked noise floor
    vad_min_db: float = -55.0  # and above this absolute level (dBFS)
    vad_hangover_ms: float = 250.0  # keep "speaking" this long after the level drops
    watchdog_ms: float = WATCHDOG_MS  # no audio callback this long: reopen the input
    pump_ms: float = 8.0  # with a voice output, pass audio on this often between frames
    block_ms: float = 5.0  # audio callback block; smaller = fresher audio at each frame tick
    badge: bool = False  # visible "AI avatar" badge in a corner of the image
    badge_position: str = "top-right"  # top-left | top-right | bottom-left | bottom-right
    badge_size: float = 0.06  # badge height, fraction of the frame height
    heap_tuning: bool = True  # fixed glibc mmap threshold: frame buffers go back to the system (heap.py)
    camera_kwargs: dict[str, Any] = field(default_factory=dict)  # extra backend arguments (tests)


def config_path() -> Path:
    env = os.environ.get("HYGIE_CONFIG")
    return Path(env).expanduser() if env else config_dir() / "config.toml"


# what each setting must be (the same rule for the config file and the flags)
_TEXT = ("avatar", "input", "camera", "camera_backend", "size", "audio_out", "badge_position")
_FLAGS = ("preview", "obs", "virtual_mic", "badge", "heap_tuning")
_NUMBERS: dict[str, tuple[float, float, bool]] = {
    "fps": (1, MAX_FPS, False), "threads": (1, 64, True), "report_every_s": (0.5, 3600, False),
    "fade_ms": (0, 5000, False), "vad_margin_db": (0, 60, False), "vad_min_db": (-120, 0, False),
    "vad_hangover_ms": (0, 10000, False), "watchdog_ms": (50, 60000, False), "block_ms": (1, 100, False),
    "pump_ms": (1, 30, False), "badge_size": (0.01, 0.5, False),
}


def load_file(path: Path | None = None) -> dict[str, Any]:
    path = path or config_path()
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise HygieError(f"{path}: not valid TOML ({e}). Fix the line shown or delete the file.") from e
    table = data.get("run", data)
    if not isinstance(table, dict):
        raise HygieError(f"{path}: 'run' must be a table of settings ([run] on its own line, then key = value).")
    known = {f.name for f in dataclasses.fields(AgentConfig)} - {"camera_kwargs"}
    unknown = sorted(k for k in table if k not in known and not isinstance(table[k], dict))
    if unknown:
        raise HygieError(f"{path}: unknown setting(s) {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
    log.info("settings from %s", path)
    values = {k: v for k, v in table.items() if k in known}
    try:
        _check_values(values)
    except HygieError as e:
        raise HygieError(f"{path}: {e}") from None
    return values


def _check_values(values: dict[str, Any]) -> None:
    """Types and ranges, one line naming the setting (e.g. fps = "thirty", size = 1280)."""
    for k, v in values.items():
        if v is None:
            continue
        if k in _TEXT and not isinstance(v, str):
            raise HygieError(f"{k} = {v!r}: expected text in quotes, e.g. {k} = \"{'1280x720' if k == 'size' else '...'}\".")
        if k in _FLAGS and not isinstance(v, bool):
            raise HygieError(f"{k} = {v!r}: expected true or false.")
        if k in _NUMBERS:
            lo, hi, integer = _NUMBERS[k]
            check_number(v, k, lo, hi, integer)
        if k == "duration":
            check_duration(v, k)
        if k == "size":
            parse_size(v)


def build_config(overrides: dict[str, Any] | None = None, path: Path | None = None) -> AgentConfig:
    """Defaults, then the config file, then `overrides` (flags the user actually gave: not None)."""
    values = load_file(path)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    _check_values(given)
    values.update(given)
    cfg = AgentConfig(**values)
    if cfg.avatar:
        cfg.avatar = str(Path(cfg.avatar).expanduser())
    badge_config(cfg).check()
    return cfg


def badge_config(cfg: AgentConfig):
    from hygie.core.provenance.badge import BadgeConfig

    return BadgeConfig(position=cfg.badge_position, size=float(cfg.badge_size))
