"""A real OBS under Xvfb for the OBS tests: private config folder, free display and port.

Import the fixtures in a test module with ``from tests.obs_fixtures import *`` style imports
of ``obs_server`` (session-scoped) and ``needs_obs`` (the skip marker).
OBS and Xvfb are started and stopped by PID; the user's real OBS config is never touched.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

PASSWORD = "hygie-test-pw"
COLLECTION = "Hygie Test"
REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "plugin" / "hygie_obs.py"

needs_obs = pytest.mark.skipif(
    shutil.which("obs") is None or shutil.which("Xvfb") is None,
    reason="needs the 'obs' binary and Xvfb (apt-get install obs-studio xvfb)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_display() -> int:
    for n in range(90, 400):
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
            return n
    raise RuntimeError("no free X display number")


def wait_port(port: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


class ObsInstance:
    """One OBS process with its own config folder; start/kill/restart by PID."""

    def __init__(self, root: Path, display: int, port: int, password: str = PASSWORD,
                 scenes: tuple[str, ...] = ("Scene", "Other")):
        self.root = root
        self.display = display
        self.port = port
        self.password = password
        self.config_home = root / "xdg"
        self.obs_dir = self.config_home / "obs-studio"
        self.proc: subprocess.Popen | None = None
        self.fake_agent = root / "fake_agent.py"
        self.agent_started = root / "agent.started"
        self.agent_stopped = root / "agent.stopped"
        self._write_fake_agent()
        self._write_config(scenes)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(HOME=str(self.root), XDG_CONFIG_HOME=str(self.config_home),
                   DISPLAY=f":{self.display}", LIBGL_ALWAYS_SOFTWARE="1",
                   HYGIE_OBS_TEST_HOOKS="1")
        # the OBS script finds `hygie` here; tests never start the real agent through it
        env.pop("HYGIE_OBS_PASSWORD", None)
        # importing cv2 in this process points Qt at the wheel's own plugins; OBS must use its own
        for k in ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_PLUGIN_PATH", "QT_QPA_FONTDIR"):
            env.pop(k, None)
        return env

    def _write_fake_agent(self) -> None:
        """Stands in for `hygie` when the OBS script starts the agent: records argv and SIGTERM."""
        self.fake_agent.write_text(
            f"#!{sys.executable}\n"
            "import os, signal, sys, time, pathlib\n"
            f"started, stopped = pathlib.Path({str(self.agent_started)!r}), pathlib.Path({str(self.agent_stopped)!r})\n"
            # whole files only (temp name, rename): the test polls for them and reads at once
            "def put(p, text):\n    t = p.with_name(p.name + '.tmp'); t.write_text(text); os.replace(t, p)\n"
            "def bye(*_):\n    put(stopped, 'SIGTERM'); sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, bye)\n"
            "put(started.with_suffix('.pid'), str(os.getpid()))\n"
            "put(started, ' '.join(sys.argv[1:]))\n"
            "while True:\n    time.sleep(0.05)\n")
        self.fake_agent.chmod(0o755)

    def _write_config(self, scenes: tuple[str, ...]) -> None:
        (self.obs_dir / "basic" / "scenes").mkdir(parents=True, exist_ok=True)
        (self.obs_dir / "basic" / "profiles" / "Hygie").mkdir(parents=True, exist_ok=True)
        (self.obs_dir / "global.ini").write_text(
            "[General]\nFirstRun=true\nLastVersion=486539266\n\n"
            "[Basic]\nProfile=Hygie\nProfileDir=Hygie\n"
            f"SceneCollection={COLLECTION}\nSceneCollectionFile=Hygie_Test\n\n"
            "[OBSWebSocket]\nFirstLoad=false\nServerEnabled=true\n"
            f"ServerPort={self.port}\nAlertsEnabled=false\nAuthRequired=true\n"
            f"ServerPassword={self.password}\n")
        (self.obs_dir / "basic" / "profiles" / "Hygie" / "basic.ini").write_text(
            "[General]\nName=Hygie\n\n[Video]\nBaseCX=640\nBaseCY=360\nOutputCX=640\nOutputCY=360\n")
        sources = [{"id": "scene", "versioned_id": "scene", "name": n, "uuid": "",
                    "settings": {"items": [], "id_counter": 0}} for n in scenes]
        coll = {"name": COLLECTION, "current_scene": scenes[0], "current_program_scene": scenes[0],
                "scene_order": [{"name": n} for n in scenes], "sources": sources,
                "modules": {"scripts-tool": [{"path": str(SCRIPT), "settings": {
                    "hygie_cmd": str(self.fake_agent), "avatar": "/avatars/me", "audio_device": "Test Mic"}}]}}
        (self.obs_dir / "basic" / "scenes" / "Hygie_Test.json").write_text(json.dumps(coll))

    def start(self, timeout: float = 30.0) -> float:
        """Start OBS; returns seconds until its websocket port accepted connections."""
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            ["obs", "--minimize-to-tray", "--multi", "--disable-shutdown-check",
             "--disable-updater", "--collection", COLLECTION, "--profile", "Hygie"],
            env=self.env(), cwd=str(self.root), stdin=subprocess.DEVNULL,
            stdout=open(self.root / "obs.stdout", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        if not wait_port(self.port, timeout):
            out = (self.root / "obs.stdout").read_text(errors="replace")[-3000:]
            self.kill()
            raise RuntimeError(f"OBS websocket did not come up on port {self.port}:\n{out}")
        return time.monotonic() - t0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: only OBS and its children
            self.proc.wait(10)
        self.proc = None

    def quit(self, timeout: float = 15.0) -> None:
        """A normal exit (SIGINT, as from a terminal): OBS unloads its scripts and saves."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure(self) -> None:
        if not self.alive():
            self.start()

    def log_text(self) -> str:
        logs = sorted((self.obs_dir / "logs").glob("*.txt"), key=lambda p: p.stat().st_mtime)
        return "\n".join(p.read_text(errors="replace") for p in logs)

    def connection(self, password: str | None = None):
        from hygie.plugin.obs.config import ObsConnection
        return ObsConnection("127.0.0.1", self.port, self.password if password is None else password,
                             source="test")


@pytest.fixture(scope="session")
def obs_server(tmp_path_factory):
    """A running OBS (restarted if a test killed it). Session-scoped: OBS starts in ~1 s."""
    root = tmp_path_factory.mktemp("obs")
    display = free_display()
    xvfb = subprocess.Popen(["Xvfb", f":{display}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(100):
            if Path(f"/tmp/.X11-unix/X{display}").exists():
                break
            time.sleep(0.05)
        inst = ObsInstance(root, display, free_port())
        inst.start()
        yield inst
        inst.kill()
        pidfile = inst.agent_started.with_suffix(".pid")
        if pidfile.exists():  # a failed test may leave the stand-in agent running
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
    finally:
        xvfb.terminate()
        try:
            xvfb.wait(5)
        except subprocess.TimeoutExpired:
            xvfb.kill()


@pytest.fixture
def obs(obs_server):
    """The session OBS, alive, with the program scene reset to 'Scene'."""
    obs_server.ensure()
    return obs_server
