"""One render job: an avatar and speech audio (or a video's true landmarks) -> an mp4.

`hygie render` and every worker of `hygie render-batch` call `render_job`, so a batch output
is bit-identical to a serial render of the same job: the rendered frames are deterministic, and
the encoder runs as `media.encode.REPEATABLE_X264` says (same frames, same video, any machine).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from hygie.core.errors import HygieError, MediaError

log = logging.getLogger(__name__)

FITS = ("letterbox", "crop")


@dataclass(frozen=True)
class RenderJob:
    """What to render. The driver: `audio` (through the lip model), or `landmarks_from` (a video's true lips)."""

    output: Path
    audio: str | None = None
    landmarks_from: str | None = None  # its audio is used unless `audio` is given
    size: tuple[int, int] | None = None  # output (w, h); None = the avatar's own size
    fit: str = "letterbox"
    debug: bool = False
    minute: int | None = None  # the watermark's time code (UTC minutes); None: now (or SOURCE_DATE_EPOCH)


@dataclass
class JobResult:
    output: Path
    frames: int
    fps: float
    size: tuple[int, int]
    has_audio: bool
    seconds: float  # wall time of the job (decode, model, render, encode)
    watermark: str = ""  # what the frames carry, in words


def check_fit(fit: str) -> str:
    if fit not in FITS:
        raise HygieError(f"fit {fit!r}: choose one of {', '.join(FITS)}")
    return fit


def make_renderer(avatar, size: tuple[int, int] | None, fit: str):
    """The renderer a job of this size and fit uses (a batch worker keeps one per avatar, size and fit)."""
    from hygie.core.render.renderer import Renderer, RendererConfig

    return Renderer(avatar, out_size=size, cfg=RendererConfig(fit=check_fit(fit)))


def render_job(avatar, job: RenderJob, renderer=None,
               progress: Callable[[int], None] | None = None) -> JobResult:
    """Render one job to `job.output` (temp name, renamed when complete). `renderer` may be reused:
    every job starts from its reset state, so the frames do not depend on earlier jobs."""
    from hygie.core.audio.activity import voice_activity
    from hygie.core.media.audio_file import load_audio
    from hygie.core.media.encode import write_video_with_audio
    from hygie.core.media.probe import probe_video
    from hygie.core.provenance.output import for_render
    from hygie.core.render.drive import coeffs_from_audio, lips_from_video, render_frames

    t0 = time.perf_counter()
    sr = avatar.mel_config.sample_rate
    audio = load_audio(job.audio, sr) if job.audio else None
    if audio is not None and len(audio) < int(0.1 * sr):
        raise MediaError(f"{job.audio}: the audio is shorter than 0.1 s; nothing to render.")
    lips = coeffs = None
    if job.landmarks_from:
        lips, fps = lips_from_video(avatar, job.landmarks_from)
        n = len(lips)
        if audio is None and probe_video(job.landmarks_from).has_audio:
            audio = load_audio(job.landmarks_from, sr)
    elif audio is not None:
        fps = avatar.fps
        n = max(1, int(np.ceil(len(audio) / sr * fps)))
        coeffs = coeffs_from_audio(avatar, audio, fps, n)
    else:
        raise HygieError("a render job needs speech audio or a video to take the mouth shapes from")
    own = renderer is None
    if own:
        renderer = make_renderer(avatar, job.size, job.fit)
    # every file is marked as synthetic: a watermark in the pixels and signed Content Credentials
    marks = for_render(avatar.meta, job.output, job.minute)
    # the body follows the voice: speaking footage while it is present, listening footage in pauses
    renderer.set_activity(None if audio is None else voice_activity(audio, sr, fps, n))
    try:
        frames = marks.frames(render_frames(renderer, n, lips=lips, coeffs=coeffs, debug=job.debug, progress=progress))
        written = write_video_with_audio(job.output, frames, fps, audio, sr=sr, repeatable=True, finish=marks.sign)
    finally:
        if own:
            renderer.close()
    return JobResult(Path(job.output), written, fps, tuple(renderer.size), audio is not None,
                     time.perf_counter() - t0, marks.payload.describe())
