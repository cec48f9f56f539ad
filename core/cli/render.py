"""`hygie render`: speech audio (or a video's true landmarks) -> lip-synced mp4 of the avatar.

`--landmarks-from VIDEO` drives the renderer with the mouth shapes MediaPipe finds in
a real video: the renderer's own fidelity test, independent of the lip model.
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from hygie.core.errors import HygieError
from hygie.core.limits import parse_size
from hygie.core.outputs import check_output, is_video_file
from hygie.core.render.job import FITS

log = logging.getLogger(__name__)


def check_render_output(path: Path, inputs: list, force: bool) -> None:
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
    check_output(path, inputs, force, "an .mp4 video", is_video_file)
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise HygieError(f"{path}: not writable. Choose another output path.")


def run_render(args: argparse.Namespace) -> int:
    from hygie.core.package.avatar import load_package
    from hygie.core.package.bundled import demo_speech_path
    from hygie.core.render.job import RenderJob, render_job

    out = Path(args.output).expanduser()
    check_render_output(out, [args.audio, args.landmarks_from, args.avatar], args.force)
    size = parse_size(args.size)
    if not args.audio and not args.landmarks_from:
        args.audio = str(demo_speech_path())
        log.info("no --audio given: rendering the bundled demo sentence %s", args.audio)
    avatar = load_package(args.avatar)
    job = RenderJob(out, audio=args.audio, landmarks_from=args.landmarks_from, size=size, fit=args.fit,
                    debug=args.debug)
    res = render_job(avatar, job)
    log.info("wrote %s: %d frames at %.2f fps (%dx%d)%s; watermark: %s; signed Content Credentials "
             "('hygie verify %s' reads both)", out, res.frames, res.fps, *res.size,
             " with audio" if res.has_audio else "", res.watermark, out)
    print(out)
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
    p.add_argument("-o", "--output", required=True, help="output .mp4 (never one of the inputs)")
    p.add_argument("--force", action="store_true", help="replace an existing output .mp4")
    p.add_argument("--size", metavar="WxH", help="output size, e.g. 1280x720 (default: the avatar's native size)")
    p.add_argument("--fit", choices=FITS, default="letterbox",
                   help="how a differently shaped --size is filled (default letterbox)")
    p.add_argument("--debug", action="store_true", help="draw the requested lip landmarks as green points")
    p.set_defaults(func=run_render)

