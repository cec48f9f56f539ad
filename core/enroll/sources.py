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
from hygie.core.media.scan import report_scan, scan_video
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
    end: float | None = None  # where decoding stops (a truncated file: before its cut-off tail)


def read_sources(videos: list[Path], cfg: EnrollConfig) -> list[Source]:
    """Every video probed (all have audio) before the long passes; then audio and landmarks of each."""
    infos, ends = [], []
    for v in videos:  # every file checked (quickly) before minutes of work on the first
        info = probe_video(v)
        if not info.has_audio:
            raise MediaError(f"{v}: has no audio track. Record with the microphone on; the avatar learns from your voice.")
        infos.append(info)
        ends.append(report_scan(v, scan_video(v)))
    srcs: list[Source] = []
    for v, info, end in zip(videos, infos, ends):
        audio = load_audio(v, cfg.mel.sample_rate)
        duration = info.duration if end is None else end
        check_audio(v, audio, duration, cfg.mel.sample_rate)
        log.info("%s: %dx%d, %.2f fps, %.1f s%s", v.name, info.width, info.height, info.fps, duration,
                 f" (shown turned by {90 * info.rotation}°)" if info.rotation else "")
        tr = track_video(str(v), workers=cfg.workers, progress_desc=f"face landmarks {v.name}", end=end)
        srcs.append(Source(v, info.fps, (info.width, info.height), tr, audio, sha256_file(v), end))
    if len({s.size for s in srcs}) > 1 or len({round(s.fps, 2) for s in srcs}) > 1:
        raise MediaError("all enrollment videos must share one frame size and frame rate; re-export them alike.")
    return srcs
