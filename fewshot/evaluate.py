"""Metrics of a labeling against gold labels: accuracy, macro-F1, and calibration of the scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import f1_score


def macro_f1(predicted: np.ndarray, gold: np.ndarray, n_classes: int) -> float:
    """Mean F1 over all classes, so a rare class counts as much as a common one."""
    return float(f1_score(gold, predicted, labels=np.arange(n_classes), average="macro"))


def expected_calibration_error(proba: np.ndarray, gold: np.ndarray, bins: int = 10) -> float:
    """Mean gap between the top score and the share right, over 10 equal-width bins of the top
    score, weighted by the documents in each bin."""
    top = proba.max(axis=1)
    right = np.argmax(proba, axis=1) == gold
    which = np.minimum((top * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, right, bins) - np.bincount(which, top, bins))
    return float(gap.sum() / max(counts.sum(), 1))


def summary(values: Sequence[float]) -> dict:
    """Mean, standard deviation and the runs themselves, rounded for the report."""
    return {
        "mean": round(float(np.mean(values)), 4),
        "std": round(float(np.std(values)), 4),
        "runs": [round(v, 4) for v in values],
    }
