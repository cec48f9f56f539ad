"""In-process media decoding and encoding with PyAV; audio resampled with soxr."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from hygie.core.errors import MediaError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000


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


def _open(path: str | os.PathLike):
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
    with _open(path) as c:
        if not c.streams.video:
            raise MediaError(f"{path}: has no video track. Enrollment needs a video of you talking.")
        vs = c.streams.video[0]
        rate = vs.average_rate or vs.guessed_rate or Fraction(25)
        fps = float(rate)
        dur = float(vs.duration * vs.time_base) if vs.duration else (c.duration or 0) / 1e6
        n = vs.frames or int(round(dur * fps))
        aud = c.streams.audio[0] if c.streams.audio else None
        return VideoInfo(str(path), vs.codec_context.width, vs.codec_context.height, fps, n, dur,
                         aud is not None, aud.codec_context.sample_rate if aud else None)


def iter_video_frames(path: str | os.PathLike, threads: int = 2) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (time in seconds, BGR uint8 frame). Corrupt packets are skipped and logged."""
    import av

    with _open(path) as c:
        if not c.streams.video:
            raise MediaError(f"{path}: has no video track.")
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        vs.codec_context.thread_count = threads
        tb = vs.time_base
        fps = float(vs.average_rate or vs.guessed_rate or 25)
        idx = 0
        bad = 0
        for packet in c.demux(vs):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError as e:
                bad += 1
                log.warning("skipping a corrupt video packet (%s)", e)
                continue
            for fr in frames:
                t = float(fr.pts * tb) if fr.pts is not None else idx / fps
                yield t, fr.to_ndarray(format="bgr24")
                idx += 1
        if idx == 0:
            raise MediaError(f"{path}: no video frame could be decoded. The file is corrupt or truncated.")
        if bad:
            log.warning("%d corrupt video packets skipped in %s", bad, path)


def load_audio(path: str | os.PathLike, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decode the first audio track to mono float32 at `sr` (soxr, high quality)."""
    import av
    import soxr

    with _open(path) as c:
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
        except av.error.InvalidDataError as e:
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


@dataclass(frozen=True)
class VideoEncoding:
    """libx264 settings of the mp4s Hygie writes (yuv420p: what every player and call app reads)."""

    crf: int = 20
    preset: str = "veryfast"
    tune: str | None = None
    x264_params: str | None = None

    def options(self) -> dict[str, str]:
        o = {"crf": str(self.crf), "preset": self.preset}
        if self.tune:
            o["tune"] = self.tune
        if self.x264_params:
            o["x264-params"] = self.x264_params
        return o


# Chosen by measurement (core/render_bench.py `encoder_sweep`, docs/renderer.md): crf 20 veryfast kept
# 0.88-0.91 of the rendered mouth's sharpness; crf 15 with x264's film tuning (lighter deblocking)
# keeps >= 0.95 at 360x288 and 720p for ~2x the bytes, still at several times real time.
RENDER_ENCODING = VideoEncoding(crf=15, preset="veryfast", tune="film")


def write_video_with_audio(path: str | os.PathLike, frames: Iterator[np.ndarray], fps: float,
                           audio: np.ndarray | None, sr: int = SAMPLE_RATE, crf: int | None = None,
                           encoding: VideoEncoding | None = None) -> int:
    """Encode BGR frames to H.264 (+ AAC audio) in an mp4. Written to a temp name, renamed at the end.

    `encoding` defaults to RENDER_ENCODING; `crf` overrides only its quality.
    """
    import av

    enc = encoding or RENDER_ENCODING
    if crf is not None:
        enc = VideoEncoding(crf, enc.preset, enc.tune, enc.x264_params)

    out = Path(path)
    if out.parent and not out.parent.exists():
        raise MediaError(f"{out.parent}: folder does not exist. Create it or choose another output path.")
    if not os.access(out.parent if str(out.parent) else ".", os.W_OK):
        raise MediaError(f"{out.parent}: not writable. Choose another output path.")
    tmp = out.with_name(f".{out.name}.part")
    n = 0
    try:
        with av.open(str(tmp), mode="w", format="mp4") as c:
            rate = Fraction(fps).limit_denominator(1001)
            vs = None
            a_st = None
            if audio is not None:
                a_st = c.add_stream("aac", rate=sr)
                a_st.layout = "mono"
            for fr in frames:
                if vs is None:
                    h, w = fr.shape[:2]
                    vs = c.add_stream("libx264", rate=rate)
                    vs.width, vs.height = w - w % 2, h - h % 2
                    vs.pix_fmt = "yuv420p"
                    vs.options = enc.options()
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(fr[: vs.height, : vs.width]), format="bgr24")
                for p in vs.encode(vf):
                    c.mux(p)
                n += 1
            if vs is None:
                raise MediaError("nothing to write: no frames were produced.")
            for p in vs.encode():
                c.mux(p)
            if a_st is not None and audio is not None and len(audio):
                a16 = np.clip(audio, -1, 1).astype(np.float32)[None, :]
                af = av.AudioFrame.from_ndarray(a16, format="flt", layout="mono")
                af.sample_rate = sr
                af.pts = 0
                for p in a_st.encode(af):
                    c.mux(p)
                for p in a_st.encode():
                    c.mux(p)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n
