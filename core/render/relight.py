"""Carry the template frame's light onto a warped mouth crop, then blend it in.

A database crop was cut at another moment of the recording, or from another recording:
exposure, white balance and the direction of the light differ from the idle frame it is
pasted into. One colour gain fitted in the feather band fixes only the mean; a crop lit
from the other side keeps a dark cheek or a smudge under the lower lip.

`ratio` (the default) estimates the light of both images at low frequency on the same
skin pixels — inside the warped mesh, lips of both mouths left out — by normalised
convolution on a coarse grid (cells of `cell` IOD, Gaussian of `sigma` IOD), and
multiplies the crop by the smooth per-channel ratio template / crop. Reflectance (the
person's skin, the same place of the face in both) cancels in the ratio; what is left is
the light, which varies slowly. Where the mask holds no skin (the mouth's middle) the
ratio is interpolated from around it.

The other methods are kept for comparison (`hygie.core.bench.render` / docs/renderer.md):
`gain` (one per-channel gain in the feather band, the previous default), `lab` (mean and
standard deviation of L, a, b matched in the band), `multiband` (Laplacian-pyramid blend),
`poisson` (OpenCV's gradient-domain seamlessClone; far too slow for live use).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

METHODS = ("ratio", "gain", "lab", "multiband", "poisson")


@dataclass
class RelightConfig:
    method: str = "ratio"
    cell: float = 0.05  # IOD: grid cell of the light estimate (the light has no detail below this)
    sigma: float = 0.15  # IOD: Gaussian of the normalised convolution
    lip_margin: float = 0.06  # IOD: lips (both mouths) left out of the skin mask, plus this margin
    limits: tuple[float, float] = (0.5, 2.0)  # per-channel ratio clamp
    smooth: float = 0.3  # step of the light field towards each new measure along one source run (1 = none)
    # along one source run the light field is re-measured every this many frames (the light moves
    # slowly; a jump to another source always re-measures)
    every: int = 3


@dataclass
class LightState:
    """What the previous frame's relight measured (smoothed along a run of the same source)."""

    level: np.ndarray  # (3,) mean ratio


def ratio_field(patch: np.ndarray, roi: np.ndarray, region: np.ndarray, lips: list[np.ndarray],
                px_per_iod: float, cfg: RelightConfig) -> tuple[np.ndarray, np.ndarray] | None:
    """Low-resolution per-channel light ratio roi / patch (h', w', 3) and its skin-weighted mean (3,).

    patch, roi: (h, w, 3) uint8 in the same pixels; region: the warped mesh's points (n, 2) in those
    pixels (their hull is where the patch holds crop pixels); lips: outer-lip polygons to leave out.
    """
    import cv2

    h, w = patch.shape[:2]
    cell = max(cfg.cell * px_per_iod, 2.0)
    gw, gh = max(int(np.ceil(w / cell)), 2), max(int(np.ceil(h / cell)), 2)
    scale = np.array([gw / w, gh / h], np.float32)
    # skin cells: inside the mesh hull (one cell in from its edge), outside both mouths
    m = np.zeros((gh, gw), np.uint8)
    hull = cv2.convexHull(np.asarray(region, np.float32) * scale)
    cv2.fillConvexPoly(m, np.rint(hull * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
    m = cv2.erode(m, np.ones((3, 3), np.uint8))
    lp = np.zeros((gh, gw), np.uint8)
    for poly in lips:
        cv2.fillPoly(lp, [np.rint(np.asarray(poly, np.float32) * scale * 16).astype(np.int32)], 1,
                     lineType=cv2.LINE_8, shift=4)
    r = max(1, int(round(cfg.lip_margin * px_per_iod * scale[0])))
    lp = cv2.dilate(lp, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    m[lp > 0] = 0
    if int(m.sum()) < 6:
        return None
    mf = m.astype(np.float32)
    # bilinear point samples (INTER_AREA costs 10x more); the wide Gaussian below averages them
    P = cv2.resize(patch, (gw, gh), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    R = cv2.resize(roi, (gw, gh), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    s = cfg.sigma * px_per_iod * scale[0]
    blur = lambda x: cv2.GaussianBlur(x, (0, 0), s, borderType=cv2.BORDER_CONSTANT)
    wsum = blur(mf)
    ps = blur(P * mf[..., None])
    rs = blur(R * mf[..., None])
    # global level from all skin cells: the fallback far from any skin, and the smoothed anchor
    level = (np.array(cv2.mean(R, m)[:3], np.float32) + 1.0) / (np.array(cv2.mean(P, m)[:3], np.float32) + 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (rs + wsum[..., None]) / (ps + wsum[..., None])
    # cells far from skin: towards the global level as the skin weight vanishes
    k = np.clip(wsum / (0.25 * wsum.max() + 1e-6), 0, 1)[..., None]
    ratio = np.where(np.isfinite(ratio), ratio, level) * k + level * (1 - k)
    return np.clip(ratio, *cfg.limits).astype(np.float32), np.clip(level, *cfg.limits).astype(np.float32)


def blend_ratio(roi: np.ndarray, patch: np.ndarray, alpha: np.ndarray, ratio: np.ndarray) -> None:
    """roi <- roi + alpha * (patch * ratio - roi), the low-res ratio upsampled; in place, uint8 arithmetic."""
    import cv2

    from hygie.core.render.blend import blend_u8

    h, w = alpha.shape
    # ratio in 1/128 steps (0.8 %: below one grey level on skin), upsampled as uint8
    g = cv2.resize(np.clip(ratio * 128.0 + 0.5, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    blend_u8(roi, cv2.multiply(patch, g, scale=1.0 / 128.0), alpha)


def lab_transfer(patch: np.ndarray, roi: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Patch with the mean and standard deviation of L, a, b of the roi in the band (Reinhard-style)."""
    import cv2

    pl = cv2.cvtColor(patch, cv2.COLOR_BGR2Lab).astype(np.float32)
    rl = cv2.cvtColor(roi, cv2.COLOR_BGR2Lab).astype(np.float32)
    b = band > 0
    pm, ps = pl[b].mean(0), pl[b].std(0) + 1.0
    rm, rs = rl[b].mean(0), rl[b].std(0) + 1.0
    gain = np.clip(rs / ps, 0.7, 1.4)
    out = (pl - pm) * gain + rm
    return cv2.cvtColor(np.clip(out + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_Lab2BGR)


def multiband_blend(roi: np.ndarray, patch: np.ndarray, alpha: np.ndarray, levels: int = 4) -> None:
    """Burt-Adelson blend: each Laplacian band blended with its own (blurred) mask; in place."""
    import cv2

    h, w = alpha.shape
    a = alpha.astype(np.float32) / 255.0
    gp_a = [a]
    lp_p, lp_r = [], []
    P, R = patch.astype(np.float32), roi.astype(np.float32)
    for _ in range(levels):
        if min(P.shape[:2]) < 8:
            break
        Pd, Rd = cv2.pyrDown(P), cv2.pyrDown(R)
        lp_p.append(P - cv2.pyrUp(Pd, dstsize=(P.shape[1], P.shape[0])))
        lp_r.append(R - cv2.pyrUp(Rd, dstsize=(R.shape[1], R.shape[0])))
        gp_a.append(cv2.pyrDown(gp_a[-1]))
        P, R = Pd, Rd
    out = R + (P - R) * gp_a[len(lp_p)][..., None]
    for k in range(len(lp_p) - 1, -1, -1):
        lk = lp_r[k] + (lp_p[k] - lp_r[k]) * gp_a[k][..., None]
        out = cv2.pyrUp(out, dstsize=(lk.shape[1], lk.shape[0])) + lk
    # outside the mask the frame is untouched exactly
    out = np.where(alpha[..., None] > 0, out, roi)
    roi[...] = np.clip(out + 0.5, 0, 255).astype(np.uint8)


def poisson_blend(frame: np.ndarray, patch: np.ndarray, alpha: np.ndarray, x0: int, y0: int) -> None:
    """OpenCV seamlessClone of the patch where alpha > 0 (gradient domain); in place. Slow: a reference."""
    import cv2

    h, w = alpha.shape
    mask = (alpha > 8).astype(np.uint8) * 255
    if mask.sum() == 0 or x0 < 1 or y0 < 1 or x0 + w >= frame.shape[1] - 1 or y0 + h >= frame.shape[0] - 1:
        return
    ys, xs = np.nonzero(mask)
    c = (int(x0 + (xs.min() + xs.max() + 1) // 2), int(y0 + (ys.min() + ys.max() + 1) // 2))
    out = cv2.seamlessClone(patch, frame, mask, c, cv2.NORMAL_CLONE)
    # keep the feathered edge: seamlessClone's result inside, blended out along the alpha ramp
    a = alpha.astype(np.float32)[..., None] / 255.0
    roi = frame[y0:y0 + h, x0:x0 + w]
    roi[...] = np.clip(roi + (out[y0:y0 + h, x0:x0 + w].astype(np.float32) - roi) * a + 0.5, 0, 255).astype(np.uint8)
