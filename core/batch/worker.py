"""The render-batch worker: a Ray actor that renders one job at a time with `render_job`.

Avatars travel once through Ray's object store (the driver puts each package's files there);
a worker writes them to a per-user cache folder keyed by the package's content the first time
(once per machine), verifies and loads the package once, and keeps it for the next jobs of the
same avatar, with one renderer per output size. Nothing here imports Ray at module level: the
runner wraps `RenderWorker` with `ray.remote` (so the CLI works, and says how to install Ray,
without it).
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import traceback
from collections import OrderedDict
from pathlib import Path

from hygie.core.errors import HygieError

log = logging.getLogger(__name__)

AVATARS_PER_WORKER = 2  # loaded packages kept per worker (the runner sends each worker few avatars)
RENDERERS_PER_WORKER = 2  # a renderer holds the idle loop at its output size: keep few


def cache_root() -> Path:
    from hygie.core.user_dirs import cache_dir

    return cache_dir() / "batch-avatars"


def package_payload(avatar) -> dict[str, bytes]:
    """Every file of a verified package (avatar.json and the files it lists), as bytes."""
    from hygie.core.package.files import META

    names = [META, *sorted(avatar.meta.get("files", {}))]
    return {n: (Path(avatar.path) / n).read_bytes() for n in names}


def materialize(key: str, payload: dict[str, bytes]) -> Path:
    """The package as a folder on this machine: cache_root()/key, written once (temp name, rename)."""
    from hygie.core.package.files import KNOWN_FILES, META

    target = cache_root() / key
    if (target / META).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=target.parent))
    try:
        for name, data in payload.items():
            if name not in KNOWN_FILES or "/" in name or "\\" in name:
                raise HygieError(f"avatar package {key}: unexpected member {name!r}; refusing it")
            (tmp / name).write_bytes(data)
        try:
            os.replace(tmp, target)
        except OSError:  # another worker of this machine wrote it first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


class _Warnings(logging.Handler):
    """Collects the warnings a job logs, so batch.json can show them beside the job."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.messages) < 20:
            self.messages.append(record.getMessage())


class RenderWorker:
    """One job at a time (`run`); `progress` answers from another thread while a job runs."""

    def __init__(self, index: int):
        import cv2

        # the render path's modules load here, so a worker that answers `info` is ready to render
        import hygie.core.lips.model  # noqa: F401
        import hygie.core.media.encode  # noqa: F401
        import hygie.core.render.drive  # noqa: F401
        import hygie.core.render.job  # noqa: F401
        import hygie.core.render.renderer  # noqa: F401

        cv2.setNumThreads(1)  # one worker per core: a second OpenCV thread only competes with another worker
        self.index = index
        self.avatars: OrderedDict[str, object] = OrderedDict()
        self.renderers: OrderedDict[tuple, object] = OrderedDict()
        self.loads = 0
        self.jobs = 0
        self._lock = threading.Lock()
        self._job: str | None = None
        self._frames = 0

    def info(self) -> dict:
        import ray

        ctx = ray.get_runtime_context()
        return {"worker": self.index, "pid": os.getpid(), "host": socket.gethostname(),
                "node": ray.util.get_node_ip_address(), "restarted": bool(ctx.was_current_actor_reconstructed)}

    def progress(self) -> dict:
        with self._lock:
            return {"job": self._job, "frames": self._frames}

    def _count(self, k: int) -> None:
        with self._lock:
            self._frames += k

    def _avatar(self, key: str, box: list):
        av = self.avatars.get(key)
        if av is not None:
            self.avatars.move_to_end(key)
            return av
        import ray

        from hygie.core.errors import PackageError
        from hygie.core.package.avatar import load_package

        path = materialize(key, ray.get(box[0]))
        try:
            av = load_package(path)  # verifies every file once per worker, after the transfer
        except PackageError:
            shutil.rmtree(path, ignore_errors=True)  # a damaged cache copy: write it again once
            av = load_package(materialize(key, ray.get(box[0])))
        self.loads += 1
        self.avatars[key] = av
        while len(self.avatars) > AVATARS_PER_WORKER:
            old, _ = self.avatars.popitem(last=False)
            for rk in [rk for rk in self.renderers if rk[0] == old]:
                self.renderers.pop(rk).close()
        return av

    def _renderer(self, key: str, avatar, size, fit: str):
        from hygie.core.render.job import make_renderer

        rk = (key, size, fit)
        r = self.renderers.get(rk)
        if r is None:
            r = make_renderer(avatar, size, fit)
            self.renderers[rk] = r
            while len(self.renderers) > RENDERERS_PER_WORKER:
                self.renderers.popitem(last=False)[1].close()
        self.renderers.move_to_end(rk)
        return r

    def run(self, spec: dict, key: str, box: list) -> dict:
        """Render one job; errors come back in the result (Ray retries only a worker that died)."""
        from hygie.core.render.job import RenderJob, render_job

        t0, cpu0 = time.perf_counter(), time.process_time()
        with self._lock:
            self._job, self._frames = spec["name"], 0
        warn = _Warnings()
        logging.getLogger().addHandler(warn)
        res = {"name": spec["name"], "ok": False, "error": None, "frames": 0, "bytes": 0,
               "worker": self.index, "pid": os.getpid()}
        try:
            avatar = self._avatar(key, box)
            size = tuple(spec["size"]) if spec.get("size") else None
            renderer = self._renderer(key, avatar, size, spec["fit"])
            res["setup_s"] = round(time.perf_counter() - t0, 3)  # avatar and renderer, when not yet held
            out = Path(spec["output_path"])
            out.parent.mkdir(parents=True, exist_ok=True)
            job = RenderJob(out, audio=spec["audio"], size=size, fit=spec["fit"], minute=spec.get("minute"))
            r = render_job(avatar, job, renderer=renderer, progress=self._count)
            res.update(ok=True, frames=r.frames, bytes=out.stat().st_size)
            self.jobs += 1
        except HygieError as e:
            res["error"] = str(e)
        except Exception as e:  # a bug or a library error: this job fails, the worker goes on
            log.error("job %s failed:\n%s", spec["name"], traceback.format_exc())
            res["error"] = f"{e.__class__.__name__}: {e}"
        finally:
            logging.getLogger().removeHandler(warn)
            with self._lock:
                self._job = None
        res.update(seconds=time.perf_counter() - t0, cpu_s=time.process_time() - cpu0, loads=self.loads,
                   warnings=warn.messages)
        return res
