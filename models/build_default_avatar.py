"""Re-build the bundled default avatar from the GRID corpus (speaker s1) and record its quality.

    python -m hygie.models.build_default_avatar [--data ../shared/data] [--out models/default_avatar]

Steps: enroll enroll_5min.mp4 (a capped mouth database, a 4 s idle loop and 100 s of body footage keep
the package small), train the lip model, evaluate on the held-out video (lip model + baselines, the render
and other voices), write quality.json, and cut a short
held-out speech sample for the README's demo. Needs the 'train' extra (torch).
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
GRID_LICENCE = (
    "Built from the GRID corpus, speaker s1 (CC BY 4.0): M. Cooke, J. Barker, S. Cunningham and X. Shao, "
    "\"An audio-visual corpus for speech perception and automatic speech recognition\", JASA 120(5), 2006. "
    "Use it as a demo avatar only; never to impersonate the speaker."
)
GRID_SUBJECT = "GRID corpus speaker s1"  # the consent record of a licensed corpus names its licence
DEMO_SECONDS = 9.0
MAX_MOUTHS = 3000
TEMPLATE_SECONDS = 4.0  # the idle loop is only the fallback now: the body walks body.mp4
BODY_SECONDS = 100.0  # footage kept for the body (evenly spread 6-s blocks): ~60 s stay in the graph once the other light and the pruned ends are out; the wheel stays <= 20 MB
BODY_CRF = 26


def write_flac(path: Path, audio: np.ndarray, sr: int = 16000) -> None:
    import av

    tmp = path.with_suffix(".part.flac")
    with av.open(str(tmp), "w", format="flac") as c:
        st = c.add_stream("flac", rate=sr)
        st.layout = "mono"
        x = np.clip(audio * 32767, -32768, 32767).astype(np.int16)[None, :]
        fr = av.AudioFrame.from_ndarray(x, format="s16", layout="mono")
        fr.sample_rate = sr
        for p in st.encode(fr):
            c.mux(p)
        for p in st.encode():
            c.mux(p)
    tmp.replace(path)


ESPEAK_SENTENCES = (
    "Place blue at F two now.", "Bin green by A nine soon.", "The quick brown fox jumps over the lazy dog.",
    "Please bring me my big purple umbrella before it rains.",
    "We meet every Monday morning to map our plans for the month.",
    "Bob probably bought the bread at the market by the pub.",
    "A synthetic presenter can read the news with a calm and clear voice.",
    "Lay white with P seven again, then set red in M four please.",
)


def faceless_voices(speech: Path, out: Path) -> bool:
    """Voices without a face for `evaluate_audio_voices`: the shared LJSpeech reader (one folder) and, if
    espeak-ng is installed, eight TTS sentences made here. False if there is none."""
    import shutil as sh
    import subprocess

    out.mkdir(parents=True, exist_ok=True)
    if (speech / "ljspeech").is_dir():
        (out / "ljspeech").symlink_to((speech / "ljspeech").resolve(), target_is_directory=True)
    exe = sh.which("espeak-ng")
    if exe:
        (out / "espeak").mkdir()
        for i, text in enumerate(ESPEAK_SENTENCES):
            subprocess.run([exe, "-v", "en-us", "-s", "160", "-w", str(out / "espeak" / f"s{i + 1}.wav"), text],
                           check=True, capture_output=True, timeout=60)
    else:
        log.warning("espeak-ng not found: the TTS voice is left out of quality.json (apt install espeak-ng)")
    return any(out.iterdir())


def build(data: Path, out: Path, seed: int = 0) -> dict:
    from hygie.core.enroll.body import BodyConfig
    from hygie.core.enroll.config import EnrollConfig
    from hygie.core.enroll.pipeline import enroll
    from hygie.core.media.audio_file import load_audio
    from hygie.core.package.avatar import load_package
    from hygie.core.package.writer import update_package
    from hygie.models.evaluate import (audio_files, evaluate, evaluate_audio_voices, evaluate_degraded,
                                       evaluate_voices, format_articulation, format_audio_voices,
                                       format_degraded, format_table, format_voices,
                                       format_voices_articulation, track_truth)
    from hygie.models.render_quality import evaluate_render, format_table as render_table
    from hygie.models.evaluate import json_safe
    from hygie.models.train import train_package

    enroll_video = data / "grid_s1" / "enroll_5min.mp4"
    heldout = data / "grid_s1" / "heldout_2min.mp4"
    voices = sorted((data / "grid_speakers").glob("*.mp4"))
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        pkg = Path(tmp) / "default_avatar"
        enroll([enroll_video], pkg, EnrollConfig(max_mouths=MAX_MOUTHS, template_seconds=TEMPLATE_SECONDS,
                                                 body=BodyConfig(max_seconds=BODY_SECONDS, block_seconds=BODY_SECONDS,
                                                                 loose=2.0, crf=BODY_CRF),
                                                 licence=GRID_LICENCE, consent_name=GRID_SUBJECT,
                                                 consent_method="licence"))
        training = train_package(pkg, seed=seed)
        avatar = load_package(pkg)
        eval_dir = Path(tmp) / "eval"
        truth = track_truth(heldout, avatar.track["reference"])
        lip = evaluate(avatar, heldout, eval_dir, truth=truth)
        print(format_table(lip))
        print(format_articulation(lip))
        vo = evaluate_voices(avatar, voices)
        print(format_voices(vo))
        print(format_voices_articulation(vo))
        speech_dir = Path(tmp) / "voices_audio"
        faceless = faceless_voices(data / "speech", speech_dir)
        va = evaluate_audio_voices(avatar, audio_files(speech_dir), lip["own_speech"]["real"]) if faceless else None
        if va:
            print(format_audio_voices(va))
        deg = evaluate_degraded(avatar, heldout, truth)
        print(format_degraded(deg))
        rq_model = evaluate_render(avatar, heldout, eval_dir / "model", driver="model")
        print(render_table(rq_model))
        rq_true = evaluate_render(avatar, heldout, eval_dir / "landmarks", driver="landmarks")
        print(render_table(rq_true))
        quality = {
            "heldout_video": heldout.name,
            "lip_model": lip["methods"],
            "lookahead_ms": lip["lookahead_ms"],
            "other_voices_mean_opening_r": vo["mean_opening_r"],
            "other_voices_min_opening_r": min(r["model (streaming)"] for r in vo["videos"].values()),
            "articulation": lip["articulation"],
            "own_speech": lip["own_speech"],
            "other_voices_articulation": vo["mean_articulation"],
            "voices_without_face": va["voices"] if va else None,
            "degraded_opening_r": {k: v["opening_r"] for k, v in deg["conditions"].items()},
            "render_model_driven": {k: v for k, v in rq_model.items() if isinstance(v, (int, float, str))},
            "render_true_landmarks": {k: v for k, v in rq_true.items() if isinstance(v, (int, float, str))},
            "training": training,
        }
        (pkg / "quality.json").write_text(json.dumps(json_safe(quality), indent=1, default=float))
        update_package(pkg, {"quality": "quality.json"})
        for name in ("render_strip.png",):
            src = eval_dir / "model" / name
            if src.exists():
                shutil.copy(src, HERE.parent / "docs" / "default_avatar_strip.png")
        if (eval_dir / "lip_opening.png").exists():
            shutil.copy(eval_dir / "lip_opening.png", HERE.parent / "docs" / "default_avatar_opening.png")
        load_package(pkg)  # verify before replacing the shipped one
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(pkg, out)
    samples = HERE / "samples"
    samples.mkdir(exist_ok=True)
    write_flac(samples / "demo_speech.flac", load_audio(heldout)[: int(DEMO_SECONDS * 16000)])
    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    print(f"default avatar: {out} ({size:.1f} MB) built in {time.time() - t0:.0f} s")
    return quality


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=HERE / "default_avatar")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    build(args.data, args.out, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
