"""Whether the avatar is on and its lips move: the flags the agent reads every frame.

Written by whatever controls the avatar (OBS events, the control panel, tests); read by the
agent without locking (a bool read is atomic).
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger(__name__)


class AvatarState:
    """Thread-safe flags the agent reads every frame."""

    def __init__(self, on: bool = True, lips_paused: bool = False):
        self._cond = threading.Condition()
        self._on = on
        self._lips_paused = lips_paused
        self._version = 0
        self.reason = "initial"  # why the last change happened (for status lines)
        self.connected = False
        self._listeners: list[Callable[["AvatarState"], None]] = []

    @property
    def on(self) -> bool:
        return self._on  # a bool read is atomic; the lock guards writers and waiters

    @property
    def lips_paused(self) -> bool:
        return self._lips_paused

    @property
    def version(self) -> int:
        return self._version

    def set(self, *, on: bool | None = None, lips_paused: bool | None = None, reason: str = "") -> bool:
        with self._cond:
            changed = False
            if on is not None and on != self._on:
                self._on, changed = on, True
            if lips_paused is not None and lips_paused != self._lips_paused:
                self._lips_paused, changed = lips_paused, True
            if not changed:
                return False
            self._version += 1
            self.reason = reason
            self._cond.notify_all()
            listeners = list(self._listeners)
        log.info("avatar %s%s (%s)", "ON" if self._on else "OFF",
                 ", lips paused" if self._lips_paused else "", reason)
        for fn in listeners:
            try:
                fn(self)
            except Exception:
                log.exception("avatar state listener failed")
        return True

    def toggle(self, reason: str = "toggle") -> bool:
        with self._cond:
            target = not self._on
        return self.set(on=target, reason=reason)

    def wait_change(self, since_version: int, timeout: float | None = None) -> bool:
        """Block until version > since_version; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._version > since_version, timeout)

    def add_listener(self, fn: Callable[["AvatarState"], None]) -> None:
        """fn(state) runs on the OBS control thread after each change: keep it short."""
        with self._cond:
            self._listeners.append(fn)

    def snapshot(self) -> dict:
        with self._cond:
            return {"on": self._on, "lips_paused": self._lips_paused, "version": self._version,
                    "reason": self.reason, "connected": self.connected}
