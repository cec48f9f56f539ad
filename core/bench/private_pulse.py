"""A private PulseAudio server with a null sink `v`: a real microphone for benches and tests.

The server runs in its own runtime folder (it never touches a user's or another run's
server); a client sees it through PULSE_SERVER, and `PULSE_SOURCE=v.monitor` makes
PortAudio's "pulse" device record what is played into `v`. It is stopped by PID, and exits by
itself after 2 idle minutes should its owner crash.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path


class PulseServer:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hygie_pa_"))
        self.env = dict(os.environ, PULSE_RUNTIME_PATH=str(self.dir), HOME=str(self.dir))
        self.env.pop("PULSE_SERVER", None)
        self.pid: int | None = None
        self.players: list[subprocess.Popen] = []

    @property
    def server(self) -> str:
        return f"unix:{self.dir}/native"

    def start(self, timeout: float = 10.0) -> None:
        # a crashed test run cannot stop it: it exits by itself after 2 min without clients
        subprocess.run(["pulseaudio", "-D", "--exit-idle-time=120", "-n", "--disable-shm=yes",
                        "--load=module-native-protocol-unix", "--load=module-null-sink sink_name=v"],
                       env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        t_end = time.time() + timeout
        while time.time() < t_end:
            if subprocess.run(["pactl", "-s", self.server, "info"], env=self.env,
                              capture_output=True).returncode == 0:
                self.pid = int((self.dir / "pid").read_text().split()[0])
                return
            time.sleep(0.1)
        raise RuntimeError("private PulseAudio server did not start")

    def kill(self) -> None:
        """Simulate an unplug: SIGKILL the server."""
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            for _ in range(50):
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            self.pid = None
        for f in ("pid", "native"):
            try:
                (self.dir / f).unlink()
            except FileNotFoundError:
                pass

    def play(self, path: str | os.PathLike, sink: str = "v") -> subprocess.Popen:
        """Play any media file into the sink in real time (decoded with PyAV, piped to pacat)."""
        from hygie.core.media.audio_file import load_audio

        return self.play_array(load_audio(path, 16000), sink)

    def play_array(self, audio, sink: str = "v") -> subprocess.Popen:
        import numpy as np

        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
        p = subprocess.Popen(["pacat", "-s", self.server, "-d", sink, "--raw", "--format=s16le",
                              "--rate=16000", "--channels=1", "--latency-msec=20"],
                             stdin=subprocess.PIPE, env=self.env, stderr=subprocess.DEVNULL)
        import threading

        def feed() -> None:
            try:
                p.stdin.write(pcm)
                p.stdin.close()
            except (BrokenPipeError, OSError):
                pass

        threading.Thread(target=feed, daemon=True).start()
        self.players.append(p)
        return p

    def stop(self) -> None:
        for p in self.players:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
