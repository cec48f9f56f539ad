"""The mouth database: where each crop is cut (pass 1 geometry) and the second decoding pass that cuts it.

Crops are cut at the video's native resolution in the canonical frame (a 2-D similarity
per frame) -- and never below the idle loop's own face size, where they are pasted -- with
the idle-loop frames encoded in the same pass (parallel workers, enroll/cut.py), so the
video is decoded twice in all and never held in memory. Each crop's skin light (Lab around
the mouth) is measured on the way, for retrieval and the report.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from hygie.core.enroll.align import Alignment
from hygie.core.enroll.config import EnrollConfig
from hygie.core.errors import MediaError
from hygie.core.face import geometry as G

log = logging.getLogger(__name__)


def subsample_in_runs(idx: np.ndarray, keep: int, run: int) -> np.ndarray:
    """Keep `keep` of the indices as whole runs of consecutive frames spread over the video.

    Retrieval prefers the source frame that follows the last one shown, so a smaller database
    keeps continuous stretches rather than every n-th frame.
    """
    blocks = [idx[i:i + run] for i in range(0, len(idx), run)]
    n_blocks = max(1, keep // run)
    pick = np.linspace(0, len(blocks) - 1, n_blocks).round().astype(int)
    return np.concatenate([blocks[i] for i in np.unique(pick)])[:keep]


def crop_geometry(mean_region_xy: np.ndarray, px_per_iod: float, margin: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Canonical origin (top-left, IOD units) and pixel size of the mouth crop."""
    lo = mean_region_xy.min(0) - margin
    hi = mean_region_xy.max(0) + margin
    size = np.ceil((hi - lo) * px_per_iod).astype(int)
    size += size % 2
    return lo, (int(size[0]), int(size[1]))



@dataclass
class CropPlan:
    frames: np.ndarray  # (M,) database frames, indices into the concatenated track
    affines: np.ndarray  # (M, 2, 3) image -> crop pixels
    points: np.ndarray  # (M, 93, 2) mouth-region points in crop pixels
    origin: np.ndarray  # (2,) canonical top-left of the crop (IOD)
    size: tuple[int, int]  # crop (w, h) pixels
    px_per_iod: float
    mean_canonical: np.ndarray  # (478, 3)


def plan_crops(al: Alignment, cfg: EnrollConfig, fps: float, loop: tuple[int, int] | None = None) -> CropPlan:
    """Crop geometry at native resolution and which frames enter the database.

    The scale is the median IOD in pixels, and never below the idle loop's own [first, end): the
    crops are pasted there, and a crop stored smaller than that face would be upscaled on every
    frame (with several recordings the faces differ in size).
    """
    sub = al.rows
    all_lm, canon = al.landmarks, al.canon
    iod_all = np.linalg.norm(all_lm[:, 33, :2] - all_lm[:, 263, :2], axis=1)
    px_per_iod = float(np.median(iod_all[sub]))
    if loop is not None:
        px_per_iod = max(px_per_iod, float(np.nanmedian(iod_all[loop[0]:loop[1]])))
    mean_canon = np.nanmean(canon[sub], axis=0)
    origin, crop_size = crop_geometry(mean_canon[G.MOUTH_REGION, :2], px_per_iod, cfg.crop_margin)

    db_idx = sub
    if cfg.max_mouths and len(db_idx) > cfg.max_mouths:
        db_idx = subsample_in_runs(db_idx, cfg.max_mouths, run=int(round(3 * fps)))
    affines = np.zeros((len(db_idx), 2, 3), np.float32)
    pts = np.zeros((len(db_idx), len(G.MOUTH_REGION), 2), np.float32)
    for j, i in enumerate(db_idx):
        dst = (canon[i, G.MOUTH_REGION, :2] - origin) * px_per_iod
        M = G.similarity_2d(all_lm[i, G.MOUTH_REGION, :2], dst)
        affines[j] = M
        pts[j] = all_lm[i, G.MOUTH_REGION, :2] @ M[:, :2].T + M[:, 2]
    return CropPlan(db_idx, affines, pts, origin, crop_size, px_per_iod, mean_canon)


def cut_crops(srcs: list, plan: CropPlan, loop: tuple[int, int],
              cfg: EnrollConfig) -> tuple[list[bytes], list[bytes], np.ndarray]:
    """Pass 2: JPEG mouth crops of the database frames, JPEG frames of the idle loop [first, end),
    and (M, 3) the Lab colour of the skin around each crop's mouth."""
    import cv2  # noqa: F401  (fail early where OpenCV is missing)

    from hygie.core.enroll.cut import cut_video
    from hygie.core.media.probe import probe_video
    from hygie.core.render.conditions import LIP_MARGIN

    t_a, t_b = loop
    M = len(plan.frames)
    crops: list[bytes | None] = [None] * M
    skin = np.full((M, 3), np.nan, np.float32)
    tpl_blobs: list[bytes] = []
    base = 0
    for s in srcs:
        nv = len(s.track.times)
        mine = np.flatnonzero((plan.frames >= base) & (plan.frames < base + nv))
        local = {int(plan.frames[j] - base): j for j in mine}
        tpl_k = [k - base for k in range(t_a, t_b) if base <= k < base + nv]
        c_, t_, l_ = cut_video(str(s.path), s.track.times, {k: plan.affines[j] for k, j in local.items()},
                               {k: plan.points[j] for k, j in local.items()}, tpl_k, plan.size, cfg.jpeg_quality,
                               cfg.template_jpeg_quality, probe_video(s.path).duration, LIP_MARGIN * plan.px_per_iod,
                               workers=cfg.workers, desc=f"mouth crops {s.path.name}", end=getattr(s, "end", None))
        for k, j in local.items():
            crops[j] = c_.get(k)
            if k in l_:
                skin[j] = l_[k]
        tpl_blobs += [t_[k] for k in tpl_k if k in t_]
        base += nv
    missing = [j for j, c in enumerate(crops) if c is None]
    if missing:
        raise MediaError(f"{len(missing)} frames could not be decoded a second time; the file changed or is corrupt.")
    if len(tpl_blobs) != t_b - t_a:
        raise MediaError("the idle-loop frames could not be decoded again; the file changed or is corrupt.")
    return [c for c in crops if c is not None], tpl_blobs, skin


def pack(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated bytes (uint8) and offsets (M + 1,) of a list of encoded images."""
    offs = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    return np.frombuffer(b"".join(blobs), np.uint8), offs
