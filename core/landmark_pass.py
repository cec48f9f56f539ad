"""First enrollment pass: decode a video and run FaceMesh on every frame, split over worker processes."""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
from dataclasses import dataclass

import numpy as np

from hygie.core.media import MediaError, probe_video

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


def _worker(args: tuple[str, float, float, int, int, "mp.Queue | None"]) -> dict[str, np.ndarray]:
    path, t0, t1, worker_id, threads, progress = args
    import av

    from hygie.core.face_tracker import FaceTracker

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    times, lms, nf, greys, blocks, other = [], [], [], [], [], []
    with FaceTracker() as tr, av.open(path) as c:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        vs.codec_context.thread_count = threads
        tb = vs.time_base
        if t0 > 0:
            c.seek(int(t0 / tb), stream=vs, backward=True, any_frame=False)
        done = 0
        for packet in c.demux(vs):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue
            for fr in frames:
                if fr.pts is None:
                    continue
                t = float(fr.pts * tb)
                if t < t0 - 1e-6:
                    continue
                if t >= t1 - 1e-6:
                    break
                img = fr.to_ndarray(format="bgr24")
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
            else:
                continue
            break
    if progress is not None:
        progress.put(done % 25)
    return dict(times=np.array(times), landmarks=np.stack(lms) if lms else np.zeros((0, 478, 3), np.float32),
                n_faces=np.array(nf, np.int16), grey=np.array(greys, np.float32), block=np.array(blocks, np.float32),
                other_face=np.array(other, np.float32))


def track_video(path: str, workers: int | None = None, progress_desc: str = "face landmarks") -> LandmarkTrack:
    """FaceMesh over every frame of `path`, in time-sliced worker processes, with a progress bar."""
    from tqdm import tqdm

    info = probe_video(path)
    workers = workers or max(1, min(os.cpu_count() or 1, 4))
    if info.duration < 4 * workers:
        workers = 1
    edges = np.linspace(0, info.duration + 1.0, workers + 1)
    ctx = mp.get_context("spawn")  # MediaPipe graphs are not fork-safe
    with ctx.Manager() as mgr:
        q = mgr.Queue()
        jobs = [(str(path), float(edges[i]), float(edges[i + 1]), i, 1, q) for i in range(workers)]
        with ctx.Pool(workers) as pool, tqdm(total=info.n_frames, desc=progress_desc, unit="frame") as bar:
            res = pool.map_async(_worker, jobs)
            while not res.ready():
                res.wait(0.2)
                while not q.empty():
                    bar.update(q.get())
            parts = res.get()
            while not q.empty():
                bar.update(q.get())
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if len(merged["times"]) == 0:
        raise MediaError(f"{path}: no video frame could be decoded. The file is corrupt or truncated.")
    order = np.argsort(merged["times"], kind="stable")
    t = merged["times"][order]
    keep = np.concatenate([[True], np.diff(t) > 1e-6])  # drop duplicates at the slice seams
    return LandmarkTrack(**{k: v[order][keep] for k, v in merged.items()})
