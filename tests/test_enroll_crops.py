"""Enrollment pass 2: a crop cut from the decoder's planes equals one cut from the whole converted frame."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import OBAMA, GRID_HELDOUT, need

cv2 = pytest.importorskip("cv2")


@pytest.mark.parametrize("which", ["obama", "grid"])
def test_box_crop_matches_the_whole_frame_crop(which):
    import av

    from hygie.core.enroll.cut import _frame_bgr, cut_one

    path = need(OBAMA[0]) if which == "obama" and OBAMA else need(GRID_HELDOUT)
    with av.open(str(path)) as c:
        fr = next(c.decode(video=0))
    whole = _frame_bgr(fr)
    H, W = whole.shape[:2]
    # a rotated, scaled crop around the lower middle of the frame, and one that runs off its edge
    for cx, cy in ((W * 0.5, H * 0.62), (W * 0.02, H * 0.97)):
        a = np.deg2rad(8.0)
        s = 1.13
        M = np.array([[s * np.cos(a), -s * np.sin(a), 0], [s * np.sin(a), s * np.cos(a), 0]], np.float64)
        M[:, 2] = np.array([110, 90]) - M[:, :2] @ np.array([cx, cy])
        ref = cv2.warpAffine(whole, M, (220, 180), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        got = cut_one(fr, M, (220, 180))
        assert got.shape == ref.shape
        assert np.abs(got.astype(int) - ref.astype(int)).max() <= 2
    # the whole-frame conversion is swscale's to within a grey level on average (BT.601, limited range)
    sw = fr.to_ndarray(format="bgr24")
    assert np.abs(whole.astype(int) - sw.astype(int)).mean() < 2.0
