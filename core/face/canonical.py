"""Image landmarks -> the canonical face frame (3-D similarity onto a rigid reference).

The one place where frames are aligned: enrollment (every point, and the head pose),
`hygie render --landmarks-from`, the lip-model evaluation and the render evaluation
all call it, so their lips are measured in exactly the same units.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hygie.core.face import geometry as G


@dataclass
class AlignedFrames:
    pose: np.ndarray  # (N, 13) Similarity.to_array() per frame, NaN where not aligned
    residual: np.ndarray  # (N,) rigid-fit RMS residual (IOD), NaN where not aligned
    canon: np.ndarray  # (N, 478, 3) canonical points, NaN where not aligned

    @property
    def lips(self) -> np.ndarray:
        """(N, 40, 2) canonical lip points."""
        return self.canon[:, G.LIPS, :2]


def detected(landmarks_px: np.ndarray) -> np.ndarray:
    """(N,) frames whose rigid and lip points are all present."""
    lm = np.asarray(landmarks_px)
    return np.isfinite(lm[:, G.RIGID]).all(axis=(1, 2)) & np.isfinite(lm[:, G.LIPS]).all(axis=(1, 2))


def align_frames(landmarks_px: np.ndarray, reference: np.ndarray, rows: np.ndarray | None = None,
                 dtype: type = np.float32) -> AlignedFrames:
    """Align frames (N, 478, 3) onto `reference` (7, 3); only `rows` (default: every detected frame)."""
    lm = np.asarray(landmarks_px)
    n = len(lm)
    rows = np.flatnonzero(detected(lm)) if rows is None else np.asarray(rows)
    pose = np.full((n, 13), np.nan)
    resid = np.full(n, np.nan)
    canon = np.full((n, lm.shape[1], 3), np.nan, dtype)
    for i in rows:
        frame = lm[i].astype(np.float64)
        sim, resid[i] = G.align(frame, reference)
        pose[i] = sim.to_array()
        canon[i] = sim.apply(frame)
    return AlignedFrames(pose, resid, canon)


def canonical_lips(landmarks_px: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-frame image landmarks (N, 478, 3) -> canonical lips (N, 40, 2) float32; NaN where no face."""
    return align_frames(landmarks_px, reference).lips


def frame_lips(landmarks_px: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """One frame's landmarks (478, 3) -> canonical lips (40, 2)."""
    return align_frames(np.asarray(landmarks_px)[None], reference, rows=np.array([0]), dtype=np.float64).lips[0]
