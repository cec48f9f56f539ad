"""Careless and hostile input (issue 16): nothing lost, nothing left behind, every error one line.

Each numbered defect of the issue has a test here that failed before the fix; the fuzz-style cases
at the end generate many small inputs (seeded, bounded in time) and require a clean outcome:
success, or a one-line error with exit code 1/2 — never a traceback, never a file destroyed.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, GRID_ENROLL, GRID_HELDOUT, need, zip_package
from hygie.core.errors import HygieError, MediaError, PackageError
from media_factory import cut

SPEAKERS = DATA / "grid_speakers"
CLI = [sys.executable, "-m", "hygie.core.cli.main"]


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def tree_digest(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): sha(p) for p in sorted(d.rglob("*")) if p.is_file()}


def run_cli(*args, capsys) -> tuple[int, str]:
    from hygie.core.cli.main import main

    rc = main([str(a) for a in args])
    return rc, capsys.readouterr().err


def one_line_error(err: str) -> bool:
    lines = [ln for ln in err.strip().splitlines() if "error:" in ln]
    return len(lines) == 1 and "Traceback" not in err


@pytest.fixture(scope="module")
def clip12(tmp_path_factory) -> Path:
    """12 s of the GRID enrollment video: a short, real enrollment input."""
    return cut(need(GRID_ENROLL), tmp_path_factory.mktemp("clip") / "grid12.mp4", 12.0)


# --- 1, 2: enroll --force never destroys what it did not make ----------------------------------------------
def test_force_refuses_to_replace_a_folder_that_is_not_a_package(tmp_path, capsys):
    thesis = tmp_path / "work"
    (thesis / "chapters").mkdir(parents=True)
    (thesis / "thesis.tex").write_text("years of work")
    (thesis / "chapters" / "one.tex").write_text("more work")
    before = tree_digest(thesis)
    rc, err = run_cli("enroll", need(SPEAKERS / "lbax4n.mp4"), "-o", thesis, "--force", capsys=capsys)
    assert rc == 1 and "not an avatar package" in err and one_line_error(err)
    assert tree_digest(thesis) == before


def test_force_refuses_to_replace_its_own_input(tmp_path, capsys):
    v = tmp_path / "v.mp4"
    shutil.copy(need(SPEAKERS / "lbax4n.mp4"), v)
    before = sha(v)
    for out in (v, tmp_path):  # the input itself, and a folder holding it
        rc, err = run_cli("enroll", v, "-o", out, "--force", capsys=capsys)
        assert rc == 1 and one_line_error(err)
        assert v.is_file() and sha(v) == before
    rc, err = run_cli("enroll", v, "-o", ".", "--force", capsys=capsys)  # fails at once, not after minutes
    assert rc == 1 and one_line_error(err)


def test_force_replaces_a_package_atomically(grid_avatar, tmp_path):
    """--force still replaces a real package; the writer swaps it in whole (the old one stays until then)."""
    from hygie.core.package.avatar import load_package
    from hygie.core.package.writer import PackageWriter

    pkg = tmp_path / "pkg"
    shutil.copytree(grid_avatar, pkg)
    before = tree_digest(pkg)
    w = PackageWriter(pkg, force=True)
    (w.dir / "pca.npz").write_bytes(b"half-written")
    w.abort()  # an interrupted replace: the old package is untouched and still loads
    assert tree_digest(pkg) == before and load_package(pkg)


# --- 3: render never overwrites its input, nor an existing file without --force -----------------------------
def test_render_refuses_its_own_input_and_existing_outputs(grid_avatar, tmp_path, capsys):
    x = tmp_path / "x.mp4"
    shutil.copy(need(SPEAKERS / "lbax4n.mp4"), x)
    before = sha(x)
    rc, err = run_cli("render", "--avatar", grid_avatar, "--audio", x, "-o", x, "--force", capsys=capsys)
    assert rc == 1 and "also an input" in err and sha(x) == before
    rc, err = run_cli("render", "--avatar", grid_avatar, "--audio", x, "-o", grid_avatar / "o.mp4", capsys=capsys)
    assert rc == 1 and "inside the input" in err and not (grid_avatar / "o.mp4").exists()
    other = tmp_path / "other.mp4"
    other.write_bytes(b"someone's video")
    rc, err = run_cli("render", "--avatar", grid_avatar, "--landmarks-from", x, "-o", other, capsys=capsys)
    assert rc == 1 and "--force" in err and other.read_bytes() == b"someone's video"
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    rc, err = run_cli("render", "--avatar", grid_avatar, "--landmarks-from", x, "-o", folder, "--force", capsys=capsys)
    assert rc == 1 and folder.is_dir() and one_line_error(err)


# --- 4: .hygie files are verified and bounded before extraction ---------------------------------------------
def _cache_leftovers(cache: Path) -> list[Path]:
    root = cache / "hygie" / "packages"
    return [p for p in root.iterdir()] if root.exists() else []


def test_zip_bomb_member_is_refused_before_extraction(grid_avatar, tmp_path, monkeypatch):
    from hygie.core.package.avatar import load_package
    from hygie.core.package.unzip import MAX_MEMBER_BYTES

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    bomb = tmp_path / "bomb.hygie"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        for p in grid_avatar.iterdir():
            if p.name != "features.npz":
                z.write(p, p.name)
        with z.open("features.npz", "w", force_zip64=True) as f:  # 1.1 GiB of zeros, ~1 MB compressed
            block = bytes(1 << 24)
            for _ in range((MAX_MEMBER_BYTES >> 24) + 2):
                f.write(block)
    with zipfile.ZipFile(bomb) as z:
        member = z.getinfo("features.npz")
    assert member.compress_size < 5e6 < MAX_MEMBER_BYTES < member.file_size  # a small member that claims a gigabyte
    t = time.perf_counter()
    with pytest.raises(PackageError, match="features.npz would unpack to"):
        load_package(bomb)
    assert time.perf_counter() - t < 10  # refused from the header, not after writing a gigabyte
    assert _cache_leftovers(tmp_path / "cache") == []


def test_zip_member_not_matching_its_hash_leaves_nothing(grid_avatar, tmp_path, monkeypatch):
    from hygie.core.package.avatar import load_package

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    bad = tmp_path / "bad.hygie"
    with zipfile.ZipFile(bad, "w") as z:
        for p in grid_avatar.iterdir():
            data = p.read_bytes()
            if p.name == "mouths.npz":
                data = data[:-100] + bytes(100)
            z.writestr(p.name, data)
    with pytest.raises(PackageError, match="mouths.npz does not match its sha256"):
        load_package(bad)
    assert _cache_leftovers(tmp_path / "cache") == []
    assert "quality.json" not in json.loads((grid_avatar / "avatar.json").read_text())["files"]
    extra = zip_package(grid_avatar, tmp_path / "extra.hygie", {"quality.json": "{}"})  # a known name, unlisted
    with pytest.raises(PackageError, match="not listed"):
        load_package(extra)
    assert _cache_leftovers(tmp_path / "cache") == []


def test_zip_lying_about_a_member_size_is_refused(grid_avatar, tmp_path, monkeypatch):
    """A header that declares fewer bytes than the member holds: the byte cap (or zipfile's CRC) stops it."""
    from hygie.core.package.avatar import load_package

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    p = zip_package(grid_avatar, tmp_path / "liar.hygie")
    raw = bytearray(p.read_bytes())
    with zipfile.ZipFile(p) as z:
        info = z.getinfo("template.npz")
    # patch the uncompressed size in the central directory entry and the local header
    name = b"template.npz"
    for sig, off in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        i = 0
        while (i := raw.find(sig, i)) >= 0:
            n = int.from_bytes(raw[i + (28 if sig == b"PK\x01\x02" else 26): i + (30 if sig == b"PK\x01\x02" else 28)], "little")
            start = i + (46 if sig == b"PK\x01\x02" else 30)
            if raw[start:start + n] == name:
                raw[i + off: i + off + 4] = (info.file_size // 2).to_bytes(4, "little")
            i += 4
    p.write_bytes(bytes(raw))
    with pytest.raises(PackageError):
        load_package(p)
    assert _cache_leftovers(tmp_path / "cache") == []


def _tmpfs(path: Path, size: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.decode().strip()}); disk-full cases need one")
    return path


def test_disk_full_while_unpacking_names_the_folder_and_keeps_nothing(grid_avatar, tmp_path, monkeypatch):
    from hygie.core.package.avatar import load_package

    small = _tmpfs(tmp_path / "small", "2m")
    try:
        monkeypatch.setenv("XDG_CACHE_HOME", str(small))
        p = zip_package(grid_avatar, tmp_path / "a.hygie")
        for _ in range(2):  # a second try fails the same way: nothing left over blocks it
            with pytest.raises(PackageError, match=r"disk full while unpacking into .*small.*it needs \d+ MB"):
                load_package(p)
            assert _cache_leftovers(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_disk_full_while_rendering_is_one_line_and_keeps_nothing(grid_avatar, tmp_path, capsys):
    small = _tmpfs(tmp_path / "small", "40k")
    try:
        rc, err = run_cli("render", "--avatar", grid_avatar, "--landmarks-from", need(SPEAKERS / "lbax4n.mp4"),
                          "-o", small / "o.mp4", capsys=capsys)
        assert rc == 1 and "disk full" in err and one_line_error(err)
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_package_cache_is_bounded(tmp_path):
    from hygie.core.package.unzip import clean_cache

    root = tmp_path / "packages"
    for i in range(5):
        d = root / f"entry{i}"
        d.mkdir(parents=True)
        (d / "avatar.json").write_bytes(bytes(1000))
        os.utime(d, (1000 + i, 1000 + i))
    stale = root / ".xdead"
    stale.mkdir()
    os.utime(stale, (1, 1))
    clean_cache(root, max_bytes=2500)
    assert sorted(p.name for p in root.iterdir()) == ["entry3", "entry4"]  # newest kept, stale temp gone


# --- 5: SIGTERM / SIGINT at any moment: stop within seconds, no orphans, no temp folders, non-zero exit ------
def _descendants(pid: int) -> set[int]:
    import psutil

    try:
        return {c.pid for c in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def _alive(pids: set[int], grace: float = 2.0) -> list[str]:
    """The processes of `pids` still running `grace` seconds on (a child may take a moment to see its parent go)."""
    import psutil

    t_end = time.perf_counter() + grace
    while True:
        out = []
        for p in pids:
            try:
                proc = psutil.Process(p)
                if proc.status() != psutil.STATUS_ZOMBIE:
                    out.append(f"{p} {' '.join(proc.cmdline())[:120]}")
            except psutil.NoSuchProcess:
                pass
        if not out or time.perf_counter() > t_end:
            return out
        time.sleep(0.1)


def _enroll_and_signal(clip: Path, out: Path, after: float | None, sig: int = signal.SIGTERM) -> tuple[int, float, set[int]]:
    cmd = CLI + ["enroll", str(clip), "-o", str(out), "--no-train", "--min-footage", "5", "--workers", "2",
                 "--consent", "GRID speaker s1 (CC BY 4.0)"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    seen: set[int] = set()
    t0 = time.perf_counter()
    while p.poll() is None and (after is None or time.perf_counter() - t0 < after):
        seen |= _descendants(p.pid)
        time.sleep(0.1)
        if time.perf_counter() - t0 > 300:
            break
    t_sig = time.perf_counter()
    if p.poll() is None and after is not None:
        p.send_signal(sig)
    try:
        p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise AssertionError("the command did not stop within 60 s of the signal")
    return p.returncode, time.perf_counter() - t_sig, seen


def test_enroll_success_then_signals_at_random_moments(clip12, tmp_path):
    from hygie.core.package.avatar import load_package

    t = time.perf_counter()
    rc, _, _ = _enroll_and_signal(clip12, tmp_path / "full", None)
    full = time.perf_counter() - t
    assert rc == 0 and load_package(tmp_path / "full").meta["n_usable"] > 250  # the success path, end to end
    rng = random.Random(16)
    moments = sorted(rng.uniform(0.1, 0.9) * full for _ in range(3))
    for k, (after, sig) in enumerate([(m, signal.SIGTERM) for m in moments] + [(0.5 * full, signal.SIGINT)]):
        out = tmp_path / f"out{k}"
        rc, stop_s, seen = _enroll_and_signal(clip12, out, after, sig)
        assert _alive(seen) == [], f"processes outlived the command (signal {sig} at {after:.1f} s)"
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(f".out{k}")]
        assert leftovers == [], leftovers
        if rc == 0:  # it finished before the signal landed: then the package must be whole
            assert load_package(out)
        else:
            assert rc == 128 + sig or (sig == signal.SIGINT and rc == 130), rc
            assert not out.exists()
            assert stop_s < 10, f"took {stop_s:.1f} s to stop"


# --- 6: sizes are bounded everywhere ------------------------------------------------------------------------
@pytest.mark.parametrize("size", ["99998x99998", "0x0", "7681x4320", "12x12", "1280"])
def test_run_size_is_bounded_before_anything_opens(size, capsys):
    t = time.perf_counter()
    rc, err = run_cli("run", "--size", size, "--no-obs", "--duration", "1", capsys=capsys)
    assert rc == 1 and "size" in err and one_line_error(err)
    assert time.perf_counter() - t < 5


# --- 7: rotation tags --------------------------------------------------------------------------------------
def test_phone_video_with_a_rotation_tag_is_read_upright(tmp_path):
    from hygie.core.face.canonical import canonical_lips
    from hygie.core.face.track import track_video
    from hygie.core.media.probe import probe_video
    from hygie.core.package.avatar import load_package

    src = need(SPEAKERS / "lbax4n.mp4")
    side, rot = tmp_path / "side.mp4", tmp_path / "phone.mp4"
    # stored sideways (pixels turned a quarter), then tagged so that players show it upright again
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), "-vf", "transpose=clock", "-c:a", "copy",
                    str(side)], check=True, timeout=120)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(side), "-c", "copy", "-metadata:s:v:0", "rotate=90",
                    str(rot)], check=True, timeout=120)
    up, info = probe_video(src), probe_video(rot)
    assert (info.width, info.height) == (up.width, up.height) and info.rotation == 1
    a, b = track_video(str(src), workers=1), track_video(str(rot), workers=1)
    ok = np.isfinite(a.landmarks[:, 0, 0]) & np.isfinite(b.landmarks[:, 0, 0])
    assert ok.mean() > 0.9  # the face is found on the upright frames
    ref = load_package(None).track["reference"]
    la, lb = canonical_lips(a.landmarks[ok], ref), canonical_lips(b.landmarks[ok], ref)
    assert float(np.linalg.norm(la - lb, axis=-1).mean()) < 0.01  # same mouth, same shape (IOD)


# --- 8: one-line errors instead of tracebacks -------------------------------------------------------------
def test_pickled_npz_is_refused_with_a_package_error(grid_avatar_copy):
    from hygie.core.package.avatar import load_package
    from hygie.core.package.writer import update_package

    np.savez(grid_avatar_copy / "pca.npz", mean=np.array([{"evil": 1}], dtype=object))  # an object array: pickle
    update_package(grid_avatar_copy)  # even with matching hashes
    with pytest.raises(PackageError, match="pickled"):
        _ = load_package(grid_avatar_copy).pca


@pytest.mark.parametrize("key, value, match", [
    ("fps", 0, "fps is 0"), ("fps", "thirty", "fps is"), ("frame_size", [0, 288], "frame_size is 0"),
    ("crop", None, "crop is"), ("audio", {"sample_rate": 16000}, "audio.n_mels"), ("pca", {}, "pca.n_components"),
])
def test_avatar_json_values_are_checked(grid_avatar_copy, key, value, match):
    from hygie.core.package.avatar import load_package
    from hygie.core.package.schema import SELF_DIGEST, canonical_digest

    p = grid_avatar_copy / "avatar.json"
    meta = json.loads(p.read_text())
    meta[key] = value
    meta[SELF_DIGEST] = canonical_digest(meta)  # a consistent but wrong file: the schema catches it
    p.write_text(json.dumps(meta))
    with pytest.raises(PackageError, match=match):
        load_package(grid_avatar_copy)


def test_avatar_json_edited_by_hand_is_refused(grid_avatar_copy):
    from hygie.core.package.avatar import load_package

    p = grid_avatar_copy / "avatar.json"
    meta = json.loads(p.read_text())
    meta["fps"] = 50.0  # plausible, but not what was enrolled
    p.write_text(json.dumps(meta))
    with pytest.raises(PackageError, match="does not match its own digest"):
        load_package(grid_avatar_copy)


@pytest.mark.parametrize("args, match", [
    (["run", "--fps", "nan"], "--fps"), (["run", "--duration", "-5"], "--duration"),
    (["enroll", "x.mp4", "-o", "y", "--workers", "0"], "--workers"), (["run", "--threads", "2.5"], "--threads"),
])
def test_bad_numbers_are_refused_at_once(args, match, capsys):
    with pytest.raises(SystemExit) as e:
        run_cli(*args, capsys=capsys)
    assert e.value.code == 2 and match in capsys.readouterr().err


@pytest.mark.parametrize("text, match", [
    ('[run]\nfps = "thirty"\n', "fps"), ('[run]\nsize = 1280\n', "size"), ("run = 5\n", "table"),
    ('[run]\nduration = -5\n', "duration"), ('[run]\npreview = "yes"\n', "preview"),
])
def test_config_values_of_the_wrong_type(tmp_path, monkeypatch, text, match):
    from hygie.core.live.config import build_config

    p = tmp_path / "config.toml"
    p.write_text(text)
    monkeypatch.setenv("HYGIE_CONFIG", str(p))
    with pytest.raises(HygieError, match=match):
        build_config({})


def test_truncated_video_is_found_at_once_and_enrolls_what_is_there(clip12, tmp_path, caplog):
    from hygie.core.enroll.config import EnrollConfig
    from hygie.core.enroll.pipeline import enroll
    from hygie.core.media.scan import scan_video

    faststart = tmp_path / "fs.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(clip12), "-c", "copy", "-movflags", "+faststart",
                    str(faststart)], check=True, timeout=60)
    trunc = tmp_path / "trunc.mp4"
    data = faststart.read_bytes()
    trunc.write_bytes(data[: int(len(data) * 0.9)])  # an interrupted copy
    s = scan_video(trunc)
    assert s.truncated and s.last_time < s.duration - 0.5
    with caplog.at_level("WARNING"):
        pkg = enroll([trunc], tmp_path / "pkg", EnrollConfig(min_usable_s=5, workers=2))
    assert pkg.exists() and "cut short" in caplog.text


# --- 9: the live clock under concurrent callbacks ----------------------------------------------------------
def test_capture_clock_survives_callbacks_racing_the_reader():
    """The callback thread raises n_anchors while offset() reads (was: IndexError 503 vs 502)."""
    from hygie.core.audio.capture import _N_ANCHORS, _Capture

    cap = _Capture(1, 48000.0, 1.0)
    stop = threading.Event()

    def callbacks() -> None:
        k = 0
        while not stop.is_set():
            i = k % _N_ANCHORS
            cap.anchor_idx[i] = 240 * k
            cap.anchor_t[i] = time.perf_counter()
            k += 1
            cap.n_callbacks = k
            cap.n_anchors = min(k, _N_ANCHORS)
            cap.last_callback = cap.anchor_t[i]

    th = threading.Thread(target=callbacks, daemon=True)
    th.start()
    try:
        # a count of reads, not a time: on a loaded machine the callback thread holds the GIL for long
        # stretches, and what matters is how many reads raced it, not how fast they were
        t_end = time.perf_counter() + 120.0
        n = 0
        while n < 2000 and time.perf_counter() < t_end:
            cap.offset()
            n += 1
    finally:
        stop.set()
        th.join()
    assert n == 2000 and cap.n_callbacks > 2000, (n, cap.n_callbacks)


# --- fuzz-style cases (seeded, bounded) ---------------------------------------------------------------------
def test_fuzz_config_values(tmp_path, monkeypatch):
    """Random values of random types for every setting: a config or a HygieError, never anything else."""
    import dataclasses

    from hygie.core.live.config import AgentConfig, build_config

    keys = [f.name for f in dataclasses.fields(AgentConfig) if f.name != "camera_kwargs"]
    values = ['"x"', '"1280x720"', '"99999x1"', "0", "-1", "1e400", "nan", "inf", "30", "2.5", "true", "[]", "{}",
              '"-5"', '""', "[1, 2]", "1280"]
    rng = random.Random(8)
    p = tmp_path / "config.toml"
    monkeypatch.setenv("HYGIE_CONFIG", str(p))
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(300):
        lines = [f"{k} = {rng.choice(values)}" for k in rng.sample(keys, rng.randint(1, 4))]
        p.write_text("[run]\n" + "\n".join(lines) + "\n")
        try:
            cfg = build_config({})
        except HygieError as e:
            assert "\n" not in str(e)
            outcomes["refused"] += 1
            continue
        assert 1 <= cfg.fps <= 120 and (cfg.duration is None or cfg.duration > 0)
        outcomes["ok"] += 1
    assert outcomes["ok"] > 5 and outcomes["refused"] > 100


def test_fuzz_corrupted_packages(grid_avatar, tmp_path):
    """Random byte damage in any file of a package: refused with a PackageError, or loads exactly as before."""
    from hygie.core.package.avatar import load_package

    rng = random.Random(19)
    names = [p.name for p in grid_avatar.iterdir()]
    for k in range(24):
        pkg = tmp_path / f"p{k}"
        shutil.copytree(grid_avatar, pkg)
        victim = pkg / rng.choice(names)
        data = bytearray(victim.read_bytes())
        how = rng.choice(["flip", "truncate", "zero"])
        if how == "flip":
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif how == "truncate":
            data = data[: rng.randrange(len(data))]
        else:
            a = rng.randrange(len(data))
            data[a:a + 64] = bytes(len(data[a:a + 64]))
        if bytes(data) == victim.read_bytes():
            continue
        victim.write_bytes(bytes(data))
        with pytest.raises(PackageError):
            av = load_package(pkg)
            _ = (av.track, av.pca, av.mouths, av.template)
        shutil.rmtree(pkg)


def test_fuzz_corrupted_media(tmp_path):
    """Random damage to a real clip: every reader gives data or a MediaError, never another exception."""
    from hygie.core.media.audio_file import load_audio
    from hygie.core.media.decode import iter_video_frames
    from hygie.core.media.probe import probe_video
    from hygie.core.media.scan import scan_video

    src = need(SPEAKERS / "swiz3n.mp4").read_bytes()
    rng = random.Random(7)
    for k in range(30):
        data = bytearray(src)
        how = rng.choice(["truncate", "flip", "zero", "head"])
        if how == "truncate":
            data = data[: rng.randrange(len(data))]
        elif how == "flip":
            for _ in range(rng.randint(1, 50)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif how == "zero":
            a, n = rng.randrange(len(data)), rng.randint(100, 5000)
            data[a:a + n] = bytes(len(data[a:a + n]))
        else:
            n = rng.randint(8, 64)
            data[:n] = bytes(n)
        f = tmp_path / f"m{k}.mp4"
        f.write_bytes(bytes(data))
        for reader in (probe_video, scan_video, load_audio, lambda p: sum(1 for _ in iter_video_frames(p))):
            try:
                reader(f)
            except MediaError as e:
                assert "\n" not in str(e)
