"""Encoding frames (+ audio) to an H.264/AAC mp4, written under a temporary name and renamed at the end."""
from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from hygie.core.errors import MediaError
from hygie.core.media.audio_file import SAMPLE_RATE

log = logging.getLogger(__name__)

# What `write_video_with_audio(repeatable=True)` pins, so that the same frames always decode to
# the same video on any machine (a batch output is then bit-identical to a serial render):
# - one x264 thread: x264's output depends on its thread count, whose default follows the cores;
# - no AVX-512 code in x264: on this project's AVX-512 machine, libx264 (core 165, the PyAV wheel)
#   encoded identical frames differently in 2 of 4 trials of 8 encodes (its macroblock-tree rate
#   control; mbtree=0 was repeatable too, at twice the file size), and in none of 48 encodes when
#   capped at AVX2. x264's assembly is bit-exact with its C code, so the cap changes no output.
REPEATABLE_X264 = "x264 threads=1, asm up to AVX2"


def _cpu_has_avx512() -> bool:
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats
    except ImportError:  # numpy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as feats
        except ImportError:
            return False
    return bool(feats.get("AVX512F"))


def repeatable_x264_options() -> dict[str, str]:
    opts = {"threads": "1"}
    if _cpu_has_avx512():
        opts["x264-params"] = "asm=AVX2"  # AVX2 and what it implies; only where the CPU has more
    return opts


def temp_name(path: str | os.PathLike) -> Path:
    """Where `write_video_with_audio` writes `path` until it is complete."""
    out = Path(path)
    return out.with_name(f".{out.name}.part")


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


# Chosen by measurement (core/bench/render.py `encoder_sweep`, docs/renderer.md): crf 20 veryfast kept
# 0.88-0.91 of the rendered mouth's sharpness; crf 15 with x264's film tuning (lighter deblocking)
# keeps >= 0.95 at 360x288 and 720p for ~2x the bytes, still at several times real time.
RENDER_ENCODING = VideoEncoding(crf=15, preset="veryfast", tune="film")


def write_video_with_audio(path: str | os.PathLike, frames: Iterator[np.ndarray], fps: float,
                           audio: np.ndarray | None, sr: int = SAMPLE_RATE, crf: int | None = None,
                           encoding: VideoEncoding | None = None, repeatable: bool = False,
                           finish: Callable[[Path], None] | None = None) -> int:
    """Encode BGR frames to H.264 (+ AAC audio) in an mp4. Written to a temp name, renamed at the end.

    `encoding` defaults to RENDER_ENCODING; `crf` overrides only its quality.
    `repeatable`: encode as REPEATABLE_X264 says, so the same frames always give the same video.
    `finish(temp_path)` runs just before the rename (e.g. to sign Content Credentials into it).
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
    tmp = temp_name(out)
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
                    opts = enc.options()
                    if repeatable:
                        rep = repeatable_x264_options()
                        if "x264-params" in rep and "x264-params" in opts:
                            rep["x264-params"] = f"{opts['x264-params']}:{rep['x264-params']}"
                        opts.update(rep)
                    vs.options = opts
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
        if finish is not None:
            finish(tmp)
        os.replace(tmp, out)
    except OSError as e:
        written = tmp.stat().st_size if tmp.exists() else 0
        tmp.unlink(missing_ok=True)
        if e.errno == errno.ENOSPC:
            folder = out.parent.resolve()
            raise MediaError(f"disk full while writing {out.name} in {folder} ({written / 1e6:.0f} MB written after "
                             f"{n} frames): free more than that, or choose another folder. Nothing was kept.") from e
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n
