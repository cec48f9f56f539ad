"""OUTDIR/batch.json: the state of every job of a batch, written atomically after each change.

A job is skipped on a re-run when its record says `done`, its output is still there with the
recorded size, and its fingerprint (avatar, audio content, size, fit, encoder) is unchanged;
otherwise it is rendered again. An output this batch has no record of is never overwritten.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from hygie.core.errors import HygieError
from hygie.core.package.files import sha256_file  # noqa: F401  (the fingerprints' digest)

log = logging.getLogger(__name__)

STATE_FILE = "batch.json"
LOCK_FILE = ".batch.lock"
FORMAT = "hygie-batch"
VERSION = 1
# job states
PENDING, RUNNING, DONE, FAILED, INTERRUPTED = "pending", "running", "done", "failed", "interrupted"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())


def fingerprint(**parts: Any) -> str:
    """A stable digest of what a job's output depends on."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


class BatchLock:
    """One `render-batch` per OUTDIR at a time (an advisory lock on OUTDIR/.batch.lock)."""

    def __init__(self, outdir: Path):
        self.path = outdir / LOCK_FILE
        self.fd: int | None = None

    def __enter__(self) -> "BatchLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise HygieError(f"another 'hygie render-batch' (pid {other}) is writing to {self.path.parent}; "
                             "wait for it to finish or choose another -o folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock
            self.fd = None


class BatchState:
    """The records of OUTDIR/batch.json, keyed by output name."""

    def __init__(self, outdir: Path, jobs: dict[str, dict] | None = None, runs: list[dict] | None = None):
        self.outdir = outdir
        self.path = outdir / STATE_FILE
        self.jobs: dict[str, dict] = jobs or {}
        self.runs: list[dict] = runs or []
        self._saved = 0.0

    @classmethod
    def load(cls, outdir: Path) -> "BatchState":
        p = outdir / STATE_FILE
        if not p.exists():
            return cls(outdir)
        try:
            d = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise HygieError(f"{p}: unreadable ({e}). Move it away to start the batch afresh "
                             "(finished outputs will then be rendered again).") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise HygieError(f"{p}: not a hygie batch record; choose another -o folder for this batch")
        if d.get("version") != VERSION:
            raise HygieError(f"{p}: batch record version {d.get('version')}, this hygie reads {VERSION}; "
                             "choose another -o folder or upgrade hygie-avatar")
        return cls(outdir, dict(d.get("jobs", {})), list(d.get("runs", [])))

    def to_dict(self) -> dict:
        counts: dict[str, int] = {}
        for r in self.jobs.values():
            counts[r.get("state", PENDING)] = counts.get(r.get("state", PENDING), 0) + 1
        return {"format": FORMAT, "version": VERSION, "updated": now(), "counts": counts,
                "runs": self.runs[-20:], "jobs": self.jobs}

    def save(self, min_interval: float = 0.0) -> None:
        """Write batch.json atomically; with `min_interval`, at most that often (progress updates)."""
        t = time.monotonic()
        if min_interval and t - self._saved < min_interval:
            return
        tmp = self.path.with_name(f".{STATE_FILE}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        os.replace(tmp, self.path)
        self._saved = t

    def record(self, name: str) -> dict:
        return self.jobs.setdefault(name, {})

    def is_finished(self, name: str, fp: str) -> bool:
        """True when the job's output is there, as recorded, from the same inputs."""
        r = self.jobs.get(name)
        if not r or r.get("state") != DONE or r.get("fingerprint") != fp:
            return False
        out = self.outdir / name
        return out.is_file() and out.stat().st_size == r.get("bytes")

    def owns(self, name: str) -> bool:
        """True when this batch has sent this output to a worker before (set at dispatch, when the
        name was free or already ours): a file there now is ours to replace."""
        return bool(self.jobs.get(name, {}).get("owned"))

    def forget_unlisted(self, names: set[str]) -> None:
        """Drop records of lines no longer in the manifest, except finished outputs (we made them)."""
        for k in [k for k, r in self.jobs.items() if k not in names and r.get("state") != DONE]:
            del self.jobs[k]
