"""`hygie doctor`: prints each prerequisite check with its fix; exit 1 when something blocks."""
from __future__ import annotations

import argparse
from hygie.core.limits import number_arg


def cmd_doctor(args: argparse.Namespace) -> int:
    from hygie.installer.doctor import format_checks, run_checks
    checks = run_checks(avatar=args.avatar, obs_host=args.obs_host, obs_port=args.obs_port,
                        obs_password=args.obs_password, skip_obs=args.no_obs)
    print(format_checks(checks))
    return 1 if any(c.blocking for c in checks) else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("doctor", help="check Python, audio, virtual camera, OBS and the avatar; print fixes")
    p.add_argument("--avatar", help="avatar package to verify (default: the bundled one)")
    p.add_argument("--obs-host", help="env HYGIE_OBS_HOST")
    p.add_argument("--obs-port", type=number_arg(1, 65535, integer=True), help="env HYGIE_OBS_PORT")
    p.add_argument("--obs-password", help="env HYGIE_OBS_PASSWORD")
    p.add_argument("--no-obs", action="store_true", help="skip the OBS check (Zoom/Teams only)")
    p.set_defaults(func=cmd_doctor)
