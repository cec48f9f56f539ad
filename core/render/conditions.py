"""How well a database crop's source frame suits the template frame it is pasted into.

Three conditions, each cheap to compare per candidate:
- head turn: the face's forward axis (out-of-plane rotation; roll is undone by the crop's
  2-D alignment). A mouth filmed 10 degrees to the side and warped frontal keeps its
  foreshortened teeth and lip corners: it looks pasted and the detector misreads it.
- skin light: mean Lab colour of the skin around the mouth (lips left out). Recordings
  made on other days, or under drifting auto-exposure, differ in more than a gain (contrast,
  saturation, lip colour); a crop from similar light needs the least relighting.
- face size: a crop whose source face was smaller than the template's is upscaled when
  pasted, and looks blurred beside the template's own detail.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from hygie.core.face import geometry as G

log = logging.getLogger(__name__)

LIP_MARGIN = 0.06  # IOD around the outer lips left out of skin measures (lip colour is not light)


def forward_axis(poses: np.ndarray) -> np.ndarray:
    """(N, 3) unit forward axis of the face in image coordinates, from (N, 13) canonical poses."""
    R = np.asarray(poses, np.float64)[:, 1:10].reshape(-1, 3, 3)
    f = R[:, 2, :]
    return (f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-9)).astype(np.float32)


def iod_pixels(poses: np.ndarray) -> np.ndarray:
    """(N,) inter-ocular distance in image pixels (the canonical scale is 1 IOD)."""
    return (1.0 / np.asarray(poses, np.float64)[:, 0]).astype(np.float32)


def skin_mask(shape: tuple[int, int], region: np.ndarray, lips_outer: np.ndarray, margin_px: float) -> np.ndarray:
    """uint8 mask of the skin around the mouth: hull of the region points, outer lips (+ margin) left out."""
    import cv2

    m = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(m, np.rint(cv2.convexHull(np.asarray(region, np.float32)) * 4).astype(np.int32), 255,
                       lineType=cv2.LINE_8, shift=2)
    lp = np.zeros(shape, np.uint8)
    cv2.fillPoly(lp, [np.rint(np.asarray(lips_outer, np.float32) * 4).astype(np.int32)], 255, lineType=cv2.LINE_8, shift=2)
    r = max(1, int(round(margin_px)))
    lp = cv2.dilate(lp, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    m[lp > 0] = 0
    return m


def skin_lab(img: np.ndarray, region: np.ndarray, lips_outer: np.ndarray, margin_px: float) -> np.ndarray:
    """Mean Lab (L 0-100) of the skin around the mouth in a BGR image (points in its pixels)."""
    import cv2

    pts = np.asarray(region, np.float32)
    H, W = img.shape[:2]
    x0, y0 = np.maximum(np.floor(pts.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(pts.max(0)).astype(int) + 1, [W, H])
    if x1 - x0 < 4 or y1 - y0 < 4:
        return np.full(3, np.nan, np.float32)
    off = np.array([x0, y0], np.float32)
    m = skin_mask((y1 - y0, x1 - x0), pts - off, np.asarray(lips_outer, np.float32) - off, margin_px)
    if cv2.countNonZero(m) < 16:
        return np.full(3, np.nan, np.float32)
    bgr = np.array(cv2.mean(img[y0:y1, x0:x1], m)[:3], np.float32).reshape(1, 1, 3) / 255.0
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2Lab).reshape(3)


@dataclass
class Conditions:
    """Per-frame source conditions: forward axis (N, 3), IOD in pixels (N,), skin Lab (N, 3)."""

    forward: np.ndarray
    iod: np.ndarray
    lab: np.ndarray


class SourceCost:
    """cost(ids) for template frame i: pose * angle + light * ΔE + scale * octaves of upscaling."""

    def __init__(self, mouths: Conditions, template: Conditions, pose: float, light: float, scale: float):
        self.m, self.t = mouths, template
        self.w = (float(pose), float(light), float(scale))
        # a crop without a light measure (NaN) is judged by the others only
        self.m_lab = np.nan_to_num(mouths.lab, nan=0.0)
        self.m_lab_ok = np.isfinite(mouths.lab).all(1)
        self.m_log_iod = np.log2(np.maximum(mouths.iod, 1e-3))
        self.t_log_iod = np.log2(np.maximum(template.iod, 1e-3))

    @property
    def active(self) -> bool:
        return any(w > 0 for w in self.w)

    def for_template(self, i: int):
        wp, wl, ws = self.w
        f, lab, liod = self.t.forward[i], self.t.lab[i], self.t_log_iod[i]
        lab_ok = bool(np.isfinite(lab).all())

        def cost(ids: np.ndarray) -> np.ndarray:
            c = np.zeros(len(ids), np.float32)
            if wp > 0:
                c += wp * np.arccos(np.clip(self.m.forward[ids] @ f, -1.0, 1.0))
            if wl > 0 and lab_ok:
                de = np.linalg.norm(self.m_lab[ids] - lab, axis=1)
                c += wl * np.where(self.m_lab_ok[ids], de, 0.0)
            if ws > 0:
                c += ws * np.maximum(liod - self.m_log_iod[ids], 0.0)
            return c

        return cost


def template_conditions(frames, landmarks: np.ndarray, poses: np.ndarray, margin_iod: float = 0.06) -> Conditions:
    """Conditions of every template frame (frames: a callable i -> native BGR frame)."""
    n = len(poses)
    iod = iod_pixels(poses)
    lab = np.stack([skin_lab(frames(i), landmarks[i, G.MOUTH_REGION, :2], landmarks[i, G.LIPS_OUTER, :2],
                             margin_iod * iod[i]) for i in range(n)])
    return Conditions(forward_axis(poses), iod, lab)


# Differences in skin colour (ΔE76) that show when mouths of one recording are pasted into another
# (a just-noticeable difference is ~2.3; the relight removes most of a smooth light change, but not
# the lips' own colour or contrast), and a brightness swing within one recording that shows.
SOURCES_DIFFER_DE = 6.0
DRIFT_L = 10.0


def source_light(lab: np.ndarray, source: np.ndarray, names: list[str]) -> tuple[list[dict], list[str]]:
    """Per recording: median skin Lab around the mouth and its brightness range; plus warnings.

    lab: (M, 3) skin Lab of the database crops; source: (M,) recording index of each crop.
    """
    stats, warn = [], []
    for k, name in enumerate(names):
        x = lab[(source == k) & np.isfinite(lab).all(1)]
        if len(x) == 0:
            stats.append({"name": name, "n": 0})
            continue
        med = np.median(x, axis=0)
        p5, p95 = np.percentile(x[:, 0], [5, 95])
        stats.append({"name": name, "n": int(len(x)), "L": round(float(med[0]), 2), "a": round(float(med[1]), 2),
                      "b": round(float(med[2]), 2), "L_p5": round(float(p5), 2), "L_p95": round(float(p95), 2)})
        if p95 - p5 > DRIFT_L:
            warn.append(f"{name}: the skin brightness swings by {p95 - p5:.0f} L* within the recording "
                        "(auto-exposure or changing light); lock the exposure or keep the light steady.")
    ok = [s for s in stats if s.get("n")]
    for i in range(len(ok)):
        for j in range(i + 1, len(ok)):
            de = float(np.linalg.norm([ok[i][c] - ok[j][c] for c in ("L", "a", "b")]))
            if de > SOURCES_DIFFER_DE:
                warn.append(f"{ok[i]['name']} and {ok[j]['name']} differ in skin colour by ΔE {de:.1f}: mouths of one "
                            "pasted into the other may show. Mouths from the idle loop's own recording are preferred "
                            "and relit; for the best result record under the same light.")
    return stats, warn
