"""Decoding video frames: the one decoder both enrollment passes use, so they count frames alike.

Frames come out as players show them: a rotation tag (phones) is applied. A frame's time is
its presentation timestamp; a frame without one (raw streams, some
muxers) is given the previous frame's time plus one frame period, the same way on every
pass. `start`/`end` restrict decoding to a time range (the landmark pass splits a video
into ranges, one per worker process).
"""
from __future__ import annotations

import logging
import os
from typing import Iterator

import numpy as np

from hygie.core.errors import MediaError
from hygie.core.media.probe import open_media, quarter_turns

log = logging.getLogger(__name__)


def iter_video_frames(path: str | os.PathLike, threads: int = 2, start: float = 0.0,
                      end: float | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (time in seconds, BGR uint8 frame) for frames with start <= time < end.

    Corrupt packets are skipped and logged. Raises MediaError when the whole file yields no frame.
    """
    for t, fr in iter_decoded(path, threads, start, end):
        yield t, upright(fr.to_ndarray(format="bgr24"), fr)


def upright(img: np.ndarray, fr) -> np.ndarray:
    """A converted picture of decoded frame `fr` (or a picture cut from it) as players show it:
    its rotation tag (phones) applied."""
    turns = quarter_turns(getattr(fr, "rotation", 0))
    return np.ascontiguousarray(np.rot90(img, turns)) if turns else img


def iter_decoded(path: str | os.PathLike, threads: int = 2, start: float = 0.0,
                 end: float | None = None) -> Iterator[tuple[float, "av.VideoFrame"]]:
    """The same frames and times as `iter_video_frames`, as decoded PyAV frames (no colour conversion,
    rotation tag not applied: see `upright`).

    For callers that need only part of a frame, or a smaller copy: converting a whole 1080p frame
    to BGR costs more than cutting a mouth crop from the decoder's own planes.
    """
    import av

    with open_media(path) as c:
        if not c.streams.video:
            raise MediaError(f"{path}: has no video track.")
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        vs.codec_context.thread_count = threads
        tb = vs.time_base
        period = 1.0 / float(vs.average_rate or vs.guessed_rate or 25)
        if start > 0:
            c.seek(int(start / tb), stream=vs, backward=True, any_frame=False)
        n = 0
        bad = 0
        t_prev: float | None = None
        for packet in _packets(c, vs, path):
            try:
                frames = packet.decode()
            except av.error.FFmpegError as e:  # invalid data, or a decoder refusing a damaged packet
                bad += 1
                log.warning("skipping a corrupt video packet (%s)", e)
                continue
            for fr in frames:
                if fr.pts is not None:
                    t = float(fr.pts * tb)
                else:  # no timestamp: one period after the previous frame (the first: the range start)
                    t = start if t_prev is None else t_prev + period
                t_prev = t
                if t < start - 1e-6:
                    continue
                if end is not None and t >= end - 1e-6:
                    break
                yield t, fr
                n += 1
            else:
                continue
            break
        if n == 0 and start == 0:
            raise MediaError(f"{path}: no video frame could be decoded. The file is corrupt or truncated.")
        if bad:
            log.warning("%d corrupt video packets skipped in %s", bad, path)


def _packets(c, vs, path) -> Iterator:
    """The stream's packets; a container that breaks off mid-file ends the stream (with a warning)."""
    import av

    it = c.demux(vs)
    while True:
        try:
            yield next(it)
        except StopIteration:
            return
        except av.error.FFmpegError as e:
            log.warning("%s: the file breaks off here (%s); using what came before", path, e)
            return
