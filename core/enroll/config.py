"""Settings of an enrollment, and the footage it asks for."""
from __future__ import annotations

from dataclasses import dataclass, field

from hygie.core.audio.mel import MelConfig
from hygie.core.enroll.body import BodyConfig

MIN_USABLE_S = 60.0

RECOMMENDED_S = 180.0

LICENCE_NOTE = (
    "This avatar reproduces a real person. Use it only with that person's consent, "
    "and never to deceive others about who is speaking."
)


@dataclass
class EnrollConfig:
    variance_target: float = 0.97
    max_components: int = 12
    template_seconds: float = 10.0
    crop_margin: float = 0.12  # IOD units around the mouth region
    jpeg_quality: int = 92
    template_jpeg_quality: int = 94
    workers: int | None = None
    max_mouths: int | None = None  # keep at most this many database frames (evenly spread)
    with_features: bool = True  # audio features for training (drop to ship a slim runtime package)
    licence: str = ""
    consent_name: str | None = None  # who agreed to be enrolled (None: no record; the package loads with a warning)
    consent_method: str = "--consent flag"  # how: see provenance.consent.METHODS
    min_usable_s: float = MIN_USABLE_S  # lowered only for tests and demos on short clips
    mel: MelConfig = field(default_factory=MelConfig)
    body: BodyConfig = field(default_factory=BodyConfig)  # the motion graph over the footage (body.mp4, body.npz)

