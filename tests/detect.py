"""What a viewer sees, measured: the mouth re-detected by MediaPipe on frames a test received.

Tests use it to check pixels, not the renderer's internal record: a renderer that drew the mouth
on a throwaway copy, or a lip model that returns zeros, shows up here as a still mouth.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np


def detected_lips(frames: Iterable[np.ndarray], reference: np.ndarray) -> np.ndarray:
    """(N, 40, 2) canonical lips MediaPipe finds on each frame (video mode), NaN where no face."""
    from hygie.core.face import geometry as G
    from hygie.core.face.canonical import frame_lips
    from hygie.core.face.tracker import FaceTracker

    out = []
    with FaceTracker() as tr:
        for f in frames:
            r = tr.process(np.ascontiguousarray(f))
            out.append(np.full((len(G.LIPS), 2), np.nan) if r.landmarks is None else frame_lips(r.landmarks, reference))
    return np.asarray(out, np.float64)


def detected_opening(frames: Iterable[np.ndarray], reference: np.ndarray) -> np.ndarray:
    """(N,) inner-lip gap (IOD units) re-detected on each frame."""
    from hygie.core.face import geometry as G

    return G.mouth_opening(detected_lips(frames, reference))


def video_frames(path: Path) -> list[np.ndarray]:
    from hygie.core.media.decode import iter_video_frames

    return [f for _, f in iter_video_frames(path)]


def envelope_at_frames(audio: np.ndarray, n_frames: int, fps: float, sr: int = 16000) -> np.ndarray:
    """Loudness (dB, 40 ms RMS) of the audio at each video frame's time."""
    hop = int(sr / fps)
    win = int(0.04 * sr)
    out = np.full(n_frames, -120.0)
    for i in range(n_frames):
        a = audio[i * hop: i * hop + win]
        if a.size:
            out[i] = 10 * np.log10(float(np.mean(a.astype(np.float64) ** 2)) + 1e-12)
    return out


def corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 10 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return 0.0
    return float(np.corrcoef(a[ok], b[ok])[0, 1])
