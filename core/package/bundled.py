"""Where the wheel's bundled data lives: the default avatar and the demo sentence.

They ship as package data of `hygie.models` (models/default_avatar, models/samples); core finds
them with a resource lookup, without importing any code of models/.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from hygie.core.errors import HygieError

_BUNDLE = "hygie.models"


def default_avatar_path() -> Path:
    """The avatar shipped inside the wheel (models/default_avatar)."""
    return Path(str(files(_BUNDLE).joinpath("default_avatar")))


def demo_speech_path() -> Path:
    """A short held-out GRID s1 recording shipped with the default avatar (CC BY 4.0)."""
    p = Path(str(files(_BUNDLE).joinpath("samples", "demo_speech.flac")))
    if not p.exists():
        raise HygieError("give --audio SPEECH (wav/flac/mp3/m4a) or --landmarks-from VIDEO "
                         "(the bundled demo sentence is missing from this install)")
    return p
