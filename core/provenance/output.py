"""Marks on a rendered file: the watermark in every frame and signed Content Credentials."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from hygie.core.provenance import payload as PL
from hygie.core.provenance.consent import avatar_id
from hygie.core.provenance.watermark import Embedder

log = logging.getLogger(__name__)

SCHEME = "hygie-avatar watermark v1 (periodic DFT-domain spread spectrum on luma; docs/provenance.md)"


@dataclass
class RenderMarks:
    avatar_meta: dict[str, Any]
    title: str
    payload: PL.Payload
    embedder: Embedder = field(default_factory=Embedder)

    def frames(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """The frames with the watermark (strength shaped after the first frame of the scene)."""
        for f in frames:
            yield self.embedder.apply(f, self.payload)

    def sign(self, tmp: Path) -> None:
        """Embed signed Content Credentials into the finished (temporary) mp4."""
        from hygie.core.provenance.credentials import manifest, sign_in_place

        wm = dict(self.payload.as_dict(), scheme=SCHEME)
        sign_in_place(Path(tmp), manifest(self.title, self.avatar_meta, wm))


def render_minute() -> int:
    """The time code of a render: now, or SOURCE_DATE_EPOCH where set (reproducible renders, the
    reproducible-builds convention), so the same job gives the same pixels."""
    import datetime as dt
    import os

    sde = os.environ.get("SOURCE_DATE_EPOCH")
    if sde and sde.strip().isdigit():
        return PL.minutes_since_epoch(dt.datetime.fromtimestamp(int(sde), dt.timezone.utc))
    return PL.minutes_since_epoch()


def for_render(avatar_meta: dict[str, Any], out: Path, minute: int | None = None) -> RenderMarks:
    m = render_minute() if minute is None else minute
    return RenderMarks(avatar_meta, Path(out).name, PL.Payload(int(avatar_id(avatar_meta), 16), m))
