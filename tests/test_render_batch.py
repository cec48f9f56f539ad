"""`hygie render-batch` on a real Ray cluster bound to 127.0.0.1 (started and stopped by these tests).

Every output must decode to exactly the frames (and sound) of a serial `hygie render` of the same
job; a bad job fails alone; a re-run skips finished jobs; a worker killed mid-job is retried by
Ray; Ctrl-C leaves no half-written file and no Ray process. Short audio keeps CI time small.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, SPEECH, need
from hygie.core.cli.main import main
from ray_fixtures import RayHead, open_by, ray_env, session_pids

ray = pytest.importorskip("ray", reason="render-batch needs the 'batch' extra: pip install 'hygie-avatar[batch]'")

SPEAKERS = DATA / "grid_speakers"
RUN_TIMEOUT = 420  # one render-batch command, Ray start included, on a loaded 2-core machine


@pytest.fixture(autouse=True, scope="module")
def same_time_code():
    """Every render here carries the same watermark time code, so serial and batch frames compare equal
    (a render's time code is the minute it ran, or SOURCE_DATE_EPOCH where set)."""
    old = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = "1796400000"
    yield
    if old is None:
        os.environ.pop("SOURCE_DATE_EPOCH", None)
    else:
        os.environ["SOURCE_DATE_EPOCH"] = old


def frame_hashes(path: Path) -> list[str]:
    import av

    with av.open(str(path)) as c:
        return [hashlib.sha256(f.to_ndarray(format="bgr24").tobytes()).hexdigest()
                for f in c.decode(c.streams.video[0])]


def sound_hash(path: Path) -> str:
    import av

    h = hashlib.sha256()
    with av.open(str(path)) as c:
        for f in c.decode(c.streams.audio[0]):
            h.update(f.to_ndarray().tobytes())
    return h.hexdigest()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _wav(path: Path, seconds: float, sr: int = 16000) -> Path:
    x = (0.3 * np.sin(2 * np.pi * 200 * np.arange(int(seconds * sr)) / sr) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(x.tobytes())
    return path


def render_batch(args: list[str], env: dict, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    """The real command in its own process (as a user runs it), bounded in time."""
    return subprocess.run([sys.executable, "-m", "hygie.core.cli.main", "render-batch", *args, "--no-progress"],
                          env=env, capture_output=True, text=True, timeout=timeout)


def serial_reference(job: dict, out: Path) -> Path:
    """The same job through `hygie render`, in this process, one after another."""
    args = ["render", "--audio", str(job["audio"]), "-o", str(out)]
    if job.get("avatar"):
        args += ["--avatar", str(job["avatar"])]
    if job.get("size"):
        args += ["--size", job["size"]]
    if job.get("fit"):
        args += ["--fit", job["fit"]]
    assert main(args) == 0
    return out


def no_temp_files(outdir: Path) -> list[Path]:
    return sorted(outdir.rglob(".*.part"))


def state(outdir: Path) -> dict:
    return json.loads((outdir / "batch.json").read_text())


# -- the manifest (no Ray) ----------------------------------------------------------------------
def test_manifest_lines_fail_alone(tmp_path):
    from hygie.core.batch.manifest import read_manifest

    (tmp_path / "a.wav").write_bytes(b"")
    m = tmp_path / "jobs.jsonl"
    m.write_text('{"audio": "a.wav", "output": "one.mp4", "size": "640x360", "fit": "crop"}\n'
                 "# a comment\n\n"
                 '{"audio": "a.wav", "output": "../escape.mp4"}\n'
                 '{"audio": "a.wav", "output": "one.mp4"}\n'
                 '{"audio": "a.wav", "outptu": "typo.mp4"}\n'
                 '{"audio": "a.wav", "output": "bad.mp4", "size": "big"}\n'
                 "not json\n"
                 '{"audio": "/abs/b.wav", "output": "sub/two.mp4", "avatar": "me.hygie"}\n')
    jobs = read_manifest(m)
    ok = [j for j in jobs if j.error is None]
    assert [j.output for j in ok] == ["one.mp4", "sub/two.mp4"]
    assert ok[0].size == (640, 360) and ok[0].fit == "crop" and ok[0].audio == str(tmp_path / "a.wav")
    assert ok[0].avatar is None and ok[1].avatar == str(tmp_path / "me.hygie") and ok[1].audio == "/abs/b.wav"
    errors = {j.line: j.error for j in jobs if j.error}
    assert "inside OUTDIR" in errors[4]
    assert "also written by line 1" in errors[5]
    assert "unknown field 'outptu'" in errors[6]
    assert "WIDTHxHEIGHT" in errors[7]
    assert "not valid JSON" in errors[8]
    assert len({j.output for j in jobs}) == len(jobs)  # every line has its own record name

    c = tmp_path / "jobs.csv"
    c.write_text("avatar,audio,output,size,fit\n,a.wav,x.mp4,,\nme,a.wav,y.mp4,320x240,letterbox\n,a.wav,z.avi,,\n")
    jobs = read_manifest(c)
    assert [(j.line, j.output, j.avatar, j.size) for j in jobs[:2]] == [
        (2, "x.mp4", None, None), (3, "y.mp4", str(tmp_path / "me"), (320, 240))]
    assert ".mp4" in jobs[2].error and jobs[2].line == 4


def test_the_same_render_job_gives_the_same_video(tmp_path):
    """Two serial renders of one job decode to the same frames (the encoder is pinned: media.REPEATABLE_X264)."""
    audio = need(SPEECH / "commonvoice" / "common_voice_en_17299458.wav")
    a = serial_reference({"audio": audio}, tmp_path / "a.mp4")
    b = serial_reference({"audio": audio}, tmp_path / "b.mp4")
    assert frame_hashes(a) == frame_hashes(b) and sound_hash(a) == sound_hash(b)


def test_missing_ray_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as in an install without the extra
    for var in ("RAY_USAGE_STATS_ENABLED", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):  # the command sets them
        monkeypatch.setenv(var, "0")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    audio = _wav(tmp_path / "s.wav", 1.0)
    m = write_jsonl(tmp_path / "jobs.jsonl", [{"audio": str(audio), "output": "a.mp4"}])
    rc = main(["render-batch", str(m), "-o", str(tmp_path / "out"), "--no-progress"])
    assert rc == 1
    assert "pip install 'hygie-avatar[batch]'" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("*.mp4"))


# -- on a real cluster --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    head = RayHead(tmp_path_factory.mktemp("ray_head"), cpus=2).start()
    yield head
    left = head.stop()
    assert left == [], f"Ray processes left behind: {left}"


@pytest.fixture(scope="module")
def batch(cluster, grid_trained_avatar, tmp_path_factory):
    """6 jobs over 2 avatars plus 4 bad ones, rendered once on the cluster with 2 workers."""
    root = tmp_path_factory.mktemp("batch")
    changing = root / "changing.wav"
    shutil.copy(need(SPEECH / "ljspeech" / "LJ001-0013.wav"), changing)
    corrupt = root / "corrupt.m4a"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    grid = str(grid_trained_avatar)
    good = [
        {"audio": str(need(SPEECH / "ljspeech" / "LJ001-0008.wav")), "output": "default/a.mp4"},
        {"audio": str(need(SPEECH / "ljspeech" / "LJ001-0002.wav")), "output": "default/b.mp4", "size": "640x360"},
        {"audio": str(need(SPEECH / "commonvoice" / "common_voice_en_17299458.wav")), "output": "default/c.mp4"},
        {"avatar": grid, "audio": str(need(SPEAKERS / "lbax4n.mp4")), "output": "grid/d.mp4"},
        {"avatar": grid, "audio": str(changing), "output": "grid/e.mp4", "size": "320x320", "fit": "crop"},
        {"avatar": grid, "audio": str(need(SPEAKERS / "swiz3n.mp4")), "output": "grid/f.mp4"},
    ]
    bad = [
        {"audio": str(root / "missing.wav"), "output": "bad/missing.mp4"},
        {"avatar": str(root / "nobody"), "audio": good[0]["audio"], "output": "bad/unknown_avatar.mp4"},
        {"avatar": grid, "audio": str(_wav(root / "blip.wav", 0.05)), "output": "bad/too_short.mp4"},
        {"audio": str(corrupt), "output": "bad/corrupt.mp4"},
    ]
    rows = good[:3] + bad[:2] + good[3:] + bad[2:]
    manifest = write_jsonl(root / "jobs.jsonl", rows)
    outdir = root / "out"
    t = time.monotonic()
    r = render_batch([str(manifest), "-o", str(outdir), "--ray", cluster.address, "--workers", "2"], cluster.env)
    print(f"batch run: {time.monotonic() - t:.1f} s\n{r.stdout}\n{r.stderr[-3000:]}")
    refs = root / "serial"
    refs.mkdir()
    expected = {g["output"]: serial_reference(g, refs / g["output"].replace("/", "_")) for g in good}
    return {"root": root, "manifest": manifest, "outdir": outdir, "result": r, "good": good,
            "expected": expected, "changing": changing}


def test_batch_outputs_are_the_serial_renders(batch):
    r, outdir = batch["result"], batch["outdir"]
    assert r.returncode == 1, r.stderr  # the bad jobs failed...
    assert "6 done, 4 failed, 0 skipped" in r.stdout  # ...and every good one is done
    st = state(outdir)
    for name, ref in batch["expected"].items():
        out = outdir / name
        got, want = frame_hashes(out), frame_hashes(ref)
        assert len(got) == len(want) > 30 and got == want, f"{name}: frames differ from the serial render"
        assert sound_hash(out) == sound_hash(ref), f"{name}: sound differs from the serial render"
        rec = st["jobs"][name]
        assert rec["state"] == "done" and rec["frames"] == len(want) and rec["duration_s"] > 0
        assert rec["bytes"] == out.stat().st_size and rec["node"] == "127.0.0.1"
    assert no_temp_files(outdir) == []


def test_bad_jobs_fail_alone_with_their_reason(batch):
    st, outdir = state(batch["outdir"]), batch["outdir"]
    want = {"bad/missing.mp4": "no such file", "bad/unknown_avatar.mp4": "no such avatar",
            "bad/too_short.mp4": "shorter than 0.1 s", "bad/corrupt.mp4": "cannot be read as media"}
    for name, reason in want.items():
        assert st["jobs"][name]["state"] == "failed" and reason in st["jobs"][name]["error"], st["jobs"][name]
        assert not (outdir / name).exists()
        assert reason in batch["result"].stderr
    assert st["jobs"]["bad/too_short.mp4"]["worker"] in (0, 1)  # this one failed inside a worker


def test_each_avatar_is_loaded_once_per_worker(batch, cluster):
    run = state(batch["outdir"])["runs"][-1]
    workers = run["per_worker"]
    assert len(workers) == 2 and sum(w["jobs"] for w in workers) == 6
    assert all(1 <= w["loads"] <= 2 for w in workers if w["jobs"])  # 2 avatars: at most one load each
    assert sum(w["loads"] for w in workers) < 6  # never once per job
    cached = list((Path(cluster.env["XDG_CACHE_HOME"]) / "hygie" / "batch-avatars").iterdir())
    assert len([c for c in cached if not c.name.startswith(".")]) == 2  # one copy per avatar on this node


def test_rerun_skips_finished_jobs_and_redoes_changed_ones(batch, cluster):
    outdir, manifest = batch["outdir"], batch["manifest"]
    r = render_batch([str(manifest), "-o", str(outdir), "--ray", cluster.address], cluster.env)
    assert "0 done, 4 failed, 6 skipped" in r.stdout, r.stdout + r.stderr
    # an output that vanished, and an input that changed, are rendered again; the rest is skipped
    (outdir / "default/a.mp4").unlink()
    shutil.copy(need(SPEECH / "ljspeech" / "LJ001-0002.wav"), batch["changing"])
    before = {n: (outdir / n).stat().st_mtime_ns for n in batch["expected"] if n not in ("default/a.mp4", "grid/e.mp4")}
    r = render_batch([str(manifest), "-o", str(outdir), "--ray", cluster.address, "--workers", "2"], cluster.env)
    assert "2 done, 4 failed, 4 skipped" in r.stdout, r.stdout + r.stderr
    assert {n: (outdir / n).stat().st_mtime_ns for n in before} == before  # untouched
    assert frame_hashes(outdir / "default/a.mp4") == frame_hashes(batch["expected"]["default/a.mp4"])
    changed = serial_reference({"avatar": batch["good"][4]["avatar"], "audio": batch["changing"], "size": "320x320",
                                "fit": "crop"}, batch["root"] / "changed_ref.mp4")
    assert frame_hashes(outdir / "grid/e.mp4") == frame_hashes(changed)
    assert len(frame_hashes(changed)) != len(frame_hashes(batch["expected"]["grid/e.mp4"]))
    assert no_temp_files(outdir) == []


def test_an_output_not_made_by_the_batch_is_never_overwritten(cluster, tmp_path):
    audio = need(SPEECH / "ljspeech" / "LJ001-0008.wav")
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "mine.mp4").write_bytes(b"the user's own file")
    m = write_jsonl(tmp_path / "jobs.jsonl", [{"audio": str(audio), "output": "mine.mp4"}])
    r = render_batch([str(m), "-o", str(outdir), "--ray", cluster.address], cluster.env)
    assert r.returncode == 1 and "not made by this batch" in r.stderr
    assert (outdir / "mine.mp4").read_bytes() == b"the user's own file"


def test_a_worker_killed_mid_job_is_retried(cluster, grid_trained_avatar, tmp_path):
    jobs = [{"audio": str(need(SPEECH / "jfk" / "jfk.flac")), "output": "long.mp4"},
            {"avatar": str(grid_trained_avatar), "audio": str(need(SPEECH / "cmu_arctic" / "arctic_a0007.wav")),
             "output": "other.mp4"}]
    m = write_jsonl(tmp_path / "jobs.jsonl", jobs)
    outdir = tmp_path / "out"
    cmd = [sys.executable, "-m", "hygie.core.cli.main", "render-batch", str(m), "-o", str(outdir),
           "--ray", cluster.address, "--workers", "2", "--no-progress"]
    p = subprocess.Popen(cmd, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    part = outdir / ".long.mp4.part"
    killed = None
    end = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < end and p.poll() is None and killed is None:
        if part.exists():
            pid = open_by(part, cluster.pids())  # the worker process writing the video right now
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                killed = pid
        time.sleep(0.01)
    out, err = p.communicate(timeout=RUN_TIMEOUT)
    assert killed is not None, f"never saw a worker writing long.mp4\n{out}\n{err}"
    assert p.returncode == 0, out + err
    assert "2 done, 0 failed" in out
    st = state(outdir)
    rec = st["jobs"]["long.mp4"]
    print(f"killed worker pid {killed} mid-job; long.mp4: {rec['state']}, attempts {rec['attempts']}, "
          f"{rec['frames']} frames in {rec['duration_s']} s on pid {rec['pid']}\n{out}")
    assert rec["state"] == "done" and rec["attempts"] == 2 and rec["pid"] != killed
    assert sum(w["restarts"] for w in st["runs"][-1]["per_worker"]) == 1
    refs = tmp_path / "refs"
    refs.mkdir()
    for j in jobs:
        assert frame_hashes(outdir / j["output"]) == frame_hashes(serial_reference(j, refs / j["output"]))
    assert no_temp_files(outdir) == []
    assert killed not in cluster.pids()


def test_ctrl_c_stops_cleanly_and_the_next_run_resumes(cluster, tmp_path, request):
    """Embedded Ray (no --ray): SIGINT to the command's process group, as a terminal's Ctrl-C."""
    clips = ["LJ001-0009.wav", "LJ001-0024.wav", "LJ001-0031.wav", "LJ001-0005.wav"]
    jobs = [{"audio": str(need(SPEECH / "ljspeech" / c)), "output": f"{i}.mp4"} for i, c in enumerate(clips)]
    m = write_jsonl(tmp_path / "jobs.jsonl", jobs)
    outdir = tmp_path / "out"
    short = Path(tempfile.mkdtemp(prefix="hyray", dir="/tmp"))  # Ray's socket paths must stay short
    request.addfinalizer(lambda: shutil.rmtree(short, ignore_errors=True))
    env = ray_env(short)
    cmd = [sys.executable, "-m", "hygie.core.cli.main", "render-batch", str(m), "-o", str(outdir), "--workers", "2",
           "--no-progress"]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    end = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < end and p.poll() is None:
        if outdir.exists() and no_temp_files(outdir):  # a worker is writing a video
            break
        time.sleep(0.05)
    if p.poll() is not None:
        out, err = p.communicate()
        pytest.fail(f"the batch ended before any job started writing (exit {p.returncode})\n{out}\n{err[-3000:]}")
    assert session_pids(p.pid), "no process to interrupt"
    t = time.monotonic()
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=90)
    stopped_in = time.monotonic() - t
    print(f"Ctrl-C: exit {p.returncode} after {stopped_in:.1f} s\n{out}\n{err[-2000:]}")
    assert p.returncode == 130, out + err
    deadline = time.monotonic() + 20
    while session_pids(p.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert session_pids(p.pid) == [], "Ray processes left behind after Ctrl-C"
    assert no_temp_files(outdir) == []
    st = state(outdir)
    states = {n: r["state"] for n, r in st["jobs"].items()}
    assert "interrupted" in states.values()
    for name, s in states.items():  # an mp4 exists only when complete and recorded as such
        assert (outdir / name).exists() == (s == "done")
        if s == "done":
            assert len(frame_hashes(outdir / name)) == st["jobs"][name]["frames"]
    finished = sum(s == "done" for s in states.values())
    # the next run (here on the cluster) renders what is left, and only that
    r = render_batch([str(m), "-o", str(outdir), "--ray", cluster.address, "--workers", "2"], cluster.env)
    assert r.returncode == 0 and f"{4 - finished} done, 0 failed, {finished} skipped" in r.stdout, r.stdout + r.stderr
    assert all(state(outdir)["jobs"][j["output"]]["state"] == "done" for j in jobs)
