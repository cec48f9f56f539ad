"""Piecewise-affine (Delaunay) warp of a small source image onto destination points.

The triangulation is computed once (on the mean mouth-region shape); each frame only
solves one 3x3 system per triangle, rasterises the triangle ids inside the
destination's bounding box and does a single `cv2.remap`. Only the mouth region's
bounding box is touched, so the cost does not grow with the output frame size.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

_SHIFT = 4  # sub-pixel bits for the triangle rasteriser (cv2 drawing functions)


def delaunay(points: np.ndarray) -> np.ndarray:
    """Delaunay triangles (T, 3) of point indices over 2-D points (n, 2)."""
    import cv2

    pts = np.asarray(points, np.float64)
    lo, hi = pts.min(0) - 10, pts.max(0) + 10
    sub = cv2.Subdiv2D((int(np.floor(lo[0])), int(np.floor(lo[1])),
                        int(np.ceil(hi[0] - lo[0])) + 1, int(np.ceil(hi[1] - lo[1])) + 1))
    for p in pts:
        sub.insert((float(p[0]), float(p[1])))
    tris = []
    for t in sub.getTriangleList().reshape(-1, 3, 2):
        # map the vertices back to point indices (Subdiv2D returns coordinates)
        idx = [int(np.argmin(((pts - v) ** 2).sum(1))) for v in t]
        if ((pts[idx] - t) ** 2).sum(1).max() > 1e-3 or len(set(idx)) < 3:
            continue  # a triangle touching Subdiv2D's virtual outer vertices
        tris.append(idx)
    if not tris:
        raise ValueError("points are degenerate: no triangle")
    return np.array(tris, np.int32)


def triangle_affines(src: np.ndarray, dst: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Per triangle, the 2x3 affine mapping destination -> source (what remap needs). (T, 2, 3).

    Closed form (the 3x3 system [x y 1] @ A = src solved by its adjugate, vectorised over the
    triangles): a batched np.linalg.solve plus det cost ~0.14 ms a frame, this ~0.03 ms.
    """
    d = dst[tris].astype(np.float64)  # (T, 3, 2)
    s = src[tris].astype(np.float64)
    x0, y0, x1, y1, x2, y2 = d[:, 0, 0], d[:, 0, 1], d[:, 1, 0], d[:, 1, 1], d[:, 2, 0], d[:, 2, 1]
    # cofactors of D = [[x0 y0 1], [x1 y1 1], [x2 y2 1]]; inverse(D) = cofactors.T / det
    c00, c01, c02 = y1 - y2, x2 - x1, x1 * y2 - x2 * y1
    c10, c11, c12 = y2 - y0, x0 - x2, x2 * y0 - x0 * y2
    c20, c21, c22 = y0 - y1, x1 - x0, x0 * y1 - x1 * y0
    det = x0 * c00 + y0 * c01 + c02
    bad = np.abs(det) < 1e-6  # a collapsed destination triangle covers no pixel: a zero map
    inv = 1.0 / np.where(bad, 1.0, det)
    s0, s1, s2 = s[:, 0], s[:, 1], s[:, 2]  # (T, 2)
    A = np.empty((len(tris), 2, 3))
    A[:, :, 0] = (c00[:, None] * s0 + c10[:, None] * s1 + c20[:, None] * s2) * inv[:, None]
    A[:, :, 1] = (c01[:, None] * s0 + c11[:, None] * s1 + c21[:, None] * s2) * inv[:, None]
    A[:, :, 2] = (c02[:, None] * s0 + c12[:, None] * s1 + c22[:, None] * s2) * inv[:, None]
    A[bad] = 0.0
    return A.astype(np.float32)


def triangle_affines_solve(src: np.ndarray, dst: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """The same affines by np.linalg.solve (the reference the closed form is tested against)."""
    d = dst[tris].astype(np.float64)  # (T, 3, 2)
    s = src[tris].astype(np.float64)
    D = np.concatenate([d, np.ones((len(tris), 3, 1))], axis=2)  # rows [x y 1]
    det = np.linalg.det(D)
    bad = np.abs(det) < 1e-6
    if bad.any():  # a collapsed destination triangle covers no pixel; keep the solve well posed
        D[bad] = np.eye(3)
        s = s.copy()
        s[bad] = 0.0
    A = np.linalg.solve(D, s)  # (T, 3, 2): [x y 1] @ A = src
    return np.transpose(A, (0, 2, 1)).astype(np.float32)


@dataclass
class WarpResult:
    patch: np.ndarray  # (h, w, C) warped source inside the ROI (zeros outside the mesh)
    x0: int  # ROI top-left in the destination image
    y0: int
    cover: np.ndarray | None = None  # (h, w) uint8 triangle ids: 0 outside the mesh


class PiecewiseAffineWarper:
    """Warp `src_img` so that `src_pts` land on `dst_pts`, restricted to the triangulated mesh."""

    def __init__(self, triangles: np.ndarray, interpolation: int | None = None, coarse_above: int = 96):
        import cv2

        self.tris = np.asarray(triangles, np.int32)
        # boxes wider than this compute the (piecewise-linear, continuous) maps on a grid of half
        # the resolution and upsample them bilinearly: exact inside each triangle, a fraction of a
        # pixel off along the seams between triangles, and 3-4x cheaper at HD
        self.coarse_above = coarse_above
        if len(self.tris) > 254:
            raise ValueError("too many triangles for the uint8 id map")
        self.interp = cv2.INTER_LINEAR if interpolation is None else interpolation
        self._grid: tuple[np.ndarray, np.ndarray] | None = None
        self._scratch = Scratch()

    def _xy(self, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
        g = self._grid
        if g is None or g[0].shape[1] < w or g[0].shape[0] < h:
            W, H = max(w, 64) * 2, max(h, 64) * 2  # grow geometrically, reuse across frames
            xs, ys = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
            self._grid = g = (xs, ys)
        return g[0][:h, :w], g[1][:h, :w]

    def warp(self, src_img: np.ndarray, src_pts: np.ndarray, dst_pts: np.ndarray,
             dst_shape: tuple[int, int]) -> WarpResult | None:
        """dst_shape = (H, W) of the destination image; returns None when the mesh is off-image."""
        import cv2

        H, W = dst_shape
        dst = np.asarray(dst_pts, np.float32)
        x0 = max(int(np.floor(dst[:, 0].min())), 0)
        y0 = max(int(np.floor(dst[:, 1].min())), 0)
        x1 = min(int(np.ceil(dst[:, 0].max())) + 1, W)
        y1 = min(int(np.ceil(dst[:, 1].max())) + 1, H)
        if x1 <= x0 or y1 <= y0:
            return None
        w, h = x1 - x0, y1 - y0
        local = dst - np.array([x0, y0], np.float32)
        A = triangle_affines(np.asarray(src_pts, np.float32), local, self.tris)
        step = 2 if max(w, h) > self.coarse_above else 1
        # grid pixel (i, j) sits at destination (step*i + (step-1)/2, ...): cv2.resize's pixel-centre convention
        off = (step - 1) / 2.0
        gw, gh = (w + step - 1) // step, (h + step - 1) // step
        grid = (local - off) / step
        # id map: 0 = outside the mesh, k+1 = triangle k
        ids = np.zeros((gh, gw), np.uint8)
        fix = np.rint(grid[self.tris] * (1 << _SHIFT)).astype(np.int32)
        for k in range(len(self.tris)):
            cv2.fillConvexPoly(ids, fix[k], k + 1, lineType=cv2.LINE_8, shift=_SHIFT)
        # per-pixel affine through 8-bit lookup tables (far cheaper than fancy indexing)
        lut = np.zeros((6, 256), np.float32)
        lut[2, 0] = lut[5, 0] = -1e4  # outside the mesh -> off the source image -> transparent
        lut[:, 1:len(A) + 1] = A.reshape(len(A), 6).T
        xs, ys = self._xy(gw, gh)
        if step > 1:
            xs, ys = xs * step + off, ys * step + off
        c = [cv2.LUT(ids, lut[i]) for i in range(6)]
        mx = c[0] * xs + c[1] * ys + c[2]
        my = c[3] * xs + c[4] * ys + c[5]
        if step > 1:
            # an exact factor of 2 (then cut to the box) keeps the pixel centres aligned
            sz = (gh * step, gw * step)
            mx = cv2.resize(mx, sz[::-1], dst=self._scratch.get("mx", sz), interpolation=cv2.INTER_LINEAR)[:h, :w]
            my = cv2.resize(my, sz[::-1], dst=self._scratch.get("my", sz), interpolation=cv2.INTER_LINEAR)[:h, :w]
        patch = remap(src_img, mx, my, self.interp, self._scratch)
        return WarpResult(patch, x0, y0, ids)


class Scratch:
    """Named work buffers reused across frames: exact-shape views of flat arrays grown geometrically.

    A fresh HD-sized array each frame comes from mmap (glibc serves blocks over 128 kB that way), so
    every frame pays the page faults of first touch: ~0.3 ms of a 1080p mouth's float remap.
    Views are only valid until the next call with the same name.
    """

    def __init__(self) -> None:
        self._bufs: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        n = int(np.prod(shape))
        b = self._bufs.get(name)
        if b is None or b.size < n or b.dtype != np.dtype(dtype):
            b = self._bufs[name] = np.empty(max(n * 2, 1 << 16), dtype)
        return b[:n].reshape(shape)


def remap(src: np.ndarray, mx: np.ndarray, my: np.ndarray, interp: int, scratch: Scratch | None = None) -> np.ndarray:
    """cv2.remap with a transparent border. An 8-bit bicubic remap is done on a float32 copy of the
    source and rounded back: the bytes are the same (OpenCV 5.1; test_warp checks it on noise,
    tests/frame_identity.py on whole renders) in about 2/3 of the 8-bit kernel's time at HD mouth
    sizes, given work buffers that are not fresh pages every frame (`scratch`)."""
    import cv2

    if interp == cv2.INTER_CUBIC and src.dtype == np.uint8:
        sc = scratch or Scratch()
        fs = sc.get("src", src.shape)
        fs[...] = src
        f = sc.get("remap", mx.shape[:2] + src.shape[2:])
        cv2.remap(fs, mx, my, interp, dst=f, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        # round to nearest and saturate, as the 8-bit kernel does (max first: convertScaleAbs takes |x|)
        cv2.max(f, 0.0, dst=f)
        return cv2.convertScaleAbs(f)
    return cv2.remap(src, mx, my, interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
