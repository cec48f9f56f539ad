"""One render job: an avatar and speech audio (or a video's true landmarks) -> an mp4.

`hygie render` and every worker of `hygie render-batch` call `render_job`, so a batch output
is bit-identical to a serial render of the same job: the rendered frames are deterministic, and
the encoder runs with `media.REPEATABLE_X264` (same frames, same video, on any machine).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from hygie.core import geometry as G
from hygie.core.errors import HygieError, MediaError

log = logging.getLogger(__name__)

FITS = ("letterbox", "crop")


@dataclass(frozen=True)
class RenderJob:
    """What to render. Exactly one driver: `audio` (through the lip model) or `landmarks_from`."""

    output: Path
    audio: str | None = None
    landmarks_from: str | None = None  # drive with this video's true lips (its audio unless `audio`)
    size: tuple[int, int] | None = None  # output (w, h); None = the avatar's own size
    fit: str = "letterbox"
    debug: bool = False


@dataclass
class JobResult:
    output: Path
    frames: int
    fps: float
    size: tuple[int, int]
    has_audio: bool
    seconds: float  # wall time of the job (decode, model, render, encode)


def parse_size(s: str | None) -> tuple[int, int] | None:
    if not s:
        return None
    try:
        w, h = (int(v) for v in str(s).lower().split("x"))
    except ValueError:
        raise HygieError(f"size {s!r}: expected WIDTHxHEIGHT, e.g. 1280x720") from None
    if w < 16 or h < 16 or w > 7680 or h > 4320:
        raise HygieError(f"size {s!r}: out of range (16x16 to 7680x4320)")
    return w - w % 2, h - h % 2  # H.264 with yuv420p needs even sizes


def check_fit(fit: str) -> str:
    if fit not in FITS:
        raise HygieError(f"fit {fit!r}: choose one of {', '.join(FITS)}")
    return fit


def check_output(path: Path) -> None:
    """Refuse an unusable output path before any work (nothing is written on failure)."""
    if path.is_dir():
        raise HygieError(f"{path} is a folder; give a file name such as {path / 'out.mp4'}")
    if path.suffix.lower() != ".mp4":
        raise HygieError(f"{path}: the output must be an .mp4 file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise HygieError(f"{parent}: folder does not exist. Create it or choose another output path.")
    if not parent.is_dir():
        raise HygieError(f"{parent} is a file, not a folder. Choose another output path.")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise HygieError(f"{path}: not writable. Choose another output path.")


def canonical_lips(landmarks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-frame image landmarks (N, 478, 3) -> canonical lips (N, 40, 2); NaN where no face."""
    out = np.full((len(landmarks), len(G.LIPS), 2), np.nan, np.float32)
    for i, lm in enumerate(landmarks):
        if np.isfinite(lm[G.RIGID]).all() and np.isfinite(lm[G.LIPS]).all():
            sim, _ = G.align(lm.astype(np.float64), reference)
            out[i] = sim.apply(lm[G.LIPS].astype(np.float64))[:, :2]
    return out


def lips_from_video(avatar, video: str | os.PathLike) -> tuple[np.ndarray, float]:
    """True canonical lips of every frame of `video` (aligned to this avatar's reference), and its fps."""
    from hygie.core.landmark_pass import track_video
    from hygie.core.media import probe_video

    info = probe_video(video)
    tr = track_video(str(video), progress_desc="driving landmarks")
    lips = canonical_lips(tr.landmarks, avatar.track["reference"])
    missing = int((~np.isfinite(lips[:, 0, 0])).sum())
    if missing == len(lips):
        raise MediaError(f"{video}: no face found in any frame; --landmarks-from needs a video of a face talking.")
    if missing:
        log.warning("%s: no face in %d of %d frames (rendered with the closed mouth)", video, missing, len(lips))
    return lips, info.fps


def has_speech(audio: np.ndarray, sr: int = 16000) -> bool:
    """True when the audio holds something louder than its own noise floor (not silence, not steady hiss)."""
    n = int(0.025 * sr)
    if len(audio) < n:
        return False
    fr = audio[: len(audio) // n * n].reshape(-1, n).astype(np.float64)
    db = 10 * np.log10((fr ** 2).mean(1) + 1e-12)
    # speech peaks sit well above the floor; a steady tone or hiss does not vary that much
    return bool(db.max() > -50.0 and np.percentile(db, 95) - np.percentile(db, 10) > 8.0)


def coeffs_from_audio(avatar, audio: np.ndarray, fps: float, n_frames: int) -> np.ndarray | None:
    """Per-video-frame PCA coefficients from the package's lip model; None when the audio holds no speech."""
    if not has_speech(audio, avatar.mel_config.sample_rate):
        log.warning("the audio holds no speech: rendering the idle avatar (mouth closed)")
        return None
    if not avatar.has_lip_model:
        raise HygieError(
            f"{avatar.path}: this avatar has no lip model yet. Run 'hygie train {avatar.path}' first, "
            "or drive the renderer with a video's true mouth shapes: --landmarks-from VIDEO."
        )
    try:
        from hygie.core.lipmodel import LipModel
    except ModuleNotFoundError as e:
        raise HygieError(f"this install lacks the lip-model runtime ({e.name}); reinstall hygie-avatar") from e
    from hygie.core.mel import LogMel

    cfg = avatar.mel_config
    mel = LogMel(cfg)(audio)
    model = LipModel(avatar, threads=1)
    pred = np.asarray(model.predict(mel), np.float32)  # (T, K), one row per mel frame
    if len(pred) == 0:
        raise MediaError("the audio is too short to predict any mouth shape (under 25 ms).")
    idx = np.clip(cfg.frame_at(np.arange(n_frames) / fps), 0, len(pred) - 1)
    return pred[idx]


def draw_debug(frame: np.ndarray, points: np.ndarray) -> None:
    import cv2

    for x, y in points:
        cv2.circle(frame, (int(round(x)), int(round(y))), 1, (0, 255, 0), -1, lineType=cv2.LINE_AA)


def render_frames(renderer, n: int, lips: np.ndarray | None = None, coeffs: np.ndarray | None = None,
                  debug: bool = False, desc: str = "render",
                  progress: Callable[[int], None] | None = None) -> Iterator[np.ndarray]:
    """Yield n frames driven by canonical lips (n, 40, 2), or coefficients (n, K), or nothing (idle).

    `progress(1)` is called after each frame; without it a terminal progress bar is shown.
    """
    from tqdm import tqdm

    renderer.reset()
    bar = tqdm(total=n, desc=desc, unit="frame") if progress is None else None
    try:
        for i in range(n):
            if lips is not None:
                f = renderer.render_lips(lips[i], i)
            else:
                f = renderer.render(None if coeffs is None else coeffs[i], i)
            if debug:
                draw_debug(f, renderer.last["dst"][: len(G.LIPS)])
            if bar is not None:
                bar.update(1)
            else:
                progress(1)
            yield f
    finally:
        if bar is not None:
            bar.close()


def make_renderer(avatar, size: tuple[int, int] | None, fit: str):
    """The renderer a job of this size and fit uses (a batch worker keeps one per (avatar, size, fit))."""
    from hygie.core.renderer import Renderer, RendererConfig

    return Renderer(avatar, out_size=size, cfg=RendererConfig(fit=check_fit(fit)))


def render_job(avatar, job: RenderJob, renderer=None,
               progress: Callable[[int], None] | None = None) -> JobResult:
    """Render one job to `job.output` (temp name, renamed when complete). `renderer` may be reused."""
    from hygie.core.media import load_audio, probe_video, write_video_with_audio

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
    try:
        frames = render_frames(renderer, n, lips=lips, coeffs=coeffs, debug=job.debug, progress=progress)
        written = write_video_with_audio(job.output, frames, fps, audio, sr=sr, repeatable=True)
    finally:
        if own:
            renderer.close()
    return JobResult(Path(job.output), written, fps, tuple(renderer.size), audio is not None,
                     time.perf_counter() - t0)
