"""Detector evaluation: laughter events (P/R/F1 at an IoU threshold, time-level scores; FunnyNet-W, Sec. 4.1) and
funny moments (one-to-one matching to laughter onsets within a tolerance, pooled P/R/F1 with bootstrap intervals
over episodes, false alarms per minute, timing error)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

Interval = tuple[float, float]


def interval_iou(a: Interval, b: Interval) -> float:
    """Intersection over union of two time intervals."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def event_scores(predicted: Sequence[Interval], truth: Sequence[Interval], iou: float = 0.5) -> dict[str, float]:
    """Event-level precision, recall and F1: one-to-one matches of IoU >= ``iou``, best pairs first."""
    pairs = sorted(((interval_iou(p, t), i, j) for i, p in enumerate(predicted) for j, t in enumerate(truth)), reverse=True)
    used_p, used_t = set(), set()
    for score, i, j in pairs:
        if score < iou:
            break
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    tp = len(used_p)
    precision = tp / len(predicted) if predicted else float(not truth)
    recall = tp / len(truth) if truth else float(not predicted)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "predicted": len(predicted), "truth": len(truth)}


def time_mask(intervals: Sequence[Interval], duration: float, step: float = 0.01) -> np.ndarray:
    """Boolean laughter mask on a ``step``-second grid."""
    mask = np.zeros(int(np.ceil(duration / step)), dtype=bool)
    for s, e in intervals:
        mask[int(s / step):int(np.ceil(e / step))] = True
    return mask


def time_scores(predicted: Sequence[Interval], truth: Sequence[Interval], duration: float, step: float = 0.01) -> dict[str, float]:
    """Time-level accuracy, precision, recall and F1 of laughter vs no laughter on a fine grid."""
    p, t = time_mask(predicted, duration, step), time_mask(truth, duration, step)
    tp, fp, fn = int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {"accuracy": float((p == t).mean()) if len(p) else 1.0, "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0}


def pooled_detector_scores(pairs: Sequence[tuple[Sequence[Interval], Sequence[Interval], float]], iou: float = 0.5) -> dict[str, float]:
    """Detector scores over many files: events pooled (micro-averaged) and time-level scores over all time."""
    tp = npred = ntruth = 0
    masks_p, masks_t = [], []
    for pred, truth, duration in pairs:
        ev = event_scores(pred, truth, iou)
        tp, npred, ntruth = tp + ev["tp"], npred + ev["predicted"], ntruth + ev["truth"]
        masks_p.append(time_mask(pred, duration))
        masks_t.append(time_mask(truth, duration))
    precision = tp / npred if npred else 0.0
    recall = tp / ntruth if ntruth else 0.0
    p, t = np.concatenate(masks_p), np.concatenate(masks_t)
    return {"event_precision": precision, "event_recall": recall,
            "event_f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "time_accuracy": float((p == t).mean()), "events_predicted": npred, "events_truth": ntruth}


def match_moments(predicted: Sequence[float], truth: Sequence[float], tolerance: float) -> list[tuple[int, int]]:
    """One-to-one matching of predicted moment times to true laughter onsets within ``tolerance`` s.

    The matching has the most pairs possible, and among those the least total |error| (a linear assignment,
    Kuhn 1955 / scipy's ``linear_sum_assignment``, on |t_pred - t_true| with pairs beyond the tolerance
    forbidden). A pair at exactly ``tolerance`` s counts. Returns (predicted index, truth index) pairs.
    """
    from scipy.optimize import linear_sum_assignment

    p, t = np.asarray(predicted, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if tolerance < 0:
        raise ValueError(f"tolerance must be at least 0 s, got {tolerance}")
    if len(p) == 0 or len(t) == 0:
        return []
    err = np.abs(p[:, None] - t[None, :])
    ok = err <= tolerance + 1e-9
    if not ok.any():
        return []
    # a forbidden pair costs more than any matching of allowed pairs can save, so cardinality comes first
    big = 1.0 + float(err[ok].sum())
    cost = np.where(ok, err - big, 0.0)  # allowed pairs negative: every extra pair lowers the total by > 1
    rows, cols = linear_sum_assignment(cost)
    return sorted((int(i), int(j)) for i, j in zip(rows, cols) if ok[i, j])


def moment_counts(predicted: Sequence[float], truth: Sequence[float], tolerance: float) -> dict[str, object]:
    """True positives, false alarms, misses and the signed timing errors (predicted - true) of one episode."""
    pairs = match_moments(predicted, truth, tolerance)
    errors = [float(predicted[i] - truth[j]) for i, j in pairs]
    return {"tp": len(pairs), "predicted": len(predicted), "truth": len(truth), "errors": errors}


def _prf(tp: int, predicted: int, truth: int) -> tuple[float, float, float]:
    precision = tp / predicted if predicted else float(truth == 0)
    recall = tp / truth if truth else float(predicted == 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def moment_scores(episodes: Sequence[dict], minutes: Sequence[float], n_boot: int = 1000, seed: int = 0,
                  level: float = 0.95) -> dict[str, object]:
    """Pooled moment precision/recall/F1 over episodes, with bootstrap intervals over episodes.

    ``episodes`` are :func:`moment_counts` results, ``minutes`` each episode's length. Counts are pooled
    (micro-averaged); the intervals resample whole episodes with replacement ``n_boot`` times (percentile
    bootstrap, Efron & Tibshirani 1993), so they reflect episode-to-episode variation. False alarms per
    minute = unmatched predictions / total minutes; the timing error is over matched moments.
    """
    tp = np.array([e["tp"] for e in episodes], dtype=np.int64)
    npred = np.array([e["predicted"] for e in episodes], dtype=np.int64)
    ntruth = np.array([e["truth"] for e in episodes], dtype=np.int64)
    mins = np.asarray(minutes, dtype=np.float64)
    precision, recall, f1 = _prf(int(tp.sum()), int(npred.sum()), int(ntruth.sum()))
    out: dict[str, object] = {"precision": precision, "recall": recall, "f1": f1, "tp": int(tp.sum()),
                              "predicted": int(npred.sum()), "truth": int(ntruth.sum()), "episodes": len(episodes),
                              "minutes": float(mins.sum()),
                              "false_alarms_per_minute": float((npred - tp).sum() / mins.sum()) if mins.sum() else 0.0}
    errors = np.array([x for e in episodes for x in e["errors"]], dtype=np.float64)
    out["timing_error_mean_abs"] = float(np.abs(errors).mean()) if len(errors) else None
    out["timing_error_median"] = float(np.median(errors)) if len(errors) else None
    if len(episodes) > 1 and n_boot > 0:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(episodes), size=(n_boot, len(episodes)))
        boot = np.array([_prf(int(tp[i].sum()), int(npred[i].sum()), int(ntruth[i].sum())) for i in idx])
        lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
        for k, name in enumerate(("precision", "recall", "f1")):
            out[f"{name}_ci"] = [float(np.percentile(boot[:, k], lo)), float(np.percentile(boot[:, k], hi))]
    return out
