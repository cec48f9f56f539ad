"""A quick look at a video before the long passes: is it cut short, are packets damaged, where to stop.

Demuxing without decoding reads a 5-minute file in well under a second, so a truncated file
(an interrupted copy or recording) or damaged packets are reported at once, with their time
ranges, instead of after minutes of face tracking.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from hygie.core.errors import MediaError
from hygie.core.media.probe import open_media

log = logging.getLogger(__name__)


@dataclass
class VideoScan:
    duration: float  # what the container announces (0 when unknown)
    last_time: float  # end of the last video packet actually present
    packets: int
    corrupt: list[tuple[float, float]] = field(default_factory=list)  # time ranges of damaged packets

    @property
    def truncated(self) -> bool:
        return self.duration > 0 and self.last_time < self.duration - 0.25

    @property
    def usable_end(self) -> float | None:
        """Where every pass should stop: before the cut-off last packets of a truncated file, else None."""
        return max(0.0, self.last_time - 1.0) if self.truncated else None


def _ranges(times: list[float], gap: float = 1.0) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for t in sorted(times):
        if out and t - out[-1][1] <= gap:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out


def scan_video(path: str | os.PathLike) -> VideoScan:
    """Demux every video packet (no decoding) and note where the file really ends and what is damaged."""
    import av

    with open_media(path) as c:
        if not c.streams.video:
            raise MediaError(f"{path}: has no video track.")
        vs = c.streams.video[0]
        tb = vs.time_base
        duration = float(vs.duration * tb) if vs.duration else (c.duration or 0) / 1e6
        last, n, bad = 0.0, 0, []
        try:
            for p in c.demux(vs):
                if p.pts is None:
                    continue
                t = float(p.pts * tb)
                n += 1
                last = max(last, t + float((p.duration or 0) * tb))
                if p.is_corrupt:
                    bad.append(t)
        except av.error.FFmpegError as e:  # the container itself breaks off: treat as the end
            log.debug("%s: demuxing stopped at %.2f s (%s)", path, last, e)
    return VideoScan(duration, last, n, _ranges(bad))


def report_scan(path: str | os.PathLike, scan: VideoScan) -> float | None:
    """Log what the scan found, in words with the fix; returns where the passes must stop (None: the end)."""
    name = os.path.basename(str(path))
    if scan.corrupt:
        where = ", ".join(f"{a:.1f}–{b:.1f} s" for a, b in scan.corrupt[:6])
        log.warning("%s: damaged video data at %s; those frames will be dropped. If the file plays badly there too, "
                    "re-export it from the original recording.", name, where)
    if scan.truncated:
        log.warning("%s: the file stops at %.1f s although it announces %.1f s: it was cut short (an interrupted "
                    "copy or recording?). Using the %.1f s that are there; to keep the rest, copy the file again "
                    "from its source.", name, scan.last_time, scan.duration, scan.usable_end)
    return scan.usable_end
