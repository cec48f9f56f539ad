"""Feathered alpha for mouth crops, and the colour-matched blend into the template frame.

The alpha is built once per database crop, in crop pixels: the convex hull of the
crop's mouth-region points, pulled inwards by the feather width and blurred, so it
reaches 0 before the mesh edge. It is warped together with the crop (4th channel),
so it always follows the destination mesh, whose outer ring sits on the template
frame's own skin points.

Colour match: the crop comes from another moment of the video (light, white balance
and exposure drift), so before blending its per-channel gain is matched to the
template in the feather band, where both images show the same skin.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class BlendConfig:
    feather: float = 0.10  # feather width in IOD units (crop pixels = feather * px_per_iod)
    gain_limits: tuple[float, float] = (0.8, 1.25)  # colour-gain clamp: never recolour a whole mouth
    band: tuple[float, float] = (0.05, 0.6)  # alpha range treated as the shared skin band
    gain_smooth: float = 0.3  # per-frame step of the colour gain towards the new measurement


def crop_alpha(points: np.ndarray, size: tuple[int, int], feather_px: float) -> np.ndarray:
    """uint8 alpha (h, w) for one crop: feathered hull of its region points, 0 at the hull's edge."""
    import cv2

    w, h = size
    hull = cv2.convexHull(np.asarray(points, np.float32)).reshape(-1, 2)
    c = hull.mean(0)
    d = np.linalg.norm(hull - c, axis=1, keepdims=True)
    inner = c + (hull - c) * np.maximum(d - 1.6 * feather_px, 0.5 * d) / np.maximum(d, 1e-6)
    m = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(m, np.rint(inner * 16).astype(np.int32), 255, lineType=cv2.LINE_AA, shift=4)
    sigma = max(feather_px / 2.0, 0.5)
    return cv2.GaussianBlur(m, (0, 0), sigma)


def colour_gain(patch: np.ndarray, base: np.ndarray, alpha: np.ndarray, cfg: BlendConfig) -> np.ndarray:
    """Per-channel gain (3,) that matches the patch's mean colour to the base in the feather band."""
    band = (alpha > cfg.band[0] * 255) & (alpha < cfg.band[1] * 255)
    if band.sum() < 20:
        return np.ones(3, np.float32)
    pm = patch[band].mean(0)
    bm = base[band].mean(0)
    return np.clip((bm + 1.0) / (pm + 1.0), *cfg.gain_limits).astype(np.float32)


def blend_into(frame: np.ndarray, patch_bgra: np.ndarray, x0: int, y0: int, cfg: BlendConfig) -> tuple[np.ndarray, np.ndarray]:
    """Blend a warped BGRA patch into `frame` in place at (x0, y0); returns (alpha, gain)."""
    h, w = patch_bgra.shape[:2]
    roi = frame[y0:y0 + h, x0:x0 + w]
    alpha = patch_bgra[..., 3]
    patch = patch_bgra[..., :3]
    gain = colour_gain(patch, roi, alpha, cfg)
    a = alpha.astype(np.float32) * (1.0 / 255.0)
    p = patch.astype(np.float32) * gain
    b = roi.astype(np.float32)
    out = b + (p - b) * a[..., None]
    roi[...] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return alpha, gain


def blend_into_fast(frame: np.ndarray, patch_bgra: np.ndarray, x0: int, y0: int, cfg: BlendConfig,
                    prev_gain: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Same result as `blend_into` (to rounding), with OpenCV kernels: the render path.

    `prev_gain` (the last frame's gain) smooths the colour match over time: a gain
    re-measured from scratch every frame would make the mouth's brightness shimmer.
    """
    import cv2

    h, w = patch_bgra.shape[:2]
    roi = frame[y0:y0 + h, x0:x0 + w]
    alpha = cv2.extractChannel(patch_bgra, 3)
    patch = cv2.cvtColor(patch_bgra, cv2.COLOR_BGRA2BGR)
    band = cv2.inRange(alpha, int(cfg.band[0] * 255) + 1, int(cfg.band[1] * 255) - 1)
    gain = np.ones(3, np.float32)
    if cv2.countNonZero(band) >= 20:
        pm = np.array(cv2.mean(patch, band)[:3], np.float32)
        bm = np.array(cv2.mean(roi, band)[:3], np.float32)
        gain = np.clip((bm + 1.0) / (pm + 1.0), *cfg.gain_limits).astype(np.float32)
        if prev_gain is not None:
            gain = (prev_gain + cfg.gain_smooth * (gain - prev_gain)).astype(np.float32)
    elif prev_gain is not None:
        gain = prev_gain
    if np.any(np.abs(gain - 1.0) > 1e-3):
        # per-channel gain through a lookup table (cv2.multiply by a scalar tuple is ~10x slower)
        table = np.clip(np.arange(256, dtype=np.float32)[:, None] * gain[None, :] + 0.5, 0, 255).astype(np.uint8)
        patch = cv2.LUT(patch, table.reshape(256, 1, 3))
    blend_u8(roi, patch, alpha)
    return alpha, gain


def blend_u8(roi: np.ndarray, patch: np.ndarray, alpha: np.ndarray) -> None:
    """roi <- (patch * alpha + roi * (255 - alpha)) / 255 in place, in 8-bit arithmetic.

    Exact where alpha is 0 or 255, within one grey level elsewhere; 5x cheaper than
    cv2.blendLinear's float path at HD mouth sizes.
    """
    import cv2

    a3 = cv2.merge([alpha, alpha, alpha])
    cv2.add(cv2.multiply(patch, a3, scale=1.0 / 255.0), cv2.multiply(roi, cv2.bitwise_not(a3), scale=1.0 / 255.0), dst=roi)
