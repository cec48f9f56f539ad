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

Articulation (is the mouth as alive as the person's?), model vs truth on the same frames:
- std ratio and speed ratio (mean |frame-to-frame change|) of the opening and of each PCA
  component, prediction / real (1 = as much and as fast as the person);
- closures: runs of >= 2 frames where the real opening is in the closed range with speech on both
  sides within 150 ms (mostly p/b/m); the share the model also closes within +-1 frame;
- jitter: power of the opening above 8 Hz (per frame), prediction / real.
`evaluate_audio_voices` drives the avatar with voices that have no face (TTS, other readers): the
opening's range (p95 - p5 on speech frames), speed and jitter against the person's real mouth on
the held-out video's speech. `evaluate_degraded` re-runs the model on the held-out audio through
the reproducible degradations of `hygie.models.degrade` (room, noise, telephone, cheap mic).
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
    closure_min_frames: int = 2  # a real closure lasts at least this many video frames
    closure_speech_ms: float = 150.0  # ...with speech on both sides within this distance
    closure_tolerance: int = 1  # the model's closure may start/end this many frames off
    jitter_hz: float = 8.0  # jitter = opening power above this frequency


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


def _pairs(ok: np.ndarray) -> np.ndarray:
    """Mask of frame pairs (t, t+1) both usable (length N-1)."""
    return ok[1:] & ok[:-1]


def speed(x: np.ndarray, ok: np.ndarray) -> float:
    """Mean |frame-to-frame change| over consecutive usable frames."""
    p = _pairs(ok)
    return float(np.abs(np.diff(x, axis=0))[p].mean()) if p.any() else float("nan")


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 and np.isfinite(a) and np.isfinite(b) else float("nan")


def articulation(pred: np.ndarray, true: np.ndarray, ok: np.ndarray) -> dict[str, float]:
    """Std and speed ratios (prediction / real) of a 1-D signal on usable frames."""
    return {"std_ratio": _ratio(float(np.std(pred[ok])), float(np.std(true[ok]))),
            "speed_ratio": _ratio(speed(pred, ok), speed(true, ok))}


def hf_power(x: np.ndarray, ok: np.ndarray, fps: float, cutoff_hz: float) -> float:
    """Mean power per frame of x above cutoff_hz (unusable frames linearly interpolated)."""
    idx = np.arange(len(x))
    if ok.sum() < 4:
        return float("nan")
    y = np.interp(idx, idx[ok], x[ok])
    y = y - y.mean()
    spec = np.fft.rfft(y)
    f = np.fft.rfftfreq(len(y), 1 / fps)
    hi = np.abs(spec[f > cutoff_hz]) ** 2
    w = np.where(f[f > cutoff_hz] < fps / 2, 2.0, 1.0)  # one-sided spectrum: double all but Nyquist
    return float((w * hi).sum() / len(y) ** 2)


def jitter_ratio(pred: np.ndarray, true: np.ndarray, ok: np.ndarray, fps: float, cutoff_hz: float = 8.0) -> float:
    return _ratio(hf_power(pred, ok, fps, cutoff_hz), hf_power(true, ok, fps, cutoff_hz))


def speech_near(mel: np.ndarray, times: np.ndarray, cfg: MelConfig, ec: EvalConfig) -> tuple[np.ndarray, np.ndarray]:
    """(speech before, speech after) at `times`: a non-quiet mel frame within closure_speech_ms."""
    t_mel = cfg.frame_time(np.arange(len(mel)))
    speech = ~quiet_mask(mel, t_mel, cfg, ec)[0]
    g = int(round(ec.closure_speech_ms / 1000 * cfg.frame_rate))
    c = np.concatenate([[0], np.cumsum(speech)])
    i = np.clip(cfg.frame_at(times), 0, len(mel) - 1)
    before = c[i] - c[np.maximum(i - g, 0)] > 0
    after = c[np.minimum(i + g + 1, len(mel))] - c[i + 1] > 0
    return before, after


def closure_runs(true_open: np.ndarray, ok: np.ndarray, closed_max: float, before: np.ndarray, after: np.ndarray,
                 min_frames: int = 2) -> list[tuple[int, int]]:
    """Real closures inside speech: [start, end) runs of >= min_frames usable closed frames, with speech
    just before the start and just after the end."""
    closed = ok & (true_open <= closed_max)
    runs, t, n = [], 0, len(closed)
    while t < n:
        if not closed[t]:
            t += 1
            continue
        s = t
        while t < n and closed[t]:
            t += 1
        if t - s >= min_frames and before[s] and after[t - 1]:
            runs.append((s, t))
    return runs


def closures(pred_open: np.ndarray, runs: list[tuple[int, int]], closed_max: float, tolerance: int = 1) -> dict[str, Any]:
    """Share of real closures the prediction also closes on (any frame closed within +-tolerance)."""
    hit = [bool(np.any(pred_open[max(0, s - tolerance):e + tolerance] <= closed_max)) for s, e in runs]
    return {"closures": len(runs), "caught": float(np.mean(hit)) if hit else float("nan")}


def speech_stats(opening: np.ndarray, ok: np.ndarray, speech: np.ndarray, fps: float, cutoff_hz: float) -> dict[str, float]:
    """Range (p95 - p5 on speech frames), speed (on consecutive speech frames) and jitter of an opening."""
    s = ok & speech
    if s.sum() < 10:
        return {"range": float("nan"), "speed": float("nan"), "jitter": float("nan")}
    return {"range": float(np.percentile(opening[s], 95) - np.percentile(opening[s], 5)), "speed": speed(opening, s),
            "jitter": hf_power(opening, ok, fps, cutoff_hz)}


def articulation_report(pred_c: np.ndarray, true_lips: np.ndarray, ok: np.ndarray, avatar: Any, mel: np.ndarray,
                        times: np.ndarray, closed_max: float, ec: EvalConfig, true_closed_max: float | None = None,
                        ) -> dict[str, Any]:
    """All articulation figures of predicted coefficients against the real lips (same frames)."""
    po = G.mouth_opening(avatar.coeffs_to_lips(pred_c))
    to = G.mouth_opening(np.nan_to_num(true_lips))
    fps = 1.0 / float(np.median(np.diff(times))) if len(times) > 1 else 25.0
    tc = avatar.lips_to_coeffs(np.nan_to_num(true_lips))
    comps = [articulation(pred_c[:, k], tc[:, k], ok) for k in range(pred_c.shape[1])]
    before, after = speech_near(mel, times, avatar.mel_config, ec)
    runs = closure_runs(to, ok, closed_max if true_closed_max is None else true_closed_max, before, after,
                        ec.closure_min_frames)
    return {"opening": articulation(po, to, ok), **closures(po, runs, closed_max, ec.closure_tolerance),
            "jitter_ratio": jitter_ratio(po, to, ok, fps, ec.jitter_hz),
            "components_std_ratio": [c["std_ratio"] for c in comps],
            "components_speed_ratio": [c["speed_ratio"] for c in comps]}


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
    fps = 1.0 / float(np.median(np.diff(times))) if len(times) > 1 else 25.0
    art = {name: articulation_report(coeffs[name], truth.lips, truth.ok, avatar, mel, times, closed_max, ec)
           for name in (MODEL, "ridge") if name in coeffs}
    own = {"real": speech_stats(np.nan_to_num(truth_open), truth.ok, ~quiet, fps, ec.jitter_hz),
           MODEL: speech_stats(G.mouth_opening(avatar.coeffs_to_lips(coeffs[MODEL])), truth.ok, ~quiet, fps, ec.jitter_hz)}
    res = {
        "video": str(video), "avatar": str(avatar.path), "lookahead_ms": 1000 * lip.lookahead_s,
        "frames": int(truth.ok.sum()), "silent_frames": int(s.sum()), "noise_floor_db": floor_db,
        "closed_max_iod": closed_max, "truth_silent_closed": float(np.mean(truth_open[s] <= closed_max)) if s.any() else None,
        "quiet_frames": int(q.sum()),
        "truth_quiet_closed": float(np.mean(truth_open[q] <= closed_max)) if q.any() else None,
        "methods": methods, "articulation": art, "own_speech": own, "eval_config": asdict(ec),
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
    closed_max = closed_threshold(avatar, ec)
    per: dict[str, dict[str, float]] = {}
    arts: dict[str, dict[str, Any]] = {}
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
        # the speaker's own closed range: their openings on their own quiet frames
        q = quiet_mask(mel, tr.times, avatar.mel_config, ec)[0] & tr.ok
        own_closed = float(np.percentile(to[q], ec.closed_percentile)) if q.sum() >= 5 else closed_max
        arts[v.name] = articulation_report(cs[MODEL], tr.lips, tr.ok, avatar, mel, tr.times, closed_max, ec, own_closed)
    names = [MODEL] + list(BASELINES[1:])
    mean = {n: float(np.mean([r[n] for r in per.values()])) for n in names} if per else {}
    return {"videos": per, "mean_opening_r": mean, "articulation": arts,
            "mean_articulation": mean_articulation(list(arts.values()))}


def mean_articulation(arts: list[dict[str, Any]]) -> dict[str, float]:
    """Mean over voices of the opening's std, speed and jitter ratios and of the closures caught."""
    if not arts:
        return {}
    def m(vals: list[float]) -> float:
        v = [x for x in vals if x is not None and np.isfinite(x)]
        return float(np.mean(v)) if v else float("nan")
    return {"std_ratio": m([a["opening"]["std_ratio"] for a in arts]),
            "speed_ratio": m([a["opening"]["speed_ratio"] for a in arts]),
            "jitter_ratio": m([a["jitter_ratio"] for a in arts]),
            "closures_caught": m([a["caught"] for a in arts]),
            "closures": int(sum(a["closures"] for a in arts))}


AUDIO_EXTS = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".mp4")


def audio_files(folder: Path) -> list[Path]:
    """Audio files (and videos, for their sound) directly in `folder` or one level below."""
    folder = Path(folder)
    files = sorted(p for p in list(folder.glob("*")) + list(folder.glob("*/*"))
                   if p.is_file() and p.suffix.lower() in AUDIO_EXTS)
    if not files:
        raise HygieError(f"{folder}: no audio files ({', '.join(AUDIO_EXTS)}) found; pass --voices-audio DIR, a "
                         "folder of speech recordings (e.g. TTS output or another reader).")
    return files


def opening_of_audio(avatar: Any, lip: LipModel, audio: np.ndarray, ec: EvalConfig,
                     fps: float = 25.0) -> tuple[np.ndarray, np.ndarray]:
    """(opening at fps, speech mask) of the model driven by 16 kHz `audio` (streaming)."""
    cfg = avatar.mel_config
    mel = check_mel(LogMel(cfg)(audio), cfg.n_mels, "voice audio")
    dur = cfg.frame_time(len(mel) - 1)
    times = np.arange(cfg.frame_time(0), dur, 1 / fps)
    c = stream_coeffs(lip, mel, times, ec.chunk_frames)
    quiet, _ = quiet_mask(mel, times, cfg, ec)
    return G.mouth_opening(avatar.coeffs_to_lips(c)), ~quiet


def evaluate_audio_voices(avatar: Any, files: list[Path], own_real: dict[str, float], ec: EvalConfig | None = None,
                          threads: int = 1, max_seconds: float = 120.0) -> dict[str, Any]:
    """Voices without a face: the model's opening range, speed and jitter / the person's real ones.

    Files of one folder are joined into one voice (e.g. 32 LJSpeech sentences), capped at
    `max_seconds`; `own_real` is `evaluate(...)["own_speech"]["real"]`.
    """
    from hygie.core.media.audio_file import load_audio

    ec = ec or EvalConfig()
    cfg = avatar.mel_config
    lip = LipModel(avatar, threads=threads)
    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault(f.parent.name, []).append(f)
    per: dict[str, dict[str, float]] = {}
    for name, fs in groups.items():
        parts, total = [], 0
        for f in fs:
            a = load_audio(f, cfg.sample_rate)
            parts.append(np.concatenate([a, np.zeros(int(0.3 * cfg.sample_rate), np.float32)]))
            total += len(parts[-1])
            if total >= max_seconds * cfg.sample_rate:
                break
        audio = np.concatenate(parts)[: int(max_seconds * cfg.sample_rate)]
        op, sp = opening_of_audio(avatar, lip, audio, ec)
        st = speech_stats(op, np.ones(len(op), bool), sp, 25.0, ec.jitter_hz)
        per[name] = {"files": len(fs), "seconds": len(audio) / cfg.sample_rate,
                     **{f"{k}_ratio": _ratio(st[k], own_real[k]) for k in ("range", "speed", "jitter")}}
    return {"voices": per}


def evaluate_degraded(avatar: Any, video: Path, truth: Truth, names: tuple[str, ...] | None = None,
                      ec: EvalConfig | None = None, threads: int = 1, seed: int = 0) -> dict[str, Any]:
    """Opening r, LMD and articulation of the model on the held-out audio through each degradation."""
    from hygie.core.media.audio_file import load_audio
    from hygie.models.degrade import DEGRADATIONS, degrade

    ec = ec or EvalConfig()
    cfg = avatar.mel_config
    lip = LipModel(avatar, threads=threads)
    clean = load_audio(Path(video), cfg.sample_rate)
    closed_max = closed_threshold(avatar, ec)
    out: dict[str, dict[str, float]] = {}
    to = G.mouth_opening(truth.lips)
    ok = truth.ok
    for name in ("clean",) + tuple(names or DEGRADATIONS):
        audio = clean if name == "clean" else degrade(clean, name, seed)
        mel = check_mel(LogMel(cfg)(audio), cfg.n_mels, f"{name} audio")
        c = stream_coeffs(lip, mel, truth.times, ec.chunk_frames)
        lips = avatar.coeffs_to_lips(c)
        po = G.mouth_opening(lips)
        a = articulation(po, np.nan_to_num(to), ok)
        out[name] = {"opening_r": pearson(po[ok], to[ok]),
                     "lmd": float(np.linalg.norm(lips[ok] - truth.lips[ok], axis=-1).mean()),
                     **a}
    return {"seed": seed, "conditions": out}


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


def format_articulation(res: dict[str, Any]) -> str:
    """Own voice: articulation of the model (and ridge) vs the real mouth, and its speech stats."""
    lines = ["articulation (prediction / real; 1 = as much, as fast, as calm as the person)",
             f"{'method':<20}{'std ratio':>10}{'speed ratio':>12}{'jitter >8Hz':>12}{'closures caught':>17}"
             f"  per-component std | speed ratios"]
    for name, a in res.get("articulation", {}).items():
        o = a["opening"]
        lines.append(f"{name:<20}{o['std_ratio']:>10.2f}{o['speed_ratio']:>12.2f}{a['jitter_ratio']:>12.2f}"
                     f"{100 * a['caught']:>9.0f}% of {a['closures']:<4d}  "
                     + " ".join(f"{x:.2f}" for x in a["components_std_ratio"]) + " | "
                     + " ".join(f"{x:.2f}" for x in a["components_speed_ratio"]))
    return "\n".join(lines)


def format_voices_articulation(v: dict[str, Any]) -> str:
    lines = ["different voices: model articulation vs each speaker's own mouth",
             f"{'speaker':<22}{'std ratio':>10}{'speed ratio':>12}{'jitter >8Hz':>12}{'closures caught':>17}"]
    for vid, a in v.get("articulation", {}).items():
        o = a["opening"]
        lines.append(f"{vid:<22}{o['std_ratio']:>10.2f}{o['speed_ratio']:>12.2f}{a['jitter_ratio']:>12.2f}"
                     f"{100 * np.nan_to_num(a['caught']):>9.0f}% of {a['closures']:<4d}")
    m = v.get("mean_articulation")
    if m:
        lines.append(f"{'mean':<22}{m['std_ratio']:>10.2f}{m['speed_ratio']:>12.2f}{m['jitter_ratio']:>12.2f}"
                     f"{100 * m['closures_caught']:>9.0f}% of {m['closures']:<4d}")
    return "\n".join(lines)


def format_audio_voices(v: dict[str, Any]) -> str:
    lines = ["voices without a face: model opening / the person's real mouth on their own speech",
             f"{'voice':<22}{'seconds':>9}{'range':>8}{'speed':>8}{'jitter':>8}"]
    for name, r in v["voices"].items():
        lines.append(f"{name:<22}{r['seconds']:>9.0f}{r['range_ratio']:>8.2f}{r['speed_ratio']:>8.2f}"
                     f"{r['jitter_ratio']:>8.2f}")
    return "\n".join(lines)


def format_degraded(d: dict[str, Any]) -> str:
    lines = [f"degraded held-out audio (models/degrade.py, seed {d['seed']}): model vs the real mouth",
             f"{'condition':<16}{'opening r':>10}{'LMD':>9}{'std ratio':>10}{'speed ratio':>12}"]
    for name, r in d["conditions"].items():
        lines.append(f"{name:<16}{r['opening_r']:>10.3f}{r['lmd']:>9.4f}{r['std_ratio']:>10.2f}{r['speed_ratio']:>12.2f}")
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
