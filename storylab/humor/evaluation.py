"""Laughter detector evaluation: event-level P/R/F1 at an IoU threshold and time-level scores (FunnyNet-W, Sec. 4.1)."""

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
