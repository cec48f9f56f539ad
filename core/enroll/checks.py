"""Which frames are usable, and the footage checks that refuse a video with the fix in the message."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hygie.core.enroll.config import RECOMMENDED_S, EnrollConfig
from hygie.core.errors import HygieError, MediaError
from hygie.core.face.track import LandmarkTrack

if TYPE_CHECKING:
    from hygie.core.enroll.sources import Source

log = logging.getLogger(__name__)


def time_ranges(mask: np.ndarray, times: np.ndarray, min_len: float = 0.5) -> list[tuple[float, float]]:
    """Contiguous runs of True as (start, end) seconds, at least `min_len` long."""
    out = []
    idx = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    for a, b in zip(idx[::2], idx[1::2]):
        t0, t1 = times[a], times[b - 1]
        if t1 - t0 >= min_len:
            out.append((float(t0), float(t1)))
    return out


def fmt_ranges(r: list[tuple[float, float]], limit: int = 6) -> str:
    s = ", ".join(f"{a:.1f}–{b:.1f} s" for a, b in r[:limit])
    return s + (f" and {len(r) - limit} more" if len(r) > limit else "")


def damaged_frames(track: LandmarkTrack) -> np.ndarray:
    """Grey or blocky decoder garbage, relative to the video's own typical frame."""
    grey_base = np.median(track.grey)
    block_base = np.median(track.block)
    return (track.grey - grey_base > 0.15) | (track.block > max(2.2, 1.8 * block_base))


def has_face_mask(track: LandmarkTrack) -> np.ndarray:
    return ~np.isnan(track.landmarks[:, 0, 0])


def check_audio(path: Path, audio: np.ndarray, duration: float, sr: int) -> None:
    if len(audio) < sr * 0.5:
        raise MediaError(f"{path}: the audio track is (nearly) empty. Record with the microphone on.")
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    if rms < 1e-4 or np.max(np.abs(audio)) < 1e-3:
        raise MediaError(
            f"{path}: the audio is silent (RMS {20 * np.log10(rms + 1e-12):.0f} dBFS). "
            "Was the microphone muted or the wrong input selected? Record again with speech audible."
        )
    a_dur = len(audio) / sr
    if a_dur < 0.8 * duration:
        raise MediaError(
            f"{path}: the audio ({a_dur:.1f} s) is much shorter than the video ({duration:.1f} s); "
            "sound and picture cannot be aligned. Re-export the recording with its full audio track."
        )


def usable_mask(src: Source) -> tuple[np.ndarray, dict]:
    tr = src.track
    has_face = has_face_mask(tr)
    damaged = damaged_frames(tr)
    usable = has_face & ~damaged
    stats = dict(frames=int(len(tr.times)), no_face=int((~has_face).sum()),
                 damaged=int(damaged.sum()), damaged_with_face=int((damaged & has_face).sum()),
                 multi_face=int((tr.n_faces > 1).sum()))
    return usable, stats



def check_footage(srcs: list[Source], cfg: EnrollConfig) -> tuple[list[np.ndarray], list[dict]]:
    """Usable-frame masks and drop counts per source; refuses too little, faceless or two-person footage."""
    fps = srcs[0].fps
    masks, stats_all = [], []
    for s in srcs:
        m, st = usable_mask(s)
        masks.append(m)
        stats_all.append(st)
        cover = m.mean()
        if m.sum() == 0:
            raise HygieError(
                f"{s.path}: no face found in any frame. Face the camera, well lit, with your whole face in view."
            )
        no_face_ranges = time_ranges(np.isnan(s.track.landmarks[:, 0, 0]), s.track.times)
        if cover < 0.5:
            raise HygieError(
                f"{s.path}: a usable face is visible in only {100 * cover:.0f}% of the frames. "
                f"No face at {fmt_ranges(no_face_ranges)}. Trim those parts or record again facing the camera."
            )
        if no_face_ranges:
            log.warning("%s: no face at %s (those frames are skipped)", s.path.name, fmt_ranges(no_face_ranges))
        if st["damaged"]:
            log.warning("%s: %d damaged (grey/blocky) frames dropped", s.path.name, st["damaged"])
        ambiguous = (s.track.other_face > 0.7) & has_face_mask(s.track)
        if ambiguous.mean() > 0.2:
            raise HygieError(
                f"{s.path}: two faces of similar size are visible in {100 * ambiguous.mean():.0f}% of the frames "
                f"(e.g. {fmt_ranges(time_ranges(ambiguous, s.track.times), 3)}); Hygie cannot tell which person to learn. "
                "Crop the video to one person (or record alone)."
            )
        if st["multi_face"]:
            log.warning("%s: several faces in %d frames; following the largest, most central one",
                        s.path.name, st["multi_face"])
    usable_s = sum(m.sum() for m in masks) / fps
    if usable_s < cfg.min_usable_s:
        raise HygieError(
            f"only {usable_s:.0f} s of usable face footage; at least {cfg.min_usable_s:.0f} s are needed "
            f"(3–5 minutes recommended). Record about {RECOMMENDED_S - usable_s:.0f} s more of yourself talking."
        )
    if usable_s < RECOMMENDED_S:
        log.warning("%.0f s of usable footage; 3–5 minutes give a better lip model.", usable_s)
    return masks, stats_all
