"""What drives the renderer: speech audio through the lip model, or a real video's true lips.

`coeffs_from_audio` gives per-video-frame PCA coefficients; `lips_from_video` the canonical
lips MediaPipe finds in a video (the renderer's own fidelity test, independent of the lip
model); `render_frames` runs the renderer over n frames with either.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Iterator

import numpy as np

from hygie.core.errors import HygieError, MediaError
from hygie.core.face import geometry as G
from hygie.core.face.canonical import canonical_lips

log = logging.getLogger(__name__)


def lips_from_video(avatar, video: str | os.PathLike) -> tuple[np.ndarray, float]:
    """True canonical lips of every frame of `video` (aligned to this avatar's reference), and its fps."""
    from hygie.core.face.track import track_video
    from hygie.core.media.probe import probe_video

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
        from hygie.core.lips.model import LipModel
    except ModuleNotFoundError as e:
        raise HygieError(f"this install lacks the lip-model runtime ({e.name}); reinstall hygie-avatar") from e
    from hygie.core.audio.mel import LogMel

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
    renderer.restart_body()  # every render walks the body from the same start: repeatable output
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
