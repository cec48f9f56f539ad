"""`hygie render-batch JOBS -o OUTDIR`: many render jobs on Ray (core/batch/)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

EXAMPLE = """\
JOBS is JSON Lines (or CSV with a header line), one job per line:
  {"avatar": "me.hygie", "audio": "lesson01.wav", "output": "lesson01.mp4"}
  {"audio": "news.flac", "output": "news/fr.mp4", "size": "1280x720", "fit": "crop"}
avatar: package folder or .hygie (empty: the bundled avatar); audio: any wav/flac/mp3/m4a;
output: a name inside OUTDIR; size (WxH) and fit (letterbox|crop) are optional.
Relative paths are relative to the manifest's folder.

OUTDIR/batch.json records each job (state, duration, frames, error). Running the same
command again skips finished jobs and renders the others (a vanished output, or a changed
avatar or audio, is rendered again). Ctrl-C stops cleanly: nothing half-written.

Needs Ray: pip install 'hygie-avatar[batch]'. On a cluster every node needs hygie-avatar
installed, and the audio files and OUTDIR on storage mounted at the same path (docs/batch.md).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render-batch", help="render many lip-synced videos on Ray (a laptop or a cluster)",
                       description="Render every job of a manifest, in parallel on Ray workers, into OUTDIR.",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("jobs", metavar="JOBS", help="manifest: .jsonl (one JSON object per line) or .csv")
    p.add_argument("-o", "--output", dest="outdir", required=True, metavar="OUTDIR",
                   help="folder for the videos and batch.json (created if missing)")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="join this Ray cluster: 'auto' (RAY_ADDRESS or the cluster started on this machine) "
                        "or HOST:PORT of the head node; default: start Ray here, one worker per core")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes (default: this machine's cores, or all CPUs of the cluster)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs and CI)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hygie.core.batch.runner import BatchOptions, run_batch

    opts = BatchOptions(Path(args.jobs), Path(args.outdir), ray=args.ray, workers=args.workers,
                        show_progress=not args.no_progress)
    s = run_batch(opts)
    print(f"render-batch: {s.line()}", flush=True)
    for line in s.worker_lines():
        print(line)
    for name, err in s.errors[:10]:
        print(f"  failed {name}: {err}", file=sys.stderr)
    if len(s.errors) > 10:
        print(f"  ... {len(s.errors) - 10} more", file=sys.stderr)
    if s.errors:
        print(f"  (every job's state and error: {Path(args.outdir) / 'batch.json'})", file=sys.stderr)
    if s.stopped:
        return 130
    return 1 if s.failed else 0
