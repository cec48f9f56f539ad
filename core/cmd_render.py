"""`hygie render`: speech audio (or a video's true landmarks) -> lip-synced mp4 of the avatar.

`--landmarks-from VIDEO` drives the renderer with the mouth shapes MediaPipe finds in
a real video: the renderer's own fidelity test, independent of the lip model.
`hygie render-eval AVATAR VIDEO` runs the quality evaluation (models/render_quality.py).
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from hygie.core import geometry as G
from hygie.core.errors import HygieError, MediaError

log = logging.getLogger(__name__)


def parse_size(s: str | None) -> tuple[int, int] | None:
    if not s:
        return None
    try:
        w, h = (int(v) for v in s.lower().split("x"))
    except ValueError:
        raise HygieError(f"--size {s!r}: expected WIDTHxHEIGHT, e.g. 1280x720") from None
    if w < 16 or h < 16 or w > 7680 or h > 4320:
        raise HygieError(f"--size {s!r}: out of range (16x16 to 7680x4320)")
    return w - w % 2, h - h % 2  # H.264 with yuv420p needs even sizes


def check_output(path: Path) -> None:
    """Refuse an unusable output path before any work (nothing is written on failure)."""
    if path.is_dir():
        raise HygieError(f"{path} is a folder; give a file name such as {path / 'out.mp4'}")
    if path.suffix.lower() != ".mp4":
        raise HygieError(f"{path}: the output must be an .mp4 file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise HygieError(f"{parent}: folder does not exist. Create it or choose another output path.")
    if not parent.is_dir():
        raise HygieError(f"{parent} is a file, not a folder. Choose another output path.")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise HygieError(f"{path}: not writable. Choose another output path.")


def canonical_lips(landmarks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-frame image landmarks (N, 478, 3) -> canonical lips (N, 40, 2); NaN where no face."""
    out = np.full((len(landmarks), len(G.LIPS), 2), np.nan, np.float32)
    for i, lm in enumerate(landmarks):
        if np.isfinite(lm[G.RIGID]).all() and np.isfinite(lm[G.LIPS]).all():
            sim, _ = G.align(lm.astype(np.float64), reference)
            out[i] = sim.apply(lm[G.LIPS].astype(np.float64))[:, :2]
    return out


def lips_from_video(avatar, video: str | os.PathLike) -> tuple[np.ndarray, float]:
    """True canonical lips of every frame of `video` (aligned to this avatar's reference), and its fps."""
    from hygie.core.landmark_pass import track_video
    from hygie.core.media import probe_video

    info = probe_video(video)
    tr = track_video(str(video), progress_desc="driving landmarks")
    lips = canonical_lips(tr.landmarks, avatar.track["reference"])
    missing = int((~np.isfinite(lips[:, 0, 0])).sum())
    if missing == len(lips):
        raise MediaError(f"{video}: no face found in any frame; --landmarks-from needs a video of a face talking.")
    if missing:
        log.warning("%s: no face in %d of %d frames (rendered with the closed mouth)", video, missing, len(lips))
    return lips, info.fps


def has_speech(audio: np.ndarray, sr: int = 16000) -> bool:
    """True when the audio holds something louder than its own noise floor (not silence, not steady hiss)."""
    n = int(0.025 * sr)
    if len(audio) < n:
        return False
    fr = audio[: len(audio) // n * n].reshape(-1, n).astype(np.float64)
    db = 10 * np.log10((fr ** 2).mean(1) + 1e-12)
    # speech peaks sit well above the floor; a steady tone or hiss does not vary that much
    return bool(db.max() > -50.0 and np.percentile(db, 95) - np.percentile(db, 10) > 8.0)


def coeffs_from_audio(avatar, audio: np.ndarray, fps: float, n_frames: int) -> np.ndarray | None:
    """Per-video-frame PCA coefficients from the package's lip model; None when the audio holds no speech."""
    if not has_speech(audio, avatar.mel_config.sample_rate):
        log.warning("the audio holds no speech: rendering the idle avatar (mouth closed)")
        return None
    if not avatar.has_lip_model:
        raise HygieError(
            f"{avatar.path}: this avatar has no lip model yet. Run 'hygie train {avatar.path}' first, "
            "or drive the renderer with a video's true mouth shapes: --landmarks-from VIDEO."
        )
    try:
        from hygie.core.lipmodel import LipModel
    except ModuleNotFoundError as e:
        raise HygieError(f"this install lacks the lip-model runtime ({e.name}); reinstall hygie-avatar") from e
    from hygie.core.mel import LogMel

    cfg = avatar.mel_config
    mel = LogMel(cfg)(audio)
    model = LipModel(avatar, threads=1)
    pred = np.asarray(model.predict(mel), np.float32)  # (T, K), one row per mel frame
    if len(pred) == 0:
        raise MediaError("the audio is too short to predict any mouth shape (under 25 ms).")
    idx = np.clip(cfg.frame_at(np.arange(n_frames) / fps), 0, len(pred) - 1)
    return pred[idx]


def draw_debug(frame: np.ndarray, points: np.ndarray) -> None:
    import cv2

    for x, y in points:
        cv2.circle(frame, (int(round(x)), int(round(y))), 1, (0, 255, 0), -1, lineType=cv2.LINE_AA)


def render_frames(renderer, n: int, lips: np.ndarray | None = None, coeffs: np.ndarray | None = None,
                  debug: bool = False, desc: str = "render") -> Iterator[np.ndarray]:
    """Yield n frames driven by canonical lips (n, 40, 2), or coefficients (n, K), or nothing (idle)."""
    from tqdm import tqdm

    renderer.reset()
    with tqdm(total=n, desc=desc, unit="frame") as bar:
        for i in range(n):
            if lips is not None:
                f = renderer.render_lips(lips[i], i)
            else:
                f = renderer.render(None if coeffs is None else coeffs[i], i)
            if debug:
                draw_debug(f, renderer.last["dst"][: len(G.LIPS)])
            bar.update(1)
            yield f


def demo_speech_path() -> Path:
    """A short held-out GRID s1 recording shipped with the default avatar (CC BY 4.0)."""
    import hygie.models

    p = Path(hygie.models.__file__).parent / "samples" / "demo_speech.flac"
    if not p.exists():
        raise HygieError("give --audio SPEECH (wav/flac/mp3/m4a) or --landmarks-from VIDEO "
                         "(the bundled demo sentence is missing from this install)")
    return p


def run_render(args: argparse.Namespace) -> int:
    from hygie.core.media import load_audio, probe_video, write_video_with_audio
    from hygie.core.package import load_package
    from hygie.core.provenance.output import for_render
    from hygie.core.renderer import Renderer, RendererConfig

    out = Path(args.output).expanduser()
    check_output(out)
    size = parse_size(args.size)
    if not args.audio and not args.landmarks_from:
        args.audio = str(demo_speech_path())
        log.info("no --audio given: rendering the bundled demo sentence %s", args.audio)
    avatar = load_package(args.avatar)
    sr = avatar.mel_config.sample_rate
    audio = load_audio(args.audio, sr) if args.audio else None
    if audio is not None and len(audio) < int(0.1 * sr):
        raise MediaError(f"{args.audio}: the audio is shorter than 0.1 s; nothing to render.")
    lips = coeffs = None
    if args.landmarks_from:
        lips, fps = lips_from_video(avatar, args.landmarks_from)
        n = len(lips)
        if audio is None and probe_video(args.landmarks_from).has_audio:
            audio = load_audio(args.landmarks_from, sr)
    else:
        fps = avatar.fps
        n = max(1, int(np.ceil(len(audio) / sr * fps)))
        coeffs = coeffs_from_audio(avatar, audio, fps, n)
    renderer = Renderer(avatar, out_size=size, cfg=RendererConfig(fit=args.fit))
    marks = for_render(avatar.meta, out)  # every file is marked as synthetic: watermark + Content Credentials
    try:
        frames = marks.frames(render_frames(renderer, n, lips=lips, coeffs=coeffs, debug=args.debug))
        written = write_video_with_audio(out, frames, fps, audio, sr=sr, finish=marks.sign)
    finally:
        renderer.close()
    log.info("wrote %s: %d frames at %.2f fps (%dx%d)%s; watermark: %s; signed Content Credentials "
             "('hygie verify %s' reads both)", out, written, fps, *renderer.size,
             " with audio" if audio is not None else "", marks.payload.describe(), out)
    print(out)
    return 0


def run_render_eval(args: argparse.Namespace) -> int:
    from hygie.core.package import load_package
    from hygie.models.render_quality import evaluate_render

    avatar = load_package(args.avatar)
    evaluate_render(avatar, args.video, args.out_dir, driver=args.driver, max_frames=args.frames)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render a lip-synced mp4 of an avatar from speech audio",
                       description="Render an avatar speaking SPEECH (wav/flac/mp3/m4a, any rate) to an H.264+AAC mp4.")
    p.add_argument("--avatar", help="avatar package (folder or .hygie); default: the bundled avatar")
    p.add_argument("--audio", help="speech audio file, any rate (also muxed into the output); "
                                   "default: a bundled demo sentence")
    p.add_argument("--landmarks-from", metavar="VIDEO",
                   help="drive the mouth with the true landmarks of this video (renderer fidelity test); "
                        "its audio is used unless --audio is given")
    p.add_argument("-o", "--output", required=True, help="output .mp4")
    p.add_argument("--size", metavar="WxH", help="output size, e.g. 1280x720 (default: the avatar's native size)")
    p.add_argument("--fit", choices=["letterbox", "crop"], default="letterbox",
                   help="how a differently shaped --size is filled (default letterbox)")
    p.add_argument("--debug", action="store_true", help="draw the requested lip landmarks as green points")
    p.set_defaults(func=run_render)

    e = sub.add_parser("render-eval", help="measure the renderer against a real held-out video",
                       description="Render VIDEO's true landmarks (or its audio through the lip model) and compare "
                                   "with the real VIDEO: fidelity, sharpness, stability, seam, LMD.")
    e.add_argument("avatar", help="avatar package")
    e.add_argument("video", help="held-out video of the same person")
    e.add_argument("--driver", choices=["landmarks", "model"], default="landmarks")
    e.add_argument("--frames", type=int, default=None, help="evaluate only the first N frames")
    e.add_argument("--out-dir", default="render_eval", help="where the JSON and strip image go")
    e.set_defaults(func=run_render_eval)
