"""Ray for render-batch: imported with a clear install hint, embedded on this machine or joined."""
from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path

from hygie.core.errors import HygieError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'hygie-avatar[batch]'"


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def is_loopback(address: str) -> bool:
    host = address.split("://")[-1].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def import_ray(loopback: bool):
    """Ray, set up for this run; a clear install hint when it is missing."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report leaves the machine
    if loopback:
        # Ray's single-machine mode: the node address is 127.0.0.1 and every server binds to it
        # (read when ray is imported; without it Ray picks the machine's external address)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ModuleNotFoundError:
        raise HygieError(f"render-batch runs on Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def connect(ray, address: str | None, workers: int | None, avatars: dict) -> int:
    """Start (address None) or join Ray; returns the number of workers to run."""
    if address is None:
        workers = workers or usable_cores()
        payload = sum(sum(f.stat().st_size for f in Path(av.path).iterdir() if f.is_file()) for av in avatars.values())
        ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, object_store_memory=max(256 << 20, 3 * payload),
                 namespace="hygie-batch")
        return workers
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, namespace="hygie-batch")
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise HygieError(f"cannot join the Ray cluster at {address!r} ({short_error(e)}). Check the head node's "
                         "address (host:port, default port 6379), or use 'auto' on a cluster node") from None
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if cpus < 1 and not workers:
        raise HygieError(f"the Ray cluster at {address} has no CPU to run workers on")
    return workers or cpus


def short_error(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    text = lines[-1] if lines else e.__class__.__name__
    return f"{e.__class__.__name__}: {text}"[:400]
