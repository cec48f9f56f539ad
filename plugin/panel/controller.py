"""What the control panel drives: one live agent (start / stop / settings), its state, meters and preview,
and enrollment / training jobs run as `hygie` subprocesses (a crash there never touches the agent).

The web server only calls this API; a test (or another front end) can call it directly.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hygie.core.live.config import AgentConfig
from hygie.core.user_dirs import config_dir
from hygie.core.errors import HygieError

log = logging.getLogger(__name__)

DEFAULT_AVATAR = "default"  # the bundled avatar in the list
SIZES = ("avatar", "640x360", "640x480", "1280x720", "1920x1080")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HISTORY_S = 120


def avatars_dir() -> Path:
    """Where avatars enrolled from the panel go (Linux: ~/.local/share/hygie/avatars)."""
    import os

    if sys.platform.startswith("linux"):
        return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "hygie" / "avatars"
    return config_dir() / "avatars"


@dataclass
class Job:
    id: str
    kind: str  # "enroll" | "train"
    avatar: str
    status: str = "running"  # running | done | failed
    progress: float = 0.0  # 0..1 from the subprocess's progress bars
    stage: str = ""
    log: deque = field(default_factory=lambda: deque(maxlen=40))
    returncode: int | None = None
    started: float = field(default_factory=time.time)

    def public(self) -> dict:
        return {"id": self.id, "kind": self.kind, "avatar": self.avatar, "status": self.status,
                "progress": round(self.progress, 3), "stage": self.stage, "log": list(self.log)[-8:],
                "returncode": self.returncode}


class LiveController:
    def __init__(self, base: AgentConfig | None = None, avatar_root: Path | None = None,
                 source_factory: Callable[[], Any] | None = None, obs_config: Any = None,
                 hygie_cmd: list[str] | None = None):
        from hygie.core.live.state import AvatarState

        self.base = base or AgentConfig()
        self.avatar_root = Path(avatar_root) if avatar_root else avatars_dir()
        self.source_factory = source_factory
        self.obs_config = obs_config
        self.hygie_cmd = hygie_cmd or [sys.executable, "-m", "hygie.core.cli"]
        self.state = AvatarState()
        self.settings = {"avatar": DEFAULT_AVATAR, "input": self.base.input or "", "camera": self.base.camera or "",
                         "size": self.base.size or "avatar", "virtual_mic": self.base.virtual_mic}
        if self.base.avatar:
            self.settings["avatar"] = Path(self.base.avatar).name
            self._extra_avatar = Path(self.base.avatar)
        else:
            self._extra_avatar = None
        self.agent: Any = None
        self._closers: list[Callable[[], None]] = []
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.error = ""
        self.phase = "stopped"  # stopped | starting | running | stopping
        self.last_summary: dict | None = None
        self.history: deque[dict] = deque(maxlen=HISTORY_S)
        self._frame: np.ndarray | None = None
        self._frame_t = 0.0
        self._jpeg: tuple[float, bytes] | None = None
        self.jobs: dict[str, Job] = {}
        self.upload_dir = Path(tempfile.mkdtemp(prefix="hygie_panel_"))
        self._sampler_stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="panel-meters", daemon=True)
        self._sampler.start()

    # -- lists the browser chooses from (never paths) ------------------------------------------
    def avatars(self) -> dict[str, Path | None]:
        out: dict[str, Path | None] = {DEFAULT_AVATAR: None}
        if self._extra_avatar is not None:
            out[self._extra_avatar.name] = self._extra_avatar
        if self.avatar_root.is_dir():
            for p in sorted(self.avatar_root.iterdir()):
                if (p / "avatar.json").is_file() or p.suffix == ".hygie":
                    out[p.name] = p
        return out

    def inputs(self) -> list[str]:
        try:
            from hygie.core.audio.capture import list_devices
            return [d["name"] for d in list_devices("input")]
        except Exception:
            return []

    def cameras(self) -> list[str]:
        try:
            from hygie.core.live.vcam import list_virtual_cameras
            return [c.device for c in list_virtual_cameras()]
        except Exception:
            return []

    def options(self) -> dict:
        return {"avatars": list(self.avatars()), "inputs": self.inputs(), "cameras": self.cameras(),
                "sizes": list(SIZES), "settings": dict(self.settings)}

    # -- settings and the agent -------------------------------------------------------------------
    def configure(self, values: dict) -> dict:
        """Apply settings chosen in the page; each must come from its list. Takes effect at the next start."""
        v = dict(values)
        if "avatar" in v and v["avatar"] not in self.avatars():
            raise HygieError(f"unknown avatar {v['avatar']!r}: choose one from the list")
        if v.get("input") and v["input"] not in self.inputs():
            raise HygieError(f"unknown microphone {v['input']!r}: choose one from the list")
        if v.get("camera") and v["camera"] not in self.cameras():
            raise HygieError(f"unknown camera {v['camera']!r}: choose one from the list")
        if "size" in v and v["size"] not in SIZES:
            raise HygieError(f"unknown size {v['size']!r}: choose one of {', '.join(SIZES)}")
        for k in ("avatar", "input", "camera", "size"):
            if k in v:
                self.settings[k] = v[k] or ""
        if "virtual_mic" in v:
            self.settings["virtual_mic"] = bool(v["virtual_mic"])
        return dict(self.settings)

    def _config(self) -> AgentConfig:
        s = self.settings
        path = self.avatars().get(s["avatar"])
        return dataclasses.replace(self.base, avatar=str(path) if path else None, input=s["input"] or None,
                                   camera=s["camera"] or self.base.camera, duration=None,
                                   size=None if s["size"] == "avatar" else s["size"],
                                   virtual_mic=bool(s["virtual_mic"]), preview=False)

    def start(self) -> None:
        with self._lock:
            if self.phase in ("starting", "running"):
                return
            self.phase, self.error = "starting", ""
            self._thread = threading.Thread(target=self._run, name="live-agent", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        from hygie.core.live.agent import build_agent, close_all
        from hygie.core.live.latency import save_measured_latency

        try:
            source = self.source_factory() if self.source_factory else None
            cfg = self._config()
            controls = None
            if cfg.obs:
                from hygie.plugin.obs.control import start_obs_control
                controls = lambda state: start_obs_control(state, self.obs_config)  # noqa: E731
            agent, closers = build_agent(cfg, source=source, state=self.state, controls=controls)
        except Exception as e:
            log.error("agent not started: %s", e)
            self.error, self.phase = str(e), "stopped"
            return
        agent.frame_tap = self._tap
        self.agent, self._closers = agent, closers
        self.phase = "running"
        try:
            self.last_summary = agent.run()
            save_measured_latency(self.last_summary)
        except Exception as e:
            log.exception("agent stopped on an error")
            self.error = str(e)
        finally:
            close_all(closers)
            self.agent, self._closers = None, []
            self.phase = "stopped"

    def stop(self, timeout: float = 10.0) -> None:
        t = self._thread
        with self._lock:
            if self.agent is not None:
                self.phase = "stopping"
                self.agent.stop()
        if t is not None:
            t.join(timeout)

    def set_avatar(self, on: bool) -> dict:
        self.state.set(on=bool(on), reason="control panel")
        return self.state.snapshot()

    # -- preview and meters ------------------------------------------------------------------------
    def _tap(self, frame: np.ndarray) -> None:
        now = time.perf_counter()
        if now - self._frame_t >= 0.2:  # 5 fps is plenty for a preview; the copy costs < 0.1 ms
            self._frame, self._frame_t = frame.copy(), now

    def preview_jpeg(self, max_width: int = 480) -> bytes | None:
        import cv2

        frame, t = self._frame, self._frame_t
        if frame is None:
            return None
        if self._jpeg is not None and self._jpeg[0] == t:
            return self._jpeg[1]
        h, w = frame.shape[:2]
        if w > max_width:
            frame = cv2.resize(frame, (max_width, int(h * max_width / w)), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if not ok:
            return None
        self._jpeg = (t, buf.tobytes())
        return self._jpeg[1]

    def _sample(self) -> None:
        import psutil

        proc = psutil.Process()
        proc.cpu_percent(None)
        while not self._sampler_stop.wait(1.0):
            agent = self.agent
            m = agent.meters() if agent is not None else {}
            self.history.append({"t": round(time.time(), 1), "fps": m.get("fps"),
                                 "latency_ms": m.get("latency_p50_ms"), "offset_ms": m.get("av_offset_ms"),
                                 "cpu": proc.cpu_percent(None) / max(1, psutil.cpu_count() or 1)})

    def status(self) -> dict:
        agent = self.agent
        return {"phase": self.phase, "error": self.error, "state": self.state.snapshot(),
                "settings": dict(self.settings), "meters": agent.meters() if agent is not None else None,
                "history": list(self.history)[-60:], "jobs": [j.public() for j in self.jobs.values()][-5:],
                "frame_t": self._frame_t}

    # -- enrollment and training (subprocesses) ----------------------------------------------------
    def new_upload(self, filename: str) -> Path:
        """A fresh path in the panel's temporary folder; only the extension of the browser's name is kept."""
        ext = Path(filename or "").suffix.lower()
        ext = ext if re.fullmatch(r"\.[a-z0-9]{1,5}", ext) else ".mp4"
        return self.upload_dir / f"{uuid.uuid4().hex}{ext}"

    def enroll(self, video: Path, name: str, train: bool = True) -> Job:
        if not NAME_RE.match(name or "") or name == DEFAULT_AVATAR:
            raise HygieError("avatar name: letters, digits, '-', '_' or '.', up to 64 characters (not 'default')")
        out = self.avatar_root / name
        if out.exists():
            raise HygieError(f"an avatar named {name!r} exists: choose another name")
        if Path(video).resolve().parent != self.upload_dir.resolve():
            raise HygieError("enroll only from a file uploaded to the panel")
        self.avatar_root.mkdir(parents=True, exist_ok=True)
        args = ["enroll", str(video), "-o", str(out)] + ([] if train else ["--no-train"])
        return self._spawn("enroll", name, args, cleanup=Path(video))

    def train(self, name: str) -> Job:
        path = self.avatars().get(name)
        if path is None:
            raise HygieError("train: choose an avatar you enrolled from the list")
        return self._spawn("train", name, ["train", str(path)])

    def _spawn(self, kind: str, name: str, args: list[str], cleanup: Path | None = None) -> Job:
        job = Job(uuid.uuid4().hex[:12], kind, name)
        self.jobs[job.id] = job
        cmd = self.hygie_cmd + args
        log.info("%s: %s", kind, " ".join(cmd))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        threading.Thread(target=self._follow, args=(job, proc, cleanup), name=f"job-{job.id}", daemon=True).start()
        return job

    def _follow(self, job: Job, proc: subprocess.Popen, cleanup: Path | None) -> None:
        pct = re.compile(rb"(\d{1,3})%\|")
        buf = b""
        assert proc.stdout is not None
        while True:
            chunk = proc.stdout.read1(4096) if hasattr(proc.stdout, "read1") else proc.stdout.read(4096)
            if not chunk:
                break
            buf += chunk
            parts = re.split(rb"[\r\n]", buf)
            buf = parts.pop()
            for line in parts:
                text = line.decode(errors="replace").strip()
                if not text:
                    continue
                m = pct.search(line)
                if m:
                    job.progress = min(1.0, int(m.group(1)) / 100)
                    job.stage = text.split(":")[0][:60]
                else:
                    job.log.append(text[:300])
        job.returncode = proc.wait()
        job.status = "done" if job.returncode == 0 else "failed"
        job.progress = 1.0 if job.returncode == 0 else job.progress
        if cleanup is not None:
            cleanup.unlink(missing_ok=True)

    def report_path(self, name: str) -> Path | None:
        p = self.avatars().get(name)
        r = None if p is None else p / "report.html"
        return r if r is not None and r.is_file() else None

    def close(self) -> None:
        self.stop()
        self._sampler_stop.set()
        shutil.rmtree(self.upload_dir, ignore_errors=True)
