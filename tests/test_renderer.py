"""Renderer on the real GRID s1 package: API, idle stillness, ping-pong, sizes, exact landing of the lips."""
from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from hygie.core.face import geometry as G
from hygie.core.render.template import OutputTransform, landmark_points, pingpong_index


def test_pingpong_never_jumps():
    n = 7
    seq = [pingpong_index(t, n) for t in range(40)]
    assert seq[:14] == [0, 1, 2, 3, 4, 5, 6, 5, 4, 3, 2, 1, 0, 1]
    assert max(abs(np.diff(seq))) == 1
    assert pingpong_index(5, 1) == 0


def test_output_transform_letterbox_and_crop():
    lb = OutputTransform.fit((360, 288), (1280, 720), "letterbox")
    assert lb.scale == pytest.approx(2.5) and lb.ox == 190 and lb.oy == 0
    cr = OutputTransform.fit((360, 288), (1280, 720), "crop")
    assert cr.scale == pytest.approx(1280 / 360) and cr.ox == 0 and cr.oy < 0


@pytest.fixture(scope="module")
def avatar(grid_avatar):
    from hygie.core.package.avatar import load_package

    return load_package(grid_avatar)


@pytest.fixture(scope="module")
def renderer(avatar):
    from hygie.core.render.renderer import Renderer, RendererConfig

    r = Renderer(avatar, cfg=RendererConfig(body=False))  # the idle loop (the body walk: test_body.py)
    yield r
    r.close()


def test_api_shapes(renderer, avatar):
    w, h = avatar.frame_size
    f = renderer.render(None, 0)
    assert f.shape == (h, w, 3) and f.dtype == np.uint8
    K = avatar.pca["components"].shape[0]
    assert renderer.closed_coeffs.shape == (K,)
    assert renderer.render(np.zeros(K, np.float32), 1).shape == (h, w, 3)
    assert renderer.idle_frame(3).shape == (h, w, 3)
    assert set(renderer.timings) == {"retrieval", "warp", "frame", "blend", "total"}


def test_idle_mouth_is_still(renderer):
    """Silence: the same real closed mouth every frame (only the template around it moves)."""
    renderer.reset()
    picks = []
    for t in range(30):
        renderer.render(None, t)
        picks.append(renderer.last["mouth"])
    assert len(set(picks)) == 1


def test_non_finite_request_returns_exactly_the_idle_frame(renderer, avatar):
    """A lost track upstream (NaN lips or coefficients) shows the still closed mouth, pixel for pixel."""
    K = avatar.pca["components"].shape[0]
    renderer.reset()
    idle = renderer.render(None, 4)
    renderer.reset()
    from_lips = renderer.render_lips(np.full((40, 2), np.nan, np.float32), 4)
    renderer.reset()
    from_coeffs = renderer.render(np.full(K, np.nan, np.float32), 4)
    assert np.array_equal(idle, from_lips) and np.array_equal(idle, from_coeffs)


def _mouth_box(renderer, pad: int = 6) -> tuple[slice, slice]:
    d = renderer.last["dst"][:40]
    x0, y0 = np.floor(d.min(0)).astype(int) - pad
    x1, y1 = np.ceil(d.max(0)).astype(int) + pad
    return slice(max(y0, 0), y1), slice(max(x0, 0), x1)


def test_open_and_closed_requests_change_the_returned_pixels(renderer, avatar):
    """The pixels returned, not the internal record: an open mouth, a closed one and the plain idle frame differ."""
    tr = avatar.track
    wide = tr["lips"][int(np.argsort(np.where(tr["usable"], tr["opening"], -1))[-30])]
    t = 12
    renderer.reset()
    opened = renderer.render_lips(wide, t).astype(np.float32)
    box = _mouth_box(renderer)
    renderer.reset()
    closed = renderer.render(None, t).astype(np.float32)
    idle = renderer.idle_frame(t).astype(np.float32)  # the raw template frame, no mouth work
    assert np.abs(opened[box] - closed[box]).mean() > 6
    assert np.abs(opened[box] - idle[box]).mean() > 6
    assert np.abs(closed[box] - idle[box]).mean() > 0.2  # a real mouth was pasted, even when closed


def test_lips_redetected_on_the_returned_frames_land_where_requested(renderer, avatar):
    """MediaPipe on the frames the renderer returns finds the requested mouths (shape and opening)."""
    from detect import corr, detected_lips

    tr = avatar.track
    us = np.flatnonzero(tr["usable"])
    start = us[len(us) // 2]
    req = tr["lips"][start:start + 60]
    req = req[np.isfinite(req).all(axis=(1, 2))]
    renderer.reset()
    frames = [renderer.render_lips(lips, t).copy() for t, lips in enumerate(req)]
    got = detected_lips(frames, tr["reference"])
    lmd = np.linalg.norm(got - req, axis=-1).mean(-1)
    assert np.nanmedian(lmd) < 0.012  # IOD; the mean mouth is ~0.021 away, MediaPipe's jitter ~0.002
    assert corr(G.mouth_opening(got), G.mouth_opening(req)) > 0.9
    assert np.std(G.mouth_opening(req)) > 0.01  # the stretch really speaks


def test_template_own_mouth_reproduces_the_template(renderer, avatar):
    """Asking for the template frame's own lips changes the frame only slightly in the mouth box."""
    t = avatar.template
    i = 10
    lips = avatar.track["lips"][t["frame"][i]]
    f = renderer.render_lips(lips, i).astype(np.float32)
    tpl = renderer.idle_frame(i).astype(np.float32)
    x0, y0 = np.floor(renderer.last["dst"][:40].min(0)).astype(int) - 4
    x1, y1 = np.ceil(renderer.last["dst"][:40].max(0)).astype(int) + 4
    assert np.abs(f[y0:y1, x0:x1] - tpl[y0:y1, x0:x1]).mean() < 12


def test_lips_land_where_requested(renderer, avatar):
    """The destination lips are the requested canonical lips in the template frame's pose."""
    i = 5
    lips = avatar.track["lips"][avatar.template["frame"][i]] + np.array([0.0, 0.02], np.float32)
    renderer.render_lips(lips, i)
    pose = G.Similarity.from_array(avatar.template["pose"][i])
    img = pose.inverse_apply(np.c_[lips, avatar.template["lips_z"][i]])[:, :2]
    assert np.allclose(renderer.last["dst"][:40], img, atol=1e-2)


@pytest.mark.parametrize("fit", ["letterbox", "crop"])
def test_scaled_output(avatar, fit):
    from hygie.core.render.renderer import Renderer, RendererConfig

    r = Renderer(avatar, out_size=(1280, 720), cfg=RendererConfig(fit=fit))
    try:
        lips = avatar.track["lips"][avatar.template["frame"][0]]
        for t in range(5):
            f = r.render_lips(lips, t)
        assert f.shape == (720, 1280, 3)
        if fit == "letterbox":
            assert f[:, :100].max() == 0 and f[:, -100:].max() == 0  # bars
        # the mouth sits inside the picture and the blend touched it
        d = r.last["dst"][:40]
        assert (d[:, 0] > 0).all() and (d[:, 0] < 1280).all() and (d[:, 1] > 0).all() and (d[:, 1] < 720).all()
        assert r.last["alpha"] is not None and r.last["alpha"].max() == 255
    finally:
        r.close()


def test_chin_follows_an_opening_mouth(avatar):
    """Skin points move with the requested mouth (jaw_follow), and stay put at jaw_follow=0."""
    from hygie.core.render.renderer import Renderer, RendererConfig

    tr = avatar.track
    op = np.where(tr["usable"], tr["opening"], -1)
    wide = tr["lips"][int(np.argsort(op)[-30])]
    chin = list(G.MOUTH_SURROUND).index(152) + len(G.LIPS)
    ys = {}
    for jf in (0.0, 1.0):
        r = Renderer(avatar, cfg=RendererConfig(jaw_follow=jf))
        try:
            r.render_lips(wide, 10)
            ys[jf] = r.last["dst"][chin, 1]
            own = landmark_points(r.frames, [152])[r.last["template"], 0, 1]  # idle loop or body frame
        finally:
            r.close()
    assert ys[0.0] == pytest.approx(own, abs=1e-3)
    assert ys[1.0] > ys[0.0] + 1.0  # image y grows downwards: the chin drops


def _wait_ready(player, tick: int, timeout: float = 2.0) -> None:
    """Give the decode thread the time a paced render gives it (no timing is asserted)."""
    import time

    end = time.monotonic() + timeout
    while tick not in player._ready and time.monotonic() < end:
        time.sleep(0.002)


def test_body_frames_made_ahead_are_the_frames_made_on_the_spot(avatar):
    """take(): the decode thread's copies and cross-fade blends are byte for byte frame(tick).copy(), also
    when ticks skip, repeat or the walk restarts; the caller owns what it takes."""
    from hygie.core.render.body import BodyPlayer

    tf = OutputTransform.fit(avatar.frame_size, (1280, 720))
    voice = np.array([(t // 60) % 2 == 0 for t in range(400)])
    ahead, ref = BodyPlayer(avatar, tf), BodyPlayer(avatar, tf, ready=0, threaded=False)
    try:
        for p in (ahead, ref):
            p.set_activity(voice)
        ticks = [*range(0, 150), 150, 150, 155, 156, 157, 200, *range(201, 260)]  # a repeat and skips
        fades = 0
        for t in ticks:
            _wait_ready(ahead, t)
            got = ahead.take(t)
            want = ref.frame(t)
            assert np.array_equal(got, want), t
            assert not np.shares_memory(got, want) and not np.shares_memory(got, ahead.frame(t))
            fades += ahead.shot(t).fade >= 0
        assert fades >= 8  # cross-fades were covered
        assert ahead.taken_ready > len(ticks) // 2  # most frames came ready-made
        # a restarted walk shows the same frames again, never a frame made for the old walk
        ahead.reset()
        ref.reset()
        for t in range(20):
            assert np.array_equal(ahead.take(t), ref.frame(t))
    finally:
        ahead.close()
        ref.close()
    assert ahead._thread is not None and not ahead._thread.is_alive()
    assert len(ahead._ready) == 0


def test_idle_loop_copies_made_ahead_are_exact_copies(avatar):
    """The idle loop's copy-ahead (large output frames): take() is frame(tick).copy(), drawing into it leaves
    the loop's frame untouched, and close() stops the thread."""
    import time

    from hygie.core.render.template import TemplateLoop

    tf = OutputTransform.fit(avatar.frame_size, (1920, 1080))
    loop = TemplateLoop(avatar, tf)
    try:
        assert loop._copier is not None
        for t in [*range(0, 40), 45, 45, 46, 3, 4]:
            time.sleep(0.01)
            got = loop.take(t)
            assert np.array_equal(got, loop.frame(t)) and not np.shares_memory(got, loop.frame(t))
            got[:10] = 7  # the caller's own frame
            assert not (loop.frame(t)[:10] == 7).all()
        assert loop._copier.served > 20
    finally:
        loop.close()
    assert not loop._copier._thread.is_alive()
    small = TemplateLoop(avatar, OutputTransform.fit(avatar.frame_size, None))
    try:
        assert small._copier is None  # a small frame is copied on the spot
        assert np.array_equal(small.take(2), small.frame(2))
    finally:
        small.close()


def test_warp_place_follows_the_output_scale(avatar):
    """'auto' warps the mouth at output size unless the output enlarges the template; an enlarged
    output's mouth is then as soft as the bilinearly enlarged frame around it, where one bicubic remap
    to output pixels leaves it visibly sharper than its surroundings; at the template's own size the
    choice changes no pixel."""
    from hygie.core.render.renderer import Renderer, RendererConfig, warp_at_output

    assert warp_at_output("auto", OutputTransform.fit((360, 288), None))
    assert warp_at_output("auto", OutputTransform.fit((1920, 1080), (1280, 720)))
    assert not warp_at_output("auto", OutputTransform.fit((360, 288), (1280, 720)))
    with pytest.raises(ValueError, match="warp_at must be one of"):
        warp_at_output("inside", OutputTransform.fit((360, 288), None))

    tr = avatar.track
    us = np.flatnonzero(tr["usable"])
    seq = tr["lips"][us[200:230]]

    def run(where: str, size):
        r = Renderer(avatar, out_size=size, cfg=RendererConfig(body=False, warp_at=where))
        try:
            frames, ratios = [], []
            for t, lips in enumerate(seq):
                f = r.render_lips(lips, t)
                frames.append(f.copy())
                d = r.last["dst"][:len(G.LIPS)]  # the lips' box: where the pasted mouth shows most
                (x0, y0), (x1, y1) = np.floor(d.min(0)).astype(int), np.ceil(d.max(0)).astype(int)
                lap = [cv2.Laplacian(cv2.cvtColor(img[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
                       for img in (f, r.loop.frame(t))]
                ratios.append(lap[0] / max(lap[1], 1e-6))
            return frames, float(np.median(ratios)), r.warp_at_output
        finally:
            r.close()

    same_a, _, w_auto = run("auto", None)
    same_o, _, _ = run("output", None)
    assert w_auto and all(np.array_equal(a, b) for a, b in zip(same_a, same_o))

    _, sharp_auto, w_auto = run("auto", (1280, 720))
    _, sharp_out, _ = run("output", (1280, 720))
    assert not w_auto
    # lips' sharpness / the frame's own lips at 720p (median): GRID s1 idle loop 1.28 -> 1.15, walking
    # body 1.53 -> 1.28; bundled avatar 1.63 -> 1.36, 1.30 -> 1.16 (output -> auto)
    assert sharp_auto < sharp_out and abs(sharp_auto - 1.0) < abs(sharp_out - 1.0), (sharp_auto, sharp_out)
