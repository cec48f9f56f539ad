"""The driver of `hygie render-batch`: check the jobs, run them on Ray workers, record, summarise.

- Inputs are checked before Ray starts: each avatar is loaded and verified once, each audio file
  probed and hashed; a job that cannot run fails alone with its reason.
- Without an address Ray runs embedded on this machine (one worker per core, every server on
  127.0.0.1); `auto` or host:port joins an existing cluster.
- Workers are Ray actors (worker.py). Each avatar goes once into the object store; a worker is
  preferably given jobs of the avatars it already holds, longest jobs first.
- A worker process that dies mid-job is restarted by Ray and the job retried (MAX_TASK_RETRIES);
  the output only ever appears under its name complete (temp name, then rename).
- Ctrl-C (or SIGTERM) kills the workers, removes their temporary files, records the interrupted
  jobs and stops the embedded Ray: nothing half-written, no Ray process left behind.
"""
from __future__ import annotations

import logging
import os
import signal
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hygie.core.batch import state as S
from hygie.core.batch.cluster import connect, import_ray, is_loopback, short_error
from hygie.core.batch.manifest import read_manifest
from hygie.core.batch.plan import Planned, plan
from hygie.core.batch.worker import AVATARS_PER_WORKER, RenderWorker, package_payload
from hygie.core.errors import HygieError

log = logging.getLogger(__name__)

MAX_TASK_RETRIES = 2  # a job whose worker died is run again up to this many times
MAX_RESTARTS = 4  # restarts of one worker actor (then the slot gets a fresh actor, within a budget)
STARTUP_TIMEOUT_S = 180.0  # for the first worker to come up (a cluster may have to scale up)
POLL_S = 0.2
PROGRESS_POLL_S = 0.5
CLEANUP_WAIT_S = 10.0
# A job still running after this long is stopped (a hung worker must not hold the batch forever):
# 10 minutes, or half a second per frame (25x a 720p frame's cost on one core), whichever is more.
JOB_TIMEOUT_MIN_S = 600.0
JOB_TIMEOUT_PER_FRAME_S = 0.5


@dataclass
class BatchOptions:
    manifest: Path
    outdir: Path
    ray: str | None = None  # None: embedded local Ray; "auto" or host:port: join that cluster
    workers: int | None = None  # default: the cores of this machine, or the cluster's CPUs
    show_progress: bool = True


@dataclass
class BatchSummary:
    jobs: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    interrupted: int = 0  # jobs stopped mid-way by Ctrl-C
    not_started: int = 0  # jobs still waiting when Ctrl-C came
    stopped: bool = False  # Ctrl-C / SIGTERM ended the run
    frames: int = 0
    seconds: float = 0.0  # rendering phase: first job sent -> last job back
    startup_s: float = 0.0  # Ray start/connect and workers up
    workers: int = 0
    mode: str = ""
    per_worker: list[dict] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def jobs_per_min(self) -> float:
        return 60.0 * self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        s = f"{self.done} done, {self.failed} failed, {self.skipped} skipped (finished before)"
        if self.stopped:
            s += f", {self.interrupted} interrupted, {self.not_started} not started (Ctrl-C; run again to resume)"
        if self.workers and self.seconds > 0:
            s += (f"; {self.frames} frames in {self.seconds:.1f} s: {self.jobs_per_min:.1f} jobs/min, "
                  f"{self.frames_per_s:.0f} frames/s on {self.workers} workers "
                  f"({self.frames_per_s / self.workers:.0f} frames/s per worker; {self.mode}, "
                  f"start {self.startup_s:.1f} s)")
        return s

    def worker_lines(self) -> list[str]:
        out = []
        for w in self.per_worker:
            busy = 100.0 * w["busy_s"] / self.seconds if self.seconds > 0 else 0.0
            out.append(f"  worker {w['worker']} (pid {w.get('pid')} on {w.get('node')}): {w['jobs']} jobs, "
                       f"{w['frames']} frames, busy {busy:.0f}%, avatars loaded {w['loads']}"
                       + (f", restarted {w['restarts']}x" if w.get("restarts") else ""))
        return out


# -- running -----------------------------------------------------------------------------------
@dataclass
class _Slot:
    index: int
    actor: Any
    ready: Any = None  # ObjectRef of info() until the worker is up
    info: dict | None = None
    item: Planned | None = None
    ref: Any = None
    started: float = 0.0
    progress_ref: Any = None
    frames_now: int = 0
    keys: OrderedDict = field(default_factory=OrderedDict)  # avatars this worker holds (as sent)
    jobs: int = 0
    frames: int = 0
    busy_s: float = 0.0
    cpu_s: float = 0.0  # CPU time of the worker process while it ran jobs (all its threads)
    loads: dict = field(default_factory=dict)  # pid -> avatar loads of that process
    restarts: int = 0
    dead: str | None = None


class _Run:
    def __init__(self, ray, opts: BatchOptions, state: S.BatchState, todo: list[Planned],
                 avatars: dict[str, Any], workers: int):
        self.ray, self.opts, self.state = ray, opts, state
        self.pending = sorted(todo, key=lambda p: -p.est_frames)  # longest first: a short tail
        self.avatars = avatars
        self.n_workers = workers
        self.slots: list[_Slot] = []
        self.refs: dict[str, Any] = {}
        self.summary = BatchSummary(workers=workers)
        self.t_first = 0.0
        self.t_last = 0.0
        self.replacements = 2 * workers
        self.done_frames = 0
        self.remote_cls = ray.remote(num_cpus=1, max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES,
                                     max_concurrency=2)(RenderWorker)

    # workers
    def _new_actor(self, index: int):
        actor = self.remote_cls.remote(index)
        return actor, actor.info.remote()

    def start_workers(self) -> None:
        for i in range(self.n_workers):
            actor, ready = self._new_actor(i)
            self.slots.append(_Slot(i, actor, ready))
        for key, av in self.avatars.items():
            self.refs[key] = self.ray.put(package_payload(av))  # once per avatar, whatever the job count

    def _check_ready(self) -> None:
        waiting = [s for s in self.slots if s.ready is not None]
        if not waiting:
            return
        done, _ = self.ray.wait([s.ready for s in waiting], num_returns=len(waiting), timeout=0)
        for s in waiting:
            if s.ready in done:
                try:
                    s.info = self.ray.get(s.ready)
                    s.loads.setdefault(s.info["pid"], 0)
                except Exception as e:  # the actor could not start (e.g. hygie missing on that node)
                    s.dead = short_error(e)
                    log.error("worker %d could not start: %s", s.index, s.dead)
                s.ready = None

    def _replace(self, s: _Slot, why: str) -> None:
        try:
            self.ray.kill(s.actor, no_restart=True)
        except Exception:
            pass
        if self.replacements <= 0:
            s.dead = why
            return
        self.replacements -= 1
        s.actor, s.ready = self._new_actor(s.index)
        s.info, s.keys = None, OrderedDict()
        s.restarts += 1

    # scheduling
    def _pick(self, s: _Slot) -> Planned:
        for i, p in enumerate(self.pending):
            if p.key in s.keys:
                return self.pending.pop(i)
        held = {k for o in self.slots if o is not s for k in o.keys}
        for i, p in enumerate(self.pending):  # an avatar no other worker holds: fewer loads overall
            if p.key not in held:
                return self.pending.pop(i)
        return self.pending.pop(0)

    def _dispatch(self) -> None:
        for s in self.slots:
            if not self.pending or s.item is not None or s.info is None or s.dead:
                continue
            p = self._pick(s)
            s.keys[p.key] = True
            s.keys.move_to_end(p.key)
            while len(s.keys) > AVATARS_PER_WORKER:
                s.keys.popitem(last=False)
            s.item, s.started, s.frames_now = p, time.monotonic(), 0
            s.ref = s.actor.run.remote(p.spec, p.key, [self.refs[p.key]])
            if not self.t_first:
                self.t_first = time.monotonic()
            rec = self.state.record(p.job.output)
            rec.update(state=S.RUNNING, owned=True, started=S.now(), worker=s.index, attempts=1,
                       error=None, warnings=None)
        self.state.save(min_interval=1.0)

    def _finish(self, s: _Slot) -> None:
        from hygie.core.media.encode import temp_name

        p, ref = s.item, s.ref
        s.item, s.ref, s.progress_ref = None, None, None
        rec = self.state.record(p.job.output)
        now = time.monotonic()
        s.busy_s += now - s.started
        self.t_last = now
        try:
            res = self.ray.get(ref)
        except Exception as e:  # the worker died more often than Ray retries, or Ray lost the call
            msg = (f"the worker died while rendering this job ({1 + MAX_TASK_RETRIES} attempts): {short_error(e)}. "
                   "Out of memory, or a crash: see the Ray logs of that node")
            temp_name(Path(p.spec["output_path"])).unlink(missing_ok=True)
            rec.update(state=S.FAILED, error=msg, finished=S.now(), attempts=1 + MAX_TASK_RETRIES)
            self.summary.failed += 1
            self.summary.errors.append((p.job.output, msg))
            self._replace(s, msg)
            return
        pid = res.get("pid")
        retried = s.info is not None and pid != s.info.get("pid")
        if retried:  # Ray restarted this worker (it died) and ran the job again in the new process
            s.restarts += 1
            s.info = dict(s.info, pid=pid)
            s.keys = OrderedDict({p.key: True})
        s.loads[pid] = res.get("loads", 0)
        s.cpu_s += res.get("cpu_s", 0.0)
        rec.update(duration_s=round(res.get("seconds", 0.0), 3), setup_s=res.get("setup_s"), finished=S.now(), worker=s.index,
                   pid=pid, node=(s.info or {}).get("node"), warnings=res.get("warnings") or None,
                   attempts=2 if retried else 1)
        if res.get("ok"):
            rec.update(state=S.DONE, frames=res["frames"], bytes=res["bytes"], error=None)
            s.jobs += 1
            s.frames += res["frames"]
            self.done_frames += res["frames"]
            self.summary.done += 1
            self.summary.frames += res["frames"]
        else:
            rec.update(state=S.FAILED, error=res.get("error") or "failed")
            self.summary.failed += 1
            self.summary.errors.append((p.job.output, rec["error"]))
        self.state.save(min_interval=0.5)

    def _watchdog(self) -> None:
        from hygie.core.media.encode import temp_name

        now = time.monotonic()
        for s in self.slots:
            if s.item is None:
                continue
            limit = max(JOB_TIMEOUT_MIN_S, JOB_TIMEOUT_PER_FRAME_S * s.item.est_frames)
            if now - s.started <= limit:
                continue
            p = s.item
            msg = f"stopped after {limit:.0f} s without finishing (a hung worker?); it runs again on the next run"
            self._replace(s, msg)  # kills the worker: the call ends, and its temporary file is ours to remove
            try:
                self.ray.wait([s.ref], timeout=CLEANUP_WAIT_S)
            except Exception:
                pass
            temp_name(Path(p.spec["output_path"])).unlink(missing_ok=True)
            self.state.record(p.job.output).update(state=S.FAILED, error=msg, finished=S.now())
            self.summary.failed += 1
            self.summary.errors.append((p.job.output, msg))
            s.busy_s += now - s.started
            s.item, s.ref, s.progress_ref = None, None, None

    def _poll_progress(self) -> None:
        for s in self.slots:
            if s.item is None:
                continue
            if s.progress_ref is not None:
                done, _ = self.ray.wait([s.progress_ref], timeout=0)
                if done:
                    try:
                        pr = self.ray.get(s.progress_ref)
                        if pr.get("job") == s.item.job.output:
                            s.frames_now = int(pr.get("frames", 0))
                    except Exception:
                        pass  # the worker is being restarted: its progress starts again
                    s.progress_ref = None
            if s.progress_ref is None:
                s.progress_ref = s.actor.progress.remote()

    def loop(self) -> None:
        from tqdm import tqdm

        show = self.opts.show_progress
        total_frames = sum(p.est_frames for p in self.pending)
        jobs_bar = tqdm(total=len(self.pending), desc="jobs", unit="job", position=0, disable=not show)
        frames_bar = tqdm(total=total_frames, desc="frames", unit="frame", position=1, disable=not show)
        t_start = time.monotonic()
        last_progress = 0.0
        try:
            while self.pending or any(s.item is not None for s in self.slots):
                self._check_ready()
                if all(s.dead for s in self.slots):
                    raise HygieError(f"no Ray worker could start: {self.slots[0].dead}. Install hygie-avatar[batch] "
                                     "(the same version) on every node of the cluster")
                if not any(s.info for s in self.slots) and time.monotonic() - t_start > STARTUP_TIMEOUT_S:
                    raise HygieError(f"no Ray worker came up within {STARTUP_TIMEOUT_S:.0f} s: does the cluster "
                                     "have a free CPU? ('ray status' on the head node)")
                self._dispatch()
                busy = [s for s in self.slots if s.ref is not None]
                if busy:
                    done, _ = self.ray.wait([s.ref for s in busy], num_returns=len(busy), timeout=POLL_S)
                    for s in busy:
                        if s.ref in done:
                            est, before = s.item.est_frames, self.done_frames
                            self._finish(s)
                            frames_bar.total += self.done_frames - before - est  # the estimate -> the real count
                            jobs_bar.update(1)
                else:
                    time.sleep(POLL_S)
                self._watchdog()
                if time.monotonic() - last_progress > PROGRESS_POLL_S:
                    self._poll_progress()
                    last_progress = time.monotonic()
                frames_bar.n = min(self.done_frames + sum(s.frames_now for s in self.slots if s.item),
                                   max(frames_bar.total, self.done_frames))
                frames_bar.refresh()
                jobs_bar.set_postfix_str(f"{self.summary.failed} failed" if self.summary.failed else "", refresh=False)
        finally:
            jobs_bar.close()
            frames_bar.close()

    def stop(self, interrupted: bool) -> None:
        """Kill the workers, wait (bounded) until their calls are gone, remove their temp files."""
        from hygie.core.media.encode import temp_name

        inflight = [s for s in self.slots if s.item is not None]
        for s in self.slots:
            try:
                self.ray.kill(s.actor, no_restart=True)
            except Exception:
                pass
        refs = [s.ref for s in inflight if s.ref is not None]
        if refs:
            try:  # a killed worker's call resolves with an error once its process is gone
                self.ray.wait(refs, num_returns=len(refs), timeout=CLEANUP_WAIT_S)
            except Exception:
                pass
        for s in inflight:
            temp_name(Path(s.item.spec["output_path"])).unlink(missing_ok=True)
            rec = self.state.record(s.item.job.output)
            rec.update(state=S.INTERRUPTED if interrupted else S.FAILED, finished=S.now(),
                       error="interrupted (Ctrl-C): runs again on the next run" if interrupted else
                       "stopped: the batch ended with an error")
            if interrupted:
                self.summary.interrupted += 1
            s.item = None
        if interrupted:
            self.summary.not_started = len(self.pending)
        self.t_last = self.t_last or time.monotonic()

    def worker_stats(self) -> list[dict]:
        out = []
        for s in self.slots:
            info = s.info or {}
            out.append({"worker": s.index, "pid": info.get("pid"), "node": info.get("node"), "jobs": s.jobs,
                        "frames": s.frames, "busy_s": round(s.busy_s, 2), "cpu_s": round(s.cpu_s, 2), "loads": sum(s.loads.values()),
                        "restarts": s.restarts})
        return out


class _Signals:
    """SIGTERM behaves like Ctrl-C; while cleaning up, further signals are held off."""

    def __enter__(self):
        self.old_term = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def hold(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, self.old_term)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_batch(opts: BatchOptions) -> BatchSummary:
    """Run (or resume) the batch of `opts.manifest` into `opts.outdir`."""
    if opts.workers is not None and opts.workers < 1:
        raise HygieError("--workers must be at least 1")
    jobs = read_manifest(opts.manifest)
    outdir = Path(opts.outdir).expanduser().absolute()  # workers may run in another folder, or on another node
    if outdir.exists() and not outdir.is_dir():
        raise HygieError(f"{outdir} is a file; -o takes a folder for the outputs and batch.json")
    outdir.mkdir(parents=True, exist_ok=True)
    if not os.access(outdir, os.W_OK):
        raise HygieError(f"{outdir}: not writable; choose another -o folder")
    with S.BatchLock(outdir):
        state = S.BatchState.load(outdir)
        state.forget_unlisted({j.output for j in jobs})
        todo, skipped, avatars = plan(jobs, state, outdir, opts.show_progress)
        state.save()
        summary = _execute(opts, state, todo, avatars) if todo else BatchSummary()
        summary.jobs, summary.skipped = len(jobs), len(skipped)
        summary.workers = summary.workers if summary.seconds > 0 else 0
        summary.failed = sum(1 for j in jobs if state.jobs.get(j.output, {}).get("state") == S.FAILED)
        summary.errors = [(j.output, state.jobs[j.output].get("error", "")) for j in jobs
                          if state.jobs.get(j.output, {}).get("state") == S.FAILED]
        state.runs.append({"finished": S.now(), "mode": summary.mode, "workers": summary.workers,
                           "done": summary.done, "failed": summary.failed, "skipped": summary.skipped,
                           "interrupted": summary.interrupted, "frames": summary.frames,
                           "seconds": round(summary.seconds, 2), "startup_s": round(summary.startup_s, 2),
                           "jobs_per_min": round(summary.jobs_per_min, 2),
                           "frames_per_s": round(summary.frames_per_s, 1), "per_worker": summary.per_worker})
        state.save()
    return summary


def _execute(opts: BatchOptions, state: S.BatchState, todo: list[Planned], avatars: dict) -> BatchSummary:
    embedded = opts.ray is None
    t0 = time.monotonic()
    with _Signals() as sig:
        ray = None
        run = None
        interrupted = False
        try:
            ray = import_ray(loopback=embedded or is_loopback(opts.ray))
            workers = connect(ray, opts.ray, opts.workers, avatars)
            run = _Run(ray, opts, state, todo, avatars, workers)
            run.summary.mode = "embedded Ray" if embedded else f"Ray cluster {opts.ray}"
            run.start_workers()
            run.loop()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            sig.hold()
            if run is not None:
                run.stop(interrupted)
            if ray is not None:
                try:
                    ray.shutdown()  # embedded: stops every Ray process it started; cluster: disconnects
                except Exception as e:
                    log.warning("Ray shutdown: %s", e)
            state.save()
    summary = run.summary if run is not None else BatchSummary()
    if run is not None:
        summary.per_worker = run.worker_stats()
        if run.t_first:
            summary.seconds = max(run.t_last - run.t_first, 1e-6)
            summary.startup_s = run.t_first - t0
    summary.stopped = interrupted
    return summary
