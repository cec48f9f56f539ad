"""The job list of `hygie render-batch`: JSON Lines or CSV, one job per line.

Fields: `audio` (speech file) and `output` (an .mp4 name inside OUTDIR, sub-folders allowed) are
required; `avatar` (package folder or .hygie; empty = the bundled avatar), `size` (WxH) and `fit`
(letterbox | crop) are optional. Relative paths are relative to the manifest's own folder, so a
manifest travels with its files. A line that cannot be used becomes a failed job with its reason;
the other lines still run.
"""
from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hygie.core.errors import HygieError
from hygie.core.limits import parse_size
from hygie.core.render.job import FITS, check_fit

log = logging.getLogger(__name__)

FIELDS = ("avatar", "audio", "output", "size", "fit")
REQUIRED = ("audio", "output")


@dataclass(frozen=True)
class BatchJob:
    line: int  # 1-based line in the manifest (CSV: the header is line 1)
    output: str  # normalised relative name inside OUTDIR: the job's identity
    audio: str | None = None
    avatar: str | None = None  # None = the bundled default avatar
    size: tuple[int, int] | None = None
    fit: str = "letterbox"
    error: str | None = None  # why this line cannot run (then it fails alone)

    @property
    def avatar_name(self) -> str:
        return self.avatar or "(bundled avatar)"


def output_name(value: str) -> str:
    """A safe relative .mp4 name inside OUTDIR (no absolute path, no '..', no hidden name)."""
    name = str(value).strip().replace("\\", "/")
    p = PurePosixPath(name)
    if not name or p.is_absolute() or ".." in p.parts or name.startswith("~"):
        raise HygieError(f"output {value!r}: give a file name inside OUTDIR, e.g. lesson01.mp4")
    if any(part.startswith(".") for part in p.parts):
        raise HygieError(f"output {value!r}: hidden names (starting with '.') are reserved for temporary files")
    if p.suffix.lower() != ".mp4":
        raise HygieError(f"output {value!r}: the output must be an .mp4 name")
    return str(p)


def failed_key(output, line: int) -> str:
    """The record name of a line that cannot run (unique even when its output name is taken)."""
    name = str(output).strip() if output not in (None, "") else "?"
    return f"{name} (line {line})"


def _path(value: str | None, base: Path) -> str | None:
    if value is None or not str(value).strip():
        return None
    p = Path(str(value).strip()).expanduser()
    return str(p if p.is_absolute() else (base / p).absolute())


def _job(line: int, row: dict, base: Path) -> BatchJob:
    unknown = sorted(k for k in row if k not in FIELDS)
    try:
        if unknown:
            raise HygieError(f"unknown field {unknown[0]!r}; the fields are {', '.join(FIELDS)}")
        for k in REQUIRED:
            if row.get(k) in (None, "") or not str(row[k]).strip():
                raise HygieError(f"missing {k!r}; every line needs {' and '.join(REQUIRED)}")
        out = output_name(row["output"])
        size = parse_size(str(row["size"]).strip()) if row.get("size") not in (None, "") else None
        fit = check_fit(str(row.get("fit") or "letterbox").strip().lower())
        return BatchJob(line, out, _path(row["audio"], base), _path(row.get("avatar"), base), size, fit)
    except HygieError as e:
        return BatchJob(line, failed_key(row.get("output"), line), error=f"manifest line {line}: {e}")


def _rows_jsonl(text: str) -> list[tuple[int, dict | str]]:
    rows: list[tuple[int, dict | str]] = []
    for i, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as e:
            rows.append((i, f"manifest line {i}: not valid JSON ({e.msg} at column {e.colno})"))
            continue
        if not isinstance(obj, dict):
            rows.append((i, f"manifest line {i}: expected a JSON object such as "
                            '{"audio": "a.wav", "output": "a.mp4"}'))
            continue
        rows.append((i, {str(k): ("" if v is None else v) for k, v in obj.items()}))
    return rows


def _rows_csv(text: str) -> list[tuple[int, dict | str]]:
    lines = text.splitlines()
    reader = csv.DictReader(lines, skipinitialspace=True)
    if not reader.fieldnames:
        return []
    header = [h.strip().lower() for h in reader.fieldnames]
    missing = [k for k in REQUIRED if k not in header]
    if missing:
        raise HygieError(f"CSV manifest: the header line must name the columns ({', '.join(FIELDS)}); "
                         f"{missing[0]!r} is missing")
    reader.fieldnames = header
    rows: list[tuple[int, dict | str]] = []
    for row in reader:
        i = reader.line_num
        if None in row:  # more cells than header columns
            rows.append((i, f"manifest line {i}: more cells than the header has columns"))
            continue
        vals = {k: (v or "").strip() for k, v in row.items() if k}
        if not any(vals.values()) or next(iter(vals.values()), "").startswith("#"):
            continue
        rows.append((i, vals))
    return rows


def read_manifest(path: str | Path) -> list[BatchJob]:
    """All jobs of the manifest, in order; unusable lines come back with `error` set."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise HygieError(f"{p}: no such manifest. Write one job per line, e.g. "
                         '{"avatar": "me", "audio": "lesson01.wav", "output": "lesson01.mp4"}')
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise HygieError(f"{p}: not a text file; the manifest is JSON Lines or CSV (UTF-8)") from None
    first = next((s.strip() for s in text.splitlines() if s.strip() and not s.strip().startswith("#")), "")
    is_csv = p.suffix.lower() == ".csv" or (p.suffix.lower() not in (".jsonl", ".ndjson", ".json")
                                            and not first.startswith("{"))
    rows = _rows_csv(text) if is_csv else _rows_jsonl(text)
    base = p.parent.absolute()
    jobs: list[BatchJob] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        job = BatchJob(line, failed_key(None, line), error=row) if isinstance(row, str) else _job(line, row, base)
        if job.error is None and job.output in seen:
            job = BatchJob(line, failed_key(job.output, line),
                           error=f"manifest line {line}: output {job.output!r} is also written by line "
                                 f"{seen[job.output]}; give each job its own output name")
        elif job.error is None:
            seen[job.output] = line
        jobs.append(job)
    if not jobs:
        raise HygieError(f"{p}: no job in the manifest. Write one job per line, e.g. "
                         '{"audio": "lesson01.wav", "output": "lesson01.mp4"}')
    return jobs


__all__ = ["BatchJob", "FIELDS", "FITS", "read_manifest", "output_name"]
