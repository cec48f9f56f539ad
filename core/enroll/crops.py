"""The mouth database: where each crop is cut (pass 1 geometry) and the second decoding pass that cuts it.

Crops are cut at the video's native resolution in the canonical frame (a 2-D similarity
per frame), with the idle-loop frames encoded in the same pass, so the video is decoded
twice in all and never held in memory.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from hygie.core.enroll.align import Alignment
from hygie.core.enroll.config import EnrollConfig
from hygie.core.errors import MediaError
from hygie.core.face import geometry as G
from hygie.core.media.decode import iter_video_frames

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


def plan_crops(al: Alignment, cfg: EnrollConfig, fps: float) -> CropPlan:
    """Crop geometry at native resolution (median IOD in pixels) and which frames enter the database."""
    sub = al.rows
    all_lm, canon = al.landmarks, al.canon
    iod_px = np.linalg.norm(all_lm[sub][:, 33, :2] - all_lm[sub][:, 263, :2], axis=1)
    px_per_iod = float(np.median(iod_px))
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


def cut_crops(srcs: list, plan: CropPlan, loop: tuple[int, int], cfg: EnrollConfig) -> tuple[list[bytes], list[bytes]]:
    """Pass 2: JPEG mouth crops of the database frames and JPEG frames of the idle loop [first, end)."""
    import cv2
    from tqdm import tqdm

    t_a, t_b = loop
    n = sum(len(s.track.times) for s in srcs)
    db_set = set(plan.frames.tolist())
    tpl_blobs: list[bytes] = []
    pos = {int(i): j for j, i in enumerate(plan.frames)}
    enc = [int(cv2.IMWRITE_JPEG_QUALITY), cfg.jpeg_quality]
    tenc = [int(cv2.IMWRITE_JPEG_QUALITY), cfg.template_jpeg_quality]
    crops: list[bytes | None] = [None] * len(plan.frames)
    base = 0
    with tqdm(total=n, desc="mouth crops", unit="frame") as bar:
        for vi, s in enumerate(srcs):
            k = 0
            for t, frame in iter_video_frames(s.path, end=s.end):
                if k >= len(s.track.times):
                    break
                # frames are matched to pass 1 by order: the same decoder gives the same frames and times
                if abs(t - s.track.times[k]) > 1e-3:
                    raise MediaError(f"{s.path}: frame {k} decodes at {t:.3f} s now but at {s.track.times[k]:.3f} s "
                                     "in the first pass; the file changed during enrollment. Run it again.")
                gi = base + k
                if gi in db_set:
                    c = cv2.warpAffine(frame, plan.affines[pos[gi]], plan.size, flags=cv2.INTER_CUBIC,
                                       borderMode=cv2.BORDER_REPLICATE)
                    crops[pos[gi]] = cv2.imencode(".jpg", c, enc)[1].tobytes()
                if t_a <= gi < t_b:
                    tpl_blobs.append(cv2.imencode(".jpg", frame, tenc)[1].tobytes())
                k += 1
                bar.update(1)
            base += len(s.track.times)
    missing = [j for j, c in enumerate(crops) if c is None]
    if missing:
        raise MediaError(f"{len(missing)} frames could not be decoded a second time; the file changed or is corrupt.")
    if len(tpl_blobs) != t_b - t_a:
        raise MediaError("the idle-loop frames could not be decoded again; the file changed or is corrupt.")
    return [c for c in crops if c is not None], tpl_blobs


def pack(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated bytes (uint8) and offsets (M + 1,) of a list of encoded images."""
    offs = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    return np.frombuffer(b"".join(blobs), np.uint8), offs
