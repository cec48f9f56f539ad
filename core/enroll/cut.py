"""Enrollment pass 2: cut the canonical mouth crops and the idle-loop frames, in parallel workers.

Each worker decodes one time range of a video with the one decoder (media/decode.py), like the
landmark pass, and finds each frame's pass-1 index by its time. A mouth crop needs only
the pixels under it: its source box is taken from the decoder's own Y, U and V planes and
converted alone (a 1080p frame converted whole costs more than the crop, its warp and its JPEG
together). Idle-loop frames are converted whole, through the same conversion, so the crops and
the frames they are pasted into share one colour path.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class CropJob:
    path: str
    t0: float
    t1: float | None  # None: to the end
    times: np.ndarray  # (n,) pass-1 timestamps of this video (frame k of the video = times[k])
    crops: dict[int, np.ndarray]  # video frame index -> 2x3 affine (source pixels -> crop pixels)
    template: list[int]  # video frame indices of idle-loop frames
    points: dict[int, np.ndarray]  # video frame index -> (93, 2) region points in crop pixels
    lip_margin_px: float
    crop_size: tuple[int, int]
    quality: int
    template_quality: int


def _i420_box(fr, x0: int, y0: int, x1: int, y1: int) -> np.ndarray | None:
    """BGR pixels of [x0, x1) x [y0, y1) (even-aligned) from a limited-range yuv420p frame, else None."""
    import cv2

    if fr.format.name != "yuv420p" or getattr(fr, "color_range", 0) == 2:  # full-range: let swscale do it
        return None
    Y, U, V = (np.frombuffer(p, np.uint8).reshape(p.height, p.line_size) for p in fr.planes)
    w, h = x1 - x0, y1 - y0
    buf = np.empty((h * 3 // 2, w), np.uint8)
    buf[:h] = Y[y0:y1, x0:x1]
    buf[h:h + h // 4] = U[y0 // 2:y1 // 2, x0 // 2:x1 // 2].reshape(h // 4, w)
    buf[h + h // 4:] = V[y0 // 2:y1 // 2, x0 // 2:x1 // 2].reshape(h // 4, w)
    return cv2.cvtColor(buf, cv2.COLOR_YUV2BGR_I420)


def _frame_bgr(fr) -> np.ndarray:
    W, H = fr.width, fr.height
    if W % 2 == 0 and H % 4 == 0:
        out = _i420_box(fr, 0, 0, W, H)
        if out is not None:
            return out
    return fr.to_ndarray(format="bgr24")


def source_box(M: np.ndarray, size: tuple[int, int], W: int, H: int, pad: int = 4) -> tuple[int, int, int, int]:
    """Even-aligned box of source pixels the crop (size, through affine M: source -> crop) reads."""
    import cv2

    inv = cv2.invertAffineTransform(M.astype(np.float64))
    w, h = size
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64) @ inv[:, :2].T + inv[:, 2]
    x0, y0 = np.floor(corners.min(0)).astype(int) - pad
    x1, y1 = np.ceil(corners.max(0)).astype(int) + pad
    # even edges, and a height that is a multiple of 4 (the I420 layout pairs the chroma rows)
    x0, y0 = max(x0 - x0 % 2, 0), max(y0 - y0 % 2, 0)
    x1, y1 = min(x1 + x1 % 2, W - W % 2), min(y1 + y1 % 2, H - H % 2)
    while (y1 - y0) % 4:
        if y1 + 2 <= H - H % 2:
            y1 += 2
        elif y0 >= 2:
            y0 -= 2
        else:
            return 0, 0, 0, 0  # no such box: the caller converts the whole frame
    return x0, y0, x1, y1


def cut_one(fr, M: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The canonical crop of a decoded frame (bicubic), converting only the pixels it needs."""
    import cv2

    W, H = fr.width, fr.height
    x0, y0, x1, y1 = source_box(M, size, W, H)
    box = _i420_box(fr, x0, y0, x1, y1) if x1 - x0 >= 4 and y1 - y0 >= 4 else None
    if box is None:
        return cv2.warpAffine(fr.to_ndarray(format="bgr24"), M, size, flags=cv2.INTER_CUBIC,
                              borderMode=cv2.BORDER_REPLICATE)
    Mb = M.astype(np.float64).copy()
    Mb[:, 2] += Mb[:, :2] @ np.array([x0, y0], np.float64)
    # a box clipped at the frame's edge replicates that edge, as the whole frame would
    return cv2.warpAffine(box, Mb, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


_parent = 0


def _init_worker(parent: int) -> None:
    """Pool worker set-up (as the landmark pass): Ctrl-C is the parent's to handle; stop with it."""
    global _parent
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _parent = parent


def _worker(args: tuple[CropJob, "mp.Queue | None"]) -> tuple[dict[int, bytes], dict[int, bytes], dict[int, np.ndarray]]:
    job, progress = args
    import cv2

    from hygie.core.face import geometry as G
    from hygie.core.media.decode import iter_decoded, upright
    from hygie.core.media.probe import quarter_turns
    from hygie.core.render.conditions import skin_lab

    enc = [int(cv2.IMWRITE_JPEG_QUALITY), job.quality]
    tenc = [int(cv2.IMWRITE_JPEG_QUALITY), job.template_quality]
    crops: dict[int, bytes] = {}
    tpl: dict[int, bytes] = {}
    light: dict[int, np.ndarray] = {}
    want_tpl = set(job.template)
    done = 0
    for t, fr in iter_decoded(job.path, threads=1, start=job.t0, end=job.t1):
        # the frame pass 1 saw at this time (the same decoder gives the same frames and times)
        if _parent and os.getppid() != _parent:  # the parent was killed outright: never run on as an orphan
            os._exit(1)
        k = int(np.searchsorted(job.times, t - 1e-3))
        if k >= len(job.times) or abs(job.times[k] - t) > 1e-3:
            continue
        rotated = quarter_turns(getattr(fr, "rotation", 0)) != 0
        whole = upright(fr.to_ndarray(format="bgr24"), fr) if rotated else None  # landmarks are upright
        if k in job.crops:
            img = (cut_one(fr, job.crops[k], job.crop_size) if whole is None else
                   cv2.warpAffine(whole, job.crops[k], job.crop_size, flags=cv2.INTER_CUBIC,
                                  borderMode=cv2.BORDER_REPLICATE))
            crops[k] = cv2.imencode(".jpg", img, enc)[1].tobytes()
            pts = job.points[k]
            light[k] = skin_lab(img, pts, pts[: len(G.LIPS_OUTER)], job.lip_margin_px)
        if k in want_tpl:
            tpl[k] = cv2.imencode(".jpg", _frame_bgr(fr) if whole is None else whole, tenc)[1].tobytes()
        done += 1
        if progress is not None and done % 25 == 0:
            progress.put(25)
    if progress is not None:
        progress.put(done % 25)
    return crops, tpl, light


def cut_video(path: str, times: np.ndarray, crops: dict[int, np.ndarray], points: dict[int, np.ndarray],
              template: list[int], crop_size: tuple[int, int], quality: int, template_quality: int,
              duration: float, lip_margin_px: float, workers: int | None = None, desc: str = "mouth crops",
              end: float | None = None):
    """{frame: crop JPEG}, {frame: idle-frame JPEG}, {frame: skin Lab around the mouth} of one video."""
    from tqdm import tqdm

    # the same ranges as the landmark pass (face/track.py): frames without timestamps get the same times
    duration = duration if end is None else min(end, duration or end)
    workers = workers or max(1, min(os.cpu_count() or 1, 4))
    if duration < 4 * workers:
        workers = 1
    edges = np.linspace(0, duration + 1.0, workers + 1)
    jobs = []
    for i in range(workers):
        lo = edges[i]
        hi = edges[i + 1] if i < workers - 1 else np.inf  # the last range is open-ended
        ks = [k for k in crops if lo - 1e-6 <= times[k] < hi - 1e-6]
        ts = [k for k in template if lo - 1e-6 <= times[k] < hi - 1e-6]
        jobs.append(CropJob(str(path), float(lo), end if i == workers - 1 else float(hi), np.asarray(times, np.float64),
                            {k: crops[k] for k in ks}, ts, {k: points[k] for k in ks}, lip_margin_px,
                            crop_size, quality, template_quality))
    ctx = mp.get_context("spawn")  # like the landmark pass (no fork of a threaded process)
    out_c: dict[int, bytes] = {}
    out_t: dict[int, bytes] = {}
    out_i: dict[int, np.ndarray] = {}
    with ctx.Manager() as mgr:
        q = mgr.Queue()
        with ctx.Pool(workers, initializer=_init_worker, initargs=(os.getpid(),)) as pool, tqdm(total=len(times), desc=desc, unit="frame") as bar:
            res = pool.map_async(_worker, [(j, q) for j in jobs])
            while not res.ready():
                res.wait(0.2)
                while not q.empty():
                    bar.update(q.get())
            for c_, t_, i_ in res.get():
                out_c.update(c_)
                out_t.update(t_)
                out_i.update(i_)
            while not q.empty():
                bar.update(q.get())
    return out_c, out_t, out_i
