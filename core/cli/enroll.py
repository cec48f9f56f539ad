"""`hygie enroll`: build an avatar package from a video of you talking."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hygie.core.enroll.config import EnrollConfig
from hygie.core.enroll.pipeline import enroll
from hygie.core.errors import HygieError
from hygie.core.limits import number_arg

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "enroll",
        help="turn 3–5 minutes of video of a person talking into an avatar package",
        description=(
            "Analyse a talking-head video (face landmarks on every frame, mouth-shape PCA, audio features, "
            "a database of real mouth images and an idle loop), then train the lip model (unless --no-train). "
            "Writes AVATAR/ (or AVATAR.hygie with --zip) and AVATAR/report.html. Record facing the camera, "
            "evenly lit, 3–5 minutes of varied speech with a few pauses."
        ),
    )
    p.add_argument("videos", nargs="+", type=Path, help="video file(s) of the same person (mp4, mov, mkv, webm, ...)")
    p.add_argument("-o", "--output", type=Path, required=True, help="package folder to create (or a .hygie file)")
    p.add_argument("--zip", action="store_true", help="write a single .hygie file instead of a folder")
    p.add_argument("--force", action="store_true",
                   help="replace an existing avatar package (never another folder or file, never an input)")
    p.add_argument("--no-train", action="store_true", help="skip lip-model training (run 'hygie train' later)")
    p.add_argument("--template-seconds", type=number_arg(1, 60), default=10.0, help="length of the idle loop (default 10)")
    p.add_argument("--max-mouths", type=number_arg(100, 10_000_000, integer=True), default=None, help="cap the mouth database size (smaller package)")
    p.add_argument("--workers", type=number_arg(1, 64, integer=True), default=None, help="face-landmark worker processes (default: CPU cores)")
    p.add_argument("--min-footage", type=number_arg(1, 3600), default=None, metavar="SECONDS",
                   help="refuse less usable face footage than this (default 60; lower it only to try Hygie on a "
                        "short clip: the lip model will be poor)")
    p.add_argument("--seed", type=number_arg(0, 2**31 - 1, integer=True), default=0, help="training seed")
    p.add_argument("--licence", default="", help="licence/use note stored in avatar.json")
    p.add_argument("--consent", metavar="FULL_NAME",
                   help="full name of the person in the video, who agrees to be enrolled (recorded with the date and "
                        "the videos' sha256 in avatar.json). Without it, hygie asks at a terminal and refuses otherwise")
    p.set_defaults(func=run)


def consent_name(args: argparse.Namespace) -> tuple[str, str]:
    """(name, method): from --consent, or confirmed at a terminal; refused without either."""
    from hygie.core.media.probe import probe_video
    from hygie.core.provenance.consent import ask

    for v in args.videos:  # a wrong path is reported before any question
        probe_video(v)
    if args.consent:
        return args.consent, "--consent flag"
    if sys.stdin.isatty() and sys.stdout.isatty():
        name = ask([str(v) for v in args.videos])
        if name:
            return name, "interactive confirmation"
        raise HygieError("enrollment needs the consent of the person in the video; nothing was done.")
    raise HygieError('enrollment records who agreed to it: add --consent "Full Name" (the person in the video, '
                     "who agrees to be enrolled), or run it at a terminal to confirm interactively.")


def run(args: argparse.Namespace) -> int:
    out: Path = args.output
    if args.zip and out.suffix != ".hygie":
        out = out.with_suffix(".hygie")
    name, method = consent_name(args)
    cfg = EnrollConfig(template_seconds=args.template_seconds, max_mouths=args.max_mouths,
                       workers=args.workers, licence=args.licence, consent_name=name, consent_method=method)
    if args.min_footage is not None:
        cfg.min_usable_s = args.min_footage
    path = enroll(args.videos, out, cfg, force=args.force)
    if not args.no_train:
        try:
            from hygie.models.train import train_package
        except ImportError as e:
            log.warning("lip model not trained: %s. Install the 'train' extra (pip install 'hygie-avatar[train]') "
                        "and run 'hygie train %s'.", e, path)
        else:
            train_package(path, seed=args.seed)
    print(f"avatar ready: {path}\nreport: {path / 'report.html' if path.is_dir() else '(inside the .hygie file)'}")
    return 0
