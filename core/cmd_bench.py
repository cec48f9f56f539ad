"""`hygie bench`: speed and memory figures, measured side by side in one run (never asserted in tests)."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from hygie.core.errors import HygieError

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "grid_s1" / "enroll_5min.mp4"
PARTS = ("enroll", "lips", "render", "agent", "watermark")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure speed and memory (enrollment, lip model, renderer, live agent, watermark)",
        description="Print speed/memory figures and their targets. 'all' runs lips + render (+ enroll with --video).",
    )
    p.add_argument("part", nargs="?", choices=(*PARTS, "all"), default="all")
    p.add_argument("--avatar", default=None, help="avatar package (default: the bundled one)")
    p.add_argument("--video", type=Path, default=None, help=f"video to enroll for 'enroll' (default: {DEFAULT_VIDEO})")
    p.add_argument("--minutes", type=float, default=1.0, help="agent soak length (default 1)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    p.add_argument("--quick", action="store_true", help="watermark: one clip of each kind (a smoke run)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hygie.core.package import load_package

    results: dict = {}
    parts = ("enroll", "lips", "render") if args.part == "all" else (args.part,)
    if "enroll" in parts:
        from hygie.core import enroll_bench

        video = args.video or DEFAULT_VIDEO
        if not video.exists():
            if args.part == "enroll":
                raise HygieError(f"{video}: not found; pass --video with a 3–5 minute talking-head video.")
        else:
            results["enroll"] = enroll_bench.run(video)
            print(enroll_bench.format_result(results["enroll"]), flush=True)
    avatar = load_package(args.avatar) if {"lips", "render"} & set(parts) else None
    if "lips" in parts:
        if avatar.has_lip_model:
            from hygie.models import lip_bench

            results["lips"] = lip_bench.run(avatar)
            print(lip_bench.format_result(results["lips"]), flush=True)
        else:
            print("lip model: this avatar has none (run 'hygie train')")
    if "render" in parts:
        from hygie.core import render_bench

        results["render"] = render_bench.run(avatar)
        print(render_bench.format_bench(results["render"]), flush=True)
    if "agent" in parts:
        tests = REPO / "tests"
        if not (tests / "bench_agent.py").exists():
            raise HygieError("the agent soak runs from a source checkout (tests/bench_agent.py); clone the repository.")
        sys.path.insert(0, str(tests))
        import bench_agent

        results["agent"] = bench_agent.run_agent_bench(args.minutes, avatar=args.avatar)
        print(json.dumps(results["agent"], indent=1, default=str))
    if "watermark" in parts:
        from hygie.core.bench import watermark as wm_bench

        data = DEFAULT_VIDEO.parent.parent
        if not data.exists():
            raise HygieError(f"{data}: the real footage the watermark bench marks and degrades is not there.")
        results["watermark"] = wm_bench.run(data, avatar=load_package(args.avatar), quick=args.quick)
        print(wm_bench.format_result(results["watermark"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0
