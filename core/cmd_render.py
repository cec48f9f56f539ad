"""`hygie render`: speech audio (or a video's true landmarks) -> lip-synced mp4 of the avatar.

`--landmarks-from VIDEO` drives the renderer with the mouth shapes MediaPipe finds in
a real video: the renderer's own fidelity test, independent of the lip model.
`hygie render-eval AVATAR VIDEO` runs the quality evaluation (models/render_quality.py).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hygie.core.errors import HygieError
from hygie.core.render.job import FITS, RenderJob, check_output, parse_size, render_job

log = logging.getLogger(__name__)


def demo_speech_path() -> Path:
    """A short held-out GRID s1 recording shipped with the default avatar (CC BY 4.0)."""
    import hygie.models

    p = Path(hygie.models.__file__).parent / "samples" / "demo_speech.flac"
    if not p.exists():
        raise HygieError("give --audio SPEECH (wav/flac/mp3/m4a) or --landmarks-from VIDEO "
                         "(the bundled demo sentence is missing from this install)")
    return p


def run_render(args: argparse.Namespace) -> int:
    from hygie.core.package import load_package

    out = Path(args.output).expanduser()
    check_output(out)
    size = parse_size(args.size)
    if not args.audio and not args.landmarks_from:
        args.audio = str(demo_speech_path())
        log.info("no --audio given: rendering the bundled demo sentence %s", args.audio)
    avatar = load_package(args.avatar)
    job = RenderJob(out, audio=args.audio, landmarks_from=args.landmarks_from, size=size, fit=args.fit,
                    debug=args.debug)
    res = render_job(avatar, job)
    log.info("wrote %s: %d frames at %.2f fps (%dx%d)%s", out, res.frames, res.fps, *res.size,
             " with audio" if res.has_audio else "")
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
    p.add_argument("--fit", choices=FITS, default="letterbox",
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
