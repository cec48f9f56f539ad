"""Renderer quality with true-landmark driving on a slice of the held-out GRID video (targets of issue 4)."""
from __future__ import annotations

import json

import pytest

from conftest import GRID_HELDOUT, need


def test_quality_targets_with_true_landmarks(grid_avatar, tmp_path):
    need(GRID_HELDOUT)
    from hygie.core.package.avatar import load_package
    from hygie.models.render_quality import TARGETS, evaluate_render

    res = evaluate_render(load_package(grid_avatar), GRID_HELDOUT, tmp_path, driver="landmarks",
                          max_frames=150, quiet=True)
    assert res["frames_redetected"] >= 140
    assert res["fidelity"] <= TARGETS["fidelity"][1]
    assert res["sharpness_ratio"] >= TARGETS["sharpness_ratio"][1]
    assert res["stability_ratio"] <= TARGETS["stability_ratio"][1]
    assert res["seam_ssim"] >= TARGETS["seam_ssim"][1]
    # better than ignoring the request
    assert res["lmd_rendered_vs_real"] < 0.6 * res["lmd_mean_mouth_vs_real"]
    assert (tmp_path / "render_strip.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "render_quality.json").read_text())["driver"] == "landmarks"
