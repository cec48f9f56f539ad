"""Audio capture with a real PulseAudio null sink as the microphone."""
import time

import numpy as np
import pytest

from audio_fixtures import need_heldout, pulse  # noqa: F401
from hygie.core.errors import DeviceError

pytestmark = pytest.mark.audio


def _collect(ai, seconds):
    out, t_end = [], time.time() + seconds
    while time.time() < t_end:
        c = ai.read()
        out.append(c)
        time.sleep(0.02)
    return out


def _collect_past(ai, player, tail_s=0.8, limit_s=30.0):
    """Read until the player has finished and tail_s more (bounded): on a loaded machine pacat may
    start late, and a fixed window would cut the speech off."""
    out, t_limit = [], time.time() + limit_s
    while player.poll() is None and time.time() < t_limit:
        out.append(ai.read())
        time.sleep(0.02)
    return out + _collect(ai, tail_s)


def test_unknown_device_lists_candidates(pulse):
    from hygie.core.audio.capture import resolve_device
    with pytest.raises(DeviceError) as e:
        resolve_device("no such microphone 42", "input")
    assert "pulse" in str(e.value) and "Available input devices" in str(e.value)


def test_records_real_speech_resampled_to_16k_with_timestamps(pulse):
    from hygie.core.audio.capture import AudioInput
    from hygie.core.media.audio_file import load_audio

    path = need_heldout()
    ref = load_audio(path)[: 16000 * 6]
    env = lambda a: np.sqrt(np.mean(a[: len(a) // 160 * 160].reshape(-1, 160) ** 2, axis=1))
    for attempt in range(2):  # a second take only when the *player* failed or was starved (loaded CI machines)
        ai = AudioInput("pulse").start()
        try:
            time.sleep(2.5)  # PulseAudio's first callback is slow: open early
            ai.read()
            time.sleep(0.3)  # a lead-in of silence: playback can reach the monitor ~2 ms after pacat starts
            t_play = time.perf_counter()
            player = pulse.play_array(ref)
            chunks = _collect_past(ai, player)
        finally:
            ai.stop()
        x = np.concatenate([c.samples for c in chunks])
        loud = float((env(x) > 0.3 * env(ref).max()).sum()) / 100  # seconds of loud speech recorded
        print(f"take {attempt}: pacat rc {player.returncode}, {x.size / 16000:.1f} s recorded, {loud:.1f} s loud")
        if player.returncode == 0 and loud > 0.5 * float((env(ref) > 0.3 * env(ref).max()).sum()) / 100:
            break
    assert player.returncode == 0, "pacat could not play into the private PulseAudio"
    assert ai.native_rate != 16000  # the null sink runs at 44.1 kHz: resampling really happened
    # indices are contiguous
    for a, b in zip(chunks, chunks[1:]):
        assert b.start == a.start + a.samples.size
    # find the speech in the recording by cross-correlating envelopes, then compare waveforms
    ex, er = env(x), env(ref)
    coarse = int(np.argmax(np.correlate(ex[: len(ex) - 100], er[100:400], mode="valid"))) * 160 - 100 * 160
    win = x[max(coarse, 0): coarse + 16000 * 5 + 400]
    fine = int(np.argmax(np.correlate(win, ref[16000 * 2: 16000 * 4], mode="valid")))
    lag = max(coarse, 0) + fine - 16000 * 2
    assert 0 <= lag <= len(x) - len(ref), f"the speech was not found whole in the recording (lag {lag}, {len(x)} samples)"
    seg = x[lag: lag + len(ref)]
    n = min(len(seg), len(ref))
    r = np.corrcoef(seg[:n], ref[:n])[0, 1]
    assert r > 0.8, r  # two resamplings (16k -> 44.1k in PulseAudio, back in soxr) and a sub-sample lag
    r_env = np.corrcoef(env(seg[:n]), env(ref[:n]))[0, 1]
    print("waveform r", r, "envelope r", r_env)
    assert r_env > 0.95, r_env
    # the recorded sample matching the start of playback was captured after we asked to play
    t0 = ai.capture_time(chunks[0].start + lag, chunks[0].generation)
    print("play->capture", None if t0 is None else t0 - t_play)
    assert t0 is not None and -0.1 <= t0 - t_play < 1.0


def test_watchdog_reopens_after_sound_server_restart(pulse):
    from hygie.core.audio.capture import AudioInput

    ai = AudioInput("pulse", watchdog_ms=300, open_grace_s=3.0).start()
    try:
        _collect(ai, 3.5)
        assert ai.alive
        gen0 = ai.read().generation
        pulse.kill()
        time.sleep(1.5)
        assert not ai.alive
        pulse.start()
        t_end = time.time() + 20
        while time.time() < t_end and not (ai.alive and ai.read().generation > gen0):
            time.sleep(0.2)
        assert ai.alive and ai.reopen_count >= 1
        got = sum(c.samples.size for c in _collect(ai, 1.0))
        assert got > 10000
    finally:
        ai.stop()


def test_audio_out_passthrough_plays_into_a_virtual_microphone(pulse):
    from hygie.core.audio.capture import AudioInput
    from hygie.core.audio.passthrough import AudioPassthrough

    ai = AudioInput("pulse").start()  # records v.monitor: what the pass-through plays into v
    out = AudioPassthrough("pulse")
    try:
        time.sleep(2.5)
        ai.read()
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
        t0 = time.perf_counter()
        for i in range(0, 16000, 533):  # pushed in agent-tick-sized pieces, 100 ms delay asked
            out.push(tone[i:i + 533], t0 + (i + 533) / 16000, 0.1)
            time.sleep(533 / 16000)
        x = np.concatenate([c.samples for c in _collect(ai, 2.0)])
    finally:
        out.close()
        ai.stop()
    assert np.sqrt(np.mean(x ** 2)) > 0.05  # the tone came out of the virtual microphone
    assert out.delay_s is not None


@pytest.mark.audio
def test_start_twice_keeps_one_stream(pulse):
    """build_agent starts the source it is given; a caller may have started it already."""
    import threading

    from hygie.core.audio.capture import AudioInput

    src = AudioInput("pulse").start()
    try:
        stream = src._stream
        assert src.start() is src
        assert src._stream is stream
        assert sum(t.name == "audio-watchdog" for t in threading.enumerate()) == 1
    finally:
        src.stop()


def test_a_reopened_generation_is_freed_at_once(pulse):
    """The watchdog's reopen drops the old generation's ring, anchors and resampler by reference count, without
    waiting for a full garbage collection (a sounddevice stream is a reference cycle of its own; the callback
    used to hold the capture strongly from inside it, so every reopen kept ~0.5 MB until the collector ran)."""
    import gc
    import weakref

    from hygie.core.audio.capture import AudioInput

    ai = AudioInput("pulse", open_grace_s=3.0).start()
    gc.disable()  # only reference counting frees: what a cycle holds stays
    try:
        old = []
        def wait_alive() -> None:  # PulseAudio's first callback after an open takes 1-2 s
            t_end = time.time() + 15
            while time.time() < t_end and not ai.alive:
                _collect(ai, 0.2)
            assert ai.alive

        for k in range(3):
            wait_alive()
            old.append(weakref.ref(ai._cap))
            ai._cap.errored = True  # the stream "stopped with an error": the watchdog reopens it
            t_end = time.time() + 15
            while time.time() < t_end and ai.reopen_count < k + 1:
                time.sleep(0.05)
            assert ai.reopen_count == k + 1
        wait_alive()
        assert ai.read().generation == 4
        assert [r() is None for r in old] == [True] * 3
    finally:
        gc.enable()
        ai.stop()
