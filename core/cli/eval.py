"""`hygie eval AVATAR VIDEO`: lip-model quality on a held-out video of the same person (no torch needed)."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from hygie.core.errors import HygieError
from hygie.core.limits import number_arg

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="measure lip-sync quality on a held-out video of the same person (model vs baselines)",
        description=(
            "Run the avatar's lip model in streaming mode on VIDEO's audio and compare the predicted mouth with "
            "the mouth MediaPipe sees in VIDEO (aligned to the avatar's canonical face): lip landmark distance, "
            "mouth-opening correlation and its best lag, and how often the mouth stays closed in silence, beside "
            "three baselines (mean mouth, loudness regression, ridge on log-mel). Use a video NOT used for enrollment."
        ),
    )
    p.add_argument("avatar", type=Path, help="avatar package with a lip model")
    p.add_argument("video", type=Path, help="held-out video of the same person")
    p.add_argument("--out", type=Path, default=None, help="folder for lip_eval.json and lip_opening.png (default: eval_<avatar>)")
    p.add_argument("--voices", default=None, metavar="DIR",
                   help="also drive the avatar with other speakers' videos (*.mp4 in DIR) and "
                        "report the opening correlation against each speaker's own mouth")
    p.add_argument("--voices-audio", default=None, metavar="DIR",
                   help="also drive the avatar with voices that have no face (audio files in DIR or its sub-folders, "
                        "one voice per folder, e.g. TTS output) and compare the mouth's range, speed and jitter "
                        "with the person's real mouth on VIDEO")
    p.add_argument("--degrade", action="store_true",
                   help="also run the model on VIDEO's audio through reproducible rooms, noise (30/20/10 dB SNR), a "
                        "telephone band and a cheap microphone, and print the opening r under each")
    p.add_argument("--render", action="store_true", help="also measure the rendered mouth (if the renderer provides it)")
    p.add_argument("--save-to-package", action="store_true", help="store the figures as quality.json in the package")
    p.add_argument("--threads", type=number_arg(1, 64, integer=True), default=1, help="onnxruntime threads (default 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hygie.core.package.avatar import load_package
    from hygie.core.package.writer import open_for_update, update_package
    from hygie.models.evaluate import (audio_files, evaluate, evaluate_audio_voices, evaluate_degraded,
                                       evaluate_voices, format_articulation, format_audio_voices,
                                       format_degraded, format_table, format_voices,
                                       format_voices_articulation, json_safe, track_truth)

    if not args.video.exists():
        raise HygieError(f"{args.video}: no such video.")
    avatar = load_package(args.avatar)
    out = args.out or Path(f"eval_{args.avatar.stem}")
    voices_audio = audio_files(Path(args.voices_audio)) if args.voices_audio else None  # fail before the slow part
    truth = track_truth(args.video, avatar.track["reference"])
    res = evaluate(avatar, args.video, out, truth=truth, threads=args.threads)
    print(format_table(res))
    print(format_articulation(res))
    if args.voices:
        vids = sorted(Path(args.voices).glob("*.mp4"))
        if not vids:
            raise HygieError(f"{args.voices}: no .mp4 videos of other speakers found; pass --voices DIR (a folder "
                             "of talking-head .mp4 files of other people).")
        v = evaluate_voices(avatar, vids, threads=args.threads)
        res["voices"] = v
        print(format_voices(v))
        print(format_voices_articulation(v))
    if voices_audio:
        va = evaluate_audio_voices(avatar, voices_audio, res["own_speech"]["real"], threads=args.threads)
        res["voices_audio"] = va
        print(format_audio_voices(va))
    if args.degrade:
        d = evaluate_degraded(avatar, args.video, truth, threads=args.threads)
        res["degraded"] = d
        print(format_degraded(d))
    if args.render:
        try:
            from hygie.models.render_quality import evaluate_render
        except ImportError:
            print("render quality: not available in this install (hygie.models.render_quality missing)")
        else:
            # evaluate_render prints its own table (and a progress bar) unless quiet
            res["render"] = evaluate_render(avatar, args.video, out, driver="model")
    (out / "lip_eval.json").write_text(json.dumps(json_safe(res), indent=1, default=str))
    if args.save_to_package:
        with open_for_update(args.avatar) as pkg:
            (pkg / "quality.json").write_text(json.dumps(json_safe(res), indent=1, default=str))
            update_package(pkg)
    print(f"saved {out / 'lip_eval.json'} and {out / 'lip_opening.png'}")
    return 0
