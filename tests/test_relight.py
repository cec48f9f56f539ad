"""Relighting of the pasted mouth: a crop lit from another side takes the template's light."""
from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from hygie.core.render.blend import BlendConfig, blend_into_fast, blend_u8, crop_alpha
from hygie.core.render.relight import RelightConfig, blend_ratio, ratio_field


def _ring(cx=150.0, cy=130.0, rx=130.0, ry=110.0, n=40) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], 1).astype(np.float32)


def _skin(h=260, w=300, seed=0) -> np.ndarray:
    """Skin-like texture: a warm base, pores and a soft shading."""
    rng = np.random.default_rng(seed)
    base = np.array([95, 120, 175], np.float32)
    tex = cv2.GaussianBlur(rng.normal(0, 6, (h, w, 3)).astype(np.float32), (0, 0), 1.2)
    yy = np.linspace(-1, 1, h)[:, None, None]
    return np.clip(base * (1 - 0.08 * yy) + tex, 0, 255).astype(np.uint8)


def _lips(cx=150.0, cy=135.0) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    return np.stack([cx + 55 * np.cos(a), cy + 22 * np.sin(a)], 1).astype(np.float32)


def _side_light(h=260, w=300) -> np.ndarray:
    """A crop lit from the left and 0.7 stop darker, cooler: per channel, smooth across the mouth."""
    x = np.linspace(0, 1, w)[None, :, None]
    return (np.array([0.85, 0.7, 0.55], np.float32) * (1.25 - 0.5 * x)).astype(np.float32) * np.ones((h, 1, 1), np.float32)


def test_ratio_field_recovers_a_side_light_and_the_blend_leaves_no_seam():
    roi = _skin()
    light = _side_light()
    patch = np.clip(roi.astype(np.float32) * light, 0, 255).astype(np.uint8)  # same skin, other light
    region = _ring()
    alpha = crop_alpha(region, (300, 260), feather_px=12)
    px_per_iod = 180.0
    ratio, level = ratio_field(patch, roi, region, [_lips()], px_per_iod, RelightConfig())
    # the estimated ratio is the inverse of the light, on a coarse grid, within a few percent
    gh, gw = ratio.shape[:2]
    truth = cv2.resize(1.0 / light, (gw, gh), interpolation=cv2.INTER_AREA)
    inner = np.zeros((gh, gw), bool)
    inner[gh // 4: 3 * gh // 4, gw // 4: 3 * gw // 4] = True
    assert np.abs(ratio[inner] / truth[inner] - 1).mean() < 0.05
    out = roi.copy()
    blend_ratio(out, patch, alpha, ratio)
    # one colour gain (the previous method) leaves the left/right light difference in place
    out_gain = roi.copy()
    blend_into_fast(out_gain, np.dstack([patch, alpha]), 0, 0, BlendConfig())
    err = lambda o: np.abs(o.astype(np.float32) - roi)[alpha == 255].mean()
    assert err(out) < 3.0
    assert err(out_gain) > 2.5 * err(out)


def test_ratio_ignores_the_lips():
    """A darker mouth in the crop (open, teeth and shadow) is content, not light: the skin decides."""
    roi = _skin()
    patch = roi.copy()
    cv2.fillPoly(patch, [np.rint(_lips()).astype(np.int32)], (40, 30, 90))
    ratio, level = ratio_field(patch, roi, _ring(), [_lips()], 180.0, RelightConfig())
    assert np.allclose(level, 1.0, atol=0.02)
    assert np.abs(ratio - 1.0).max() < 0.06


def test_u8_blend_matches_the_float_blend():
    rng = np.random.default_rng(3)
    roi = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    patch = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (64, 80), dtype=np.uint8)
    alpha[:8] = 0
    alpha[-8:] = 255
    ref = roi.astype(np.float32) + (patch.astype(np.float32) - roi) * (alpha[..., None] / 255.0)
    out = roi.copy()
    blend_u8(out, patch, alpha)
    assert np.abs(out.astype(np.float32) - ref).max() <= 1.0
    assert np.array_equal(out[:8], roi[:8]) and np.array_equal(out[-8:], patch[-8:])
