"""Opening a media file with a clear error, and what its video stream holds."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from hygie.core.errors import MediaError

log = logging.getLogger(__name__)


@dataclass
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float
    n_frames: int  # estimate from the container; decoding is the truth
    duration: float
    has_audio: bool
    audio_rate: int | None
    rotation: int = 0  # quarter turns (counter-clockwise) the player applies: width/height are as shown


def quarter_turns(rotation: float | None) -> int:
    """A display-matrix rotation in degrees (PyAV's frame.rotation) -> counter-clockwise quarter turns."""
    return int(round((rotation or 0) / 90.0)) % 4


def open_media(path: str | os.PathLike):
    import av

    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p}: no such file. Check the path.")
    if p.is_dir():
        raise MediaError(f"{p} is a folder; give a video or audio file.")
    if p.stat().st_size == 0:
        raise MediaError(f"{p} is empty (0 bytes). Re-export or re-copy the file.")
    try:
        return av.open(str(p))
    except Exception as e:  # PyAV raises many types for unreadable input
        raise MediaError(
            f"{p}: cannot be read as media ({e.__class__.__name__}: {e}). "
            "Is it a video/audio file (mp4, mov, mkv, webm, avi, wav, flac, mp3, m4a)? "
            "If it plays elsewhere, re-encode it with: ffmpeg -i IN -c:v libx264 -c:a aac OUT.mp4"
        ) from e


def probe_video(path: str | os.PathLike) -> VideoInfo:
    with open_media(path) as c:
        if not c.streams.video:
            raise MediaError(f"{path}: has no video track. Enrollment needs a video of you talking.")
        vs = c.streams.video[0]
        rate = vs.average_rate or vs.guessed_rate or Fraction(25)
        fps = float(rate)
        dur = float(vs.duration * vs.time_base) if vs.duration else (c.duration or 0) / 1e6
        n = vs.frames or int(round(dur * fps))
        aud = c.streams.audio[0] if c.streams.audio else None
        turns = _first_frame_turns(c, vs)
        w, h = vs.codec_context.width, vs.codec_context.height
        if turns % 2:  # a phone video filmed upright: stored sideways, shown upright
            w, h = h, w
        return VideoInfo(str(path), w, h, fps, n, dur, aud is not None,
                         aud.codec_context.sample_rate if aud else None, turns)


def _first_frame_turns(c, vs) -> int:
    """The rotation players apply (display matrix), read from the first decodable frame."""
    try:
        for fr in c.decode(vs):
            return quarter_turns(getattr(fr, "rotation", 0))
    except Exception:  # an undecodable stream is reported by the decoder, with its own message
        return 0
    return 0


def probe_audio(path: str | os.PathLike) -> float:
    """Seconds of the first audio track, from the container (decoding is the truth)."""
    with open_media(path) as c:
        if not c.streams.audio:
            raise MediaError(f"{path}: has no audio track; give a speech file (wav/flac/mp3/m4a).")
        st = c.streams.audio[0]
        if st.duration and st.time_base:
            return float(st.duration * st.time_base)
        return (c.duration or 0) / 1e6
