"""Canonical alignment of every enrolled frame, and the PCA of the mouth shape."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from hygie.core.enroll.config import EnrollConfig
from hygie.core.face import geometry as G
from hygie.core.face.canonical import align_frames

log = logging.getLogger(__name__)


@dataclass
class Alignment:
    """All sources' frames, concatenated, in the canonical face frame."""

    landmarks: np.ndarray  # (N, 478, 3) image pixels, float64
    usable: np.ndarray  # (N,) bool: a face, not damaged, a plausible rigid fit
    video: np.ndarray  # (N,) source index
    times: np.ndarray  # (N,) seconds in its source
    reference: np.ndarray  # (7, 3) rigid reference
    pose: np.ndarray  # (N, 13)
    residual: np.ndarray  # (N,)
    canon: np.ndarray  # (N, 478, 3) float32

    @property
    def rows(self) -> np.ndarray:
        return np.flatnonzero(self.usable)

    @property
    def lips(self) -> np.ndarray:
        return self.canon[:, G.LIPS, :2]

    @property
    def lips_z(self) -> np.ndarray:
        return self.canon[:, G.LIPS, 2]

    @property
    def opening(self) -> np.ndarray:
        return G.mouth_opening(self.lips)

    @property
    def eye_open(self) -> np.ndarray:
        c = self.canon
        return np.linalg.norm(c[:, 159, :2] - c[:, 145, :2], axis=1) + np.linalg.norm(c[:, 386, :2] - c[:, 374, :2], axis=1)


def align_sources(srcs: list, masks: list[np.ndarray]) -> Alignment:
    """Fit the rigid reference on the usable frames, align them, drop implausible fits."""
    all_lm = np.concatenate([s.track.landmarks for s in srcs]).astype(np.float64)
    usable = np.concatenate(masks)
    vid_id = np.concatenate([np.full(len(s.track.times), i, np.int16) for i, s in enumerate(srcs)])
    times = np.concatenate([s.track.times for s in srcs])
    sub = np.flatnonzero(usable)
    ref = G.fit_reference(all_lm[sub[:: max(1, len(sub) // 600)]])
    al = align_frames(all_lm, ref, rows=sub)
    # landmarks on garbage that slipped through: rigid fit far off the typical one
    outlier = G.implausible_fits(al.residual)
    if outlier.sum():
        log.warning("%d frames with an implausible face fit dropped", int(outlier.sum()))
        usable &= ~outlier
    return Alignment(all_lm, usable, vid_id, times, ref, al.pose, al.residual, al.canon)


@dataclass
class MouthPCA:
    mean: np.ndarray  # (80,)
    components: np.ndarray  # (K, 80)
    variance: np.ndarray  # (all,) explained variance of every component
    ratio: np.ndarray  # (all,) cumulative share of the variance
    coeffs: np.ndarray  # (N, K) float32, NaN on unusable frames
    reconstruction: float  # mean lip-point error of K components (IOD)

    @property
    def k(self) -> int:
        return len(self.components)

    def arrays(self) -> dict[str, np.ndarray]:
        """What pca.npz holds."""
        return dict(mean=self.mean.astype(np.float32), components=self.components.astype(np.float32),
                    explained_variance=self.variance[:self.k].astype(np.float32),
                    variance_ratio_curve=self.ratio.astype(np.float32))


def fit_mouth_pca(al: Alignment, cfg: EnrollConfig) -> MouthPCA:
    """PCA of the canonical lips of the usable frames, as many components as reach the variance target."""
    sub = al.rows
    X = al.lips[sub].reshape(len(sub), -1).astype(np.float64)
    mean = X.mean(0)
    U, S, Vt = np.linalg.svd(X - mean, full_matrices=False)
    var = S ** 2 / (len(X) - 1)
    ratio = np.cumsum(var) / var.sum()
    K = int(min(cfg.max_components, np.searchsorted(ratio, cfg.variance_target) + 1))
    comps = Vt[:K]
    coeffs = np.full((len(al.usable), K), np.nan, np.float32)
    coeffs[sub] = ((X - mean) @ comps.T).astype(np.float32)
    recon_err = np.linalg.norm(((X - mean) @ comps.T @ comps + mean - X).reshape(len(X), -1, 2), axis=2).mean()
    log.info("PCA: %d components explain %.1f%% of mouth-shape variance (reconstruction %.4f IOD)",
             K, 100 * ratio[K - 1], recon_err)
    return MouthPCA(mean, comps, var, ratio, coeffs, float(recon_err))
