"""`hygie enroll`: talking-head video(s) -> verified avatar package, as named stages.

    read_sources      probe, audio (checked), FaceMesh on every frame (worker processes)
    check_footage     usable frames; refuse faceless, two-person or too-short footage
    align_sources     3-D canonical alignment of every frame; implausible fits dropped
    fit_mouth_pca     the mouth-shape PCA                              -> pca.npz
    audio_features    log-mel of each source (for training)            -> features.npz
    choose_idle_loop  the stillest stretch of one video
    plan_crops        crop geometry and the database frames
    cut_crops         pass 2: decode again, cut crops and loop frames  -> mouths.npz, template.npz
    body_arrays       pass 3: decode again, body frames + motion graph -> body.mp4, body.npz
                      (and each crop's skin light: the report's mixed-light section, retrieval)
    (track)           per-frame landmarks, pose, shapes                -> track.npz
    write_report      report.html from what is in memory
Everything is written into a hidden folder beside the target and renamed into place at the end.
"""
from __future__ import annotations

import datetime as _dt
import errno
import logging
import time
from pathlib import Path

import numpy as np

from hygie.core.audio.mel import LogMel
from hygie.core.enroll.align import Alignment, MouthPCA, align_sources, fit_mouth_pca
from hygie.core.enroll.body import body_arrays, plan_body
from hygie.core.enroll.checks import check_footage
from hygie.core.enroll.config import LICENCE_NOTE, EnrollConfig
from hygie.core.enroll.crops import CropPlan, cut_crops, pack, plan_crops
from hygie.core.enroll.idle_loop import choose_idle_loop
from hygie.core.enroll.sources import Source, read_sources
from hygie.core.errors import HygieError, PackageError
from hygie.core.face import geometry as G
from hygie.core.outputs import check_output, is_avatar_package
from hygie.core.package.files import save_npz
from hygie.core.package.writer import PackageWriter
from hygie.core.provenance import consent
from hygie.core.render.conditions import source_light

log = logging.getLogger(__name__)


def audio_features(srcs: list[Source], cfg: EnrollConfig) -> dict[str, np.ndarray]:
    """Log-mel of every source, concatenated, with each source's first mel frame."""
    mel_fn = LogMel(cfg.mel)
    mels = [mel_fn(s.audio) for s in srcs]
    offs = np.concatenate([[0], np.cumsum([len(m) for m in mels])])
    return dict(mel=np.concatenate(mels).astype(np.float16), video_offsets=offs.astype(np.int64))


def track_arrays(al: Alignment, pca: MouthPCA, plan: CropPlan) -> dict[str, np.ndarray]:
    """What track.npz holds: every frame's shapes, pose and fit."""
    return dict(times=al.times.astype(np.float64), video=al.video, usable=al.usable,
                lips=al.lips.astype(np.float32), lips_z=al.lips_z.astype(np.float32), coeffs=pca.coeffs,
                opening=al.opening.astype(np.float32), pose=al.pose, residual=al.residual.astype(np.float32),
                eye_open=al.eye_open.astype(np.float32), reference=al.reference,
                mean_canonical=plan.mean_canonical.astype(np.float32))


def enroll(videos: list[Path], out: Path, cfg: EnrollConfig | None = None, force: bool = False) -> Path:
    cfg = cfg or EnrollConfig()
    t_start = time.time()
    # where the time goes: wall seconds per stage (the landmark pass adds its workers' CPU split)
    split: dict[str, float] = {}
    t_mark = [time.perf_counter()]

    def mark(stage: str) -> None:
        now = time.perf_counter()
        split[stage] = split.get(stage, 0.0) + now - t_mark[0]
        t_mark[0] = now

    videos = [Path(v) for v in videos]
    if not videos:
        raise HygieError("give at least one video.")
    # refuse early, before minutes of work: never over an input, never over what is not a package
    check_output(Path(out), videos, force, "an avatar package", is_avatar_package, PackageError)
    writer = PackageWriter(out, force=force)
    try:
        srcs = read_sources(videos, cfg)
        mark("probe, audio, landmark pass")
        for s in srcs:
            for k, sec in (s.track.seconds or {}).items():
                split[f"landmark pass CPU: {k}"] = split.get(f"landmark pass CPU: {k}", 0.0) + sec
        fps = srcs[0].fps
        masks, stats_all = check_footage(srcs, cfg)
        al = align_sources(srcs, masks)
        pca = fit_mouth_pca(al, cfg)
        save_npz(writer.path("pca.npz"), **pca.arrays())
        if cfg.with_features:
            save_npz(writer.path("features.npz"), **audio_features(srcs, cfg))

        t_vid, t_a, t_b = choose_idle_loop(srcs, masks, al.usable, al.opening, al.pose, al.eye_open, fps,
                                           cfg.template_seconds)
        log.info("idle loop: %s %.1f–%.1f s (%d frames, ping-pong)", srcs[t_vid].path.name, al.times[t_a],
                 al.times[t_b - 1], t_b - t_a)
        plan = plan_crops(al, cfg, fps, loop=(t_a, t_b))
        mark("alignment, PCA, features, idle loop")
        crop_blobs, loop_blobs, skin = cut_crops(srcs, plan, (t_a, t_b), cfg)
        mark("crop pass (decode again, crops, JPEG)")
        light, light_warn = source_light(skin, al.video[plan.frames], [s.path.name for s in srcs])
        for w in light_warn:
            log.warning("%s", w)

        jb, jo = pack(crop_blobs)
        db_idx = plan.frames
        mouths = dict(jpeg=jb, offsets=jo, frame=db_idx.astype(np.int64), points=plan.points,
                      coeffs=pca.coeffs[db_idx], affine=plan.affines, opening=al.opening[db_idx].astype(np.float32),
                      skin_lab=skin)
        save_npz(writer.path("mouths.npz"), **mouths)
        tb_, to_ = pack(loop_blobs)
        t_sl = slice(t_a, t_b)
        save_npz(writer.path("template.npz"), jpeg=tb_, offsets=to_, frame=np.arange(t_a, t_b, dtype=np.int64),
                 landmarks=al.landmarks[t_sl].astype(np.float32), pose=al.pose[t_sl].astype(np.float64),
                 lips_z=al.lips_z[t_sl].astype(np.float32))
        track = track_arrays(al, pca, plan)
        save_npz(writer.path("track.npz"), **track)
        mark("write arrays")
        body_facts = None
        if cfg.body.enabled:
            bplan = plan_body(al.usable, al.video, fps, cfg.body)
            body, body_facts = body_arrays(srcs, al.landmarks, al.pose, al.lips_z, al.eye_open, al.video, bplan,
                                           writer.path("body.mp4"), srcs[0].size, fps, cfg.mel.sample_rate, cfg.body)
            if body is None:
                writer.path("body.mp4").unlink(missing_ok=True)  # the renderer falls back to the idle loop
            else:
                save_npz(writer.path("body.npz"), **body)
            mark("body pass (decode again, body video, motion graph)")

        elapsed = time.time() - t_start
        K = pca.k
        sources = [{"name": s.path.name, "sha256": s.sha256} for s in srcs]
        meta = {
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "hygie_version": _version(),
            "avatar_id": consent.derive_avatar_id(s["sha256"] for s in sources),
            "sources": [{"name": s.path.name, "sha256": s.sha256, "frames": int(len(s.track.times)),
                         "duration_s": round(len(s.audio) / cfg.mel.sample_rate, 3), **st}
                        for s, st in zip(srcs, stats_all)],
            "fps": fps,
            "frame_size": list(srcs[0].size),
            "n_frames": int(len(al.usable)),
            "n_usable": int(al.usable.sum()),
            "coverage": round(float(al.usable.mean()), 5),
            "canonical": {"units": "inter-ocular distance (33-263)", "rigid_points": G.RIGID.tolist(),
                          "lip_points": G.LIPS.tolist(), "region_points": G.MOUTH_REGION.tolist()},
            "pca": {"n_components": K, "variance_explained": round(float(pca.ratio[K - 1]), 5),
                    "variance_target": cfg.variance_target, "reconstruction_lmd": round(pca.reconstruction, 5)},
            "crop": {"size": list(plan.size), "origin": plan.origin.tolist(), "px_per_iod": plan.px_per_iod,
                     "n_mouths": int(len(db_idx))},
            "template": {"video": t_vid, "first_frame": int(t_a), "frames": int(t_b - t_a), "loop": "ping-pong"},
            "light": {"sources": light, "warnings": light_warn},
            **({"body": body_facts} if body_facts else {}),
            "audio": cfg.mel.to_dict(),
            "enroll_seconds": round(elapsed, 1),
            "licence": cfg.licence or LICENCE_NOTE,
        }
        if cfg.consent_name:
            meta["consent"] = consent.record(cfg.consent_name, cfg.consent_method, sources,
                                             licence=cfg.licence if cfg.consent_method == "licence" else None)
        from hygie.core.enroll.report import write_report

        write_report(writer.path("report.html"), meta, track=track, pca=pca.arrays(), mouths=mouths,
                     srcs=[(s.path.name, s.audio) for s in srcs])
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
