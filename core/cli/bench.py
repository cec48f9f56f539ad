"""`hygie bench`: speed and memory figures, measured side by side in one run (never asserted in tests)."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from hygie.core.errors import HygieError
from hygie.core.limits import number_arg

log = logging.getLogger(__name__)
PARTS = ("enroll", "lips", "render", "agent", "av-offset", "batch", "watermark", "body")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure speed and memory (enrollment, lip model, renderer, live agent, voice/face offset at the "
             "receiver, batch on Ray, watermark)",
        description="Print speed/memory figures beside their floors and targets, measured in one run. "
                    "'all' runs lips + render (+ enroll when --video is given). 'body' walks the avatar's motion graph for 30 minutes of "
                    "speech and pauses (--minutes) and compares repetition, cut smoothness, head motion and blinks with "
                    "the old idle loop's, and counts the footage's own edits (take joins) the walk shows. 'watermark' marks and degrades "
                    "the real footage in --data and prints the robustness table and the per-frame cost. 'av-offset' runs the "
                    "agent on a private PulseAudio and measures, where a call app sits, the voice-vs-face offset with "
                    "\"Hygie Avatar Mic\" and with the raw microphone, side by side.",
    )
    p.add_argument("part", nargs="?", choices=(*PARTS, "all"), default="all")
    p.add_argument("--avatar", default=None, help="avatar package (default: the bundled one)")
    p.add_argument("--video", type=Path, default=None, help="a 3–5 minute talking-head video to enroll ('enroll')")
    p.add_argument("--minutes", type=number_arg(0.05, 24 * 60), default=None,
                   help="agent / av-offset run length (default 1); body: the walk's length (default 30)")
    p.add_argument("--source", choices=("file", "pulse"), default="file",
                   help="agent audio: a file played in real time, or a private PulseAudio microphone (default file)")
    p.add_argument("--audio", default=None, help="agent and batch speech (default: the bundled demo sentence)")
    p.add_argument("--size", default=None, help="agent output size WxH (default: the avatar's)")
    p.add_argument("--jobs", type=int, default=12, help="batch: render jobs per run (default 12)")
    p.add_argument("--workers", type=int, default=2, help="batch: Ray workers, against one process (default 2)")
    p.add_argument("--rounds", type=int, default=3, help="batch: serial/Ray pairs, alternated (default 3; the median counts)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    p.add_argument("--data", type=Path, default=None,
                   help="watermark: the real-data folder (grid_s1/, obama/, grid_speakers/, speech/)")
    p.add_argument("--quick", action="store_true", help="watermark: one clip of each kind (a smoke run)")
    p.add_argument("--no-heap-tuning", dest="heap_tuning", action="store_false",
                   help="agent: leave glibc's malloc as it is (the 'before' of the fixed mmap threshold, for comparison)")
    p.add_argument("--malloc-trim", action="store_true",
                   help="agent: return free heap to the system once a minute (comparison: how much is fragmentation)")
    p.add_argument("--trace-memory", action="store_true",
                   help="agent: tracemalloc; print the Python allocations that grew most from minute 1 to the end "
                        "(slows the agent a little)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hygie.core.package.avatar import load_package

    results: dict = {}
    parts = ("enroll", "lips", "render") if args.part == "all" else (args.part,)
    if "enroll" in parts:
        from hygie.core.bench import enroll as enroll_bench

        if args.video is None:
            if args.part == "enroll":
                raise HygieError("give --video with a 3–5 minute talking-head video to time its enrollment.")
        elif not args.video.exists():
            raise HygieError(f"{args.video}: not found; pass --video with a 3–5 minute talking-head video.")
        else:
            results["enroll"] = enroll_bench.run(args.video)
            print(enroll_bench.format_result(results["enroll"]), flush=True)
    avatar = load_package(args.avatar) if {"lips", "render"} & set(parts) else None
    if "lips" in parts:
        if avatar.has_lip_model:
            from hygie.core.bench import lips as lip_bench

            results["lips"] = lip_bench.run(avatar)
            print(lip_bench.format_result(results["lips"]), flush=True)
        else:
            print("lip model: this avatar has none (run 'hygie train')")
    if "render" in parts:
        from hygie.core.bench import render as render_bench

        results["render"] = render_bench.run(avatar)
        print(render_bench.format_bench(results["render"]), flush=True)
    if "agent" in parts:
        from hygie.core.bench.agent import run_agent_bench

        from hygie.core.bench.agent import format_memory

        results["agent"] = run_agent_bench(args.minutes or 1.0, avatar=args.avatar, source=args.source, audio=args.audio,
                                           size=args.size, heap_tuning=args.heap_tuning,
                                           malloc_trim_each_minute=args.malloc_trim, trace_memory=args.trace_memory)
        print(json.dumps(results["agent"], indent=1, default=str))
        print(format_memory(results["agent"]), flush=True)
    if "av-offset" in parts:
        from hygie.core.bench import av_offset

        results["av_offset"] = av_offset.run_offset_bench(args.minutes or 1.0, avatar_path=args.avatar, audio_path=args.audio,
                                                          progress=True)
        print(av_offset.format_result(results["av_offset"]), flush=True)
    if "batch" in parts:
        from hygie.core.bench import batch as batch_bench

        results["batch"] = batch_bench.run(args.avatar, [args.audio] if args.audio else None, jobs=args.jobs,
                                           workers=args.workers, rounds=args.rounds)
        print(batch_bench.format_result(results["batch"]), flush=True)
    if "watermark" in parts:
        from hygie.core.bench import watermark as wm_bench

        data = args.data
        if data is None or not (data / "grid_s1").exists():
            raise HygieError("give --data with the real-data folder (grid_s1/, obama/, grid_speakers/, speech/), "
                             "e.g. --data ../shared/data")
        results["watermark"] = wm_bench.run(data, avatar=load_package(args.avatar), quick=args.quick)
        print(wm_bench.format_result(results["watermark"]), flush=True)
    if "body" in parts:
        from hygie.core.bench import body as body_bench

        results["body"] = body_bench.run(load_package(args.avatar), minutes=args.minutes or 30.0)
        print(body_bench.format_result(results["body"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0
