"""`hygie run`: the live agent (microphone in, "Hygie Avatar" virtual camera out)."""
from __future__ import annotations

import argparse
import logging

from hygie.core.live.config import build_config, config_path
from hygie.core.limits import MAX_DURATION_S, MAX_FPS, number_arg

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="stream the avatar live to the virtual camera",
        description="Listen to a microphone and publish the lip-synced avatar to the \"Hygie Avatar\" virtual camera. "
                    f"Defaults come from {config_path()} ([run] table) when it exists; flags override it.")
    p.add_argument("--avatar", metavar="PKG", help="avatar package (folder or .hygie); default: the bundled avatar")
    p.add_argument("--input", metavar="NAME", help="audio input: part of its name or its index (see `hygie devices`)")
    p.add_argument("--camera", metavar="DEVICE", help="virtual camera device, e.g. /dev/video10 (default: the one "
                                                        "named \"Hygie Avatar\")")
    p.add_argument("--fps", type=number_arg(1, MAX_FPS), help="frames per second (default 30)")
    p.add_argument("--size", metavar="WxH", help="output size, e.g. 1280x720 (default: the avatar's frame size)")
    p.add_argument("--preview", action="store_true", default=None, help="show the output in a window")
    p.add_argument("--audio-out", metavar="NAME", help="pass the microphone through to this output device, "
                                                       "delayed by the measured video latency (a virtual microphone)")
    p.add_argument("--virtual-mic", dest="virtual_mic", action="store_true", default=None,
                   help='make the microphone "Hygie Avatar Mic" and play your voice into it, delayed to arrive '
                        "with the face (default; Linux: PulseAudio/PipeWire, removed on exit; Windows/macOS: "
                        "VB-CABLE/BlackHole when installed)")
    p.add_argument("--no-virtual-mic", dest="virtual_mic", action="store_false",
                   help="no virtual microphone: call apps take your real microphone (voice ~80 ms before the face)")
    p.add_argument("--panel", action="store_true", help="also serve the control panel (see `hygie panel --help`)")
    p.add_argument("--obs", dest="obs", action="store_true", default=None,
                   help="follow OBS scene/source events (default when the OBS plugin is installed)")
    p.add_argument("--no-obs", dest="obs", action="store_false", help="ignore OBS; the avatar stays on")
    p.add_argument("--duration", type=number_arg(0.001, MAX_DURATION_S), metavar="S", help="stop after S seconds (default: run until Ctrl-C)")
    p.add_argument("--threads", type=number_arg(1, 64, integer=True), help="CPU threads for the lip model (default 1)")
    p.add_argument("--badge", dest="badge", action="store_true", default=None,
                   help="show a visible \"AI avatar\" badge in a corner (the EU AI Act, Art. 50, asks for a disclosure "
                        "of deepfakes from 2 Aug 2026); every frame carries the invisible watermark either way")
    p.add_argument("--no-badge", dest="badge", action="store_false", help="no visible badge (overrides the config file)")
    p.add_argument("--badge-position", choices=("top-left", "top-right", "bottom-left", "bottom-right"),
                   help="corner of the badge (default top-right)")
    p.add_argument("--badge-size", type=number_arg(0.02, 0.3), metavar="F", help="badge height as a fraction of the frame height "
                                                                 "(default 0.06)")
    from hygie.core.cli.obs import add_obs_control_args
    from hygie.plugin.panel.cmd_panel import add_panel_args

    add_obs_control_args(p)
    add_panel_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hygie.core.live.agent import build_agent, close_all, format_summary
    from hygie.core.live.latency import save_measured_latency
    from hygie.core.cli.obs import obs_control_config

    keys = ("avatar", "input", "camera", "fps", "size", "preview", "audio_out", "virtual_mic", "obs", "duration",
            "threads", "badge", "badge_position", "badge_size")
    cfg = build_config({k: getattr(args, k, None) for k in keys})
    if getattr(args, "panel", False):
        from hygie.plugin.panel.cmd_panel import serve
        from hygie.plugin.panel.controller import LiveController

        controller = LiveController(cfg, obs_config=obs_control_config(args) if cfg.obs else None)
        controller.start()
        serve(controller, args.port, args.new_token)
        return 0
    controls = None
    if cfg.obs:
        from hygie.plugin.obs.control import start_obs_control

        obs_config = obs_control_config(args)
        controls = lambda state: start_obs_control(state, obs_config)  # noqa: E731
    agent, closers = build_agent(cfg, controls=controls)
    try:
        log.info("streaming; Ctrl-C to stop")
        summary = agent.run()
    finally:
        close_all(closers)
    save_measured_latency(summary)
    print(format_summary(summary))
    return 0
