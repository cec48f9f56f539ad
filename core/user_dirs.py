"""Per-user folders: settings, caches and state, one owner for every path Hygie keeps outside a project."""
from __future__ import annotations

import os
import platform
from pathlib import Path

APP = "hygie"
CACHE_ENV = "XDG_CACHE_HOME"  # named in messages that suggest moving the cache


def config_dir() -> Path:
    """Settings (config.toml): %APPDATA%\\hygie, ~/Library/Application Support/hygie, or $XDG_CONFIG_HOME/hygie."""
    system = platform.system()
    if system == "Windows":
        return Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / APP
    if system == "Darwin":
        return Path.home() / "Library" / "Application Support" / APP
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / APP


def cache_dir() -> Path:
    """Things that can be rebuilt at any time (unpacked .hygie packages): $XDG_CACHE_HOME/hygie."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache") / APP


def state_dir() -> Path:
    """What the last run measured (latency.json): $XDG_STATE_HOME/hygie."""
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / APP
