"""The `hygie` command. Each subcommand lives in its own module with `register(subparsers)`."""
from __future__ import annotations

import argparse
import errno
import importlib
import logging
import signal
import sys
import threading
from pathlib import Path

from hygie.core.errors import HygieError, Terminated

# module path -> registers one or more subcommands; imported lazily so `hygie --help` stays fast
# and a missing optional part (e.g. torch for `train`) never breaks the other commands.
SUBCOMMAND_MODULES = [
    "hygie.core.cli.enroll",
    "hygie.core.cli.train",
    "hygie.core.cli.eval",
    "hygie.core.cli.render",
    "hygie.core.cli.render_eval",
    "hygie.core.cli.render_batch",
    "hygie.core.cli.verify",
    "hygie.core.cli.run",
    "hygie.core.cli.devices",
    "hygie.core.cli.bench",
    "hygie.core.cli.obs",
    "hygie.core.cli.doctor",
    "hygie.core.cli.panel",
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


def _raise_terminated(signum: int, _frame) -> None:
    raise Terminated(signum)


def _one_line(e: BaseException) -> str:
    """An unexpected error as one line that says what to do."""
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        where = f" in {Path(e.filename).parent}" if e.filename else ""
        return f"disk full{where}: free some space or choose another output folder (nothing half-written is kept)."
    if isinstance(e, MemoryError):
        return "out of memory: close other programs, or use a smaller --size."
    return (f"unexpected {e.__class__.__name__}: {e}. Run again with -v for the details, and please report "
            "them with the command you ran.")


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
    # SIGTERM (a launcher, OBS, systemd) cleans up like Ctrl-C: temporary folders, worker processes
    in_main = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, _raise_terminated) if in_main else None
    try:
        return int(args.func(args) or 0)
    except HygieError as e:
        print(f"hygie {args.command}: error: {e}", file=sys.stderr)
        return 1
    except Terminated as e:
        print("stopped", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # never a traceback for the user; -v shows it
        logging.getLogger(__name__).debug("traceback", exc_info=True)
        print(f"hygie {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 1
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)

if __name__ == "__main__":
    sys.exit(main())
