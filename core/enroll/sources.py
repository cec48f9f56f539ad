"""Reading the enrollment videos: probe, audio (checked), and the face-landmark pass of each."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hygie.core.enroll.checks import check_audio
from hygie.core.enroll.config import EnrollConfig
from hygie.core.errors import MediaError
from hygie.core.face.track import LandmarkTrack, track_video
from hygie.core.media.audio_file import load_audio
from hygie.core.media.probe import probe_video
from hygie.core.package.files import sha256_file

log = logging.getLogger(__name__)


@dataclass
class Source:
    path: Path
    fps: float
    size: tuple[int, int]
    track: LandmarkTrack
    audio: np.ndarray
    sha256: str



def read_sources(videos: list[Path], cfg: EnrollConfig) -> list[Source]:
    """Every video probed (all have audio) before the long passes; then audio and landmarks of each."""
    infos = []
    for v in videos:
        info = probe_video(v)
        if not info.has_audio:
            raise MediaError(f"{v}: has no audio track. Record with the microphone on; the avatar learns from your voice.")
        infos.append(info)
    srcs: list[Source] = []
    for v, info in zip(videos, infos):
        audio = load_audio(v, cfg.mel.sample_rate)
        check_audio(v, audio, info.duration, cfg.mel.sample_rate)
        log.info("%s: %dx%d, %.2f fps, %.1f s", v.name, info.width, info.height, info.fps, info.duration)
        tr = track_video(str(v), workers=cfg.workers, progress_desc=f"face landmarks {v.name}")
        srcs.append(Source(v, info.fps, (info.width, info.height), tr, audio, sha256_file(v)))
    if len({s.size for s in srcs}) > 1 or len({round(s.fps, 2) for s in srcs}) > 1:
        raise MediaError("all enrollment videos must share one frame size and frame rate; re-export them alike.")
    return srcs
