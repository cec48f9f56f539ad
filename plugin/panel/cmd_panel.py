"""`hygie panel`: the control panel in a browser or an OBS dock (127.0.0.1 only, with a token)."""
from __future__ import annotations

import argparse
import logging
import signal
import threading

from hygie.core.live.config import build_config, config_path

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765


def add_panel_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0: any)")
    p.add_argument("--new-token", action="store_true",
                   help="make a new access token (the old URL, e.g. in an OBS dock, stops working)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "panel", help="control panel in your browser or an OBS dock: start/stop, avatar on/off, meters, enroll",
        description="Serve the control panel on 127.0.0.1 at a URL with an access token (printed). Open it in a "
                    "browser, or dock it in OBS: View > Docks > Custom Browser Docks, paste the URL. From the page: "
                    "start/stop the live agent, switch the avatar on/off, pick avatar, microphone, camera and size, "
                    "watch fps, latency and the voice-vs-face offset, enroll a new avatar from a video. Defaults "
                    f"come from {config_path()} ([run] table).")
    add_panel_args(p)
    p.add_argument("--start", action="store_true", help="start the live agent at once")
    p.add_argument("--no-virtual-mic", dest="virtual_mic", action="store_false", default=None,
                   help='do not make "Hygie Avatar Mic"')
    p.set_defaults(func=run)


def serve(controller, port: int, new_token: bool = False, stop: threading.Event | None = None) -> None:
    """Serve until Ctrl-C / SIGTERM (or `stop`); stops the agent and removes what it made on the way out."""
    from hygie.plugin.panel.server import PanelServer

    server = PanelServer(controller, port=port, new_token=new_token).start()
    print(f"Hygie Avatar panel: {server.url}\n(open it in a browser, or in OBS: View > Docks > Custom Browser Docks)",
          flush=True)
    stop = stop or threading.Event()
    old = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        controller.close()
        server.stop()


def run(args: argparse.Namespace) -> int:
    from hygie.plugin.panel.controller import LiveController

    cfg = build_config({"virtual_mic": getattr(args, "virtual_mic", None)})
    controller = LiveController(cfg)
    if args.start:
        controller.start()
    serve(controller, args.port, args.new_token)
    return 0
