"""The one video decoder: both enrollment passes see the same frames at the same times, timestamps or not."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from tests.conftest import GRID_HELDOUT, need


def _raw_h264(tmp_path, seconds: float = 3.0):
    """An H.264 elementary stream: its frames carry no timestamps at all."""
    out = tmp_path / "nopts.h264"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(need(GRID_HELDOUT)), "-t", str(seconds), "-an",
                    "-c:v", "libx264", "-preset", "ultrafast", "-f", "h264", str(out)], check=True, timeout=120)
    return out


def test_frames_without_timestamps_count_alike_in_both_passes(tmp_path):
    import av

    from hygie.core.face.track import track_video
    from hygie.core.media.decode import iter_video_frames

    path = _raw_h264(tmp_path)
    with av.open(str(path)) as c:  # the file really has no timestamps
        pts = [f.pts for f in c.decode(video=0)]
    assert len(pts) >= 70 and all(p is None for p in pts)
    frames = list(iter_video_frames(path))
    times = np.array([t for t, _ in frames])
    assert len(frames) == len(pts)
    assert np.allclose(np.diff(times), 1 / 25)  # one frame period apart, in order
    tr = track_video(str(path), workers=2)  # the landmark pass, as enrollment runs it
    assert len(tr.times) == len(frames) and np.allclose(tr.times, times)
    assert np.isfinite(tr.landmarks[:, 0, 0]).mean() > 0.9  # the face was found on those frames


def test_time_ranges_split_a_video_without_loss_or_overlap():
    from hygie.core.media.decode import iter_video_frames

    video = need(GRID_HELDOUT)
    whole = [t for t, _ in iter_video_frames(video, end=6.0)]
    parts = [t for t, _ in iter_video_frames(video, end=2.5)] + [t for t, _ in iter_video_frames(video, start=2.5, end=6.0)]
    assert parts == whole and len(whole) == 150
