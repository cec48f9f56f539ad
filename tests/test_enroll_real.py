"""Enrollment on real footage: the 5-minute GRID video and the 720p clips."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import GRID_ENROLL, OBAMA, need, zip_package
from hygie.core.face import geometry as G
from hygie.core.enroll.config import EnrollConfig
from hygie.core.enroll.pipeline import enroll
from hygie.core.package.avatar import load_package
from hygie.core.render.jpeg import decode_jpeg_blob

pytestmark = pytest.mark.slow


def test_grid_package_reloads_with_coverage_and_shapes(grid_avatar):
    av = load_package(grid_avatar)  # verifies every hash
    m = av.meta
    assert m["frame_size"] == [360, 288] and m["fps"] == 25.0
    assert m["n_frames"] == 7499
    assert m["coverage"] >= 0.99
    assert m["pca"]["variance_explained"] >= 0.97
    K = m["pca"]["n_components"]
    assert 3 <= K <= 12
    tr = av.track
    assert tr["lips"].shape == (7499, 40, 2) and tr["coeffs"].shape == (7499, K)
    # canonical units: the mean mouth is about 0.7-1.0 IOD wide
    width = np.linalg.norm(tr["lips"][tr["usable"], G.LIP_POS[61]] - tr["lips"][tr["usable"], G.LIP_POS[291]], axis=1)
    assert 0.5 < np.median(width) < 1.2
    # 25 fps video, 100 Hz mel: features cover the audio
    assert abs(len(av.features["mel"]) - 100 * 300) < 10
    assert av.mouths["points"].shape == (m["crop"]["n_mouths"], len(G.MOUTH_REGION), 2)


def test_grid_damaged_sentence_is_dropped(grid_avatar):
    av = load_package(grid_avatar)
    usable = av.track["usable"]
    assert not usable[5700:5712].any()  # grey/blocky frames, including the two FaceMesh accepts
    assert usable[5690:5700].all() or usable[5690:5700].mean() > 0.8
    db = set(av.mouths["frame"].tolist())
    assert not db & set(range(5700, 5712))  # no garbage mouth in the retrieval database
    src = av.meta["sources"][0]
    assert src["damaged"] == 12 and src["no_face"] == 10


def test_damage_detector_finds_the_real_glitch_and_nothing_else():
    """The grey/blocky detector itself, on the decoded frames around the damaged GRID sentence (fast: 4 s)."""
    from types import SimpleNamespace

    from hygie.core.enroll.checks import damaged_frames
    from hygie.core.face.track import frame_damage_stats
    from hygie.core.media.decode import iter_video_frames

    times, stats = [], []
    for t, f in iter_video_frames(need(GRID_ENROLL), start=226.0, end=230.0):
        times.append(t)
        stats.append(frame_damage_stats(f))
    times = np.array(times)
    grey, block = (np.array(v, np.float32) for v in zip(*stats))
    flagged = damaged_frames(SimpleNamespace(grey=grey, block=block))
    glitch = (times >= 228.0 - 1e-6) & (times < 228.48)  # frames 5700-5711
    assert glitch.sum() == 12 and flagged[glitch].all()
    assert not flagged[~glitch].any()


def test_grid_mouth_opening_follows_the_audio(grid_avatar):
    av = load_package(grid_avatar)
    mel = av.features["mel"]
    loud = mel.max(1)
    tr = av.track
    idx = np.clip(av.mel_config.frame_at(tr["times"]), 0, len(mel) - 1)
    u = tr["usable"]
    r = np.corrcoef(loud[idx][u], tr["opening"][u])[0, 1]
    assert r > 0.3  # speech and open mouths go together


def test_grid_crops_and_template_decode(grid_avatar):
    av = load_package(grid_avatar)
    mo = av.mouths
    w, h = av.meta["crop"]["size"]
    crop = decode_jpeg_blob(mo["jpeg"], mo["offsets"], 100)
    assert crop.shape == (h, w, 3)
    # the lips land inside the crop
    pts = mo["points"][100][: len(G.LIPS)]
    assert (pts[:, 0] > 0).all() and (pts[:, 0] < w).all() and (pts[:, 1] > 0).all() and (pts[:, 1] < h).all()
    t = av.template
    frame = decode_jpeg_blob(t["jpeg"], t["offsets"], 0)
    assert frame.shape == (288, 360, 3)
    assert len(t["offsets"]) - 1 == av.meta["template"]["frames"] >= 100
    # ping-pong loop ends are still: head velocity at the ends is below the loop's median
    poses = t["pose"][:, 10:13]
    v = np.linalg.norm(np.diff(poses, axis=0), axis=1)
    assert v[0] <= np.median(v) * 2 and v[-1] <= np.median(v) * 2


def test_grid_report_has_the_plots(grid_avatar):
    html = (grid_avatar / "report.html").read_text()
    assert len(re.findall(r"data:image/png;base64,", html)) == 5
    for title in ("Face coverage over time", "Mouth-shape PCA", "Mouth opening under the audio", "Mouth crops",
                  "Light and colour of each recording"):
        assert title in html
    assert "99." in html  # coverage figure


def test_zip_package_round_trip(grid_avatar, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    av = load_package(zip_package(grid_avatar, tmp_path / "me.hygie"))
    assert av.meta["n_frames"] == 7499
    assert np.array_equal(av.track["usable"], load_package(grid_avatar).track["usable"])


def test_720p_package_from_the_obama_clips(tmp_path):
    clips = [need(p) for p in OBAMA]
    if not clips:
        pytest.skip("720p clips absent")
    out = enroll(clips, tmp_path / "obama", EnrollConfig(min_usable_s=5, template_seconds=3))
    av = load_package(out)
    m = av.meta
    assert m["frame_size"] == [1280, 720]
    assert m["coverage"] >= 0.95
    assert len(m["sources"]) == 4
    # crops at native resolution: a 720p face gives bigger crops than GRID's
    assert m["crop"]["px_per_iod"] > 100
    crop = decode_jpeg_blob(av.mouths["jpeg"], av.mouths["offsets"], 0)
    assert crop.shape[1] == m["crop"]["size"][0]
    assert json.loads((out / "avatar.json").read_text())["files"]["template.npz"]
