"""Encoding frames (+ audio) to an H.264/AAC mp4, written under a temporary name and renamed at the end."""
from __future__ import annotations

import errno
import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from hygie.core.errors import MediaError
from hygie.core.media.audio_file import SAMPLE_RATE

log = logging.getLogger(__name__)


def write_video_with_audio(path: str | os.PathLike, frames: Iterator[np.ndarray], fps: float,
                           audio: np.ndarray | None, sr: int = SAMPLE_RATE, crf: int = 20,
                           finish: Callable[[Path], None] | None = None) -> int:
    """Encode BGR frames to H.264 (+ AAC audio) in an mp4. Written to a temp name, renamed at the end;
    `finish(temp_path)` runs just before the rename (e.g. to sign Content Credentials into it)."""
    import av

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
                    vs.options = {"crf": str(crf), "preset": "veryfast"}
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
