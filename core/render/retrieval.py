"""Choose a real mouth from the avatar's database for each requested shape.

A FAISS flat L2 index over the database's PCA coefficients gives the k nearest
shapes. PCA rows are orthonormal, so the L2 distance between coefficient vectors is
the distance between the (PCA-reconstructed) 40-point lip shapes; dividing by
sqrt(40) turns it into an RMS per-point distance in IOD units.

Temporal cost of candidate j, given the previous choice p (all terms in IOD units):

    cost(j) = shape(j) + (jump + look * appearance(j, p)) * [j not in {p, succ(p)}]
              - stay * [j == succ(p) or j == p]

- shape(j): RMS lip-point distance between the request and database mouth j.
- succ(p): the database entry holding the source-video frame right after p's frame.
  Following the source video shows real motion between consecutive real frames
  (teeth, tongue and skin move together), so it gets the same treatment as staying.
- jump: a switch to an unrelated frame costs this much (penalise jumps): a new
  mouth texture appears only when it fits the request clearly better.
- appearance(j, p): RMS difference of small mean-removed grey thumbnails of the two
  crops (0..1). Shape neighbours often come from other sentences, lighting or head
  turns (their thumbnails differ ~5x more than consecutive frames): a jump to a mouth
  that *looks* alike is cheap, a jump to a different-looking one is what flickers.
- stay (hysteresis): the current run keeps a margin, so two near-equal candidates
  never alternate frame to frame. With a constant request, once chosen the same
  entry (or a still better successor) wins every frame: no flicker.
p and succ(p) are always scored even when not among the k nearest.

The caller may add a per-candidate cost (`choose(coeffs, bias=...)`): the renderer uses it
for how well the crop's source frame suits the template frame it is pasted into (head
turn, skin light, face size; see renderer.SourceCost). It applies to every candidate,
current run included, so a run that drifts away from the template's conditions ends.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class RetrievalConfig:
    k: int = 16  # nearest candidates from FAISS
    # Tuned on GRID s1 held-out (true-landmark driving): jump 0.004 flickered (stability 1.22x real),
    # a flat 0.02 over-stretched mouths (sharpness 1.3x real); 0.008 + appearance gave 1.11 / 1.15.
    jump: float = 0.008  # IOD; ~4x MediaPipe jitter: the warp fixes the shape, a new texture must earn its place
    look: float = 0.25  # IOD per unit of thumbnail RMS difference (used when thumbnails are given)
    stay: float = 0.003  # IOD; hysteresis in favour of the current run
    # source conditions vs the template frame (renderer.SourceCost), in IOD per unit. Tuned on the
    # 720p clips left out one at a time (docs/renderer.md): light 0.0015 brings the idle loop's own
    # lip colour (lip ΔE 6.2 -> 2.2 where the loop comes from another recording) at an unchanged
    # face-aligned stability; 6x the pose weight restricted candidates too much (streaks, jumps).
    pose: float = 0.05  # per radian of out-of-plane head-turn difference
    light: float = 0.0015  # per ΔE (Lab) of skin colour difference
    scale: float = 0.01  # per octave the crop's source face is smaller than the template's (upscaling blur)
    # per IOD the crop's mouth is less open than the request: the warp can stretch lips, but not
    # invent the teeth and tongue of a mouth that was closed (it smears them into a dark blob)
    open_deficit: float = 0.3


class MouthRetriever:
    """k-NN over database coefficients + temporal cost. One instance per stream (it keeps state)."""

    def __init__(self, coeffs: np.ndarray, frames: np.ndarray, n_points: int = 40,
                 cfg: RetrievalConfig | None = None, thumbs: np.ndarray | None = None):
        import faiss

        self.cfg = cfg or RetrievalConfig()
        # one query per frame: OpenMP fan-out costs far more than the search (and spins on a busy CPU)
        faiss.omp_set_num_threads(1)
        self.db = np.ascontiguousarray(coeffs, np.float32)
        if len(self.db) == 0:
            raise ValueError("the mouth database is empty")
        self.norm = float(np.sqrt(n_points))
        self.index = faiss.IndexFlatL2(self.db.shape[1])
        self.index.add(self.db)
        # successor in the source video: the entry whose frame is frame+1, else -1
        frames = np.asarray(frames, np.int64)
        pos = {int(f): i for i, f in enumerate(frames)}
        self.succ = np.array([pos.get(int(f) + 1, -1) for f in frames], np.int64)
        self.k = min(self.cfg.k, len(self.db))
        self.thumbs = None if thumbs is None else np.ascontiguousarray(thumbs, np.float32)
        self.prev = -1

    def reset(self) -> None:
        self.prev = -1

    def nearest(self, coeffs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, RMS per-point distances) of the k nearest database shapes."""
        q = np.ascontiguousarray(np.asarray(coeffs, np.float32).reshape(1, -1))
        d2, ids = self.index.search(q, self.k)
        keep = ids[0] >= 0
        return ids[0][keep], np.sqrt(np.maximum(d2[0][keep], 0)) / self.norm

    def choose(self, coeffs: np.ndarray, bias=None) -> int:
        """Database index for this frame's requested shape (updates the temporal state).

        bias: optional callable ids -> (len(ids),) cost in IOD added to every candidate.
        """
        ids, dist = self.nearest(coeffs)
        q = np.asarray(coeffs, np.float32).ravel()
        p = self.prev
        if p >= 0:
            extra = [p] + ([int(self.succ[p])] if self.succ[p] >= 0 else [])
            extra = [e for e in extra if e not in set(ids.tolist())]
            if extra:
                e = np.array(extra, np.int64)
                ids = np.concatenate([ids, e])
                dist = np.concatenate([dist, np.linalg.norm(self.db[e] - q, axis=1) / self.norm])
            cont = (ids == p) | (ids == self.succ[p])
            jump = np.full(len(ids), self.cfg.jump)
            if self.thumbs is not None and self.cfg.look > 0:
                app = np.sqrt(((self.thumbs[ids] - self.thumbs[p]) ** 2).mean(1))
                jump += self.cfg.look * app
            cost = dist + np.where(cont, -self.cfg.stay, jump)
        else:
            cost = dist
        if bias is not None:
            cost = cost + bias(ids)
        # ties resolve to the lowest cost then lowest id: deterministic, so a constant input is stable
        j = int(ids[np.lexsort((ids, cost))[0]])
        self.prev = j
        return j
