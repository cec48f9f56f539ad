"""Small real media files made by the tests (PyAV), for bad-input and edge cases."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from hygie.core.media.audio_file import load_audio

from hygie.core.media.decode import iter_video_frames

from hygie.core.media.encode import write_video_with_audio


def make_video(path: Path, n_frames: int, fps: float, frame_fn: Callable[[int], np.ndarray],
               audio: np.ndarray | None, sr: int = 16000) -> Path:
    write_video_with_audio(path, (frame_fn(i) for i in range(n_frames)), fps, audio, sr)
    return path


def side_by_side(a: Path, b: Path, out: Path, scale_b: float = 1.0) -> Path:
    """Two real talking heads in one frame (audio of the first)."""
    import cv2

    fa = [f for _, f in iter_video_frames(a)]
    fb = [f for _, f in iter_video_frames(b)]
    n = min(len(fa), len(fb))

    def frame(i: int) -> np.ndarray:
        right = fb[i]
        if scale_b != 1.0:
            small = cv2.resize(right, None, fx=scale_b, fy=scale_b, interpolation=cv2.INTER_AREA)
            right = np.zeros_like(fb[i]) + np.array([120, 80, 40], np.uint8)
            right[: small.shape[0], : small.shape[1]] = small
        return np.concatenate([fa[i], right], axis=1)

    return make_video(out, n, 25, frame, load_audio(a))


def cut(src: Path, out: Path, seconds: float) -> Path:
    """The first `seconds` of a real video, re-encoded with its audio."""
    from hygie.core.media.probe import probe_video

    fps = probe_video(src).fps
    frames = []
    for t, f in iter_video_frames(src):
        if t >= seconds:
            break
        frames.append(f)
    audio = load_audio(src)[: int(seconds * 16000)]
    return make_video(out, len(frames), fps, lambda i: frames[i], audio)


def speech_like(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """Amplitude-modulated harmonic noise: not silent, for videos that need 'some audio'."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.2 * np.sin(2 * np.pi * 140 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(len(t))
    return x.astype(np.float32)
