"""A private PulseAudio server with a null sink `v`, for tests that need a real microphone.

Import the fixture into a test module: `from audio_fixtures import pulse  # noqa: F401`.
The server runs in its own runtime folder (so it never touches a user's or another
test's server), the process sees it through PULSE_SERVER, and `PULSE_SOURCE=v.monitor`
makes PortAudio's "pulse" device record what is played into `v`. It is stopped by PID.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hygie.core.bench.private_pulse import PulseServer

from conftest import DATA  # noqa: E402  (HYGIE_DATA or ../shared/data)
HELDOUT = DATA / "grid_s1" / "heldout_2min.mp4"


def need_heldout() -> Path:
    if not HELDOUT.exists():
        pytest.skip(f"real data missing: {HELDOUT} (see ../shared/data/README.md)")
    return HELDOUT


@pytest.fixture
def pulse(monkeypatch):
    if not shutil.which("pulseaudio") or not shutil.which("pacat"):
        pytest.skip("needs PulseAudio: `sudo apt install pulseaudio pulseaudio-utils`")
    srv = PulseServer()
    try:
        srv.start()
    except RuntimeError as e:
        srv.stop()
        pytest.skip(f"PulseAudio cannot run here: {e}")
    monkeypatch.setenv("PULSE_SERVER", srv.server)
    monkeypatch.setenv("PULSE_SOURCE", "v.monitor")
    monkeypatch.setenv("PULSE_SINK", "v")
    try:
        import sounddevice as sd
    except OSError:
        srv.stop()
        pytest.skip("needs PortAudio: `sudo apt install libportaudio2`")
    # PortAudio lists devices once, at initialisation: re-list now that the server runs.
    sd._terminate()
    sd._initialize()
    yield srv
    srv.stop()
