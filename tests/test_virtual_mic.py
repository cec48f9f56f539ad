""""Hygie Avatar Mic" on a real (private) PulseAudio: made as a microphone, fed with the delayed voice,
removed on exit, and a crashed run's leftovers cleaned by the next start."""
import subprocess
import sys
import time

import numpy as np
import pytest

from audio_fixtures import pulse  # noqa: F401

pytestmark = pytest.mark.audio


def _pactl(*args) -> str:
    return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10, check=True).stdout


def _ours() -> list[str]:
    return [ln for ln in _pactl("list", "short", "modules").splitlines() if "hygie_avatar_mic" in ln]


def _source_description(name: str) -> str | None:
    block = None
    for line in _pactl("list", "sources").splitlines():
        line = line.strip()
        if line.startswith("Name:"):
            block = line.split(":", 1)[1].strip()
        elif line.startswith("Description:") and block == name:
            return line.split(":", 1)[1].strip()
    return None


def test_made_as_a_microphone_and_removed(pulse):
    from hygie.core.live.virtual_mic import MIC_NAME, SOURCE_NAME, VirtualMic

    before = _pactl("list", "short", "modules")
    with VirtualMic() as mic:
        assert len(mic.loaded) == 2 and len(_ours()) == 2
        assert _source_description(SOURCE_NAME) == MIC_NAME  # listed as "Hygie Avatar Mic", not "Monitor of ..."
        info = _pactl("info")
        assert "Default Sink: v\n" in info and "Default Source: v.monitor\n" in info  # user's defaults kept
    assert _ours() == []
    assert _pactl("list", "short", "modules") == before  # the fixture's own sink is untouched


def test_a_killed_run_leaves_nothing_that_breaks_the_next(pulse):
    from hygie.core.live.virtual_mic import VirtualMic

    code = ("from hygie.core.live.virtual_mic import VirtualMic; import sys, time; VirtualMic().create(); "
            "print('up', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "up"
        assert len(_ours()) == 2
        with pytest.raises(Exception, match="in use by another hygie process"):  # its owner is alive
            VirtualMic().create()
        assert len(_ours()) == 2
    finally:
        p.kill()  # a crash: no clean-up ran
        p.wait(timeout=10)
    assert len(_ours()) == 2  # the crash left its modules behind...
    mic = VirtualMic().create()  # ...and the next start replaces them
    try:
        assert mic.removed_stale == 2 and len(_ours()) == 2
    finally:
        mic.remove()
    assert _ours() == []


def test_voice_reaches_the_microphone_with_the_asked_delay(pulse, monkeypatch):
    """A tone pushed with a 120 ms target comes out of "Hygie Avatar Mic" ~120 ms after its capture time."""
    from hygie.core.audio.capture import AudioInput
    from hygie.core.audio.passthrough import AudioPassthrough
    from hygie.core.live.virtual_mic import SINK_NAME, SOURCE_NAME, VirtualMic
    from hygie.core.live.voice_probe import VoiceProbe

    with VirtualMic():
        monkeypatch.setenv("PULSE_SOURCE", SOURCE_NAME)
        rec = AudioInput("pulse", block_ms=5).start()  # a call app recording the virtual mic
        out = AudioPassthrough(SINK_NAME, backend="pulse", probe=VoiceProbe(SOURCE_NAME))
        try:
            time.sleep(2.0)
            rec.read()
            n, block = 16000 * 8, 128
            sig = (0.02 * np.random.default_rng(0).standard_normal(n)).astype(np.float32)  # a noisy room
            burst = (0.4 * np.sin(2 * np.pi * 440 * np.arange(1600) / 16000)).astype(np.float32)
            starts = list(range(8000, n - 1600, 12000))
            for s0 in starts:
                sig[s0:s0 + 1600] = burst
            t0 = time.perf_counter()
            got_t, got_x = [], []
            for i in range(0, n, block):  # pushed like the agent does: capture time of the chunk's last sample
                while time.perf_counter() < t0 + (i + block) / 16000:
                    time.sleep(0.001)
                out.push(sig[i:i + block], t0 + (i + block) / 16000, 0.120,
                         silent=float(np.abs(sig[i:i + block]).max()) < 0.2)
                c = rec.read()
                if c.samples.size:
                    got_x.append(c.samples)
                    got_t.append(rec.capture_time(c.start, c.generation))
            time.sleep(0.5)
            c = rec.read()
            got_x.append(c.samples)
            got_t.append(rec.capture_time(c.start, c.generation))
        finally:
            out.close()
            rec.stop()
    x = np.concatenate(got_x)
    t = np.concatenate([t0_ + np.arange(len(xx)) / 16000 for t0_, xx in zip(got_t, got_x)])
    env = np.abs(x) > 0.2
    onsets = []
    for s0 in starts:
        want = t0 + s0 / 16000
        hit = np.nonzero(env & (t > want) & (t < want + 0.5))[0]
        onsets.append(t[hit[0]] - want if hit.size else np.nan)
    print("all burst delays (ms):", np.round(1000 * np.array(onsets), 1), out.stats())
    delays_ms = 1000 * np.array(onsets[3:])  # the first bursts may precede the probe's first measure
    assert np.isfinite(delays_ms).sum() >= 3, "bursts not heard in Hygie Avatar Mic"
    delays_ms = delays_ms[np.isfinite(delays_ms)]
    print("burst delays (ms):", np.round(delays_ms, 1), out.stats())
    assert abs(float(np.median(delays_ms)) - 120) < 20
    assert out.probe.n_measures >= 2


def test_doctor_checks_the_virtual_mic(pulse):
    from hygie.core.live.virtual_mic import VirtualMic
    from hygie.installer.doctor import check_virtual_mic

    c = check_virtual_mic("linux")
    assert c.status == "ok" and "makes" in c.detail
    with VirtualMic():
        c = check_virtual_mic("linux")
        assert c.status == "ok" and "is up" in c.detail


def test_doctor_finds_vb_cable_and_blackhole_by_name():
    from hygie.installer.doctor import check_virtual_mic

    c = check_virtual_mic("win32", ["Speakers (Realtek)", "CABLE Input (VB-Audio Virtual Cable)"])
    assert c.status == "ok" and "CABLE Output" in c.detail
    assert check_virtual_mic("darwin", ["BlackHole 2ch", "MacBook Speakers"]).status == "ok"
    c = check_virtual_mic("darwin", ["MacBook Speakers"])
    assert c.status == "warn" and "BlackHole" in c.fix
