"""JPEG images packed in one byte array with offsets (the package's mouth crops and loop frames)."""
from __future__ import annotations

import numpy as np


def decode_jpeg_blob(jpeg: np.ndarray, offsets: np.ndarray, i: int) -> np.ndarray:
    """Image i (BGR uint8) of a packed JPEG array."""
    import cv2

    return cv2.imdecode(jpeg[offsets[i]:offsets[i + 1]], cv2.IMREAD_COLOR)
