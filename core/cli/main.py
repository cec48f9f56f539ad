"""The `hygie` command. Each subcommand lives in its own module with `register(subparsers)`."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from hygie.core.errors import HygieError

# module path -> registers one or more subcommands; imported lazily so `hygie --help` stays fast
# and a missing optional part (e.g. torch for `train`) never breaks the other commands.
SUBCOMMAND_MODULES = [
    "hygie.core.cli.enroll",
    "hygie.core.cli.train",
    "hygie.core.cli.eval",
    "hygie.core.cli.render",
    "hygie.core.cli.render_eval",
    "hygie.core.cli.run",
    "hygie.core.cli.devices",
    "hygie.core.cli.bench",
    "hygie.core.cli.obs",
    "hygie.core.cli.doctor",
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hygie",
        description="Hygie Avatar: a real-time, CPU-only, audio-driven lip-sync avatar published as a virtual camera.",
        epilog="Run 'hygie COMMAND --help' for the options of one command.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="show debug logs")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("hygie"):
                continue  # that part is not built yet
            raise
        mod.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except HygieError as e:
        print(f"hygie {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
