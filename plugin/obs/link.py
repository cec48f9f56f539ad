"""Our one wrapper around obs-websocket-py (v5 protocol), so the library can be replaced.

- ``ObsLink``: one connection. ``connect()`` raises ``ObsUnavailable`` (OBS closed, port
  wrong, server disabled) or ``ObsAuthError`` (wrong/missing password) with the fix in the
  message; ``call("GetSceneList")`` returns the response data or raises ``ObsRequestError``.
  Events are pushed to a ``queue.Queue`` as ``ObsEvent`` and read with ``next_event()``.
- ``ObsSession``: keeps an ``ObsLink`` alive in its own thread, reconnecting with backoff,
  and calls a handler's ``on_connected`` / ``on_event`` / ``on_disconnected`` *on that
  thread*. obs-websocket-py runs its event callbacks on its receive thread and a request
  issued from there waits for an answer that same thread should read: it hangs until
  timeout. So the callback only enqueues; requests are always made from our thread.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from hygie.core.errors import HygieError
from hygie.plugin.obs.config import ObsConnection

log = logging.getLogger(__name__)
# the library warns "Connection lost!" itself; we report disconnects once, in our words
logging.getLogger("obswebsocket").setLevel(logging.ERROR)

DISCONNECTED = "_HygieDisconnected"  # sentinel event name pushed when the socket dies


class ObsError(HygieError):
    """Something about OBS the user can fix."""


class ObsUnavailable(ObsError):
    """OBS is not running, or its websocket server is off or on another port."""


class ObsAuthError(ObsError):
    """OBS refused the password."""


class ObsRequestError(ObsError):
    """OBS answered a request with an error."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ObsEvent:
    name: str
    data: dict = field(default_factory=dict)


def _unavailable_msg(conn: ObsConnection, why: str) -> str:
    return (f"cannot reach OBS at {conn.url} ({why}). Start OBS and enable its websocket server "
            f"(OBS: Tools -> WebSocket Server Settings -> Enable, port {conn.port}), "
            "or pass --obs-host/--obs-port (env HYGIE_OBS_HOST/HYGIE_OBS_PORT).")


def _auth_msg(conn: ObsConnection) -> str:
    if not conn.password:
        return (f"OBS at {conn.url} requires a password and none was found. Copy it from OBS "
                "(Tools -> WebSocket Server Settings -> Show Connect Info) into --obs-password "
                "or the env var HYGIE_OBS_PASSWORD.")
    return (f"OBS at {conn.url} refused the password (from {conn.source}). Copy the current one "
            "from OBS (Tools -> WebSocket Server Settings -> Show Connect Info) into "
            "--obs-password or HYGIE_OBS_PASSWORD.")


class ObsLink:
    """One obs-websocket v5 connection. Not thread-safe: call it from one thread."""

    def __init__(self, conn: ObsConnection, request_timeout: float = 5.0,
                 connect_timeout: float = 3.0):
        self.conn = conn
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.events: queue.Queue[ObsEvent] = queue.Queue()
        self._client: Any = None
        self._next_id = 1
        self.obs_version = ""
        self.websocket_version = ""

    # -- connection ------------------------------------------------------------------
    def connect(self) -> None:
        import websocket  # websocket-client, a dependency of obs-websocket-py
        from obswebsocket import obsws
        from obswebsocket.exceptions import ConnectionFailure

        self.close()
        while not self.events.empty():  # events of an old connection must not reach the new one
            self.events.get_nowait()
        # legacy=False: port 4444 would otherwise switch the library to the v4 protocol
        client = obsws(self.conn.host, self.conn.port, self.conn.password, legacy=False,
                       timeout=self.request_timeout, on_disconnect=self._on_lib_disconnect)
        client.register(self._on_lib_event)  # runs on the library's thread: enqueue only
        try:
            # the library's connect() has no timeout; open the socket ourselves first
            client.ws = websocket.WebSocket()
            client.ws.connect(self.conn.url, timeout=self.connect_timeout)
            hello_auth = self._handshake(client)
            client.ws.settimeout(None)  # the receive thread blocks; close() wakes it
        except ObsError:
            self._drop(client)
            raise
        except (OSError, websocket.WebSocketException, ConnectionFailure, ValueError) as e:
            self._drop(client)
            raise ObsUnavailable(_unavailable_msg(self.conn, str(e) or type(e).__name__)) from None
        from obswebsocket.core import RecvThread
        client.thread_recv = _QuietRecvThread(client, RecvThread)
        client.thread_recv.start()
        self._client = client
        log.debug("identified with OBS at %s (auth %s)", self.conn.url,
                  "used" if hello_auth else "off")
        try:
            v = self.call("GetVersion")
            self.obs_version = v.get("obsVersion", "")
            self.websocket_version = v.get("obsWebSocketVersion", "")
        except ObsError:
            pass

    def _handshake(self, client: Any) -> bool:
        """Hello -> Identify -> Identified (the library's own version cannot tell a wrong
        password from a broken socket)."""
        hello = json.loads(client.ws.recv() or "{}")
        if hello.get("op") != 0:
            raise ObsUnavailable(_unavailable_msg(self.conn, "this port does not speak obs-websocket v5"))
        auth_info = hello["d"].get("authentication")
        auth = client._build_auth_string(auth_info["salt"], auth_info["challenge"]) if auth_info else ""
        client.ws.send(json.dumps({"op": 1, "d": {"rpcVersion": 1, "authentication": auth,
                                                  "eventSubscriptions": 1023}}))  # All, no high-volume
        try:
            msg = client.ws.recv()
        except Exception:
            msg = ""
        if not msg:  # OBS closes with code 4009 on a bad password
            if auth_info:
                raise ObsAuthError(_auth_msg(self.conn))
            raise ObsUnavailable(_unavailable_msg(self.conn, "OBS closed the connection during identify"))
        ident = json.loads(msg)
        if ident.get("op") != 2:
            raise ObsUnavailable(_unavailable_msg(self.conn, f"unexpected identify answer op={ident.get('op')}"))
        return bool(auth_info)

    @property
    def connected(self) -> bool:
        c = self._client
        return bool(c is not None and c.ws is not None and c.ws.connected
                    and c.thread_recv is not None and c.thread_recv.is_alive())

    def close(self) -> None:
        c, self._client = self._client, None
        if c is not None:
            self._drop(c)

    @staticmethod
    def _drop(client: Any) -> None:
        if client.thread_recv is not None:
            client.thread_recv.running = False
        try:
            if client.ws is not None:
                client.ws.close(timeout=0.5)
        except Exception:  # already dead: nothing to close
            pass
        if client.thread_recv is not None and client.thread_recv is not threading.current_thread():
            client.thread_recv.join(timeout=2.0)

    # -- library callbacks (receive thread: never call OBS from here) -----------------
    def _on_lib_event(self, ev: Any) -> None:
        self.events.put(ObsEvent(getattr(ev, "name", "?"), dict(getattr(ev, "datain", {}) or {})))

    def _on_lib_disconnect(self, _client: Any) -> None:
        self.events.put(ObsEvent(DISCONNECTED))

    # -- requests ----------------------------------------------------------------------
    def call(self, request_type: str, **data: Any) -> dict:
        """Send one request and return its responseData; raises on failure."""
        c = self._client
        if c is None or not self.connected:
            raise ObsUnavailable(_unavailable_msg(self.conn, "not connected"))
        rid = f"hygie-{self._next_id}"
        self._next_id += 1
        done = threading.Event()
        c.events[rid] = done  # the library's receive thread fills c.answers[rid] and sets it
        try:
            c.ws.send(json.dumps({"op": 6, "d": {"requestId": rid, "requestType": request_type,
                                                 "requestData": data}}))
            done.wait(self.request_timeout)
        except Exception as e:
            raise ObsUnavailable(_unavailable_msg(self.conn, f"lost while sending {request_type}: {e}")) from None
        finally:
            c.events.pop(rid, None)
        answer = c.answers.pop(rid, None)
        if answer is None:
            raise ObsUnavailable(_unavailable_msg(self.conn, f"no answer to {request_type} "
                                                             f"within {self.request_timeout:.0f} s"))
        status = answer.get("requestStatus", {})
        if not status.get("result"):
            raise ObsRequestError(f"OBS refused {request_type}: {status.get('comment') or 'error'} "
                                  f"(code {status.get('code')})", status.get("code"))
        return answer.get("responseData") or {}

    def next_event(self, timeout: float | None = None) -> ObsEvent | None:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None


class _QuietRecvThread:
    """Factory wrapper: the library's receive thread, but a reset socket (OBS killed) ends it
    quietly instead of printing a thread traceback; ObsLink.connected then reads False."""

    def __new__(cls, client: Any, base: type) -> Any:
        class Quiet(base):  # type: ignore[misc, valid-type]
            def run(self) -> None:
                try:
                    super().run()
                except Exception as e:  # OSError from a reset connection
                    log.debug("OBS receive thread ended: %s", e)
                finally:
                    if self.running and self.core.on_disconnect:
                        self.running = False
                        self.core.on_disconnect(self.core)

        t = Quiet(client)
        t.daemon = True
        t.name = "obs-websocket-recv"
        return t


class ObsHandler(Protocol):
    def on_connected(self, link: ObsLink) -> None: ...
    def on_event(self, link: ObsLink, event: ObsEvent) -> None: ...
    def on_disconnected(self, reason: str) -> None: ...


class ObsSession:
    """Keeps one ObsLink connected in a background thread; handler methods run on it."""

    def __init__(self, conn: ObsConnection, handler: ObsHandler, *, backoff_min: float = 0.2,
                 backoff_max: float = 0.5, auth_backoff: float = 10.0, name: str = "hygie-obs"):
        self.conn = conn
        self.handler = handler
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.auth_backoff = auth_backoff  # a wrong password will not fix itself quickly
        self.status = "starting"  # starting | connecting | connected | auth_failed | stopped
        self.last_error = ""
        self.connects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.link = ObsLink(conn)

    def start(self) -> "ObsSession":
        self._thread.start()
        return self

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        self.link.events.put(ObsEvent(DISCONNECTED))  # wake the event wait
        self._thread.join(timeout)
        self.link.close()
        self.status = "stopped"

    def _run(self) -> None:
        delay = self.backoff_min
        logged = ""
        while not self._stop.is_set():
            self.status = "connecting"
            try:
                self.link.connect()
            except ObsAuthError as e:
                self.status, self.last_error = "auth_failed", str(e)
                if logged != "auth":  # log once, not every retry
                    log.error("%s", e)
                    logged = "auth"
                self._stop.wait(self.auth_backoff)
                continue
            except ObsError as e:
                self.last_error = str(e)
                if logged != "down":
                    log.warning("%s Retrying in the background.", e)
                    logged = "down"
                self._stop.wait(delay)
                delay = min(self.backoff_max, delay * 2)
                continue
            delay, logged = self.backoff_min, ""
            self.connects += 1
            self.status, self.last_error = "connected", ""
            log.info("connected to OBS %s (obs-websocket %s) at %s", self.link.obs_version,
                     self.link.websocket_version, self.conn.url)
            reason = self._pump()
            self.link.close()
            if not self._stop.is_set():
                log.warning("lost OBS (%s); reconnecting", reason)
                self.status = "connecting"
                self._safe(self.handler.on_disconnected, reason)

    def _pump(self) -> str:
        try:
            self.handler.on_connected(self.link)
        except ObsError as e:
            if not self.link.connected:
                return str(e)
            log.warning("OBS setup after connect failed: %s", e)
        except Exception:
            log.exception("OBS handler failed on connect")
        while not self._stop.is_set():
            ev = self.link.next_event(timeout=0.5)
            if ev is None:
                if not self.link.connected:
                    return "connection closed"
                continue
            if ev.name == DISCONNECTED:
                return "OBS closed the connection"
            if ev.name == "ExitStarted":
                return "OBS is exiting"
            try:
                self.handler.on_event(self.link, ev)
            except ObsError as e:
                if not self.link.connected:
                    return str(e)
                log.warning("OBS request failed while handling %s: %s", ev.name, e)
            except Exception:
                log.exception("OBS handler failed on %s", ev.name)
        return "stopped"

    @staticmethod
    def _safe(fn: Any, *a: Any) -> None:
        try:
            fn(*a)
        except Exception:
            log.exception("OBS handler failed")
