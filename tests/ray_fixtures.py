"""A real Ray head node on 127.0.0.1 for the render-batch tests.

`ray start --head --block` runs in a session of its own, with its own temp folder, ports, token
and cache folder. It is stopped by PID (SIGTERM, then SIGKILL to every process of its session)
and the fixture checks that none is left. Never `ray stop`: that stops every Ray on the machine,
other people's included.
"""
from __future__ import annotations

import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_range(n: int, tries: int = 50) -> int:
    """The first of n consecutive ports that are free now (for Ray's worker ports)."""
    for _ in range(tries):
        base = random.randrange(30000, 40000 - n)
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port range")


def session_pids(sid: int) -> list[int]:
    """Every live process of session `sid` (Ray's workers set their own process group, not session)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if os.getsid(int(d.name)) == sid and (d / "stat").read_text().split()[2] != "Z":
                    out.append(int(d.name))
            except (OSError, IndexError):
                pass
    return out


def ray_env(root: Path) -> dict[str, str]:
    """Environment for the test cluster and its drivers: loopback only, a token of its own, private folders.

    Keep `root` short: Ray's socket paths live under RAY_TMPDIR and a Unix socket path has 107 bytes.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",  # single-machine mode: node address and servers on 127.0.0.1
        RAY_USAGE_STATS_ENABLED="0",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(16),
        RAY_TMPDIR=str(root / "tmp"),
        XDG_CACHE_HOME=str(root / "cache"),  # the workers' avatar cache
    )
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    return env


class RayHead:
    def __init__(self, root: Path, cpus: int = 2):
        self.root = root
        self.cpus = cpus
        self.env = ray_env(root)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = root / "ray_start.log"

    def start(self, timeout: float = 180.0) -> "RayHead":
        wbase = free_range(40)
        temp = self.root / "ray"
        temp.mkdir(parents=True, exist_ok=True)
        cmd = [str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={self.port}",
               f"--num-cpus={self.cpus}", "--include-dashboard=false", f"--temp-dir={temp}",
               "--disable-usage-stats", f"--min-worker-port={wbase}", f"--max-worker-port={wbase + 39}",
               f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
               f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
               f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}",
               "--object-store-memory=300000000"]
        self.proc = subprocess.Popen(cmd, env=self.env, start_new_session=True, stdin=subprocess.DEVNULL,
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            if "Ray runtime started" in self.log.read_text():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"ray start did not come up in {timeout:.0f} s: {self.log.read_text()[-2000:]}")

    def pids(self) -> list[int]:
        return session_pids(self.proc.pid) if self.proc else []

    def stop(self, timeout: float = 40.0) -> list[int]:
        """Stop this cluster only; returns the PIDs still alive afterwards (expected: none)."""
        if self.proc is None:
            return []
        sid = self.proc.pid
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # `ray start --block` stops what it started
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        end = time.monotonic() + 10
        while session_pids(sid) and time.monotonic() < end:
            time.sleep(0.2)
        for pid in session_pids(sid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        left = session_pids(sid)
        self.proc = None
        return left


def open_by(path: Path, pids: list[int]) -> int | None:
    """The process among `pids` that has `path` open (how the tests find the worker writing a file)."""
    target = str(path)
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                try:
                    if os.readlink(fd) == target:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None
