"""`hygie enroll`: talking-head video(s) -> verified avatar package.

Pass 1 runs FaceMesh on every frame (worker processes); the alignment, PCA, audio
features and the template choice are computed from landmarks alone; pass 2 decodes
again to cut the mouth crops and the template frames (so nothing holds the whole
video in memory).
"""
from __future__ import annotations

import datetime as _dt
import errno
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hygie.core import geometry as G
from hygie.core.errors import HygieError, MediaError
from hygie.core.landmark_pass import LandmarkTrack, track_video
from hygie.core.enroll_crops import cut_video
from hygie.core.media import load_audio, probe_video
from hygie.core.mel import LogMel, MelConfig
from hygie.core.package import PackageWriter, save_npz, sha256_file
from hygie.core.render.conditions import LIP_MARGIN, source_light

log = logging.getLogger(__name__)

MIN_USABLE_S = 60.0
RECOMMENDED_S = 180.0
LICENCE_NOTE = (
    "This avatar reproduces a real person. Use it only with that person's consent, "
    "and never to deceive others about who is speaking."
)


@dataclass
class EnrollConfig:
    variance_target: float = 0.97
    max_components: int = 12
    template_seconds: float = 10.0
    crop_margin: float = 0.12  # IOD units around the mouth region
    jpeg_quality: int = 92
    template_jpeg_quality: int = 94
    workers: int | None = None
    max_mouths: int | None = None  # keep at most this many database frames (evenly spread)
    with_features: bool = True  # audio features for training (drop to ship a slim runtime package)
    licence: str = ""
    min_usable_s: float = MIN_USABLE_S  # lowered only for tests and demos on short clips
    mel: MelConfig = field(default_factory=MelConfig)


@dataclass
class Source:
    path: Path
    fps: float
    size: tuple[int, int]
    track: LandmarkTrack
    audio: np.ndarray
    sha256: str


def _time_ranges(mask: np.ndarray, times: np.ndarray, min_len: float = 0.5) -> list[tuple[float, float]]:
    """Contiguous runs of True as (start, end) seconds, at least `min_len` long."""
    out = []
    idx = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    for a, b in zip(idx[::2], idx[1::2]):
        t0, t1 = times[a], times[b - 1]
        if t1 - t0 >= min_len:
            out.append((float(t0), float(t1)))
    return out


def _fmt_ranges(r: list[tuple[float, float]], limit: int = 6) -> str:
    s = ", ".join(f"{a:.1f}–{b:.1f} s" for a, b in r[:limit])
    return s + (f" and {len(r) - limit} more" if len(r) > limit else "")


def damaged_frames(track: LandmarkTrack) -> np.ndarray:
    """Grey or blocky decoder garbage, relative to the video's own typical frame."""
    grey_base = np.median(track.grey)
    block_base = np.median(track.block)
    return (track.grey - grey_base > 0.15) | (track.block > max(2.2, 1.8 * block_base))


def subsample_in_runs(idx: np.ndarray, keep: int, run: int) -> np.ndarray:
    """Keep `keep` of the indices as whole runs of consecutive frames spread over the video.

    Retrieval prefers the source frame that follows the last one shown, so a smaller database
    keeps continuous stretches rather than every n-th frame.
    """
    blocks = [idx[i:i + run] for i in range(0, len(idx), run)]
    n_blocks = max(1, keep // run)
    pick = np.linspace(0, len(blocks) - 1, n_blocks).round().astype(int)
    return np.concatenate([blocks[i] for i in np.unique(pick)])[:keep]


def has_face_mask(track: LandmarkTrack) -> np.ndarray:
    return ~np.isnan(track.landmarks[:, 0, 0])


def _check_audio(path: Path, audio: np.ndarray, duration: float, sr: int) -> None:
    if len(audio) < sr * 0.5:
        raise MediaError(f"{path}: the audio track is (nearly) empty. Record with the microphone on.")
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    if rms < 1e-4 or np.max(np.abs(audio)) < 1e-3:
        raise MediaError(
            f"{path}: the audio is silent (RMS {20 * np.log10(rms + 1e-12):.0f} dBFS). "
            "Was the microphone muted or the wrong input selected? Record again with speech audible."
        )
    a_dur = len(audio) / sr
    if a_dur < 0.8 * duration:
        raise MediaError(
            f"{path}: the audio ({a_dur:.1f} s) is much shorter than the video ({duration:.1f} s); "
            "sound and picture cannot be aligned. Re-export the recording with its full audio track."
        )


def _usable_mask(src: Source) -> tuple[np.ndarray, dict]:
    tr = src.track
    has_face = has_face_mask(tr)
    damaged = damaged_frames(tr)
    usable = has_face & ~damaged
    stats = dict(frames=int(len(tr.times)), no_face=int((~has_face).sum()),
                 damaged=int(damaged.sum()), damaged_with_face=int((damaged & has_face).sum()),
                 multi_face=int((tr.n_faces > 1).sum()))
    return usable, stats


def _pick_template(lips_open: np.ndarray, poses: np.ndarray, usable: np.ndarray, eye_open: np.ndarray,
                   fps: float, seconds: float) -> tuple[int, int]:
    """Choose [a, b) of usable frames with the least head motion and mouth activity; ends at still, eyes-open frames."""
    n = len(usable)
    L = int(min(seconds * fps, n))
    vel = np.zeros(n)
    if n > 1:
        vel[1:] = np.linalg.norm(np.diff(poses[:, 10:13], axis=0), axis=1) + 0.02 * np.abs(np.diff(poses[:, 0]))
    vel = np.nan_to_num(vel, nan=1e3)
    bad = (~usable).astype(np.float64)
    # prefix sums give every window's cost in O(n)
    cs = lambda x: np.concatenate([[0], np.cumsum(x)])
    c_bad, c_vel, c_open = cs(bad), cs(vel), cs(np.nan_to_num(lips_open, nan=1.0))
    best, best_a = np.inf, 0
    min_len = int(min(fps, n))  # a loop shorter than 1 s looks mechanical
    while L >= min_len:
        for a in range(0, max(1, n - L + 1)):
            if c_bad[a + L] - c_bad[a] > 0:
                continue
            cost = (c_vel[a + L] - c_vel[a]) / L / (np.median(vel) + 1e-9) + (c_open[a + L] - c_open[a]) / L / (np.nanmedian(lips_open[usable]) + 1e-9)
            if cost < best:
                best, best_a = cost, a
        if np.isfinite(best):
            break
        L = int(L * 0.7)  # footage with gaps: settle for a shorter loop
    if not np.isfinite(best):
        raise HygieError("no stretch of continuous usable face footage long enough for the idle loop.")
    a, b = best_a, best_a + L
    # trim ends (up to 10% each) to still frames with open eyes so the ping-pong turn is invisible
    thr = np.nanpercentile(eye_open[usable], 30)
    k = max(1, L // 10)

    def end_cost(i: int) -> float:
        return vel[i] + (0 if eye_open[i] >= thr else 1e3)

    a2 = min(range(a, a + k), key=end_cost)
    b2 = min(range(b - k, b), key=end_cost) + 1
    return a2, b2


def crop_geometry(mean_region_xy: np.ndarray, px_per_iod: float, margin: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Canonical origin (top-left, IOD units) and pixel size of the mouth crop."""
    lo = mean_region_xy.min(0) - margin
    hi = mean_region_xy.max(0) + margin
    size = np.ceil((hi - lo) * px_per_iod).astype(int)
    size += size % 2
    return lo, (int(size[0]), int(size[1]))


def enroll(videos: list[Path], out: Path, cfg: EnrollConfig | None = None, force: bool = False) -> Path:
    import cv2

    cfg = cfg or EnrollConfig()
    t_start = time.time()
    # where the time goes (wall seconds per stage; the landmark pass also reports its workers' CPU split)
    split: dict[str, float] = {}
    t_mark = [time.perf_counter()]

    def mark(stage: str) -> None:
        now = time.perf_counter()
        split[stage] = split.get(stage, 0.0) + now - t_mark[0]
        t_mark[0] = now

    videos = [Path(v) for v in videos]
    if not videos:
        raise HygieError("give at least one video.")
    # refuse early, before minutes of work
    writer = PackageWriter(out, force=force)
    try:
        srcs: list[Source] = []
        infos = []
        for v in videos:
            info = probe_video(v)
            if not info.has_audio:
                raise MediaError(f"{v}: has no audio track. Record with the microphone on; the avatar learns from your voice.")
            infos.append(info)
        for v, info in zip(videos, infos):
            mark("probe")
            audio = load_audio(v, cfg.mel.sample_rate)
            _check_audio(v, audio, info.duration, cfg.mel.sample_rate)
            log.info("%s: %dx%d, %.2f fps, %.1f s", v.name, info.width, info.height, info.fps, info.duration)
            mark("audio")
            tr = track_video(str(v), workers=cfg.workers, progress_desc=f"face landmarks {v.name}")
            mark("landmark pass")
            for k, sec in (tr.seconds or {}).items():
                split[f"landmark pass cpu: {k}"] = split.get(f"landmark pass cpu: {k}", 0.0) + sec
            srcs.append(Source(v, info.fps, (info.width, info.height), tr, audio, sha256_file(v)))
        if len({s.size for s in srcs}) > 1 or len({round(s.fps, 2) for s in srcs}) > 1:
            raise MediaError("all enrollment videos must share one frame size and frame rate; re-export them alike.")
        fps = srcs[0].fps

        # usable frames and coverage
        masks, stats_all = [], []
        for s in srcs:
            m, st = _usable_mask(s)
            masks.append(m)
            stats_all.append(st)
            cover = m.mean()
            if m.sum() == 0:
                raise HygieError(
                    f"{s.path}: no face found in any frame. Face the camera, well lit, with your whole face in view."
                )
            no_face_ranges = _time_ranges(np.isnan(s.track.landmarks[:, 0, 0]), s.track.times)
            if cover < 0.5:
                raise HygieError(
                    f"{s.path}: a usable face is visible in only {100 * cover:.0f}% of the frames. "
                    f"No face at {_fmt_ranges(no_face_ranges)}. Trim those parts or record again facing the camera."
                )
            if no_face_ranges:
                log.warning("%s: no face at %s (those frames are skipped)", s.path.name, _fmt_ranges(no_face_ranges))
            if st["damaged"]:
                log.warning("%s: %d damaged (grey/blocky) frames dropped", s.path.name, st["damaged"])
            ambiguous = (s.track.other_face > 0.7) & has_face_mask(s.track)
            if ambiguous.mean() > 0.2:
                raise HygieError(
                    f"{s.path}: two faces of similar size are visible in {100 * ambiguous.mean():.0f}% of the frames "
                    f"(e.g. {_fmt_ranges(_time_ranges(ambiguous, s.track.times), 3)}); Hygie cannot tell which person to learn. "
                    "Crop the video to one person (or record alone)."
                )
            if st["multi_face"]:
                log.warning("%s: several faces in %d frames; following the largest, most central one",
                            s.path.name, st["multi_face"])
        usable_s = sum(m.sum() for m in masks) / fps
        if usable_s < cfg.min_usable_s:
            raise HygieError(
                f"only {usable_s:.0f} s of usable face footage; at least {cfg.min_usable_s:.0f} s are needed "
                f"(3–5 minutes recommended). Record about {RECOMMENDED_S - usable_s:.0f} s more of yourself talking."
            )
        if usable_s < RECOMMENDED_S:
            log.warning("%.0f s of usable footage; 3–5 minutes give a better lip model.", usable_s)

        # canonical alignment
        all_lm = np.concatenate([s.track.landmarks for s in srcs]).astype(np.float64)
        usable = np.concatenate(masks)
        vid_id = np.concatenate([np.full(len(s.track.times), i, np.int16) for i, s in enumerate(srcs)])
        times = np.concatenate([s.track.times for s in srcs])
        n = len(all_lm)
        sub = np.flatnonzero(usable)
        ref = G.fit_reference(all_lm[sub[:: max(1, len(sub) // 600)]])
        poses = np.full((n, 13), np.nan)
        resid = np.full(n, np.nan)
        canon = np.full((n, 478, 3), np.nan, np.float32)
        for i in sub:
            sim, r = G.align(all_lm[i], ref)
            poses[i] = sim.to_array()
            resid[i] = r
            canon[i] = sim.apply(all_lm[i])
        # landmarks on garbage that slipped through: rigid fit far off the typical one
        outlier = G.implausible_fits(resid)
        if outlier.sum():
            log.warning("%d frames with an implausible face fit dropped", int(outlier.sum()))
            usable &= ~outlier
            sub = np.flatnonzero(usable)
        lips = canon[:, G.LIPS, :2]
        lips_z = canon[:, G.LIPS, 2]
        opening = G.mouth_opening(lips)
        eye_open = np.linalg.norm(canon[:, 159, :2] - canon[:, 145, :2], axis=1) + np.linalg.norm(canon[:, 386, :2] - canon[:, 374, :2], axis=1)

        # PCA of the mouth shape
        X = lips[sub].reshape(len(sub), -1).astype(np.float64)
        mean = X.mean(0)
        U, S, Vt = np.linalg.svd(X - mean, full_matrices=False)
        var = S ** 2 / (len(X) - 1)
        ratio = np.cumsum(var) / var.sum()
        K = int(min(cfg.max_components, np.searchsorted(ratio, cfg.variance_target) + 1))
        comps = Vt[:K]
        coeffs = np.full((n, K), np.nan, np.float32)
        coeffs[sub] = ((X - mean) @ comps.T).astype(np.float32)
        recon_err = np.linalg.norm(((X - mean) @ comps.T @ comps + mean - X).reshape(len(X), -1, 2), axis=2).mean()
        log.info("PCA: %d components explain %.1f%% of mouth-shape variance (reconstruction %.4f IOD)",
                 K, 100 * ratio[K - 1], recon_err)
        save_npz(writer.path("pca.npz"), mean=mean.astype(np.float32), components=comps.astype(np.float32),
                 explained_variance=var[:K].astype(np.float32), variance_ratio_curve=ratio.astype(np.float32))

        # audio features
        if cfg.with_features:
            mel_fn = LogMel(cfg.mel)
            mels = [mel_fn(s.audio) for s in srcs]
            offs = np.concatenate([[0], np.cumsum([len(m) for m in mels])])
            save_npz(writer.path("features.npz"), mel=np.concatenate(mels).astype(np.float16),
                     video_offsets=offs.astype(np.int64))

        # template loop: one contiguous stretch of a single video
        best = None
        base = 0
        for vi, s in enumerate(srcs):
            m = masks[vi] & usable[base:base + len(s.track.times)]
            sl = slice(base, base + len(s.track.times))
            try:
                a, b = _pick_template(opening[sl], poses[sl], m, eye_open[sl], fps, cfg.template_seconds)
            except HygieError:
                base += len(s.track.times)
                continue
            if best is None or (b - a) > (best[2] - best[1]):
                best = (vi, base + a, base + b)
            base += len(s.track.times)
        if best is None:
            raise HygieError("no stretch of continuous usable face footage for the idle loop; record a few seconds facing the camera without moving away.")
        t_vid, t_a, t_b = best
        log.info("idle loop: %s %.1f–%.1f s (%d frames, ping-pong)", srcs[t_vid].path.name, times[t_a], times[t_b - 1], t_b - t_a)

        # crop geometry: native resolution (median IOD in pixels), and never below the idle loop's
        # own face size: the crops are pasted there, and a crop stored smaller than the face it is
        # pasted into is upscaled on every frame (with several recordings the faces differ in size)
        iod_all = np.linalg.norm(all_lm[:, 33, :2] - all_lm[:, 263, :2], axis=1)
        px_per_iod = float(max(np.median(iod_all[sub]), np.nanmedian(iod_all[t_a:t_b])))
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

        mark("alignment, PCA, features, template")
        # pass 2: cut crops and template frames (parallel workers, like pass 1)

        crops: list[bytes | None] = [None] * len(db_idx)
        skin = np.full((len(db_idx), 3), np.nan, np.float32)  # Lab of the skin around each mouth
        tpl_blobs: list[bytes] = []
        base = 0
        for vi, s in enumerate(srcs):
            nv = len(s.track.times)
            mine = (db_idx >= base) & (db_idx < base + nv)
            jobs = {int(i - base): affines[j] for j, i in zip(np.flatnonzero(mine), db_idx[mine])}
            points = {int(i - base): pts[j] for j, i in zip(np.flatnonzero(mine), db_idx[mine])}
            tpl_k = [k - base for k in range(t_a, t_b) if base <= k < base + nv]
            c_, t_, l_ = cut_video(str(s.path), s.track.times, jobs, points, tpl_k, crop_size, cfg.jpeg_quality,
                                   cfg.template_jpeg_quality, float(s.track.times[-1]) + 1.0 / fps,
                                   LIP_MARGIN * px_per_iod, workers=cfg.workers, desc=f"mouth crops {s.path.name}")
            for j, i in zip(np.flatnonzero(mine), db_idx[mine]):
                crops[j] = c_.get(int(i - base))
                if int(i - base) in l_:
                    skin[j] = l_[int(i - base)]
            tpl_blobs += [t_[k] for k in tpl_k if k in t_]
            base += nv
        missing = [j for j, c in enumerate(crops) if c is None]
        if missing:
            raise MediaError(f"{len(missing)} frames could not be decoded a second time; the file changed or is corrupt.")
        if len(tpl_blobs) != t_b - t_a:
            raise MediaError("the idle-loop frames could not be decoded again; the file changed or is corrupt.")
        blobs = [c for c in crops if c is not None]
        mark("crop pass")

        def pack(bl: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
            offs = np.concatenate([[0], np.cumsum([len(b) for b in bl])]).astype(np.int64)
            return np.frombuffer(b"".join(bl), np.uint8), offs

        jb, jo = pack(blobs)
        save_npz(writer.path("mouths.npz"), jpeg=jb, offsets=jo, frame=db_idx.astype(np.int64),
                 points=pts, coeffs=coeffs[db_idx], affine=affines, opening=opening[db_idx].astype(np.float32),
                 skin_lab=skin)
        tb_, to_ = pack(tpl_blobs)
        t_sl = slice(t_a, t_b)
        save_npz(writer.path("template.npz"), jpeg=tb_, offsets=to_, frame=np.arange(t_a, t_b, dtype=np.int64),
                 landmarks=all_lm[t_sl].astype(np.float32), pose=poses[t_sl].astype(np.float64),
                 lips_z=lips_z[t_sl].astype(np.float32))
        save_npz(writer.path("track.npz"), times=times.astype(np.float64), video=vid_id, usable=usable,
                 lips=lips.astype(np.float32), lips_z=lips_z.astype(np.float32), coeffs=coeffs,
                 opening=opening.astype(np.float32), pose=poses, residual=resid.astype(np.float32),
                 eye_open=eye_open.astype(np.float32), reference=ref,
                 mean_canonical=mean_canon.astype(np.float32))

        light, light_warn = source_light(skin, vid_id[db_idx], [s.path.name for s in srcs])
        for w in light_warn:
            log.warning("%s", w)

        mark("write arrays")
        elapsed = time.time() - t_start
        meta = {
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "hygie_version": _version(),
            "sources": [{"name": s.path.name, "sha256": s.sha256, "frames": int(len(s.track.times)),
                         "duration_s": round(len(s.audio) / cfg.mel.sample_rate, 3), **st}
                        for s, st in zip(srcs, stats_all)],
            "fps": fps,
            "frame_size": list(srcs[0].size),
            "n_frames": int(n),
            "n_usable": int(usable.sum()),
            "coverage": round(float(usable.mean()), 5),
            "canonical": {"units": "inter-ocular distance (33-263)", "rigid_points": G.RIGID.tolist(),
                          "lip_points": G.LIPS.tolist(), "region_points": G.MOUTH_REGION.tolist()},
            "pca": {"n_components": K, "variance_explained": round(float(ratio[K - 1]), 5),
                    "variance_target": cfg.variance_target, "reconstruction_lmd": round(float(recon_err), 5)},
            "crop": {"size": list(crop_size), "origin": origin.tolist(), "px_per_iod": px_per_iod,
                     "n_mouths": int(len(db_idx))},
            "template": {"video": t_vid, "first_frame": int(t_a), "frames": int(t_b - t_a), "loop": "ping-pong"},
            "light": {"sources": light, "warnings": light_warn},
            "audio": cfg.mel.to_dict(),
            "enroll_seconds": round(elapsed, 1),
            "enroll_split_s": {k: round(v, 2) for k, v in split.items()},
            "licence": cfg.licence or LICENCE_NOTE,
        }
        from hygie.core.report import write_report

        write_report(writer.path("report.html"), writer.dir, meta, srcs=[(s.path.name, s.audio) for s in srcs])
        mark("report")
        meta["enroll_split_s"] = {k: round(v, 2) for k, v in split.items()}
        path = writer.commit(meta)
    except OSError as e:
        writer.abort()
        if e.errno == errno.ENOSPC:
            raise HygieError(
                f"disk full while writing the avatar next to {out}: free some space (a 5-minute video needs "
                "about 50 MB for the package, plus temporary space) or choose another output folder. Nothing was written."
            ) from e
        raise
    except BaseException:
        writer.abort()
        raise
    log.info("avatar written to %s in %.0f s", path, time.time() - t_start)
    return path


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("hygie-avatar")
    except Exception:
        return "0+unknown"
