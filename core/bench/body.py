"""`hygie bench body`: is the body alive for a whole call? The motion graph against the old idle loop.

Everything is computed from the frame indices each would show (the walker is deterministic), so a
30-minute "render" costs seconds, not an encode:
- repetition: the share of 2-s windows of body frames (one starting every second) whose exact
  sequence of frames was already shown within the previous 10 minutes;
- transition smoothness: p95 of the frame-to-frame change (mean absolute grey difference, mouth
  box left out, at a quarter of the size) where the shown order leaves the footage's own order,
  against the p95 of the footage's own consecutive frames;
- head-pose speed (degrees of head rotation per second) while voice is present and while silent,
  against the real footage's speaking and listening frames;
- blink rate (eyes closing, per minute) against the footage's;
- light: the colour change (delta E of the whole frame's light, `enroll/body.frame_light`) at
  transitions, p95, against the footage's own steps; and the share of the time spent showing footage
  under another light (> `BodyConfig.light_cut_de` from the body's median): a walk into another take's
  light is a hard colour cut the grey measures above cannot see.
The voice pattern is synthetic and seeded: speech bursts of 2-12 s and pauses of 0.5-6 s.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from hygie.core.face import geometry as G

log = logging.getLogger(__name__)

TARGETS = {"repeat_share": "< 1 %", "smooth_ratio": "<= 1.2", "speed_speaking": "0.8-1.2",
           "speed_silent": "0.8-1.2", "blink_ratio": "0.75-1.25"}


def voice_pattern(minutes: float, fps: float, seed: int = 0, speech_s: tuple[float, float] = (2.0, 12.0),
                  pause_s: tuple[float, float] = (0.5, 6.0)) -> np.ndarray:
    """(ticks,) bool: varied speech with pauses."""
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * fps)
    out = np.zeros(n, bool)
    t = int(rng.uniform(*pause_s) * fps)
    while t < n:
        d = int(rng.uniform(*speech_s) * fps)
        out[t:t + d] = True
        t += d + int(rng.uniform(*pause_s) * fps)
    return out


def repeat_share(frames: np.ndarray, fps: float, window_s: float = 2.0, within_s: float = 600.0,
                 step_s: float = 1.0) -> float:
    """Share of window_s windows (one every step_s) whose exact frame sequence was shown within within_s before."""
    w, step, within = int(window_s * fps), max(1, int(step_s * fps)), int(within_s * fps)
    seen: dict[bytes, int] = {}
    starts = range(0, len(frames) - w + 1, step)
    # every start (not only the sampled ones) is remembered, so a repeat at any offset counts
    rep, total = 0, 0
    sampled = set(starts)
    f = np.ascontiguousarray(frames, np.int64)
    for s in range(0, len(frames) - w + 1):
        key = f[s:s + w].tobytes()
        if s in sampled:
            total += 1
            prev = seen.get(key)
            if prev is not None and s - prev <= within:
                rep += 1
        seen[key] = s
    return rep / max(total, 1)


def rotation_step_deg(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """Angle (degrees) of the head rotation between poses pa and pb (each (N, 13))."""
    Ra = pa[:, 1:10].reshape(-1, 3, 3)
    Rb = pb[:, 1:10].reshape(-1, 3, 3)
    tr = np.einsum("nij,nij->n", Ra, Rb)
    return np.degrees(np.arccos(np.clip((tr - 1) / 2, -1.0, 1.0)))


def blink_onsets(eye_open: np.ndarray, ref: float, ratio: float = 0.5, merge: int = 4) -> int:
    """Blinks in a sequence of frames: runs of eyes closed (below ratio x the footage's median opening),
    runs closer than `merge` frames counted as one."""
    e = np.nan_to_num(np.asarray(eye_open, np.float64), nan=np.inf)
    closed = np.flatnonzero(e < ratio * ref)
    if not len(closed):
        return 0
    return int(1 + (np.diff(closed) > merge).sum())


def smooth_pose(pose: np.ndarray, video: np.ndarray, half: int = 3) -> np.ndarray:
    """Poses averaged over +-half frames of the same video: the landmark tracker's frame-to-frame
    jitter (about 0.5 degree) would otherwise count as head motion."""
    p = np.nan_to_num(np.asarray(pose, np.float64))
    out = p.copy()
    k = 2 * half + 1
    for v in np.unique(video):
        rows = np.flatnonzero(video == v)
        if len(rows) < k:
            continue
        x = p[rows]
        c = np.cumsum(np.vstack([np.zeros((1, x.shape[1])), x]), axis=0)
        m = (c[k:] - c[:-k]) / k
        out[rows[half:len(rows) - half]] = m
    # an average of rotations is not one: back to the nearest rotation (polar decomposition)
    u, _, vt = np.linalg.svd(out[:, 1:10].reshape(-1, 3, 3))
    out[:, 1:10] = (u @ vt).reshape(-1, 9)
    return out


@dataclass
class Shown:
    """What a body (graph walk or idle loop) shows per tick: local frame `idx`, and during cross-fades
    `fade` (-1: none) at weight `w`; `cut` marks the ticks whose change from the previous one is not
    the footage's own; `track` maps local frames to track frames."""

    idx: np.ndarray
    fade: np.ndarray
    w: np.ndarray
    cut: np.ndarray  # (T-1,)
    track: np.ndarray


def _thumbs(read_all, n: int, mouth_box: tuple[int, int, int, int], scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(n, h, w) uint8 grey thumbnails with the mouth box blanked, (n, 27) each frame's light."""
    import cv2

    from hygie.core.enroll.body import frame_light

    out = None
    light = None
    x0, y0, x1, y1 = mouth_box
    for k, img in enumerate(read_all()):
        if k >= n:
            break
        li = frame_light(img)
        if light is None:
            light = np.zeros((n, len(li)), np.float32)
        light[k] = li
        g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        g[y0:y1, x0:x1] = 0
        t = cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if out is None:
            out = np.zeros((n, *t.shape), np.uint8)
        out[k] = t
    return out, light


def _mouth_box(points: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int]:
    lo = np.nanpercentile(points.min(1), 2, axis=0)
    hi = np.nanpercentile(points.max(1), 98, axis=0)
    pad = 0.15 * (hi - lo)
    x0, y0 = np.maximum((lo - pad).astype(int), 0)
    x1, y1 = np.minimum((hi + pad).astype(int) + 1, size)
    return int(x0), int(y0), int(x1), int(y1)


def _change(th: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([np.abs(th[i].astype(np.int16) - th[j].astype(np.int16)).mean() for i, j in zip(a, b)])


def _shown_change(th: np.ndarray, sh: Shown, ticks: np.ndarray) -> np.ndarray:
    """Mean absolute grey change from tick t to t + 1 of what is shown (cross-fades blended)."""
    def img(t: int) -> np.ndarray:
        a = th[sh.idx[t]].astype(np.float32)
        if sh.fade[t] >= 0:
            a = (1 - sh.w[t]) * a + sh.w[t] * th[sh.fade[t]].astype(np.float32)
        return a

    return np.array([np.abs(img(t + 1) - img(t)).mean() for t in ticks])


def _shown_light(light: np.ndarray, sh: Shown) -> np.ndarray:
    """(T, 27) the light of what is shown at each tick (a cross-fade's Lab taken as the blend's)."""
    out = light[sh.idx].copy()
    f = sh.fade >= 0
    out[f] = (1 - sh.w[f, None]) * out[f] + sh.w[f, None] * light[sh.fade[f]]
    return out


def measure(sh: Shown, voice: np.ndarray, thumbs: np.ndarray, pose: np.ndarray, eye_open: np.ndarray,
            ref: dict, fps: float, light: np.ndarray | None = None) -> dict:
    """Figures of one body against the footage's reference figures (`footage_reference`)."""
    tr = sh.track[sh.idx]
    T = len(tr)
    res: dict = {"minutes": round(T / fps / 60, 1), "repeat_share": repeat_share(tr, fps)}
    cut_ticks = np.flatnonzero(sh.cut)
    ch = _shown_change(thumbs, sh, cut_ticks) if len(cut_ticks) else np.zeros(0)
    starts = sh.cut & ~np.concatenate([[False], sh.cut[:-1]])
    res["cuts_per_min"] = round(float(starts.sum()) / (T / fps / 60), 1)
    res["cut_change_p95"] = float(np.percentile(ch, 95)) if len(ch) else 0.0
    res["smooth_ratio"] = res["cut_change_p95"] / ref["step_change_p95"]
    rot = rotation_step_deg(pose[tr[:-1]], pose[tr[1:]]) * fps
    v = voice[1:]
    res["speed_speaking_deg_s"] = float(np.nanmean(rot[v])) if v.any() else float("nan")
    res["speed_silent_deg_s"] = float(np.nanmean(rot[~v])) if (~v).any() else float("nan")
    res["speed_speaking"] = res["speed_speaking_deg_s"] / ref["speed_speaking_deg_s"]
    res["speed_silent"] = res["speed_silent_deg_s"] / ref["speed_listening_deg_s"]
    res["blinks_per_min"] = blink_onsets(eye_open[tr], ref["eye_median"]) / (T / fps / 60)
    res["blink_ratio"] = res["blinks_per_min"] / ref["blinks_per_min"]
    if light is not None:
        from hygie.core.enroll.body import BodyConfig, light_delta

        shown = _shown_light(light, sh)
        de = light_delta(shown[cut_ticks + 1], shown[cut_ticks]) if len(cut_ticks) else np.zeros(0)
        res["light_cut_de_p95"] = float(np.percentile(de, 95)) if len(de) else 0.0
        res["light_cut_de_max"] = float(de.max()) if len(de) else 0.0
        res["light_ratio"] = res["light_cut_de_p95"] / max(ref["light_step_de_p95"], 1e-6)
        other = light_delta(light[sh.idx], np.asarray(ref["light_median"], np.float32)) > BodyConfig.light_cut_de
        res["other_light_share"] = float(other.mean())
    return res


def footage_reference(track: dict, body: dict, thumbs: np.ndarray, pose: np.ndarray, fps: float,
                      light: np.ndarray | None = None) -> dict:
    """The real footage's own figures: the body frames in their recorded order (`pose` smoothed)."""
    nxt = body["next"]
    alive = body["alive"].astype(bool)
    i = np.flatnonzero((nxt >= 0) & alive)
    j = nxt[i]
    fr = body["frame"]
    rot = rotation_step_deg(pose[fr[i]], pose[fr[j]]) * fps
    sp = body["speaking"][i].astype(bool)
    e = track["eye_open"]
    usable = track["usable"].astype(bool)
    med = float(np.nanmedian(e[usable]))
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(len(i), min(len(i), 4000), replace=False))
    steps = np.array([np.abs(thumbs[a].astype(np.float32) - thumbs[b].astype(np.float32)).mean()
                      for a, b in zip(i[sample], j[sample])])
    ev = np.where(usable, e, np.nan)
    lt = {}
    if light is not None:
        from hygie.core.enroll.body import light_delta

        # the majority light of the footage (all body frames, kept or not), and its own frame-to-frame steps
        lt = {"light_median": np.median(light, axis=0).round(3).tolist(),
              "light_step_de_p95": float(np.percentile(light_delta(light[i], light[j]), 95))}
    return {**lt, "step_change_p95": float(np.percentile(steps, 95)), "step_change_p50": float(np.median(steps)),
            "speed_speaking_deg_s": float(np.nanmean(rot[sp])), "speed_listening_deg_s": float(np.nanmean(rot[~sp])),
            "eye_median": med, "blinks_per_min": blink_onsets(ev[fr[alive]], med) / (alive.sum() / fps / 60)}


def run(avatar, minutes: float = 30.0, seed: int = 0) -> dict:
    """The motion graph's figures and the idle loop's, for the same voice pattern."""
    from hygie.core.enroll.body import BodyConfig, hard_steps
    from hygie.core.render.body import BodyVideo, walk
    from hygie.core.render.jpeg import decode_jpeg_blob
    from hygie.core.render.template import landmark_points, pingpong_index

    if not (avatar.has("body.npz") and avatar.has("body.mp4")):
        raise ValueError(f"{avatar.path}: has no body (body.npz, body.mp4); re-run 'hygie enroll' with this version")
    fps = avatar.fps
    body = avatar.arrays("body.npz")
    track = avatar.track
    L = len(body["frame"])
    size = avatar.frame_size
    scale = min(1.0, 160.0 / size[0]) if size[0] > 400 else 0.25
    box = _mouth_box(landmark_points(body, G.MOUTH_REGION), size)
    video = BodyVideo(str(avatar.file("body.mp4")), fps, size)

    def read_body():
        for k in range(L):
            yield video.read(k)

    th_body, light = _thumbs(read_body, L, box, scale)
    video.close()
    pose = smooth_pose(track["pose"], track["video"])
    ref = footage_reference(track, body, th_body, pose, fps, light)
    voice = voice_pattern(minutes, fps, seed)
    idx, fade, w = walk(body, fps, voice)
    nxt = body["next"]
    cut = ~((fade[:-1] < 0) & (fade[1:] < 0) & (nxt[idx[:-1]] == idx[1:]))
    graph = measure(Shown(idx, fade, w, cut, body["frame"]), voice, th_body, pose, track["eye_open"], ref, fps, light)
    # the footage's own edits (take joins) the walk played through: each shows as a jump cut of the whole
    # frame. Packages from before `hard` was stored: the edits found in the decoded body
    hard = (body["hard"].astype(bool) if "hard" in body
            else hard_steps(light, nxt, BodyConfig().hard_step_de)) & (nxt >= 0)
    played = ~cut & hard[idx[:-1]]  # plain footage steps (no jump, no fade) across an edit
    alive = body["alive"].astype(bool)
    graph["edits_per_min"] = float(played.sum()) / (len(idx) / fps / 60)
    ref["edits_per_min"] = float((hard & alive).sum()) / (alive.sum() / fps / 60)
    # the old idle loop of the same package, ping-pong: its "cuts" are its turns
    t = avatar.template
    n = len(t["frame"])

    def read_tpl():
        for k in range(n):
            yield decode_jpeg_blob(t["jpeg"], t["offsets"], k)

    th_tpl, _ = _thumbs(read_tpl, n, box, scale)
    pp = np.array([pingpong_index(k, n) for k in range(len(voice))], np.int64)
    d = np.diff(pp)
    turn = np.concatenate([[False], d[1:] != d[:-1]])
    none = np.full(len(pp), -1, np.int64)
    loop = measure(Shown(pp, none, np.zeros(len(pp), np.float32), turn, t["frame"]), voice, th_tpl, pose,
                   track["eye_open"], ref, fps)
    return {"avatar": str(avatar.path), "fps": fps, "body_frames": int(body["alive"].sum()),
            "body_seconds": round(float(body["alive"].sum() / fps), 1), "jumps": int(len(body["jump_from"])),
            "footage": ref, "graph": graph, "idle_loop": loop, "voice_share": float(voice.mean())}


def format_result(r: dict) -> str:
    f, g, o = r["footage"], r["graph"], r["idle_loop"]
    rows = [
        ("2-s windows recurring within 10 min", f"{100 * g['repeat_share']:.2f} %", f"{100 * o['repeat_share']:.1f} %", "< 1 %"),
        ("transition p95 change / footage p95", f"{g['smooth_ratio']:.2f}", f"{o['smooth_ratio']:.2f}", "<= 1.2"),
        ("head speed speaking / real speaking", f"{g['speed_speaking']:.2f} ({g['speed_speaking_deg_s']:.1f} deg/s)",
         f"{o['speed_speaking']:.2f} ({o['speed_speaking_deg_s']:.1f} deg/s)", "0.8-1.2"),
        ("head speed silent / real listening", f"{g['speed_silent']:.2f} ({g['speed_silent_deg_s']:.1f} deg/s)",
         f"{o['speed_silent']:.2f} ({o['speed_silent_deg_s']:.1f} deg/s)", "0.8-1.2"),
        ("blink rate / footage", f"{g['blink_ratio']:.2f} ({g['blinks_per_min']:.1f}/min)",
         f"{o['blink_ratio']:.2f} ({o['blinks_per_min']:.1f}/min)", "0.75-1.25"),
        ("light change at transitions, p95 / footage p95",
         f"{g['light_ratio']:.2f} ({g['light_cut_de_p95']:.2f} dE, max {g['light_cut_de_max']:.1f})", "", "<= 1.2"),
        ("time under another light", f"{100 * g['other_light_share']:.1f} %", "", "0 %"),
        ("edits of the footage shown per minute (footage's own)",
         f"{g['edits_per_min']:.2f} ({f['edits_per_min']:.1f})", "", ""),
        ("jumps (graph) / turns (loop) per minute", f"{g['cuts_per_min']:.0f}", f"{o['cuts_per_min']:.0f}", ""),
    ]
    head = (f"body: {r['body_seconds']} s of footage in the graph, {r['jumps']} jumps; {g['minutes']} min walk, voice {100 * r['voice_share']:.0f} % "
            f"of the time; footage: speaking {f['speed_speaking_deg_s']:.1f} deg/s, listening "
            f"{f['speed_listening_deg_s']:.1f} deg/s, {f['blinks_per_min']:.1f} blinks/min, step p95 {f['step_change_p95']:.2f}")
    w = [max(len(x[k]) for x in rows + [("measure", "motion graph", "idle loop", "target")]) for k in range(4)]
    lines = [head, " | ".join(h.ljust(w[k]) for k, h in enumerate(("measure", "motion graph", "idle loop", "target")))]
    lines += [" | ".join(c.ljust(w[k]) for k, c in enumerate(row)) for row in rows]
    return "\n".join(lines)
