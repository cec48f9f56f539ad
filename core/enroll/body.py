"""The body: every enrolled frame as a body frame, and a motion graph over them ("video textures").

The mouth is replaced at run time, so any usable frame of the footage can show the body. Frames
play in their own order; a *jump* i -> j is allowed where frame j looks like frame i + 1 (the frame
that would have come next): same head pose, same face landmarks outside the mouth, same image
with the mouth masked. A jump's visible change (i -> j) is at most a typical frame-to-frame change
of the footage itself, so cuts are as smooth as the footage. No jump leaves or lands inside a
blink. The grey thumbnails are blind to colour, so each frame's light (mean Lab over a coarse grid) is
compared too: a step into a take shot under another light is a cut in the footage, and no jump changes
the light by more than a just-noticeable amount; such takes fall out of the graph (reported as
`other_light_seconds`). A step whose light jumps within one frame is an edit of the footage (joined takes,
an exposure step): it still plays on, but no cross-fade spans it, or the fade would show the edit and the
jump at once (`hard_steps`). Frames that cannot keep going (ends of videos, before gaps) are pruned to the largest
strongly connected part, so a walk never gets stuck. Each frame is labelled speaking or listening
from the audio (`audio/activity`), which the walker (`render/body.py`) uses to follow the voice.

Storage: the kept frames as H.264 (`body.mp4`, short GOP so the player can seek) and the
per-frame geometry the renderer needs plus the graph (`body.npz`, docs/package_format.md).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from hygie.core.audio.activity import voice_activity
from hygie.core.errors import MediaError
from hygie.core.face import geometry as G

log = logging.getLogger(__name__)

# the landmarks the renderer reads from a body frame (mouth region, eyes' outer corners)
BODY_POINTS = np.unique(np.concatenate([G.MOUTH_REGION, G.LIPS_OUTER, G.MOUTH_SURROUND, np.array(G.EYE_OUTER)]))
# landmarks that describe the body outside the mouth (graph features): face oval, brows, eyes, nose
_MOUTH_SET = set(G.MOUTH_REGION.tolist())
FEATURE_POINTS = np.array([k for k in range(0, 468, 3) if k not in _MOUTH_SET], np.int64)


@dataclass
class BodyConfig:
    enabled: bool = True
    max_seconds: float | None = None  # keep at most this much footage (evenly spread blocks); None: all
    block_seconds: float = 6.0  # the blocks a capped body is made of
    crf: int = 24
    gop: int = 12  # frames between keyframes: a seek decodes at most this many frames
    preset: str = "faster"
    thumb: int = 32  # grey face thumbnail (pixels a side) used to compare frames
    neighbours: int = 6  # jumps kept per frame
    min_jump_s: float = 1.0  # a jump skips at least this much footage (3 s measured worse: fewer jumps, more replays)
    fade: int = 4  # a jump cross-fades over this many frames (0: a plain cut)
    smooth_quantile: float = 0.9  # a jump's change, spread over the fade, <= this quantile of the footage's steps
    spread_s: float = 0.0  # > 0: a frame's jumps land at least this far apart in the footage (0: the nearest)
    fade_gain: float = 1.0  # share of the fade's spread a jump may use (1: the whole fade + 1 steps, halved)
    loose: float = 1.0  # jumps up to this many times the threshold are kept (costlier: the walk prefers the others);
    # footage made of separate takes needs them, or its takes become islands the walk cannot leave
    cut_quantile: float = 0.7  # a plain cut (no footage left to fade from) <= this quantile
    footage_cut: float = 0.0  # > 0: a step this many times the footage's 95th percentile step is a cut in the
    # footage (no continuity across it). Off: on GRID (100 takes) it split the graph into islands
    blink_ratio: float = 0.55  # eyes "closed" below this fraction of their median opening
    blink_margin: int = 2  # frames around a blink (beyond the fade) where no jump starts or lands
    min_seconds: float = 4.0  # a graph keeping less footage than this (the idle loop's length) is not shipped
    # light (mean Lab of a 3x3 grid over the whole frame, delta E as RMS over the cells): the grey thumbnails
    # cannot see a take shot under another light or white balance, and a walk into it is a hard colour cut
    light_cut_de: float = 8.0  # a footage step changing the light this much is a cut in the footage (GRID:
    # takes of one light drift <= 5 apart; its other-light takes are 31 away)
    jump_de: float = 4.0  # a cross-faded jump changes the light at most this much (spread over fade + 1 steps)
    cut_de: float = 2.0  # a plain cut at most this much (about one just-noticeable difference)
    hard_step_de: float = 2.0  # a footage step changing the light this much in one frame is an edit (GRID: the
    # joins of its 3-s takes, 1 % of steps; motion's p99 is 0.3): continuity is kept, but no cross-fade spans it


@dataclass
class BodyPlan:
    frames: np.ndarray  # (L,) indices into track of the kept body frames, in footage order


def plan_body(usable: np.ndarray, video: np.ndarray, fps: float, cfg: BodyConfig) -> BodyPlan:
    """Which usable frames become body frames: all, or evenly spread blocks up to max_seconds."""
    idx = np.flatnonzero(usable)
    if cfg.max_seconds is None or len(idx) <= cfg.max_seconds * fps:
        return BodyPlan(idx.astype(np.int64))
    blk = max(1, int(cfg.block_seconds * fps))
    n_blocks = len(idx) // blk
    want = max(1, int(cfg.max_seconds * fps) // blk)
    pick = np.unique(np.linspace(0, n_blocks - 1, want).round().astype(int))
    frames = np.concatenate([idx[b * blk:(b + 1) * blk] for b in pick])
    return BodyPlan(frames.astype(np.int64))


def _face_box(landmarks: np.ndarray, rows: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int]:
    pts = landmarks[rows][:, :468, :2]
    lo = np.nanmedian(pts.min(1), axis=0)
    hi = np.nanmedian(pts.max(1), axis=0)
    c, half = (lo + hi) / 2, (hi - lo).max() * 0.7
    x0, y0 = np.maximum((c - half).astype(int), 0)
    x1, y1 = np.minimum((c + half).astype(int), size)
    return int(x0), int(y0), int(x1), int(y1)


def _mouth_mask(landmarks: np.ndarray, rows: np.ndarray, box: tuple[int, int, int, int], n: int) -> np.ndarray:
    """(n, n) bool: the thumbnail pixels where the mouth is pasted at run time (left out of comparisons)."""
    x0, y0, x1, y1 = box
    pts = landmarks[rows][:, G.MOUTH_REGION, :2]
    lo = np.nanpercentile(pts.min(1), 5, axis=0)
    hi = np.nanpercentile(pts.max(1), 95, axis=0)
    sx, sy = n / (x1 - x0), n / (y1 - y0)
    a = np.floor([(lo[0] - x0) * sx - 1, (lo[1] - y0) * sy - 1]).astype(int)
    b = np.ceil([(hi[0] - x0) * sx + 1, (hi[1] - y0) * sy + 1]).astype(int)
    m = np.zeros((n, n), bool)
    m[max(a[1], 0):min(b[1], n), max(a[0], 0):min(b[0], n)] = True
    return m


class _Encoder:
    """BGR frames -> H.264 mp4, frame k at pts k (time k / fps)."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float, cfg: BodyConfig):
        import av

        self.c = av.open(str(path), mode="w", format="mp4")
        rate = Fraction(fps).limit_denominator(1001)
        self.vs = self.c.add_stream("libx264", rate=rate)
        self.w, self.h = size[0] + size[0] % 2, size[1] + size[1] % 2  # yuv420p needs even sizes
        self.vs.width, self.vs.height = self.w, self.h
        self.vs.pix_fmt = "yuv420p"
        self.vs.codec_context.time_base = 1 / rate
        self.vs.options = {"crf": str(cfg.crf), "preset": cfg.preset, "g": str(cfg.gop),
                           "x264-params": f"keyint={cfg.gop}:min-keyint={cfg.gop}:scenecut=0"}
        self.n = 0

    def add(self, img: np.ndarray) -> None:
        import av

        if img.shape[1] != self.w or img.shape[0] != self.h:
            img = np.pad(img, ((0, self.h - img.shape[0]), (0, self.w - img.shape[1]), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
        vf.pts = self.n
        for p in self.vs.encode(vf):
            self.c.mux(p)
        self.n += 1

    def close(self) -> None:
        for p in self.vs.encode():
            self.c.mux(p)
        self.c.close()


LIGHT_GRID = 3  # cells a side of the light feature


def frame_light(img: np.ndarray) -> np.ndarray:
    """(LIGHT_GRID**2 * 3,) float32: mean Lab (L 0-100) of each cell of a coarse grid over a BGR frame."""
    import cv2

    n = LIGHT_GRID
    small = cv2.resize(img, (16 * n, 12 * n), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    lab = cv2.cvtColor(small, cv2.COLOR_BGR2Lab)
    return lab.reshape(n, 12, n, 16, 3).mean(axis=(1, 3)).reshape(-1).astype(np.float32)


def light_delta(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Delta E (CIE76) between light features, root-mean-square over the grid's cells; broadcasts over rows.
    (The RMS, not the mean, so that whole matrices of it are one `_dist` away.)"""
    d = np.asarray(a, np.float32) - np.asarray(b, np.float32)
    return np.linalg.norm(d, axis=-1) / LIGHT_GRID


def cut_body(srcs: list, landmarks: np.ndarray, plan: BodyPlan, out_mp4: Path, size: tuple[int, int], fps: float,
             cfg: BodyConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode the sources once more: encode the body frames into out_mp4; return (L, t*t) float32 grey
    thumbnails (mouth masked), (L, 3) the skin Lab around each frame's mouth and (L, 27) the frame's
    light (`frame_light`)."""
    import cv2

    from hygie.core.media.decode import iter_video_frames
    from hygie.core.render.conditions import LIP_MARGIN, skin_lab

    n = cfg.thumb
    box = _face_box(landmarks, plan.frames, size)
    mask = _mouth_mask(landmarks, plan.frames, box, n)
    L = len(plan.frames)
    thumbs = np.zeros((L, n * n), np.float32)
    lab = np.full((L, 3), np.nan, np.float32)
    light = np.zeros((L, LIGHT_GRID * LIGHT_GRID * 3), np.float32)
    enc = _Encoder(out_mp4, size, fps, cfg)
    pos = {int(k): j for j, k in enumerate(plan.frames)}
    base, done = 0, 0
    try:
        for s in srcs:
            nv = len(s.track.times)
            mine = [k for k in range(base, base + nv) if k in pos]
            if mine:
                times = s.track.times
                want = {k - base for k in mine}
                for t, img in iter_video_frames(s.path, end=getattr(s, "end", None)):
                    k = int(np.searchsorted(times, t - 0.25 / fps))
                    if k >= nv or abs(times[k] - t) > 0.5 / fps or k not in want:
                        continue
                    j = pos[base + k]
                    if j != done:
                        raise MediaError(f"{s.path}: frames came out of order on the body pass; the file changed "
                                         "or is damaged. Re-encode it (ffmpeg -i IN -c:v libx264 OUT.mp4) and enroll again.")
                    enc.add(img)
                    x0, y0, x1, y1 = box
                    g = cv2.cvtColor(img[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
                    th = cv2.resize(g, (n, n), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
                    th[mask] = 0.0
                    thumbs[j] = th.ravel()
                    light[j] = frame_light(img)
                    lm = landmarks[base + k]
                    iod = float(np.linalg.norm(lm[G.EYE_OUTER[0], :2] - lm[G.EYE_OUTER[1], :2]))
                    lab[j] = skin_lab(img, lm[G.MOUTH_REGION, :2], lm[G.LIPS_OUTER, :2], LIP_MARGIN * iod)
                    done += 1
            base += nv
    finally:
        enc.close()
    if done != L:
        raise MediaError(f"only {done} of {L} body frames could be decoded a second time; the file changed or is "
                         "corrupt. Enroll again from an intact copy.")
    return thumbs, lab, light


def _features(thumbs: np.ndarray, points: np.ndarray, succ: np.ndarray, dims: int = 96) -> np.ndarray:
    """Frame features where one typical frame-to-frame step of each part (image, landmarks) weighs 1."""
    has = succ >= 0
    parts = []
    for x in (thumbs, points):
        x = x.astype(np.float32)
        step = np.linalg.norm(x[has] - x[succ[has]], axis=1) if has.any() else np.ones(1)
        scale = float(np.median(step)) or 1.0
        parts.append(x / scale)
    F = np.concatenate(parts, axis=1)
    F -= F.mean(0)
    if F.shape[1] > dims:
        rng = np.random.default_rng(0)
        sub = F[rng.choice(len(F), min(len(F), 3000), replace=False)]
        _, _, vt = np.linalg.svd(sub, full_matrices=False)
        F = F @ vt[:dims].T
    return np.ascontiguousarray(F, np.float32)


def _dist(A: np.ndarray, B: np.ndarray, b2: np.ndarray) -> np.ndarray:
    d2 = (A * A).sum(1)[:, None] + b2[None, :] - 2.0 * (A @ B.T)
    return np.sqrt(np.maximum(d2, 0.0))


def strongly_connected_largest(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(n,) bool: the largest strongly connected component of the directed graph (iterative Tarjan)."""
    order = np.argsort(src, kind="stable")
    s, d = src[order], dst[order]
    start = np.searchsorted(s, np.arange(n + 1))
    index = np.full(n, -1, np.int64)
    low = np.zeros(n, np.int64)
    on = np.zeros(n, bool)
    stack: list[int] = []
    comp = np.full(n, -1, np.int64)
    nc, counter = 0, 0
    for root in range(n):
        if index[root] >= 0:
            continue
        work = [(root, start[root])]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on[root] = True
        while work:
            v, e = work[-1]
            if e < start[v + 1]:
                work[-1] = (v, e + 1)
                w = int(d[e])
                if index[w] < 0:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on[w] = True
                    work.append((w, start[w]))
                elif on[w]:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    u = work[-1][0]
                    low[u] = min(low[u], low[v])
                if low[v] == index[v]:
                    while True:
                        w = stack.pop()
                        on[w] = False
                        comp[w] = nc
                        if w == v:
                            break
                    nc += 1
    if nc == 0:
        return np.zeros(n, bool)
    sizes = np.bincount(comp, minlength=nc)
    return comp == int(np.argmax(sizes))


def blink_frames(eye_open: np.ndarray, ratio: float, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """(closed, near): eyes closed in the frame; within `margin` frames of a closed one (or unknown)."""
    e = np.asarray(eye_open, np.float64)
    med = np.nanmedian(e) if np.isfinite(e).any() else 1.0
    closed = np.nan_to_num(e, nan=0.0) < ratio * med
    near = closed.copy()
    for k in range(1, margin + 1):
        near[k:] |= closed[:-k]
        near[:-k] |= closed[k:]
    return closed, near | ~np.isfinite(e)


def drop_footage_cuts(thumbs: np.ndarray, points: np.ndarray, succ: np.ndarray, cfg: BodyConfig,
                      light: np.ndarray | None = None) -> np.ndarray:
    """Successors without the footage's own cuts (an edited or concatenated recording): a step far larger
    than the footage's usual ones is not continuous motion, and the walk should not copy it. A step into
    another light (a take under other lamps or white balance) is always such a cut."""
    has = np.flatnonzero(succ >= 0)
    if not len(has):
        return succ
    out = succ.copy()
    if cfg.footage_cut > 0:
        F = _features(thumbs, points, succ)
        step = np.linalg.norm(F[has] - F[succ[has]], axis=1)
        cut = step > cfg.footage_cut * np.quantile(step, 0.95)
        out[has[cut]] = -1
        if cut.any():
            log.info("body: %d cuts in the footage itself (no continuity across them)", int(cut.sum()))
    if light is not None and cfg.light_cut_de > 0:
        # a step between the footage's majority light and another one; a large step within one light is
        # usually the person moving across the grid's cells (GRID: 3 of 11 steps > 8 dE), not a new light
        other = light_delta(light, np.median(light, axis=0)) > cfg.light_cut_de
        cut = other[has] != other[succ[has]]
        out[has[cut]] = -1
        if cut.any():
            log.info("body: %d changes of light in the footage (no continuity across them)", int(cut.sum()))
    return out


def other_light_frames(light: np.ndarray, alive: np.ndarray, de: float) -> np.ndarray:
    """(L,) bool: frames left out of the graph whose light is further than `de` from the kept part's median."""
    if not alive.any():
        return np.zeros(len(light), bool)
    ref = np.median(light[alive], axis=0)
    return ~alive & (light_delta(light, ref) > de)


def hard_steps(light: np.ndarray, succ: np.ndarray, de: float) -> np.ndarray:
    """(L,) bool: the step from i to succ[i] changes the light by more than `de` (an edit in the footage)."""
    out = np.zeros(len(succ), bool)
    has = succ >= 0
    if de > 0 and has.any():
        out[has] = light_delta(light[has], light[succ[has]]) > de
    return out


def run_ahead(succ: np.ndarray) -> np.ndarray:
    """(L,) how many footage frames follow each frame without a gap."""
    out = np.zeros(len(succ), np.int64)
    for i in range(len(succ) - 1, -1, -1):
        if succ[i] >= 0:
            out[i] = out[succ[i]] + 1
    return out


def build_graph(thumbs: np.ndarray, points: np.ndarray, succ: np.ndarray, near_blink: np.ndarray, fps: float,
                cfg: BodyConfig, light: np.ndarray | None = None,
                hard: np.ndarray | None = None) -> dict[str, np.ndarray | float]:
    """Jumps i -> j where j looks like i's successor.

    A jump from a frame with `fade` footage frames ahead cross-fades (the old stretch fades out while
    j's plays in), so its change is spread over fade + 1 steps: allowed up to that many times the
    footage's own step (its `smooth_quantile`), halved for safety. A frame at the end of a stretch
    can only cut, allowed up to the footage's `cut_quantile` step. With `light`, a jump also keeps the
    light: within cfg.jump_de (faded) or cfg.cut_de (cut), so another light's takes become islands."""
    L = len(succ)
    F = _features(thumbs, points, succ)
    f2 = (F * F).sum(1)
    has = succ >= 0
    nat = np.linalg.norm(F[has] - F[succ[has]], axis=1)
    q_fade = float(np.quantile(nat, cfg.smooth_quantile)) if len(nat) else 0.0
    tau_fade = q_fade * max(1.0, cfg.fade_gain * (cfg.fade + 1) / 2)
    tau_cut = float(np.quantile(nat, cfg.cut_quantile)) if len(nat) else 0.0
    # no cross-fade runs over a hard step of the footage (`hard`: its own edits): the fade would show
    # that cut and the jump at once
    ahead = run_ahead(succ if hard is None else np.where(hard, -1, succ))
    can_fade = ahead >= max(cfg.fade, 1) if cfg.fade > 0 else np.zeros(L, bool)
    # a target must play on through the fade
    ok_target = ~near_blink & (ahead >= cfg.fade)
    # near a blink within the fade: the fading-out stretch must not blink either
    blocked = near_blink.copy()
    for k in range(1, cfg.fade + 1):
        blocked[:-k] |= near_blink[k:]
    min_jump = max(2, int(cfg.min_jump_s * fps))
    pos = np.arange(L)
    if light is not None:
        Lf = np.ascontiguousarray(light, np.float32)
        l2 = (Lf * Lf).sum(1)
    src_l, dst_l, cost_l, fade_l = [], [], [], []
    for a in range(0, L, 256):
        rows = np.arange(a, min(L, a + 256))
        vis = _dist(F[rows], F, f2)  # what the viewer sees on a cut: i then j
        nxt = np.where(has[rows], succ[rows], rows)
        dyn = _dist(F[nxt], F, f2)  # j against the frame that would have come
        fade = can_fade[rows][:, None]
        cost = np.where(fade, dyn / (tau_fade or 1.0), vis / (tau_cut or 1.0))
        bad = (cost > cfg.loose) | ~ok_target[None, :] | blocked[rows][:, None]
        bad |= np.abs(pos[None, :] - nxt[:, None]) < min_jump
        if light is not None:
            de = np.where(fade, _dist(Lf[nxt], Lf, l2) / LIGHT_GRID, _dist(Lf[rows], Lf, l2) / LIGHT_GRID)
            bad |= de > np.where(fade, cfg.jump_de, cfg.cut_de)
        cost = np.where(bad, np.inf, cost)
        k = min(cfg.neighbours, L - 1)
        if k <= 0:
            continue
        # the best targets, at most one per `spread_s` of footage: the nearest frames are often of the
        # same moment, and jumps that only go back a little make loops, and islands the walk cannot leave
        m = min(L - 1, 8 * k)
        cand = np.argpartition(cost, m - 1, axis=1)[:, :m]
        cc = np.take_along_axis(cost, cand, 1)
        order = np.argsort(cc, axis=1, kind="stable")
        cand, cc = np.take_along_axis(cand, order, 1), np.take_along_axis(cc, order, 1)
        bucket = cand // max(1, int(cfg.spread_s * fps))
        for r in range(len(rows)):
            seen: set[int] = set()
            for q in range(m):
                if not np.isfinite(cc[r, q]) or len(seen) >= k:
                    break
                bk = int(bucket[r, q])
                if bk in seen:
                    continue
                seen.add(bk)
                src_l.append(rows[r:r + 1])
                dst_l.append(cand[r, q:q + 1])
                cost_l.append(cc[r, q:q + 1].astype(np.float32))
    js = np.concatenate(src_l) if src_l else np.zeros(0, np.int64)
    jd = np.concatenate(dst_l) if dst_l else np.zeros(0, np.int64)
    jc = np.concatenate(cost_l) if cost_l else np.zeros(0, np.float32)
    all_s = np.concatenate([pos[has], js])
    all_d = np.concatenate([succ[has], jd])
    alive = strongly_connected_largest(L, all_s.astype(np.int64), all_d.astype(np.int64))
    keep = alive[js] & alive[jd]
    js, jd, jc = js[keep], jd[keep], jc[keep]
    # a faded jump needs its fading-out stretch alive too
    jf = can_fade[js]
    if cfg.fade > 0:
        tail = js.copy()
        for _ in range(cfg.fade):
            tail = np.where(tail >= 0, succ[np.maximum(tail, 0)], -1)
            jf &= (tail >= 0) & alive[np.maximum(tail, 0)]
    return dict(alive=alive, jump_from=js.astype(np.int64), jump_to=jd.astype(np.int64), jump_cost=jc,
                jump_fade=jf, tau=tau_fade)


def body_arrays(srcs: list, landmarks: np.ndarray, pose: np.ndarray, lips_z: np.ndarray, eye_open: np.ndarray,
                video: np.ndarray, plan: BodyPlan, out_mp4: Path, size: tuple[int, int], fps: float, sr: int,
                cfg: BodyConfig) -> tuple[dict[str, np.ndarray], dict] | tuple[None, None]:
    """Encode the body frames to out_mp4 and build body.npz's arrays and avatar.json's `body` facts.

    (None, None) when the graph keeps under cfg.min_seconds of footage (the caller drops out_mp4)."""
    fr = plan.frames
    L = len(fr)
    thumbs, lab, light = cut_body(srcs, landmarks, plan, out_mp4, size, fps, cfg)
    # continuity: the next kept frame is the next footage frame of the same video
    succ = np.full(L, -1, np.int64)
    cont = (fr[1:] == fr[:-1] + 1) & (video[fr[1:]] == video[fr[:-1]])
    succ[:-1][cont] = np.arange(1, L)[cont]
    iod = np.nanmedian(np.linalg.norm(landmarks[fr][:, G.EYE_OUTER[0], :2] - landmarks[fr][:, G.EYE_OUTER[1], :2], axis=1))
    pts = (landmarks[fr][:, FEATURE_POINTS, :2] / iod).reshape(L, -1).astype(np.float32)
    closed, near = blink_frames(eye_open[fr], cfg.blink_ratio, cfg.blink_margin)
    succ = drop_footage_cuts(thumbs, pts, succ, cfg, light)
    hard = hard_steps(light, succ, cfg.hard_step_de)
    g = build_graph(thumbs, pts, succ, near, fps, cfg, light, hard)
    # speaking / listening: the voice in each frame's own audio
    speaking = np.zeros(L, bool)
    base = 0
    for vi, s in enumerate(srcs):
        nv = len(s.track.times)
        act = voice_activity(s.audio, sr, fps, nv)
        m = (fr >= base) & (fr < base + nv)
        speaking[m] = act[fr[m] - base]
        base += nv
    alive = g["alive"]
    other_light = other_light_frames(light, alive, cfg.light_cut_de)
    if other_light.any():
        log.warning("body: %.1f s of the footage were shot under another light (delta E > %.0f from the rest) and are "
                    "left out of the body; a walk into them would be a hard colour cut. Record under one light "
                    "(or enroll that session as its own avatar) to use them.", other_light.sum() / fps,
                    cfg.light_cut_de)
    arrays = dict(frame=fr.astype(np.int64), landmark_ids=BODY_POINTS.astype(np.int64),
                  landmarks=(np.round(landmarks[fr][:, BODY_POINTS, :2] * 16) / 16).astype(np.float32),  # 1/16 px: compresses
                  pose=pose[fr].astype(np.float32), lips_z=lips_z[fr].astype(np.float32), skin_lab=lab,
                  eye_open=eye_open[fr].astype(np.float32), blink=closed, speaking=speaking, alive=alive,
                  next=succ, jump_from=g["jump_from"], jump_to=g["jump_to"], jump_cost=g["jump_cost"],
                  jump_fade=g["jump_fade"], fade=np.array(cfg.fade, np.int64), hard=hard)
    if alive.sum() < cfg.min_seconds * fps:
        # too little steady footage for a body that does not visibly repeat: the renderer then uses the idle loop
        log.warning("body: the motion graph kept %.1f s of footage (< %.0f s); this avatar gets the idle loop only. "
                    "A steadier few minutes facing the camera give it a living body.", alive.sum() / fps,
                    cfg.min_seconds)
        return None, None
    facts = {"frames": int(L), "alive": int(alive.sum()), "seconds": round(float(alive.sum() / fps), 1),
             "jumps": int(len(g["jump_from"])), "speaking_share": round(float(speaking[alive].mean()), 3),
             "other_light_seconds": round(float(other_light.sum() / fps), 1), "hard_steps": int(hard.sum()),
             "fade": cfg.fade, "crf": cfg.crf, "gop": cfg.gop, "smooth_tau": round(float(g["tau"]), 4)}
    log.info("body: %d frames (%d in the graph, %.0f s), %d jumps, %.0f%% speaking", L, facts["alive"],
             facts["seconds"], facts["jumps"], 100 * facts["speaking_share"])
    return arrays, facts
