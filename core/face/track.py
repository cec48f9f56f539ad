"""First enrollment pass: decode a video and run FaceMesh on every frame, split over worker processes."""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import signal
import time
from dataclasses import dataclass

import numpy as np

from hygie.core.errors import MediaError
from hygie.core.media.decode import iter_decoded, upright
from hygie.core.media.probe import probe_video, quarter_turns

log = logging.getLogger(__name__)


@dataclass
class LandmarkTrack:
    times: np.ndarray  # (N,) seconds
    landmarks: np.ndarray  # (N, 478, 3) float32 pixels, NaN where no face
    n_faces: np.ndarray  # (N,) faces seen
    grey: np.ndarray  # (N,) fraction of the frame with no colour (damaged-frame detector)
    block: np.ndarray  # (N,) 8x8 blockiness ratio (damaged-frame detector)
    other_face: np.ndarray  # (N,) size of the largest other face relative to the tracked one (0 = none)
    seconds: dict | None = None  # CPU seconds per stage of the pass (decode, convert, landmarks, damage)


def frame_damage_stats(frame: np.ndarray, luma: np.ndarray | None = None, rgb: bool = False) -> tuple[float, float]:
    """(grey fraction, blockiness). Decoder garbage is flat grey or blocky at 8x8/16x16 boundaries.

    `frame` may be a downscaled copy (the grey fraction is a proportion); blockiness needs the coded
    resolution: pass the decoder's own luma plane as `luma` (no colour conversion needed).
    """
    import cv2

    step = max(2, frame.shape[0] // 180)  # ~180 rows of samples
    small = np.ascontiguousarray(frame[::step, ::step])
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV if rgb else cv2.COLOR_BGR2HSV)
    grey = float(np.mean(hsv[..., 1] < 12))
    # a subset of rows (the same statistic), 8-bit absolute differences summed per column
    src = luma if luma is not None else frame[..., 1]
    g = src[:: max(2, src.shape[0] // 270)]
    dx = cv2.absdiff(g[:, 1:], g[:, :-1])
    col = dx.sum(axis=0, dtype=np.int64)
    w = len(col) - len(col) % 8
    cols = col[:w].reshape(-1, 8).mean(axis=0) / g.shape[0]
    block = float(cols[7] / (np.median(cols[:7]) + 1e-3))  # jump across 8-px boundaries vs inside blocks
    return grey, block


# FaceMesh's landmark model sees the face at 192x192: a frame taller than this is scaled down
# (in the decoder's own colour conversion, one pass) before detection, and the landmarks mapped
# back; a 1080p face of 400 px stays above 250 px.
LANDMARK_MAX_HEIGHT = 720
_TIMERS = ("decode", "convert", "landmarks", "damage")


def _luma(fr) -> np.ndarray | None:
    """The decoded frame's 8-bit luma plane as an array (no copy of the picture), or None."""
    if fr.format.name not in ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12"):
        return None
    p = fr.planes[0]
    return np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width]


_progress: "mp.Queue | None" = None
_parent = 0


def _init_worker(progress: "mp.Queue", parent: int) -> None:
    """Pool worker set-up: Ctrl-C is the parent's to handle (it terminates the pool), and progress goes
    to the parent's queue."""
    global _progress, _parent
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _progress, _parent = progress, parent


def _worker(args: tuple[str, float, float | None, int]) -> dict[str, np.ndarray]:
    path, t0, t1, threads = args
    from hygie.core.face.tracker import FaceTracker

    progress = _progress
    times, lms, nf, greys, blocks, other = [], [], [], [], [], []
    spent = dict.fromkeys(_TIMERS, 0.0)
    clock = time.perf_counter
    done = 0
    with FaceTracker() as tr:
        frames = iter_decoded(path, threads=threads, start=t0, end=t1)
        while True:
            a = clock()
            item = next(frames, None)
            b_ = clock()
            spent["decode"] += b_ - a
            if item is None:
                break
            if os.getppid() != _parent:  # the parent was killed outright: stop, never run on as an orphan
                os._exit(1)
            t, fr = item
            W, H = fr.width, fr.height
            s = min(1.0, LANDMARK_MAX_HEIGHT / H)
            w, h = (W, H) if s == 1.0 else (int(round(W * s / 2)) * 2, int(round(H * s / 2)) * 2)
            rgb = fr.to_ndarray(format="rgb24", width=w, height=h, interpolation=None if s == 1.0 else "FAST_BILINEAR")
            luma = _luma(fr)
            turns = quarter_turns(getattr(fr, "rotation", 0))
            if turns:  # as players show it (phones): landmarks in the upright picture
                rgb, luma = upright(rgb, fr), None
                W, H = (H, W) if turns % 2 else (W, H)
                w, h = rgb.shape[1], rgb.shape[0]
            c_ = clock()
            r = tr.process_rgb(rgb)
            d_ = clock()
            times.append(t)
            lm = r.landmarks.astype(np.float32) if r.landmarks is not None else np.full((478, 3), np.nan, np.float32)
            if s != 1.0:
                lm[:, 0] *= W / w
                lm[:, 1] *= H / h
                lm[:, 2] *= W / w
            lms.append(lm)
            nf.append(r.n_faces)
            other.append(r.other_size)
            g, bk = frame_damage_stats(rgb, luma, rgb=True)
            greys.append(g)
            blocks.append(bk)
            spent["convert"] += c_ - b_
            spent["landmarks"] += d_ - c_
            spent["damage"] += clock() - d_
            done += 1
            if progress is not None and done % 25 == 0:
                progress.put(25)
    if progress is not None:
        progress.put(done % 25)
    return dict(times=np.array(times), landmarks=np.stack(lms) if lms else np.zeros((0, 478, 3), np.float32),
                n_faces=np.array(nf, np.int16), grey=np.array(greys, np.float32), block=np.array(blocks, np.float32),
                other_face=np.array(other, np.float32), **{f"t_{k}": np.array([v]) for k, v in spent.items()})


def _drain(q: "mp.Queue", bar) -> None:
    while True:
        try:
            bar.update(q.get_nowait())
        except queue.Empty:
            return


def track_video(path: str, workers: int | None = None, progress_desc: str = "face landmarks",
                end: float | None = None) -> LandmarkTrack:
    """FaceMesh over every frame of `path` (up to `end` seconds), in time-sliced worker processes."""
    from tqdm import tqdm

    info = probe_video(path)
    duration = info.duration if end is None else min(end, info.duration or end)
    workers = workers or max(1, min(os.cpu_count() or 1, 4))
    if duration < 4 * workers:
        workers = 1
    edges = np.linspace(0, duration + 1.0, workers + 1)
    ctx = mp.get_context("spawn")  # MediaPipe graphs are not fork-safe
    q = ctx.Queue()
    # the last range is open-ended: a container's duration can be missing or short
    jobs = [(str(path), float(edges[i]), float(edges[i + 1]) if i < workers - 1 else end, 1) for i in range(workers)]
    # leaving the `with` (also on Ctrl-C or SIGTERM) terminates the workers
    with ctx.Pool(workers, initializer=_init_worker, initargs=(q, os.getpid())) as pool, \
            tqdm(total=int(round(duration * info.fps)) or info.n_frames, desc=progress_desc, unit="frame") as bar:
        res = pool.map_async(_worker, jobs)
        while not res.ready():
            res.wait(0.2)
            _drain(q, bar)
        parts = res.get()
        _drain(q, bar)
    q.close()
    # CPU seconds per stage, summed over the workers (the enrollment bench prints the split)
    spent = {k: float(sum(p.pop(f"t_{k}")[0] for p in parts)) for k in _TIMERS}
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if len(merged["times"]) == 0:
        raise MediaError(f"{path}: no video frame could be decoded. The file is corrupt or truncated.")
    order = np.argsort(merged["times"], kind="stable")
    t = merged["times"][order]
    keep = np.concatenate([[True], np.diff(t) > 1e-6])  # drop duplicates at the slice seams
    track = LandmarkTrack(**{k: v[order][keep] for k, v in merged.items()})
    track.seconds = spent
    return track
