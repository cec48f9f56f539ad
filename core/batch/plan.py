"""Checking a batch's jobs before Ray starts: avatars loaded and verified once, audio probed and hashed.

A job that cannot run is recorded as failed with its reason; a finished one (same fingerprint,
output still there) is skipped; an output this batch never made is not overwritten.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hygie.core.batch import state as S
from hygie.core.batch.manifest import BatchJob
from hygie.core.errors import HygieError

log = logging.getLogger(__name__)


@dataclass
class Planned:
    job: BatchJob
    key: str  # the avatar's content key
    est_frames: int
    spec: dict


def avatar_key(avatar) -> str:
    return S.sha256_file(Path(avatar.path) / "avatar.json")[:32]


def plan(jobs: list[BatchJob], state: S.BatchState, outdir: Path,
         show_progress: bool = True) -> tuple[list[Planned], list[str], dict[str, Any]]:
    """Check every job before Ray starts. Returns (jobs to run, names skipped, avatars by key)."""
    from tqdm import tqdm

    from hygie.core.media.encode import REPEATABLE_X264, temp_name
    from hygie.core.media.probe import probe_audio
    from hygie.core.package.avatar import load_package
    from hygie.core.provenance.output import render_minute

    minute = render_minute()  # one watermark time code for the whole batch
    avatars: dict[str | None, tuple[Any, str] | str] = {}
    by_key: dict[str, Any] = {}
    todo: list[Planned] = []
    skipped: list[str] = []
    for job in tqdm(jobs, desc="checking jobs", unit="job", disable=not show_progress or len(jobs) < 20):
        rec = state.record(job.output)
        rec.update(line=job.line, avatar=job.avatar_name, audio=job.audio,
                   size=f"{job.size[0]}x{job.size[1]}" if job.size else None, fit=job.fit)
        if job.error:
            rec.update(state=S.FAILED, error=job.error, finished=S.now())
            continue
        try:
            if job.avatar not in avatars:
                try:
                    av = load_package(job.avatar)  # verified once here; workers verify their copy once
                    avatars[job.avatar] = (av, avatar_key(av))
                except HygieError as e:
                    avatars[job.avatar] = f"avatar: {e}"
            got = avatars[job.avatar]
            if isinstance(got, str):
                raise HygieError(got)
            av, key = got
            if not av.has_lip_model:
                raise HygieError(f"{av.path}: this avatar has no lip model yet; run 'hygie train {av.path}' first")
            seconds = probe_audio(job.audio)
            fp = S.fingerprint(avatar=key, audio=S.sha256_file(job.audio), size=job.size, fit=job.fit,
                               encoder=REPEATABLE_X264, version=S.VERSION)
        except HygieError as e:
            rec.update(state=S.FAILED, error=str(e), finished=S.now())
            continue
        except OSError as e:
            rec.update(state=S.FAILED, error=f"{job.audio}: cannot be read ({e.strerror})", finished=S.now())
            continue
        out = outdir / job.output
        if state.owns(job.output):
            temp_name(out).unlink(missing_ok=True)  # left by a worker killed in an earlier run
        if state.is_finished(job.output, fp):
            skipped.append(job.output)
            continue
        if out.exists() and not state.owns(job.output):
            rec.update(state=S.FAILED, finished=S.now(),
                       error=f"{out} exists and was not made by this batch; move it away or choose another output name")
            continue
        if out.is_dir():
            rec.update(state=S.FAILED, finished=S.now(), error=f"{out} is a folder; choose another output name")
            continue
        by_key[key] = av
        rec.update(state=S.PENDING, fingerprint=fp, error=None, frames=None, duration_s=None)
        spec = {"name": job.output, "output_path": str(out), "audio": job.audio,
                "size": list(job.size) if job.size else None, "fit": job.fit, "minute": minute}
        todo.append(Planned(job, key, max(1, math.ceil(seconds * av.fps)), spec))
    return todo, skipped, by_key
