"""The control panel's web server (Starlette via FastAPI, served by uvicorn on 127.0.0.1 only).

Security, for a page any local program or web site could try to reach:
- every request carries the token (header `X-Hygie-Token`, or `?token=` where a browser cannot set
  a header: the page itself, images, the event stream); compared in constant time;
- the Host header must be 127.0.0.1:PORT or localhost:PORT (no DNS rebinding);
- state-changing requests are POST only, and are refused when their Origin (or Sec-Fetch-Site)
  says another site sent them; no CORS header is ever sent;
- the browser never gives a path: uploads get a fresh name in a temporary folder, avatars,
  microphones and cameras are chosen from lists the server made.
"""
# no `from __future__ import annotations`: FastAPI reads the handlers' annotations as objects

import asyncio
import hmac
import html
import json
import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Any

from hygie.core.errors import HygieError

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"panel.js": "text/javascript", "panel.css": "text/css", "icon.svg": "image/svg+xml"}
MAX_UPLOAD = 2 * 1024**3  # 2 GB: a 5-minute 1080p phone video is ~0.5 GB
HOST = "127.0.0.1"


def token_path() -> Path:
    from hygie.core.user_dirs import state_dir

    return state_dir() / "panel_token"


def load_token(new: bool = False) -> str:
    """The panel's token, kept (0600) so an OBS dock's URL stays valid across restarts; `new` rotates it."""
    p = token_path()
    if not new:
        try:
            t = p.read_text().strip()
            if len(t) >= 32:
                return t
        except OSError:
            pass
    t = secrets.token_urlsafe(32)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(t)
        os.replace(tmp, p)
    except OSError as e:
        log.warning("panel token not saved (%s): the URL changes at every start", e)
    return t


def _fastapi():
    try:
        import fastapi
        import python_multipart  # noqa: F401  (uploads)
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise HygieError(f"the control panel needs the 'panel' extra ({e.name} missing): "
                         "pip install 'hygie-avatar[panel]' (or re-run installer/install.sh)") from None
    return fastapi


def create_app(controller: Any, token: str, port: int):
    _fastapi()
    from fastapi import FastAPI, File, Form, Request, UploadFile
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    hosts = {f"{HOST}:{port}", f"localhost:{port}"}
    origins = {f"http://{h}" for h in hosts}

    def refuse(code: int, why: str) -> JSONResponse:
        return JSONResponse({"error": why}, status_code=code)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.headers.get("host", "") not in hosts:
            return refuse(403, "wrong Host: open the panel at the URL it printed")
        given = request.headers.get("x-hygie-token") or request.query_params.get("token") or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            return refuse(401, "missing or wrong token: open the panel at the URL `hygie panel` printed")
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            site = request.headers.get("sec-fetch-site")
            if (origin is not None and origin not in origins) or site in ("cross-site", "same-site"):
                return refuse(403, "request from another origin refused")
        resp = await call_next(request)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    def ok(data: Any = None) -> JSONResponse:
        return JSONResponse({"ok": True, **(data or {})})

    async def body(request: Request) -> dict:
        try:
            d = await request.json()
        except Exception:
            d = {}
        return d if isinstance(d, dict) else {}

    @app.exception_handler(HygieError)
    async def hygie_error(request: Request, e: HygieError):
        return refuse(400, str(e))

    @app.get("/")
    async def index() -> HTMLResponse:
        page = (STATIC / "index.html").read_text(encoding="utf-8")
        return HTMLResponse(page.replace("{{TOKEN}}", html.escape(token, quote=True)),
                            headers={"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                                                "style-src 'self'; script-src 'self'; "
                                                                "frame-ancestors 'none'"})

    @app.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in ASSETS:
            return refuse(404, "no such file")
        return FileResponse(STATIC / name, media_type=ASSETS[name])

    @app.get("/api/status")
    async def status() -> JSONResponse:
        return JSONResponse(controller.status())

    @app.get("/api/options")
    async def options() -> JSONResponse:
        return JSONResponse(await asyncio.to_thread(controller.options))

    @app.get("/api/events")
    async def events(request: Request) -> StreamingResponse:
        async def gen():
            for _ in range(24 * 3600):  # bounded: a day of updates, then the page reconnects
                if await request.is_disconnected():
                    break
                yield f"data: {json.dumps(controller.status())}\n\n"
                await asyncio.sleep(1.0)
        return StreamingResponse(gen(), media_type="text/event-stream")

    @app.get("/api/preview.jpg")
    async def preview() -> Response:
        jpg = await asyncio.to_thread(controller.preview_jpeg)
        if jpg is None:
            return Response(status_code=204)
        return Response(jpg, media_type="image/jpeg")

    @app.post("/api/start")
    async def start(request: Request) -> JSONResponse:
        controller.configure(await body(request))
        controller.start()
        return ok()

    @app.post("/api/stop")
    async def stop() -> JSONResponse:
        await asyncio.to_thread(controller.stop)
        return ok()

    @app.post("/api/settings")
    async def settings(request: Request) -> JSONResponse:
        return ok({"settings": controller.configure(await body(request))})

    @app.post("/api/avatar")
    async def avatar(request: Request) -> JSONResponse:
        d = await body(request)
        on = (not controller.state.on) if d.get("toggle") else bool(d.get("on", True))
        return ok({"state": controller.set_avatar(on)})

    @app.post("/api/enroll")
    async def enroll(name: str = Form(...), train: bool = Form(True), video: UploadFile = File(...)) -> JSONResponse:
        dst = controller.new_upload(video.filename or "")
        size = 0
        with open(dst, "wb") as f:
            while chunk := await video.read(1 << 20):
                size += len(chunk)
                if size > MAX_UPLOAD:
                    f.close()
                    dst.unlink(missing_ok=True)
                    return refuse(413, "video larger than 2 GB: cut it to 3-5 minutes")
                f.write(chunk)
        job = controller.enroll(dst, name, train=train)
        return ok({"job": job.public()})

    @app.post("/api/train")
    async def train(request: Request) -> JSONResponse:
        return ok({"job": controller.train(str((await body(request)).get("avatar", ""))).public()})

    @app.get("/api/jobs/{job_id}")
    async def job(job_id: str) -> JSONResponse:
        j = controller.jobs.get(job_id)
        return refuse(404, "no such job") if j is None else JSONResponse(j.public())

    @app.get("/api/avatars/{name}/report")
    async def report(name: str) -> Response:
        p = controller.report_path(name) if name in controller.avatars() else None
        if p is None:
            return refuse(404, "no report for that avatar")
        return FileResponse(p, media_type="text/html",
                            headers={"Content-Security-Policy": "default-src 'none'; img-src data:; "
                                                                "style-src 'unsafe-inline'; sandbox"})

    return app


class PanelServer:
    """uvicorn in a thread: `start()` returns once it listens; `url` carries the token."""

    def __init__(self, controller: Any, port: int = 8765, token: str | None = None, new_token: bool = False):
        _fastapi()
        import uvicorn

        self.port = port if port else _free_port()
        self.token = token or load_token(new_token)
        self.app = create_app(controller, self.token, self.port)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host=HOST, port=self.port, log_level="warning",
                                                    access_log=False, lifespan="off"))
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/?token={self.token}"

    def start(self, timeout: float = 10.0) -> "PanelServer":
        import time

        self.thread = threading.Thread(target=self.server.run, name="panel-http", daemon=True)
        self.thread.start()
        t_end = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > t_end:
                raise HygieError(f"the panel could not listen on {HOST}:{self.port} (in use?): pass --port N")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=5)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]
