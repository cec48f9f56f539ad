"""Decoding a file's audio track to mono float32 at the model's rate (soxr, high quality)."""
from __future__ import annotations

import logging
import os

import numpy as np

from hygie.core.errors import MediaError
from hygie.core.media.probe import open_media

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000


def load_audio(path: str | os.PathLike, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decode the first audio track to mono float32 at `sr` (soxr, high quality)."""
    import av
    import soxr

    with open_media(path) as c:
        if not c.streams.audio:
            raise MediaError(
                f"{path}: has no audio track. Record with the microphone on; the avatar learns from your voice."
            )
        st = c.streams.audio[0]
        chunks = []
        in_rate = None
        try:
            for packet in c.demux(st):
                for fr in packet.decode():
                    a = fr.to_ndarray()
                    in_rate = fr.sample_rate
                    if a.dtype.kind == "i":
                        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
                    else:
                        a = a.astype(np.float32)
                    if fr.format.is_planar:
                        a = a.mean(axis=0)
                    else:
                        ch = len(fr.layout.channels)
                        a = a.reshape(-1, ch).mean(axis=1)
                    chunks.append(a)
        except av.error.FFmpegError as e:  # invalid data, or a decoder refusing a damaged packet
            if not chunks:
                raise MediaError(f"{path}: the audio track is corrupt ({e}).") from e
            log.warning("audio of %s truncated at a corrupt packet (%s)", path, e)
    if not chunks or in_rate is None:
        raise MediaError(f"{path}: the audio track is empty.")
    x = np.concatenate(chunks)
    if not np.all(np.isfinite(x)):
        raise MediaError(f"{path}: the audio contains NaN/inf samples; re-export it.")
    if in_rate != sr:
        x = soxr.resample(x, in_rate, sr, quality="HQ").astype(np.float32)
    return x


