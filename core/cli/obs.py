"""`hygie obs setup | status | watch`.

Also exports ``add_obs_control_args(parser)`` / ``obs_control_config(args)`` so `hygie run`
offers the same --obs-* flags and builds its ``ObsControlConfig`` from them.
"""
from __future__ import annotations

import argparse
import logging
import time

from hygie.plugin.obs.control import AVATAR_NAME, MODES, AvatarControl, AvatarState, ObsControlConfig
from hygie.plugin.obs.config import discover
from hygie.plugin.obs.link import ObsLink
from hygie.core.limits import MAX_DURATION_S, number_arg

log = logging.getLogger(__name__)


def add_connection_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("OBS connection (default: read from OBS's own config)")
    g.add_argument("--obs-host", help="env HYGIE_OBS_HOST; default localhost")
    g.add_argument("--obs-port", type=number_arg(1, 65535, integer=True), help="env HYGIE_OBS_PORT; default from OBS config, else 4455")
    g.add_argument("--obs-password", help="env HYGIE_OBS_PASSWORD (preferred: flags show in `ps`)")


def add_obs_control_args(p: argparse.ArgumentParser) -> None:
    """The flags that choose what in OBS turns the avatar on (for `hygie run` and `obs watch`)."""
    add_connection_args(p)
    g = p.add_argument_group("OBS control")
    g.add_argument("--obs-mode", choices=MODES, default="scene",
                   help="scene: ON in the listed scenes; source: ON while the source is visible; "
                        "event: only BroadcastCustomEvent {\"hygie\":{\"avatar\":\"on|off|toggle\"}}")
    g.add_argument("--obs-scene", action="append", metavar="NAME",
                   help=f"scene that turns the avatar on (repeatable; default '{AVATAR_NAME}')")
    g.add_argument("--obs-source", default=AVATAR_NAME, help="source whose visibility decides (mode source)")
    g.add_argument("--obs-mute-input", metavar="NAME", help="muting this OBS audio input pauses the lips")


def obs_control_config(args: argparse.Namespace) -> ObsControlConfig:
    return ObsControlConfig(mode=args.obs_mode, scenes=tuple(args.obs_scene or (AVATAR_NAME,)),
                            source=args.obs_source, mute_input=args.obs_mute_input,
                            host=args.obs_host, port=args.obs_port, password=args.obs_password)


def _connect(args: argparse.Namespace) -> ObsLink:
    link = ObsLink(discover(args.obs_host, args.obs_port, args.obs_password))
    link.connect()  # raises ObsUnavailable / ObsAuthError with the fix
    return link


def cmd_setup(args: argparse.Namespace) -> int:
    from hygie.core.live.latency import measured_latency_ms
    from hygie.plugin.obs.setup import DEFAULT_LATENCY_MS, run_setup
    latency = args.latency_ms
    if latency is None:
        latency = measured_latency_ms()
        if latency is None:
            latency = DEFAULT_LATENCY_MS
            print(f"no measured latency yet: using {latency} ms (run `hygie run` once, or pass --latency-ms)")
    link = _connect(args)
    try:
        rep = run_setup(link, latency_ms=latency, mic_device=args.mic, add_to_scene=args.add_to_scene)
    finally:
        link.close()
    print(f"OBS {link.obs_version} at {link.conn.url}:")
    for line in rep.lines():
        print("  " + line)
    if not rep.created:
        print("  nothing to create: already set up")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    conn = discover(args.obs_host, args.obs_port, args.obs_password)
    print(f"settings from: {conn.source}")
    print(f"address:       {conn.url}  password: {'set' if conn.password else 'none'}"
          f"  server enabled in config: {conn.server_enabled}")
    link = _connect(args)
    try:
        program = link.call("GetCurrentProgramScene").get("currentProgramSceneName")
        scenes = [s["sceneName"] for s in link.call("GetSceneList").get("scenes", [])]
    finally:
        link.close()
    print(f"OBS:           {link.obs_version} (obs-websocket {link.websocket_version})")
    print(f"program scene: {program}")
    print(f"scene '{AVATAR_NAME}': {'present' if AVATAR_NAME in scenes else 'missing (run: hygie obs setup)'}")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    """Print every avatar state change: to check a Stream Deck button or a scene set-up."""
    state = AvatarState()
    state.add_listener(lambda s: print(f"{time.strftime('%H:%M:%S')} avatar {'ON ' if s.on else 'OFF'}"
                                       f"{' lips paused' if s.lips_paused else ''}  ({s.reason})", flush=True))
    control = AvatarControl(obs_control_config(args), state).start()
    end = time.monotonic() + args.duration if args.duration else None
    try:
        while end is None or time.monotonic() < end:
            time.sleep(0.1)
    finally:
        control.stop()
    return 0


def cmd_script(args: argparse.Namespace) -> int:
    from pathlib import Path
    import hygie.plugin
    print(Path(hygie.plugin.__file__).with_name("hygie_obs.py"))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("obs", help="OBS integration: set up the scene, check the link, watch the control")
    sub = p.add_subparsers(dest="obs_command", metavar="ACTION")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    s = sub.add_parser("setup", help=f"create the '{AVATAR_NAME}' scene (camera + microphone); safe to re-run")
    add_connection_args(s)
    s.add_argument("--latency-ms", type=number_arg(0, 2000, integer=True), help="microphone sync offset (default: the agent's last "
                                                   "measured latency, else 100)")
    s.add_argument("--mic", default="default", help="OBS audio device id for the microphone (default: default)")
    s.add_argument("--add-to-scene", metavar="SCENE",
                   help=f"also nest '{AVATAR_NAME}' into this scene (for --obs-mode source)")
    s.set_defaults(func=cmd_setup)

    st = sub.add_parser("status", help="show where OBS is, its version and program scene")
    add_connection_args(st)
    st.set_defaults(func=cmd_status)

    w = sub.add_parser("watch", help="print avatar on/off changes as OBS drives them (Ctrl-C to stop)")
    add_obs_control_args(w)
    w.add_argument("--duration", type=number_arg(0, MAX_DURATION_S), default=0, help="stop after N seconds (0: until Ctrl-C)")
    w.set_defaults(func=cmd_watch)

    sc = sub.add_parser("script", help="print the path of the OBS script to add in OBS (Tools -> Scripts -> +)")
    sc.set_defaults(func=cmd_script)

