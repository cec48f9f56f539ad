"""A visible "AI avatar" badge in a corner of the camera image (live disclosure).

The badge is drawn once (text on a rounded dark plate, anti-aliased) into a small BGR image and
an alpha mask; each frame only blends that small region (a few microseconds).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hygie.core.errors import HygieError

POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right")


@dataclass
class BadgeConfig:
    text: str = "AI avatar"
    position: str = "top-right"
    size: float = 0.06  # badge height as a fraction of the frame height
    margin: float = 0.025  # distance from the edges, fraction of the frame height
    opacity: float = 0.85

    def check(self) -> None:
        if self.position not in POSITIONS:
            raise HygieError(f"badge position {self.position!r}: choose one of {', '.join(POSITIONS)}")
        if not 0.02 <= self.size <= 0.3:
            raise HygieError(f"badge size {self.size}: choose a fraction of the frame height between 0.02 and 0.3")
        if not self.text.strip():
            raise HygieError("the badge text is empty; leave the default \"AI avatar\" or give a text")


class Badge:
    def __init__(self, width: int, height: int, cfg: BadgeConfig | None = None):
        import cv2

        self.cfg = cfg = cfg or BadgeConfig()
        cfg.check()
        bh = max(24, int(round(cfg.size * height)))  # below ~24 px the text is not legible
        font = cv2.FONT_HERSHEY_SIMPLEX
        scale = cv2.getFontScaleFromHeight(font, int(bh * 0.5), 1)
        thick = max(1, int(round(bh / 14)))
        (tw, th), base = cv2.getTextSize(cfg.text, font, scale, thick)
        pad = int(bh * 0.35)
        bw = min(width, tw + 2 * pad)
        bh = min(height, bh)
        plate = np.zeros((bh, bw, 3), np.uint8)
        plate[:] = (40, 30, 20)
        mask = np.zeros((bh, bw), np.uint8)
        r = bh // 3
        cv2.rectangle(mask, (r, 0), (bw - 1 - r, bh - 1), 255, -1)
        cv2.rectangle(mask, (0, r), (bw - 1, bh - 1 - r), 255, -1)
        for cx, cy in ((r, r), (bw - 1 - r, r), (r, bh - 1 - r), (bw - 1 - r, bh - 1 - r)):
            cv2.circle(mask, (cx, cy), r, 255, -1, cv2.LINE_AA)
        cv2.putText(plate, cfg.text, (pad, (bh + th) // 2), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
        self.plate = plate
        self.alpha = np.ascontiguousarray(mask.astype(np.float32) / 255.0 * cfg.opacity)
        self.beta = np.ascontiguousarray(1.0 - self.alpha)
        m = int(round(cfg.margin * height))
        x = m if cfg.position.endswith("left") else width - bw - m
        y = m if cfg.position.startswith("top") else height - bh - m
        self.x, self.y = max(0, x), max(0, y)
        self.w, self.h = bw, bh

    def draw(self, frame: np.ndarray) -> None:
        """Blend the badge into `frame` (in place)."""
        import cv2

        roi = frame[self.y:self.y + self.h, self.x:self.x + self.w]
        h, w = roi.shape[:2]
        roi[:] = cv2.blendLinear(self.plate[:h, :w], np.ascontiguousarray(roi), self.alpha[:h, :w], self.beta[:h, :w])
