"""Landmark sets, 3-D similarity alignment (Umeyama) and the canonical face frame.

Canonical units: inter-ocular distance (outer eye corners 33-263) = 1.
The alignment is fitted on rigid points only, in x, y and z: a 2-D fit leaves
head turns in the lip shape (see DESIGN.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Rigid points: outer/inner eye corners, nose bridge, nose tip.
RIGID = np.array([33, 133, 362, 263, 168, 6, 1])
EYE_OUTER = (33, 263)

# MediaPipe FACEMESH_LIPS, outer ring then inner ring, each going round the mouth.
LIPS_OUTER = np.array([61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185])
LIPS_INNER = np.array([78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191])
LIPS = np.concatenate([LIPS_OUTER, LIPS_INNER])
UPPER_INNER, LOWER_INNER = 13, 14  # mouth opening = distance between these
LIP_POS = {int(k): i for i, k in enumerate(LIPS)}

# Skin around the mouth that deforms with it: nose base, cheeks, chin and jaw.
MOUTH_SURROUND = np.array([
    2, 97, 326, 98, 327, 164, 167, 393, 165, 391, 92, 322, 186, 410, 57, 287, 43, 273,
    106, 335, 182, 406, 83, 313, 18, 200, 199, 175, 152, 32, 262, 208, 428, 171, 396,
    140, 369, 211, 431, 204, 424, 202, 422, 214, 434, 212, 432, 216, 436, 206, 426, 205, 425,
])
MOUTH_REGION = np.concatenate([LIPS, MOUTH_SURROUND])


@dataclass
class Similarity:
    """x_canonical = s * R @ x_image + t  (3-D, image points in pixels with z scaled like x)."""

    s: float
    R: np.ndarray  # (3, 3)
    t: np.ndarray  # (3,)

    def apply(self, p: np.ndarray) -> np.ndarray:
        return self.s * p @ self.R.T + self.t

    def inverse_apply(self, c: np.ndarray) -> np.ndarray:
        return ((c - self.t) / self.s) @ self.R

    def to_array(self) -> np.ndarray:
        """13 floats: s, R (row-major), t."""
        return np.concatenate([[self.s], self.R.ravel(), self.t]).astype(np.float64)

    @classmethod
    def from_array(cls, a: np.ndarray) -> "Similarity":
        a = np.asarray(a, np.float64)
        return cls(float(a[0]), a[1:10].reshape(3, 3), a[10:13].copy())


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> Similarity:
    """Least-squares similarity mapping src -> dst (Umeyama 1991). src, dst: (n, d)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    d = src.shape[1]
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    U, S, Vt = np.linalg.svd(cov)
    E = np.eye(d)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        E[-1, -1] = -1
    R = U @ E @ Vt
    var_s = (xs ** 2).sum() / len(src)
    s = float(np.trace(np.diag(S) @ E) / var_s) if with_scale else 1.0
    t = mu_d - s * R @ mu_s
    if d == 2:  # embed in 3-D for a uniform type
        R3 = np.eye(3)
        R3[:2, :2] = R
        return Similarity(s, R3, np.array([t[0], t[1], 0.0]))
    return Similarity(s, R, t)


def to_pixels(lm_norm: np.ndarray, width: int, height: int) -> np.ndarray:
    """MediaPipe normalised (x, y, z) -> pixels; z is in the same scale as x."""
    out = np.asarray(lm_norm, np.float64).copy()
    out[..., 0] *= width
    out[..., 1] *= height
    out[..., 2] *= width
    return out


def normalise_reference(points: np.ndarray) -> np.ndarray:
    """Centre the rigid reference on its centroid and scale to inter-ocular distance 1."""
    p = points - points.mean(0)
    iod = np.linalg.norm(p[list(RIGID).index(EYE_OUTER[0])] - p[list(RIGID).index(EYE_OUTER[1])])
    return p / iod


def fit_reference(landmarks_px: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Generalised Procrustes mean of the rigid points over frames (F, 478, 3) -> (7, 3)."""
    rig = landmarks_px[:, RIGID, :]
    ref = normalise_reference(np.median(rig, axis=0))
    for _ in range(iterations):
        aligned = np.stack([umeyama(r, ref).apply(r) for r in rig])
        ref = normalise_reference(np.median(aligned, axis=0))
    return ref


def align(landmarks_px: np.ndarray, reference: np.ndarray) -> tuple[Similarity, float]:
    """Fit one frame (478, 3) to the reference; return the transform and the rigid RMS residual (IOD)."""
    sim = umeyama(landmarks_px[RIGID], reference)
    res = float(np.sqrt(((sim.apply(landmarks_px[RIGID]) - reference) ** 2).sum(1).mean()))
    return sim, res


def implausible_fits(residuals: np.ndarray, n_mad: float = 8.0) -> np.ndarray:
    """Frames whose rigid-fit residual is far above the video's typical one (landmarks on garbage).

    Robust: median + n_mad scaled MADs over the finite residuals; NaN residuals are never flagged.
    """
    med = np.nanmedian(residuals)
    mad = np.nanmedian(np.abs(residuals - med)) + 1e-9
    return residuals > med + n_mad * 1.4826 * mad


def mouth_opening(lips_xy: np.ndarray) -> np.ndarray:
    """Inner-lip gap (13-14) from lip arrays (..., 40, 2) in canonical units."""
    return np.linalg.norm(lips_xy[..., LIP_POS[LOWER_INNER], :] - lips_xy[..., LIP_POS[UPPER_INNER], :], axis=-1)


def similarity_2d(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 matrix of the least-squares 2-D similarity src -> dst."""
    sim = umeyama(src[:, :2], dst[:, :2])
    M = np.zeros((2, 3))
    M[:, :2] = sim.s * sim.R[:2, :2]
    M[:, 2] = sim.t[:2]
    return M
