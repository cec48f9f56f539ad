"""Every bad input gets a clear, actionable error and leaves nothing behind."""
from __future__ import annotations

import errno
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, need
from hygie.core.enroll.config import EnrollConfig
from hygie.core.enroll.pipeline import enroll
from hygie.core.errors import HygieError, MediaError, PackageError
from media_factory import make_video, side_by_side, speech_like

SPEAKERS = DATA / "grid_speakers"


def no_leftovers(folder: Path, name: str) -> bool:
    return not any(p.name.startswith(name) or p.name.startswith(f".{name}") for p in folder.iterdir())


def blank(i: int) -> np.ndarray:
    f = np.zeros((288, 360, 3), np.uint8)
    f[:] = (150, 90, 40)
    return f


def test_no_face_anywhere(tmp_path):
    v = make_video(tmp_path / "wall.mp4", 75, 25, blank, speech_like(3.0))
    with pytest.raises(HygieError, match="no face found in any frame"):
        enroll([v], tmp_path / "out", EnrollConfig(min_usable_s=1))
    assert no_leftovers(tmp_path, "out")


def test_face_missing_in_most_of_the_video_names_the_time_ranges(tmp_path):
    from hygie.core.media.audio_file import load_audio
    from hygie.core.media.decode import iter_video_frames

    src = need(SPEAKERS / "lbax4n.mp4")
    face = [f for _, f in iter_video_frames(src)][:50]  # 2 s with a face, then 6 s of wall
    audio = np.concatenate([load_audio(src)[:32000], speech_like(6.0)])
    v = make_video(tmp_path / "mostly_wall.mp4", 200, 25, lambda i: face[i] if i < 50 else blank(i), audio)
    with pytest.raises(HygieError, match=r"only 2\d% of the frames.*No face at 2\.0–8\.0 s"):
        enroll([v], tmp_path / "out", EnrollConfig(min_usable_s=1))


def test_too_little_footage_says_how_much_more(tmp_path):
    src = need(SPEAKERS / "lrwp9a.mp4")
    with pytest.raises(HygieError, match=r"only 3 s of usable face footage; at least 60 s.*Record about 177 s more"):
        enroll([src], tmp_path / "out")
    assert no_leftovers(tmp_path, "out")


def test_two_faces_of_similar_size_are_refused(tmp_path):
    v = side_by_side(need(SPEAKERS / "lbax4n.mp4"), need(SPEAKERS / "swiz3n.mp4"), tmp_path / "two.mp4")
    with pytest.raises(HygieError, match="two faces of similar size.*Crop the video to one person"):
        enroll([v], tmp_path / "out", EnrollConfig(min_usable_s=1))


def test_a_small_second_face_is_ignored_and_the_main_one_tracked(tmp_path, caplog):
    v = side_by_side(need(SPEAKERS / "lbax4n.mp4"), need(SPEAKERS / "swiz3n.mp4"), tmp_path / "two.mp4", scale_b=0.75)
    with caplog.at_level(logging.WARNING):
        out = enroll([v], tmp_path / "out", EnrollConfig(min_usable_s=1))
    from hygie.core.package.avatar import load_package

    av = load_package(out)
    tpl = av.template["landmarks"]
    assert np.all(tpl[:, :, 0].mean(1) < 360)  # always the left (larger) face
    assert any("several faces" in r.message for r in caplog.records)


def test_no_audio_track(tmp_path):
    v = make_video(tmp_path / "mute.mp4", 25, 25, blank, None)
    with pytest.raises(MediaError, match="no audio track.*microphone"):
        enroll([v], tmp_path / "out")


def test_silent_audio(tmp_path):
    v = make_video(tmp_path / "silent.mp4", 50, 25, blank, np.zeros(32000, np.float32))
    with pytest.raises(MediaError, match="audio is silent.*microphone"):
        enroll([v], tmp_path / "out")


def test_audio_much_shorter_than_video(tmp_path):
    v = make_video(tmp_path / "short_audio.mp4", 125, 25, blank, speech_like(1.0))
    with pytest.raises(MediaError, match="much shorter than the video"):
        enroll([v], tmp_path / "out")


def test_corrupt_file(tmp_path):
    src = need(SPEAKERS / "sbia1a.mp4")
    bad = tmp_path / "truncated.mp4"
    data = src.read_bytes()
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(MediaError, match="cannot be read as media|corrupt|truncated"):
        enroll([bad], tmp_path / "out")


def test_unsupported_file(tmp_path):
    txt = tmp_path / "notes.mp4"
    txt.write_text("this is not a video\n" * 100)
    with pytest.raises(MediaError, match="cannot be read as media.*re-encode"):
        enroll([txt], tmp_path / "out")


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        enroll([tmp_path / "nope.mp4"], tmp_path / "out")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        enroll([tmp_path / "empty.mp4"], tmp_path / "out")


def test_existing_output_is_refused_without_force(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(PackageError, match="already exists.*--force"):
        enroll([need(SPEAKERS / "sbia1a.mp4")], tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_disk_full_leaves_nothing(tmp_path, monkeypatch):
    import hygie.core.enroll.pipeline as E

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(E, "save_npz", full)
    with pytest.raises(HygieError, match="disk full.*Nothing was written"):
        enroll([need(SPEAKERS / "sbia1a.mp4")], tmp_path / "out", EnrollConfig(min_usable_s=1))
    assert no_leftovers(tmp_path, "out")


def test_cli_prints_the_error_without_traceback(tmp_path, capsys):
    from hygie.core.cli.main import main

    rc = main(["enroll", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "a"), "--no-train"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "hygie enroll: error:" in err and "no such file" in err and "Traceback" not in err
