"""`hygie render`: each bad input gives a clear error (nothing half-written); real renders decode back."""
from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from conftest import GRID_HELDOUT, SPEECH, need
from hygie.core.cli.main import main
from media_factory import cut


def _wav(path: Path, x: np.ndarray, sr: int = 22050) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def _render(capsys, *args: str) -> tuple[int, str]:
    rc = main(["render", *args])
    return rc, capsys.readouterr().err


def _decode(path: Path) -> tuple[int, float, int, float]:
    """(video frames, video duration s, audio sample rate, audio duration s) by decoding the file back."""
    import av

    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        fps = float(vs.average_rate or vs.guessed_rate)
        n = sum(1 for _ in c.decode(vs))
    with av.open(str(path)) as c:
        samples = sum(f.samples for f in c.decode(c.streams.audio[0]))
        rate = c.streams.audio[0].rate
    return n, n / fps, rate, samples / rate


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory) -> Path:
    need(GRID_HELDOUT)
    return cut(GRID_HELDOUT, tmp_path_factory.mktemp("clip") / "held3s.mp4", 3.0)


def test_empty_audio(grid_avatar, tmp_path, capsys):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    rc, err = _render(capsys, "--avatar", str(grid_avatar), "--audio", str(empty), "-o", str(tmp_path / "o.mp4"))
    assert rc == 1 and "empty" in err
    assert not (tmp_path / "o.mp4").exists()


def test_corrupt_audio(grid_avatar, tmp_path, capsys):
    bad = tmp_path / "bad.m4a"
    bad.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    rc, err = _render(capsys, "--avatar", str(grid_avatar), "--audio", str(bad), "-o", str(tmp_path / "o.mp4"))
    assert rc == 1 and "cannot be read" in err
    assert list(tmp_path.glob("*.mp4")) == [] and list(tmp_path.glob(".*part")) == []


def test_audio_without_speech_renders_idle(grid_avatar, tmp_path, capsys):
    quiet = _wav(tmp_path / "quiet.wav", np.random.default_rng(0).normal(0, 1e-4, 22050 * 2))
    out = tmp_path / "idle.mp4"
    rc, err = _render(capsys, "--avatar", str(grid_avatar), "--audio", str(quiet), "-o", str(out))
    assert rc == 0, err
    n, vdur, rate, adur = _decode(out)
    assert n == 50 and abs(adur - 2.0) < 0.1


def test_package_from_another_version(grid_avatar_copy, tmp_path, capsys):
    meta = json.loads((grid_avatar_copy / "avatar.json").read_text())
    meta["format_version"] = 99
    (grid_avatar_copy / "avatar.json").write_text(json.dumps(meta))
    speech = _wav(tmp_path / "s.wav", np.zeros(22050))
    rc, err = _render(capsys, "--avatar", str(grid_avatar_copy), "--audio", str(speech), "-o", str(tmp_path / "o.mp4"))
    assert rc == 1 and "version 99" in err and "Upgrade" in err


@pytest.mark.parametrize("where", ["missing_dir", "is_dir", "parent_is_file", "not_mp4"])
def test_output_not_writable(grid_avatar, tmp_path, capsys, where):
    speech = _wav(tmp_path / "s.wav", np.zeros(22050))
    (tmp_path / "afile").write_text("x")
    out = {"missing_dir": tmp_path / "nope" / "o.mp4", "is_dir": tmp_path,
           "parent_is_file": tmp_path / "afile" / "o.mp4", "not_mp4": tmp_path / "o.avi"}[where]
    rc, err = _render(capsys, "--avatar", str(grid_avatar), "--audio", str(speech), "-o", str(out))
    named = {"missing_dir": "nope", "is_dir": str(tmp_path), "parent_is_file": "afile", "not_mp4": "o.avi"}[where]
    assert rc == 1 and named in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "s.wav"]


def test_read_only_folder(grid_avatar, tmp_path, capsys):
    """A folder nobody may write into. Root writes through permission bits, so for root (CI) the folder is
    a read-only mount, which refuses root too; otherwise a chmod 555 folder."""
    import os
    import subprocess

    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = False
    if os.geteuid() == 0:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"root, and no read-only mount possible here: {r.stderr.decode().strip()}")
        mounted = True
    else:
        ro.chmod(0o555)
    try:
        speech = _wav(tmp_path / "s.wav", np.zeros(22050))
        rc, err = _render(capsys, "--avatar", str(grid_avatar), "--audio", str(speech), "-o", str(ro / "o.mp4"))
        assert rc == 1 and "not writable" in err and list(ro.iterdir()) == []
    finally:
        if mounted:
            subprocess.run(["umount", str(ro)], check=False)


def test_speech_without_lip_model_says_train(grid_avatar, tmp_path, capsys):
    from hygie.core.package.avatar import load_package

    if load_package(grid_avatar).has_lip_model:
        pytest.skip("this avatar has a lip model")
    jfk = need(SPEECH / "jfk" / "jfk.flac")
    rc, err = _render(capsys, "--avatar", str(grid_avatar), "--audio", str(jfk), "-o", str(tmp_path / "o.mp4"))
    assert rc == 1 and "hygie train" in err and "--landmarks-from" in err


def test_landmarks_from_video_renders_a_playable_mp4(grid_avatar, short_clip, tmp_path, capsys):
    out = tmp_path / "lm.mp4"
    rc, err = _render(capsys, "--avatar", str(grid_avatar), "--landmarks-from", str(short_clip), "-o", str(out), "--debug")
    assert rc == 0, err
    n, vdur, rate, adur = _decode(out)
    assert n == 75 and abs(vdur - 3.0) < 0.05 and abs(adur - 3.0) < 0.1  # audio aligned with the video


def test_scaled_render_with_separate_audio(grid_avatar, short_clip, tmp_path, capsys):
    need(SPEECH)
    out = tmp_path / "lm720.mp4"
    rc, err = _render(capsys, "--avatar", str(grid_avatar), "--landmarks-from", str(short_clip),
                      "--audio", str(short_clip), "--size", "640x360", "-o", str(out))
    assert rc == 0, err
    import av

    with av.open(str(out)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (640, 360)
        assert c.streams.audio[0].codec_context.name == "aac"


@pytest.fixture(scope="module")
def trained_avatar(grid_trained_avatar) -> Path:
    return grid_trained_avatar


@pytest.mark.parametrize("name", ["jfk/jfk.flac", "cmu_arctic/arctic_a0007.wav"])
def test_speech_renders_with_the_lip_model(trained_avatar, tmp_path, capsys, name):
    speech = need(SPEECH / name)
    out = tmp_path / "speech.mp4"
    rc, err = _render(capsys, "--avatar", str(trained_avatar), "--audio", str(speech), "-o", str(out))
    assert rc == 0, err
    from hygie.core.media.audio_file import load_audio

    dur = len(load_audio(speech)) / 16000
    n, vdur, rate, adur = _decode(out)
    assert abs(vdur - dur) < 0.1 and abs(adur - dur) < 0.1  # picture and sound start together, same length
    # and the mouth a viewer sees moves with this voice (another speaker than the avatar's)
    from detect import corr, detected_opening, envelope_at_frames, video_frames
    from hygie.core.package.avatar import load_package

    av = load_package(trained_avatar)
    frames = video_frames(out)
    opening = detected_opening(frames, av.track["reference"])
    assert np.nanstd(opening) > 0.015
    assert corr(opening, envelope_at_frames(load_audio(speech), len(frames), av.fps)) > 0.3
