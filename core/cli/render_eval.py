"""`hygie render-eval`: render a held-out video's true lips (or its audio) and measure against the real video."""
from __future__ import annotations

import argparse
from hygie.core.limits import number_arg


def run(args: argparse.Namespace) -> int:
    from hygie.core.package.avatar import load_package
    from hygie.models.render_quality import evaluate_render

    avatar = load_package(args.avatar)
    evaluate_render(avatar, args.video, args.out_dir, driver=args.driver, max_frames=args.frames)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("render-eval", help="measure the renderer against a real held-out video",
                       description="Render VIDEO's true landmarks (or its audio through the lip model) and compare "
                                   "with the real VIDEO: fidelity, sharpness, stability, seam, LMD.")
    e.add_argument("avatar", help="avatar package")
    e.add_argument("video", help="held-out video of the same person")
    e.add_argument("--driver", choices=["landmarks", "model"], default="landmarks")
    e.add_argument("--frames", type=number_arg(1, 10_000_000, integer=True), default=None, help="evaluate only the first N frames")
    e.add_argument("--out-dir", default="render_eval", help="where the JSON and strip image go")
    e.set_defaults(func=run)
