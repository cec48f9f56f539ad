"""Robustness of the renderer to real light: perturbed enrollments, leave-one-out HD clips, 1080p sizes.

Data is made at run time from the shared clips into a temporary folder (never committed):
- GRID s1 enrollment re-encoded with a slow exposure drift (±1 stop, sinusoidal), a white-balance
  cast, and split into two "sessions" of different brightness and colour; each enrolled and
  render-eval'd against the clean held-out video (true-lip driving), beside the clean enrollment;
- the 720p clips leave-one-out: enroll three, evaluate the fourth, all four ways;
- a 1080p upscale of one clip, to exercise sizes and speed (never to judge detail).

    python -m hygie.models.light_bench [--data ../shared/data] [--quick] [--out DIR]

`--quick` uses the first 40 s of the GRID enrollment and 150 held-out frames (what CI runs,
through tests/test_light_robustness.py).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)

GAMMA = 2.2  # video code values -> (approximately) linear light, where exposure and white balance act


def light_lut(gain_bgr: tuple[float, float, float]) -> np.ndarray:
    """(256, 1, 3) uint8 table: multiply linear light per channel (B, G, R), clip like a sensor."""
    x = (np.arange(256, dtype=np.float64) / 255.0) ** GAMMA
    out = np.stack([np.clip(x * g, 0, 1) ** (1 / GAMMA) for g in gain_bgr], axis=1)
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8).reshape(256, 1, 3)


@dataclass(frozen=True)
class Perturbation:
    name: str
    gain: Callable[[float], tuple[float, float, float]]  # time (s) -> linear gain per channel (B, G, R)
    split: float | None = None  # cut into two files (sessions) at this fraction of the video


def perturbations(period_s: float = 60.0) -> list[Perturbation]:
    """The three perturbations of the suite; the drift spans ±1 stop over `period_s`."""
    return [
        Perturbation("exposure drift ±1 stop", lambda t: (2.0 ** math.sin(2 * math.pi * t / period_s),) * 3),
        Perturbation("white-balance cast", lambda t: (0.78, 1.0, 1.25)),
        # second session: 0.8 stop darker and cooler (another day, another lamp)
        Perturbation("two sessions", lambda t: (1.0, 1.0, 1.0), split=0.5),
    ]


SESSION_B = (1.05, 0.6, 0.5)  # linear gain (B, G, R) of the second session: darker and cooler


def make_perturbed(src: Path, out_dir: Path, p: Perturbation, seconds: float | None = None) -> list[Path]:
    """Re-encode `src` (its first `seconds`) with perturbation p; returns one file, or two sessions."""
    import cv2

    from hygie.core.media.audio_file import load_audio
    from hygie.core.media.decode import iter_video_frames
    from hygie.core.media.encode import write_video_with_audio
    from hygie.core.media.probe import probe_video

    info = probe_video(src)
    dur = min(seconds or info.duration, info.duration)
    audio = load_audio(src)
    n = int(round(dur * info.fps))
    split = int(n * p.split) if p.split else None
    tag = p.name.split()[0]

    def frames(lo: int, hi: int, session_b: bool):
        for k, (t, f) in enumerate(iter_video_frames(src)):
            if k >= hi:
                break
            if k < lo:
                continue
            g = SESSION_B if session_b else p.gain(t)
            yield cv2.LUT(f, light_lut(g)) if g != (1.0, 1.0, 1.0) else f

    outs = []
    parts = [(0, n, False)] if split is None else [(0, split, False), (split, n, True)]
    for k, (lo, hi, b) in enumerate(parts):
        path = out_dir / f"{tag}_{k}.mp4"
        a = audio[int(lo / info.fps * 16000): int(hi / info.fps * 16000)]
        write_video_with_audio(path, frames(lo, hi, b), info.fps, a, crf=18)
        outs.append(path)
    return outs


def upscale(src: Path, out: Path, size: tuple[int, int] = (1920, 1080), seconds: float | None = None) -> Path:
    """A bigger copy of a clip (bicubic): exercises sizes and speed only; it adds no detail."""
    import cv2

    from hygie.core.media.audio_file import load_audio
    from hygie.core.media.decode import iter_video_frames
    from hygie.core.media.encode import write_video_with_audio
    from hygie.core.media.probe import probe_video

    info = probe_video(src)
    n = int(round((seconds or info.duration) * info.fps))

    def frames():
        for k, (_, f) in enumerate(iter_video_frames(src)):
            if k >= n:
                break
            yield cv2.resize(f, size, interpolation=cv2.INTER_CUBIC)

    write_video_with_audio(out, frames(), info.fps, load_audio(src)[: int(n / info.fps * 16000)], crf=18)
    return out


KEYS = ("fidelity", "stability_ratio", "stability_face_ratio", "stability_rel_ratio", "sharpness_rel_ratio",
        "sharpness_ratio", "sharpness_mp4_ratio",
        "seam_ssim", "seam_de", "seam_de_real", "seam_de_excess", "lip_de")


def grid_suite(data: Path, work: Path, quick: bool, renderer_cfg=None, max_mouths: int | None = None) -> dict:
    """Clean and perturbed GRID enrollments, each render-eval'd on the clean held-out video."""
    from hygie.core.enroll.config import EnrollConfig
    from hygie.core.enroll.pipeline import enroll
    from hygie.core.package.avatar import load_package
    from hygie.models.render_quality import evaluate_render

    src = data / "grid_s1" / "enroll_5min.mp4"
    held = data / "grid_s1" / "heldout_2min.mp4"
    seconds = 40.0 if quick else None
    frames = 150 if quick else None
    cfg = EnrollConfig(min_usable_s=20 if quick else 60, max_mouths=max_mouths, with_features=False)
    res = {}
    cases: list[tuple[str, list[Path]]] = []
    work.mkdir(parents=True, exist_ok=True)
    if quick:  # re-encoded like the perturbed ones, so that only the light differs
        clean = make_perturbed(src, work, Perturbation("clean", lambda t: (1.0, 1.0, 1.0)), seconds)
    else:
        clean = [src]
    cases.append(("clean", clean))
    for p in perturbations(period_s=seconds or 60.0):
        cases.append((p.name, make_perturbed(src, work, p, seconds)))
    for name, videos in cases:
        pkg = enroll(videos, work / f"avatar_{name.split()[0]}", cfg, force=True)
        r = evaluate_render(load_package(pkg), held, work / f"eval_{name.split()[0]}", max_frames=frames,
                            quiet=True, renderer_cfg=renderer_cfg)
        res[name] = {k: r[k] for k in KEYS} | {"strip_full": str(work / f"eval_{name.split()[0]}" / "render_strip_full.png")}
        log.info("%s: %s", name, res[name])
    return res


def loo_suite(data: Path, work: Path, renderer_cfg=None, folds: list[int] | None = None) -> dict:
    """The 720p clips: enroll three, evaluate the fourth (true-lip driving), each way."""
    from hygie.core.enroll.config import EnrollConfig
    from hygie.core.enroll.pipeline import enroll
    from hygie.core.package.avatar import load_package
    from hygie.models.render_quality import evaluate_render

    clips = sorted((data / "obama").glob("*.mp4"))
    work.mkdir(parents=True, exist_ok=True)
    res = {}
    for k in folds or range(len(clips)):
        train = [c for i, c in enumerate(clips) if i != k]
        pkg = enroll(train, work / f"loo{k + 1}", EnrollConfig(min_usable_s=5, template_seconds=3, with_features=False),
                     force=True)
        r = evaluate_render(load_package(pkg), clips[k], work / f"eval_loo{k + 1}", quiet=True, renderer_cfg=renderer_cfg)
        res[clips[k].name] = {key: r[key] for key in KEYS} | {"strip_full": str(work / f"eval_loo{k + 1}" / "render_strip_full.png")}
        log.info("%s: %s", clips[k].name, res[clips[k].name])
    return res


def format_suite(title: str, res: dict) -> str:
    cols = ("fidelity", "stability_ratio", "stability_rel_ratio", "stability_face_ratio", "sharpness_rel_ratio",
            "sharpness_mp4_ratio", "seam_ssim", "seam_de_excess", "lip_de")
    lines = [title, f"{'case':28s} " + " ".join(f"{c[:14]:>14s}" for c in cols)]
    for name, r in res.items():
        lines.append(f"{name:28s} " + " ".join(f"{r[c]:14.4f}" for c in cols))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    ap.add_argument("--quick", action="store_true", help="40 s of GRID, 150 held-out frames (the CI version)")
    ap.add_argument("--out", type=Path, default=None, help="keep the made videos, packages and strips here")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--part", choices=("grid", "loo", "all"), default="all")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        out = {}
        if args.part in ("grid", "all"):
            out["grid"] = grid_suite(args.data, work / "grid", args.quick)
            print(format_suite("GRID s1, enrollment perturbed, evaluated on the clean held-out video", out["grid"]), flush=True)
        if args.part in ("loo", "all"):
            out["loo"] = loo_suite(args.data, work / "loo")
            print(format_suite("720p clips, leave one out", out["loo"]), flush=True)
        if args.json:
            args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
