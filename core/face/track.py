"""First enrollment pass: decode a video and run FaceMesh on every frame, split over worker processes."""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import signal
from dataclasses import dataclass

import numpy as np

from hygie.core.errors import MediaError
from hygie.core.media.decode import iter_video_frames
from hygie.core.media.probe import probe_video

log = logging.getLogger(__name__)


@dataclass
class LandmarkTrack:
    times: np.ndarray  # (N,) seconds
    landmarks: np.ndarray  # (N, 478, 3) float32 pixels, NaN where no face
    n_faces: np.ndarray  # (N,) faces seen
    grey: np.ndarray  # (N,) fraction of the frame with no colour (damaged-frame detector)
    block: np.ndarray  # (N,) 8x8 blockiness ratio (damaged-frame detector)
    other_face: np.ndarray  # (N,) size of the largest other face relative to the tracked one (0 = none)


def frame_damage_stats(frame: np.ndarray) -> tuple[float, float]:
    """(grey fraction, blockiness). Decoder garbage is flat grey or blocky at 8x8/16x16 boundaries."""
    import cv2

    small = frame[::2, ::2]
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    grey = float(np.mean(hsv[..., 1] < 12))
    g = frame[..., 1].astype(np.float32)
    dx = np.abs(np.diff(g, axis=1))
    w = dx.shape[1] - dx.shape[1] % 8
    cols = dx[:, :w].reshape(dx.shape[0], -1, 8).mean(axis=(0, 1))
    block = float(cols[7] / (np.median(cols[:7]) + 1e-3))  # jump across 8-px boundaries vs inside blocks
    return grey, block


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
    done = 0
    with FaceTracker() as tr:
        for t, img in iter_video_frames(path, threads=threads, start=t0, end=t1):
            if os.getppid() != _parent:  # the parent was killed outright: stop, never run on as an orphan
                os._exit(1)
            r = tr.process(img)
            times.append(t)
            lms.append(r.landmarks.astype(np.float32) if r.landmarks is not None else np.full((478, 3), np.nan, np.float32))
            nf.append(r.n_faces)
            other.append(r.other_size)
            g, b = frame_damage_stats(img)
            greys.append(g)
            blocks.append(b)
            done += 1
            if progress is not None and done % 25 == 0:
                progress.put(25)
    if progress is not None:
        progress.put(done % 25)
    return dict(times=np.array(times), landmarks=np.stack(lms) if lms else np.zeros((0, 478, 3), np.float32),
                n_faces=np.array(nf, np.int16), grey=np.array(greys, np.float32), block=np.array(blocks, np.float32),
                other_face=np.array(other, np.float32))


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
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if len(merged["times"]) == 0:
        raise MediaError(f"{path}: no video frame could be decoded. The file is corrupt or truncated.")
    order = np.argsort(merged["times"], kind="stable")
    t = merged["times"][order]
    keep = np.concatenate([[True], np.diff(t) > 1e-6])  # drop duplicates at the slice seams
    return LandmarkTrack(**{k: v[order][keep] for k, v in merged.items()})
