"""Would the tests notice a broken product? Break it on purpose, one way at a time, and see.

    python tests/mutation_check.py                 # every breakage
    python tests/mutation_check.py retrieval warp  # some of them (by name)
    python tests/mutation_check.py --list

Each breakage is a small edit of the real code (the renderer returns the plain idle frame, the lip
model answers zeros, the verifier skips non-.npz files, ...) applied to a temporary copy of the
checkout; the fast tests named beside it run on that copy and must FAIL. They are first run on the
unbroken copy, where they must pass, so a "caught" can only come from the breakage. The copy is
imported instead of the installed checkout through a `hygie` folder of links put first on
PYTHONPATH. The enrolled test package is made once and shared (HYGIE_TEST_AVATAR).

Exit code 0 when every breakage was caught; the table says which tests caught which.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Breakage:
    name: str
    what: str
    file: str
    old: str
    new: str
    tests: list[str]


BREAKAGES = [
    Breakage("renderer-idle", "the renderer draws the mouth on a throwaway copy and returns the idle frame",
             "core/render/renderer.py", "        return out\n", "        return self.loop.frame(tick).copy()\n",
             ["tests/test_renderer.py"]),
    Breakage("lips-zero", "the lip model returns zeros", "core/lips/model.py",
             "        out = self._run(self.norm(mel))\n", "        out = self._run(self.norm(mel)) * 0.0\n",
             ["tests/test_default_avatar.py::test_readme_main_job_renders_the_demo_sentence",
              "tests/test_lip_model.py"]),
    Breakage("verify-npz-only", "the package verifier checks the hashes of .npz files only", "core/package/avatar.py",
             "        for name, digest in files.items():\n            if name not in KNOWN_FILES:",
             "        for name, digest in files.items():\n            if not name.endswith('.npz'):\n                continue\n"
             "            if name not in KNOWN_FILES:",
             ["tests/test_package.py"]),
    Breakage("retrieval-one", "retrieval always returns one mouth", "core/render/retrieval.py",
             "        j = int(ids[np.lexsort((ids, cost))[0]])\n", "        j = 0\n",
             ["tests/test_retrieval.py", "tests/test_renderer.py"]),
    Breakage("warp-identity", "the warp is the identity (the crop is pasted unwarped)", "core/render/warp.py",
             "        A = triangle_affines(np.asarray(src_pts, np.float32), local, self.tris)\n",
             "        A = triangle_affines(local, local, self.tris)\n",
             ["tests/test_warp.py", "tests/test_renderer.py"]),
    Breakage("colour-off", "the colour match is off", "core/render/blend.py",
             "    if np.any(np.abs(gain - 1.0) > 1e-3):\n", "    gain = np.ones(3, np.float32)\n    if False:\n",
             ["tests/test_blend.py"]),
    Breakage("gate-closed", "the voice gate never opens", "core/live/agent.py",
             "        return now - self._last_voice <= self.hangover_s\n", "        return False\n",
             ["tests/test_agent.py::test_live_from_pulseaudio_frames_idle_speech_latency"]),
    Breakage("obs-off-ignored", "the OBS 'off' event is ignored", "plugin/obs/control.py",
             "            elif cmd is not None:\n                self.state.set(on=cmd == \"on\", reason=f\"custom event: {cmd}\")\n",
             "            elif cmd == \"on\":\n                self.state.set(on=True, reason=f\"custom event: {cmd}\")\n",
             ["tests/test_obs_control.py"]),
    # of our own
    Breakage("force-anything", "--force replaces any folder or file", "core/outputs.py",
             "        if out.is_symlink() or not replaceable(out):\n", "        if False:\n",
             ["tests/test_hardening.py::test_force_refuses_to_replace_a_folder_that_is_not_a_package"]),
    Breakage("zip-unverified", "a .hygie member is unpacked without checking its hash", "core/package/unzip.py",
             "        if h.hexdigest() != digest:\n", "        if False:\n",
             ["tests/test_hardening.py::test_zip_member_not_matching_its_hash_leaves_nothing"]),
    Breakage("no-damage-filter", "damaged (grey/blocky) frames enter the mouth database", "core/enroll/checks.py",
             "    return (track.grey - grey_base > 0.15) | (track.block > max(2.2, 1.8 * block_base))\n",
             "    return np.zeros(len(track.grey), bool)\n",
             ["tests/test_enroll_real.py"]),
    Breakage("latency-no-lookahead", "the latency figure forgets the look-ahead", "core/live/agent.py",
             "                self._coeffs_mel_idx = self._mel_frames - 1 - self.lookahead_frames\n",
             "                self._coeffs_mel_idx = self._mel_frames - 1\n",
             ["tests/test_agent.py::test_live_from_pulseaudio_frames_idle_speech_latency"]),
    Breakage("mel-stream-drift", "the streaming log-mel drops a sample at every push", "core/audio/mel.py",
             "        self._buf = self._buf[n * self.cfg.hop_length:]\n",
             "        self._buf = self._buf[n * self.cfg.hop_length + 1:]\n",
             ["tests/test_streaming_mel.py"]),
]


def _copy_checkout(dst: Path) -> None:
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard"], capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        src = REPO / f
        if src.is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)
    shim = dst / "_import" / "hygie"
    shim.mkdir(parents=True)
    for top in ("core", "models", "plugin", "installer"):
        (shim / top).symlink_to(dst / top)


def _pytest(copy: Path, tests: list[str], env: dict, timeout: float) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    try:
        r = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, "timeout"
    tail = [ln for ln in r.stdout.strip().splitlines() if ln.strip()][-1:] or [""]
    return r.returncode, tail[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="breakages to try (default: all)")
    ap.add_argument("--list", action="store_true", help="list the breakages and their tests")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds per test run (default 1200)")
    a = ap.parse_args(argv)
    chosen = [b for b in BREAKAGES if not a.names or b.name in a.names]
    if a.list:
        for b in BREAKAGES:
            print(f"{b.name:22s} {b.what}\n{'':22s} tests: {' '.join(b.tests)}")
        return 0
    work = Path(tempfile.mkdtemp(prefix="hygie_mutation_"))
    env = dict(os.environ)
    env.setdefault("HYGIE_TEST_AVATAR", str(work / "test_avatar"))  # enrolled once, shared by every run
    env.setdefault("HYGIE_DATA", str(REPO.parent / "shared" / "data"))  # the copy has no ../shared beside it
    env["HYGIE_STRICT"] = "1"  # a skipped test must not count as a pass (nor as a catch)
    rows, missed = [], []
    try:
        for b in chosen:
            copy = work / b.name
            _copy_checkout(copy)
            run_env = dict(env, PYTHONPATH=str(copy / "_import") + os.pathsep + env.get("PYTHONPATH", ""))
            t = time.time()
            rc, tail = _pytest(copy, b.tests, run_env, a.timeout)
            if rc != 0:
                rows.append((b.name, "BASELINE FAILS", tail))
                missed.append(b.name)
                continue
            target = copy / b.file
            text = target.read_text()
            if text.count(b.old) != 1:
                rows.append((b.name, "NOT APPLIED", f"{b.file}: the code to break changed; update this tool"))
                missed.append(b.name)
                continue
            target.write_text(text.replace(b.old, b.new))
            rc, tail = _pytest(copy, b.tests, run_env, a.timeout)
            caught = rc not in (0, 124, 5)
            rows.append((b.name, "caught" if caught else "MISSED", f"{tail}  ({time.time() - t:.0f} s)"))
            if not caught:
                missed.append(b.name)
            shutil.rmtree(copy, ignore_errors=True)
            print(f"{b.name:22s} {rows[-1][1]:8s} {rows[-1][2]}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n| breakage | result | caught by |\n|---|---|---|")
    for (name, res, tail), b in zip(rows, chosen):
        print(f"| {b.what} | {res} | {' '.join(t.split('/')[-1] for t in b.tests)} — {tail} |")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
