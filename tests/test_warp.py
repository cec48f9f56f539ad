"""Piecewise-affine warp: a single known affine over the whole mesh is reproduced exactly."""
from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from hygie.core.render.warp import PiecewiseAffineWarper, Scratch, delaunay, remap, triangle_affines, triangle_affines_solve


def _texture(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = cv2.resize(rng.integers(0, 255, (h // 4, w // 4, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(img)


def _points() -> np.ndarray:
    rng = np.random.default_rng(1)
    ring = np.stack([40 + 30 * np.cos(np.linspace(0, 2 * np.pi, 16, endpoint=False)),
                     35 + 25 * np.sin(np.linspace(0, 2 * np.pi, 16, endpoint=False))], 1)
    inner = rng.uniform([20, 18], [60, 52], (20, 2))
    return np.concatenate([ring, inner]).astype(np.float32)


def test_delaunay_covers_the_hull():
    pts = _points()
    tris = delaunay(pts)
    area = lambda t: 0.5 * abs((t[1, 0] - t[0, 0]) * (t[2, 1] - t[0, 1]) - (t[1, 1] - t[0, 1]) * (t[2, 0] - t[0, 0]))
    total = sum(area(pts[t]) for t in tris)
    assert total == pytest.approx(cv2.contourArea(cv2.convexHull(pts)), rel=1e-3)


def test_triangle_affines_recover_the_affine():
    pts = _points()
    tris = delaunay(pts)
    A = np.array([[1.3, 0.2, 7.0], [-0.15, 0.9, 4.0]], np.float32)
    dst = pts @ A[:, :2].T + A[:, 2]
    inv = cv2.invertAffineTransform(A)
    per = triangle_affines(pts, dst, tris)
    assert np.allclose(per, inv[None], atol=1e-3)


def test_known_affine_is_reproduced():
    src_img = _texture(72, 84)
    pts = _points()
    A = np.array([[1.25, 0.18, 30.0], [-0.12, 1.1, 22.0]], np.float64)  # rotation + scale + shear + shift
    dst = (pts @ A[:, :2].T + A[:, 2]).astype(np.float32)
    w = PiecewiseAffineWarper(delaunay(pts), interpolation=cv2.INTER_LINEAR)
    res = w.warp(src_img, pts, dst, (160, 200))
    ref = cv2.warpAffine(src_img, A, (200, 160), flags=cv2.INTER_LINEAR)
    # compare well inside the mesh (the mesh edge is where pixels stop)
    hull = cv2.convexHull(dst).reshape(-1, 2)
    c = hull.mean(0)
    inner = (c + 0.8 * (hull - c)).astype(np.int32)
    mask = np.zeros((160, 200), np.uint8)
    cv2.fillConvexPoly(mask, inner, 1)
    got = np.zeros_like(ref)
    h, ww = res.patch.shape[:2]
    got[res.y0:res.y0 + h, res.x0:res.x0 + ww] = res.patch
    diff = np.abs(got.astype(int) - ref.astype(int))[mask > 0]
    assert diff.mean() < 0.6 and np.percentile(diff, 99) <= 3


def test_outside_the_mesh_is_transparent_and_off_image_is_none():
    src = np.full((40, 40, 4), 200, np.uint8)
    pts = np.array([[5, 5], [35, 5], [35, 35], [5, 35], [20, 20]], np.float32)
    w = PiecewiseAffineWarper(delaunay(pts))
    res = w.warp(src, pts, pts + 10, (100, 100))
    assert res.patch[..., 3].max() == 200 and res.x0 == 15 and res.y0 == 15
    assert w.warp(src, pts, pts + 500, (100, 100)) is None


@pytest.mark.parametrize("coarse_above", [10_000, 0])  # full-resolution maps, half-resolution maps
def test_a_smooth_deformation_is_reproduced_at_hd_size(coarse_above):
    """A large (HD) box: the half-resolution maps land where the full-resolution ones do."""
    src_img = _texture(288, 336)
    pts = _points() * 4.0
    A = np.array([[1.2, 0.15, 40.0], [-0.1, 1.05, 30.0]], np.float64)
    dst = (pts @ A[:, :2].T + A[:, 2]).astype(np.float32)
    w = PiecewiseAffineWarper(delaunay(pts), interpolation=cv2.INTER_CUBIC, coarse_above=coarse_above)
    res = w.warp(src_img, pts, dst, (480, 560))
    ref = cv2.warpAffine(src_img, A, (560, 480), flags=cv2.INTER_CUBIC)
    hull = cv2.convexHull(dst).reshape(-1, 2)
    c = hull.mean(0)
    mask = np.zeros((480, 560), np.uint8)
    cv2.fillConvexPoly(mask, (c + 0.9 * (hull - c)).astype(np.int32), 1)
    got = np.zeros_like(ref)
    h, ww = res.patch.shape[:2]
    got[res.y0:res.y0 + h, res.x0:res.x0 + ww] = res.patch
    diff = np.abs(got.astype(int) - ref.astype(int))[mask > 0]
    assert diff.mean() < 0.6 and np.percentile(diff, 99) <= 3


def test_closed_form_affines_match_the_solve():
    """The closed-form per-triangle affines are the batched solve's to float32 rounding, degenerate triangles too."""
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 80, (30, 2)).astype(np.float32)
    dst = rng.uniform(0, 300, (30, 2)).astype(np.float32)
    dst[5] = dst[4]  # a collapsed triangle where both vertices are used
    tris = delaunay(rng.uniform(0, 100, (30, 2)))
    tris = np.vstack([tris, [[4, 5, 6]]]).astype(np.int32)
    a, b = triangle_affines(src, dst, tris), triangle_affines_solve(src, dst, tris)
    assert np.allclose(a, b, rtol=1e-6, atol=1e-6)
    assert not a[-1].any()  # degenerate: a zero map (off the source: transparent)


@pytest.mark.parametrize("channels", [3, 4])
def test_float_bicubic_remap_gives_the_8bit_kernels_bytes(channels):
    """The float32 bicubic path returns exactly what cv2's 8-bit bicubic remap does, overshoot and border included."""
    rng = np.random.default_rng(channels)
    scratch = Scratch()
    for k in range(8):
        src = rng.integers(0, 256, (74, 86, channels), dtype=np.uint8)
        h, w = 150 + k, 180 - k
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        a = rng.normal(0, 0.05, 4)
        mx = (xs * (0.45 + a[0]) + ys * a[1] + rng.uniform(-5, 5)).astype(np.float32)
        my = (ys * (0.5 + a[2]) + xs * a[3] + rng.uniform(-5, 5)).astype(np.float32)
        want = cv2.remap(src, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        assert np.array_equal(remap(src, mx, my, cv2.INTER_CUBIC, scratch), want)
