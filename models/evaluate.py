"""Quality of the lip model on a held-out video of the same person (numpy + onnxruntime, no torch).

Truth: MediaPipe landmarks of the video, aligned onto the avatar's own rigid reference
(track['reference']) exactly as at enrollment, in inter-ocular units. For each method (the model
in streaming mode, and the mean-mouth, loudness and ridge baselines):
- lip LMD: mean over frames of the mean distance over the 40 lip points;
- opening r: Pearson correlation of the inner-lip gap (13-14) with the truth, and the lag
  (frames, -10..+10, positive = prediction late) that maximises it;
- silent closed: fraction of silent frames whose predicted opening is in the closed range
  (<= the 90th percentile of the enrollment's openings on its own quiet frames). A quiet frame
  has loudness within 4 dB of the audio's noise floor; a silent frame is a quiet frame inside a
  pause: no speech within 100 ms either side. The 10-60 ms gaps between words (stop closures)
  and the lips' anticipation of the next word are articulation, not silence: on GRID the real
  mouth is open on ~14% of quiet frames, nearly all within 100 ms of speech. The figure on all
  quiet frames is reported too ("quiet closed").
`evaluate_voices` drives the avatar with other speakers' audio; each speaker's own mouth,
aligned to that speaker's own reference, is the truth (only correlations are comparable).
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hygie.core.face import geometry as G
from hygie.core.errors import HygieError
from hygie.core.lips.model import LipModel, check_mel, coeffs_at_times
from hygie.core.audio.mel import LogMel, MelConfig
from hygie.models.baselines import NAMES as BASELINES
from hygie.models.baselines import Baselines, frame_loudness

log = logging.getLogger(__name__)

MODEL = "model (streaming)"


@dataclass
class EvalConfig:
    max_lag: int = 10
    silence_margin_db: float = 4.0
    pause_guard_ms: float = 100.0  # a silent frame has no speech within this distance either side
    floor_percentile: float = 5.0
    closed_percentile: float = 90.0
    chunk_frames: int = 4  # mel frames per push in streaming mode (40 ms, one video frame)


@dataclass
class Truth:
    times: np.ndarray  # (N,)
    lips: np.ndarray  # (N, 40, 2) canonical, NaN where not ok
    ok: np.ndarray  # (N,) bool


def truth_from_track(track: Any, reference: np.ndarray | None = None) -> Truth:
    """Canonical lips from a LandmarkTrack; reference None = fit this video's own reference."""
    from hygie.core.enroll.checks import damaged_frames
    from hygie.core.face.canonical import align_frames

    lm = np.asarray(track.landmarks, np.float64)
    ok = ~np.isnan(lm[:, 0, 0]) & ~damaged_frames(track)
    if ok.sum() < 10:
        raise HygieError("fewer than 10 frames with a usable face in the evaluation video; "
                         "use a video facing the camera with the face in view.")
    if reference is None:
        reference = G.fit_reference(lm[ok])
    al = align_frames(lm, reference, rows=np.flatnonzero(ok), dtype=np.float64)
    lips = al.lips.copy()
    ok &= ~G.implausible_fits(al.residual)
    lips[~ok] = np.nan
    return Truth(np.asarray(track.times, np.float64), lips, ok)


def track_truth(video: Path, reference: np.ndarray | None, workers: int | None = None) -> Truth:
    from hygie.core.face.track import track_video

    return truth_from_track(track_video(str(video), workers=workers, progress_desc=f"face landmarks {Path(video).name}"),
                            reference)


def video_mel(video: Path, cfg: MelConfig) -> np.ndarray:
    from hygie.core.media.audio_file import load_audio

    audio = load_audio(video, cfg.sample_rate)
    if not np.all(np.isfinite(audio)):
        raise HygieError(f"{video}: the audio contains NaN/inf samples; re-export it.")
    return check_mel(LogMel(cfg)(audio), cfg.n_mels, f"{video} audio")


def stream_coeffs(lip: LipModel, mel: np.ndarray, times: np.ndarray, chunk: int = 4) -> np.ndarray:
    """Feed the mel in small chunks as live, then read the coefficients at the given times."""
    lip.reset()
    outs = [lip.push(mel[i:i + chunk]) for i in range(0, len(mel), chunk)]
    out = np.concatenate(outs) if outs else np.zeros((0, lip.n_out), np.float32)
    lip.reset()
    aligned = out[lip.lookahead_frames:]  # row t = mel frame t
    if len(aligned) == 0:
        raise HygieError("the audio is shorter than the model's look-ahead; nothing to evaluate.")
    return coeffs_at_times(aligned, times, lip.mel_config)


def quiet_mask(mel: np.ndarray, times: np.ndarray, cfg: MelConfig, ec: EvalConfig) -> tuple[np.ndarray, float]:
    """Frames whose loudness is within `silence_margin_db` of the audio's noise floor (and the floor)."""
    loud = frame_loudness(mel, times, cfg)
    floor = float(np.percentile(loud, ec.floor_percentile))
    return loud <= floor + ec.silence_margin_db, floor


def silence_mask(mel: np.ndarray, times: np.ndarray, cfg: MelConfig, ec: EvalConfig) -> tuple[np.ndarray, np.ndarray, float]:
    """(silent, quiet, floor dB) at `times`: silent = quiet with no speech within `pause_guard_ms`.

    Decided on the 10 ms mel grid, so the guard does not depend on the video frame rate.
    """
    t_mel = cfg.frame_time(np.arange(len(mel)))
    quiet_mel, floor = quiet_mask(mel, t_mel, cfg, ec)
    g = int(round(ec.pause_guard_ms / 1000 * cfg.frame_rate))
    loud = np.concatenate([np.ones(g, bool), ~quiet_mel, np.ones(g, bool)])  # outside the audio counts as speech
    near = np.convolve(loud.astype(np.int32), np.ones(2 * g + 1, np.int32), mode="valid") > 0
    idx = np.clip(cfg.frame_at(times), 0, max(len(mel) - 1, 0))
    quiet, _ = quiet_mask(mel, times, cfg, ec)
    return quiet & ~near[idx], quiet, floor


def closed_threshold(avatar: Any, ec: EvalConfig) -> float:
    """Upper end of the 'closed' opening range, from the enrollment's openings on its quiet frames.

    It falls in the valley between the closed peak (lips touching, ~0.002 IOD) and the open mouths.
    """
    cfg = avatar.mel_config
    tr, f = avatar.track, avatar.features
    vals = []
    for v in range(len(f["video_offsets"]) - 1):
        mel = f["mel"][f["video_offsets"][v]:f["video_offsets"][v + 1]]
        sel = (tr["video"] == v) & tr["usable"]
        quiet, _ = quiet_mask(mel, tr["times"][sel], cfg, ec)
        vals.append(tr["opening"][sel][quiet])
    vals = np.concatenate(vals)
    if len(vals) < 10:
        raise HygieError(f"{avatar.path}: the enrollment has almost no silent frames to learn what a closed mouth is.")
    return float(np.percentile(vals, ec.closed_percentile))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    d = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / d) if d > 0 else 0.0


def best_lag(pred: np.ndarray, true: np.ndarray, max_lag: int) -> tuple[int, float]:
    """Lag L maximising corr(pred[t+L], true[t]); positive L = prediction late. NaN-aware."""
    best = (0, -np.inf)
    n = len(pred)
    for L in range(-max_lag, max_lag + 1):
        p = pred[max(0, L):n + min(0, L)]
        t = true[max(0, -L):n - max(0, L)]
        ok = np.isfinite(p) & np.isfinite(t)
        if ok.sum() < 10:
            continue
        r = pearson(p[ok], t[ok])
        if r > best[1]:
            best = (L, r)
    return best[0], float(best[1])


def metrics(pred_lips: np.ndarray, truth: Truth, silent: np.ndarray, closed_max: float, ec: EvalConfig,
            quiet: np.ndarray | None = None) -> dict[str, Any]:
    ok = truth.ok
    d = np.linalg.norm(pred_lips[ok] - truth.lips[ok], axis=-1).mean(-1)
    po, to = G.mouth_opening(pred_lips), G.mouth_opening(truth.lips)
    if np.std(po[ok]) < 1e-9:  # a constant prediction (the mean mouth) has no correlation and no lag
        r, lag, r_lag = float("nan"), None, float("nan")
    else:
        r = pearson(po[ok], to[ok])
        lag, r_lag = best_lag(np.where(ok, po, np.nan), np.where(ok, to, np.nan), ec.max_lag)
    s = silent & ok
    sc = s & (to <= closed_max)  # silent frames where the real mouth is closed too
    q = (silent if quiet is None else quiet) & ok
    return {"lmd": float(d.mean()), "opening_r": r, "lag": None if lag is None else int(lag), "r_at_lag": r_lag,
            "silent_closed": float(np.mean(po[s] <= closed_max)) if s.any() else float("nan"),
            "silent_closed_where_truth_closed": float(np.mean(po[sc] <= closed_max)) if sc.any() else float("nan"),
            "quiet_closed": float(np.mean(po[q] <= closed_max)) if q.any() else float("nan"),
            "frames": int(ok.sum()), "silent_frames": int(s.sum()), "quiet_frames": int(q.sum())}


def evaluate(avatar: Any, video: Path, out_dir: Path | None = None, truth: Truth | None = None,
             ec: EvalConfig | None = None, threads: int = 1, plot: bool = True) -> dict[str, Any]:
    """All figures for the model (streaming) and the three baselines on one held-out video."""
    ec = ec or EvalConfig()
    cfg = avatar.mel_config
    lip = LipModel(avatar, threads=threads)
    mel = video_mel(Path(video), cfg)
    if truth is None:
        truth = track_truth(Path(video), avatar.track["reference"])
    times = truth.times
    silent, quiet, floor_db = silence_mask(mel, times, cfg, ec)
    closed_max = closed_threshold(avatar, ec)
    base = Baselines.fit(avatar)
    coeffs = {MODEL: stream_coeffs(lip, mel, times, ec.chunk_frames)}
    for name in BASELINES:
        coeffs[name] = base.predict(name, mel, times)
    methods = {name: metrics(avatar.coeffs_to_lips(c), truth, silent, closed_max, ec, quiet) for name, c in coeffs.items()}
    truth_open = G.mouth_opening(truth.lips)
    s, q = silent & truth.ok, quiet & truth.ok
    res = {
        "video": str(video), "avatar": str(avatar.path), "lookahead_ms": 1000 * lip.lookahead_s,
        "frames": int(truth.ok.sum()), "silent_frames": int(s.sum()), "noise_floor_db": floor_db,
        "closed_max_iod": closed_max, "truth_silent_closed": float(np.mean(truth_open[s] <= closed_max)) if s.any() else None,
        "quiet_frames": int(q.sum()),
        "truth_quiet_closed": float(np.mean(truth_open[q] <= closed_max)) if q.any() else None,
        "methods": methods, "eval_config": asdict(ec),
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "lip_eval.json").write_text(json.dumps(json_safe(res), indent=1))
        if plot:
            plot_openings(out_dir / "lip_opening.png", times, truth, {k: avatar.coeffs_to_lips(v) for k, v in coeffs.items()},
                          silent)
            res["plot"] = str(out_dir / "lip_opening.png")
    return res


def evaluate_voices(avatar: Any, videos: list[Path], truths: dict[str, Truth] | None = None,
                    ec: EvalConfig | None = None, threads: int = 1) -> dict[str, Any]:
    """Drive the avatar with other speakers' audio; opening r against each speaker's own mouth."""
    ec = ec or EvalConfig()
    lip = LipModel(avatar, threads=threads)
    base = Baselines.fit(avatar)
    per: dict[str, dict[str, float]] = {}
    for v in videos:
        v = Path(v)
        tr = (truths or {}).get(v.name) or track_truth(v, None, workers=1)
        mel = video_mel(v, avatar.mel_config)
        to = G.mouth_opening(tr.lips)
        row = {}
        cs = {MODEL: stream_coeffs(lip, mel, tr.times, ec.chunk_frames)}
        for name in BASELINES[1:]:
            cs[name] = base.predict(name, mel, tr.times)
        for name, c in cs.items():
            po = G.mouth_opening(avatar.coeffs_to_lips(c))
            row[name] = pearson(po[tr.ok], to[tr.ok])
        per[v.name] = row
    names = [MODEL] + list(BASELINES[1:])
    mean = {n: float(np.mean([r[n] for r in per.values()])) for n in names} if per else {}
    return {"videos": per, "mean_opening_r": mean}


def json_safe(o: Any) -> Any:
    """NaN/inf -> None (strict JSON), recursively; numpy scalars -> Python."""
    if isinstance(o, dict):
        return {k: json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [json_safe(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return float(o) if np.isfinite(o) else None
    if isinstance(o, np.integer):
        return int(o)
    return o


def format_table(res: dict[str, Any]) -> str:
    lines = [f"{Path(res['video']).name}: {res['frames']} frames, {res.get('quiet_frames', 0)} quiet, "
             f"{res['silent_frames']} silent (in pauses, no speech within "
             f"{res['eval_config'].get('pause_guard_ms', 0):.0f} ms); look-ahead {res['lookahead_ms']:.0f} ms",
             f"closed range <= {res['closed_max_iod']:.4f} IOD; the real mouth is closed on "
             f"{100 * (res['truth_silent_closed'] or 0):.1f}% of silent and "
             f"{100 * (res.get('truth_quiet_closed') or 0):.1f}% of quiet frames",
             f"{'method':<20}{'LMD (IOD)':>11}{'opening r':>11}{'best lag':>10}{'r at lag':>10}{'silent closed':>15}"
             f"{'quiet closed':>14}"]
    for name, m in res["methods"].items():
        lag = "—" if m["lag"] is None else f"{m['lag']:+d}"
        lines.append(f"{name:<20}{m['lmd']:>11.4f}{m['opening_r']:>11.3f}{lag:>10}{m['r_at_lag']:>10.3f}"
                     f"{100 * m['silent_closed']:>14.1f}%{100 * m.get('quiet_closed', float('nan')):>13.1f}%")
    return "\n".join(lines)


def format_voices(v: dict[str, Any]) -> str:
    names = list(v["mean_opening_r"])
    lines = ["different voices (opening r vs each speaker's own mouth)",
             f"{'speaker':<22}" + "".join(f"{n:>20}" for n in names)]
    for vid, row in v["videos"].items():
        lines.append(f"{vid:<22}" + "".join(f"{row[n]:>20.3f}" for n in names))
    lines.append(f"{'mean':<22}" + "".join(f"{v['mean_opening_r'][n]:>20.3f}" for n in names))
    return "\n".join(lines)


def plot_openings(path: Path, times: np.ndarray, truth: Truth, lips: dict[str, np.ndarray], silent: np.ndarray,
                  spans: tuple[tuple[float, float], ...] = ((0.0, 30.0), (30.0, 60.0))) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    to = np.where(truth.ok, G.mouth_opening(truth.lips), np.nan)
    fig, axes = plt.subplots(len(spans), 1, figsize=(14, 3.2 * len(spans)), squeeze=False)
    for ax, (a, b) in zip(axes[:, 0], spans):
        sel = (times >= a) & (times < b)
        ax.plot(times[sel], to[sel], "k-", lw=1.6, label="truth (MediaPipe)")
        for name, style in ((MODEL, "r-"), ("ridge", "b:"), ("loudness", "g:")):
            if name in lips:
                ax.plot(times[sel], G.mouth_opening(lips[name])[sel], style, lw=1.1, label=name)
        ys = ax.get_ylim()
        ax.fill_between(times[sel], ys[0], ys[1], where=silent[sel], color="0.85", step="mid", label="silent (pause)")
        ax.set_ylim(ys)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("mouth opening (IOD)")
    axes[0, 0].legend(loc="upper right", ncol=5, fontsize=8)
    axes[0, 0].set_title("inner-lip opening: truth vs prediction")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
