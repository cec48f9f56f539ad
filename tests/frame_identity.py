"""Are the rendered frames byte-identical between two versions of the code? (speed work must not change a pixel)

    python tests/frame_identity.py hash -o new.json [--frames 400] [--avatar PKG]
    PYTHONPATH=/path/with/hygie-link-to-old-tree python tests/frame_identity.py hash -o old.json
    python tests/frame_identity.py compare old.json new.json

`hash` renders the same drive with the imported `hygie` (put an old checkout first on PYTHONPATH
through a folder holding a `hygie` link to it, as tests/mutation_check.py does) and writes the
SHA-256 of every output frame: the bundled avatar's walking body (voice on and off, so the walk
jumps and cross-fades) at 1280x720 and 1920x1080, and the idle loop (body off) at both sizes.
The drive mixes the avatar's own tracked lips with idle ticks (`render(None)`) and a NaN request.
`compare` prints, per case, how many frames differ (0 = byte-identical) and how many cross-fade and
jump ticks the walk covered.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys

import numpy as np

SIZES = ((1280, 720), (1920, 1080))


def _drive(avatar, n: int) -> list[np.ndarray | None]:
    tr = avatar.track
    us = np.flatnonzero(tr["usable"])
    seq = tr["lips"][us[len(us) // 3]: us[len(us) // 3] + n]
    out: list[np.ndarray | None] = []
    for t in range(n):
        if t % 97 == 50:
            out.append(np.full((40, 2), np.nan, np.float32))  # a lost track
        elif (t // 40) % 3 == 2:
            out.append(None)  # a pause: idle, still closed mouth
        else:
            out.append(seq[t % len(seq)])
    return out


def hash_frames(avatar_path: str | None, frames: int, fps: float = 0.0) -> dict:
    import time

    import cv2

    import hygie.core.render.renderer as R
    from hygie.core.package.avatar import load_package

    cv2.setNumThreads(1)
    avatar = load_package(avatar_path)
    drive = _drive(avatar, frames)
    voice = np.array([(t // 60) % 2 == 0 for t in range(frames)])
    res: dict = {"code": R.__file__, "cases": {}}
    for body in (True, False):
        for size in SIZES:
            r = R.Renderer(avatar, out_size=size, cfg=R.RendererConfig(body=body))
            try:
                r.set_activity(voice)
                r.restart_body()
                r.reset()
                hs, fades, jumps, prev = [], 0, 0, None
                nxt = time.perf_counter()
                for t, lips in enumerate(drive):
                    if fps > 0:  # paced like the live agent: the threads that work ahead get their time
                        nxt += 1.0 / fps
                        time.sleep(max(0.0, nxt - time.perf_counter()))
                    f = r.render(None, t) if lips is None else r.render_lips(lips, t)
                    hs.append(hashlib.sha256(np.ascontiguousarray(f).tobytes()).hexdigest())
                    if r.body:
                        sh = r.loop.shot(t)
                        fades += sh.fade >= 0
                        jumps += prev is not None and sh.fade < 0 and int(r.loop.graph.next[prev]) != sh.node
                        prev = sh.node
                name = f"{'body' if body else 'idle loop'} {size[0]}x{size[1]}"
                # frames handed over ready-made by a thread (code that has such threads)
                ahead = getattr(r.loop, "taken_ready", None)
                cp = getattr(r.loop, "_copier", None)
                ahead = cp.served if cp is not None else ahead
                res["cases"][name] = {"hashes": hs, "fade_ticks": int(fades), "plain_jumps": int(jumps)}
                print(f"{name}: {len(hs)} frames, {fades} cross-fade ticks, {jumps} jumps without fade, "
                      f"{ahead if ahead is not None else 'no'} frames made ahead", flush=True)
            finally:
                r.close()
    return res


def compare(a: dict, b: dict) -> int:
    bad = 0
    for name, ca in a["cases"].items():
        cb = b["cases"].get(name)
        if cb is None:
            print(f"{name}: missing in the second file")
            bad += 1
            continue
        ha, hb = ca["hashes"], cb["hashes"]
        diff = [i for i, (x, y) in enumerate(zip(ha, hb)) if x != y]
        same_len = len(ha) == len(hb)
        bad += bool(diff) or not same_len
        print(f"{name}: {len(ha)} vs {len(hb)} frames, {len(diff)} differ"
              + (f" (first at tick {diff[0]})" if diff else "")
              + f"; cross-fade ticks {ca['fade_ticks']}, jumps without fade {ca['plain_jumps']}")
    print("BYTE-IDENTICAL" if not bad else "DIFFERENT")
    return 0 if not bad else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hash")
    h.add_argument("-o", "--out", required=True)
    h.add_argument("--frames", type=int, default=400)
    h.add_argument("--avatar", default=None)
    h.add_argument("--fps", type=float, default=0.0, help="pace the render at this rate (0: as fast as it goes)")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    args = ap.parse_args(argv)
    if args.cmd == "hash":
        with open(args.out, "w") as f:
            json.dump(hash_frames(args.avatar, args.frames, args.fps), f)
        return 0
    with open(args.a) as fa, open(args.b) as fb:
        return compare(json.load(fa), json.load(fb))


if __name__ == "__main__":
    sys.exit(main())
