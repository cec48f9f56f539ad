"""Feathered alpha, colour match and blend."""
from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from hygie.core.render.blend import BlendConfig, blend_into, blend_into_fast, crop_alpha


def _ring_points(cx=42, cy=36, rx=34, ry=28, n=24):
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], 1).astype(np.float32)


def test_alpha_is_feathered_and_zero_at_the_mesh_edge():
    pts = _ring_points()
    a = crop_alpha(pts, (84, 72), feather_px=6)
    assert a[36, 42] == 255
    edge = np.rint(pts).astype(int)
    assert a[np.clip(edge[:, 1], 0, 71), np.clip(edge[:, 0], 0, 83)].max() <= 8
    row = a[36, 8:43].astype(int)
    assert np.all(np.diff(row) >= 0) and len(np.unique(row)) > 6  # a ramp, not a step


def _scene(gain=(1.0, 1.0, 1.0)):
    rng = np.random.default_rng(0)
    base = np.clip(rng.normal(150, 6, (120, 160, 3)), 0, 255).astype(np.uint8)
    patch = np.clip(base[20:92, 30:114].astype(np.float32) * np.array(gain, np.float32), 0, 255).astype(np.uint8)
    alpha = crop_alpha(_ring_points(), (84, 72), 6)
    return base, np.dstack([patch, alpha])


def test_fast_blend_matches_the_reference_blend():
    base, patch = _scene((1.1, 0.95, 1.0))
    a, b = base.copy(), base.copy()
    blend_into(a, patch, 30, 20, BlendConfig())
    blend_into_fast(b, patch, 30, 20, BlendConfig())
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_zero_alpha_leaves_the_frame_untouched():
    base, patch = _scene((1.3, 1.3, 1.3))
    patch[..., 3] = 0
    out = base.copy()
    blend_into_fast(out, patch, 30, 20, BlendConfig())
    assert np.array_equal(out, base)


def test_colour_match_removes_a_brightness_shift_without_a_seam():
    base, patch = _scene((1.15, 1.12, 1.1))  # the crop came from a brighter moment
    out = base.copy()
    alpha, gain = blend_into_fast(out, patch, 30, 20, BlendConfig())
    assert np.allclose(gain, [1 / 1.15, 1 / 1.12, 1 / 1.1], atol=0.02)
    # inside the mouth box the result matches the base's brightness (no bright blob, no seam)
    assert abs(out[20:92, 30:114].mean() - base[20:92, 30:114].mean()) < 1.5
