"""`hygie devices`: audio inputs/outputs and the virtual cameras found."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="list audio inputs/outputs and virtual cameras",
                       description="List audio devices (index, name, host API, default rate) and virtual cameras. "
                                   "Pass a unique part of a name (or the index) to `hygie run --input/--audio-out`.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hygie.core.audio.capture import _sd, list_devices
    from hygie.core.live.vcam import CAMERA_NAME, list_virtual_cameras, no_camera_fix

    sd = _sd()
    apis = sd.query_hostapis()
    defaults = sd.default.device
    for kind, default in (("input", defaults[0]), ("output", defaults[1])):
        print(f"Audio {kind}s:")
        devs = list_devices(kind)
        if not devs:
            print("  (none: is the sound server (PulseAudio/PipeWire) running? is a device plugged in?)")
        key = "max_input_channels" if kind == "input" else "max_output_channels"
        for d in devs:
            mark = "*" if d["index"] == default else " "
            print(f" {mark}[{d['index']:>2}] {d['name']}  ({apis[d['hostapi']]['name']}, "
                  f"{d['default_samplerate']:.0f} Hz, {d[key]} ch)")
    print("Virtual cameras:")
    cams = list_virtual_cameras()
    for c in cams:
        mark = "*" if c.name == CAMERA_NAME else " "
        print(f" {mark} {c.device}  {c.name!r}  ({c.backend})")
    if not any(c.name == CAMERA_NAME for c in cams):
        print(f'  none named "{CAMERA_NAME}". {no_camera_fix()}')
    print("(* = used by default)")
    return 0
