"""Likely mistakes: the human labels a classifier fitted without them contradicts most surely.

A wrong label is hard to see by reading the labels, and a fit that saw it has learned it. The
cross-validation the calibration already runs (`Workspace._held_out`) gives every human-labeled
document probabilities from a fit without its fold, so a label it finds improbable is worth a
second look. Reviewers go down the list from the top, so the order is what matters.

The order is the held-out probability of the human's label, lowest first: the chance, by a fit
that never saw the label, that the human is right. Measured (`fewshot.mistakes_bench`: AG News,
SST-2 and banking77, 10% of the labels flipped to a random wrong class) it finds the flipped labels
as well as or better than the margin between the suggested and the human label or the
confidence in the suggestion; on 77 classes by far (a doubtful document's mass spreads over
several classes, so its top score stays low even where the human's label gets none).

numpy and pandas in and out; the app's use of it is `Workspace.likely_mistakes`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

MIN_LABELS = 4  # fewer human labels cross-validate to nothing useful (as the accuracy's)
COLUMNS = ("doc_id", "label", "suggested", "confidence", "given", "reason")


def empty() -> pd.DataFrame:
    """The frame with no likely mistake: the columns, no row."""
    return pd.DataFrame(
        {
            "doc_id": pd.Series([], dtype="int64"),
            "label": pd.Series([], dtype="object"),
            "suggested": pd.Series([], dtype="object"),
            "confidence": pd.Series([], dtype="float64"),
            "given": pd.Series([], dtype="float64"),
            "reason": pd.Series([], dtype="object"),
        }
    )


def _share(p: float) -> str:
    """A probability for people: two decimals, and never a flat 0.00 or 1.00 it is not."""
    if p < 0.005:
        return "under 0.01"
    if p > 0.995:
        return "over 0.99"
    return f"{p:.2f}"


def reason(suggested: str, confidence: float, label: str, given: float) -> str:
    """One sentence saying why a label is flagged, e.g. "a fit without this label gives Sports
    0.93 and World 0.02"."""
    return (
        f"a fit without this label gives {suggested} {_share(confidence)} "
        f"and {label} {_share(given)}"
    )


def likely_mistakes(
    held_out: np.ndarray,
    y: np.ndarray,
    ids: np.ndarray,
    names: Sequence[str],
) -> pd.DataFrame:
    """Human labels contradicted by their held-out probabilities, most likely mistake first.

    held_out: (n, len(names)) probabilities of the human-labeled documents, each from a fit
    without it (calibrated, as `Workspace` keeps them); y: their human labels (class positions);
    ids: their document ids. Returns one row per document whose held-out top label is not the
    human's (columns doc_id, label, suggested, confidence, given, reason), ordered by `given`
    (the held-out probability of the human's label) ascending, then by confidence (of the
    suggestion) descending. Fewer than MIN_LABELS labels give an empty frame.
    """
    held_out = np.asarray(held_out, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    if held_out.ndim != 2 or held_out.shape != (len(y), len(names)) or len(ids) != len(y):
        raise ValueError(
            f"held_out is {held_out.shape}, for {len(y)} labels, {len(ids)} ids and "
            f"{len(names)} names"
        )
    if len(y) < MIN_LABELS:
        return empty()
    if y.min() < 0 or y.max() >= len(names):
        raise ValueError(f"labels must be class positions 0..{len(names) - 1}")
    proba = held_out / np.maximum(held_out.sum(axis=1, keepdims=True), 1e-30)
    rows = np.arange(len(y))
    suggested = np.argmax(proba, axis=1)
    given = proba[rows, y]
    confidence = proba[rows, suggested]
    flagged = np.flatnonzero(suggested != y)
    if not len(flagged):
        return empty()
    # lexsort: the last key first; doc id last of all, so ties come out the same every time
    order = flagged[np.lexsort((ids[flagged], -confidence[flagged], given[flagged]))]
    label_names = [str(names[c]) for c in y[order]]
    suggested_names = [str(names[c]) for c in suggested[order]]
    return pd.DataFrame(
        {
            "doc_id": ids[order],
            "label": label_names,
            "suggested": suggested_names,
            "confidence": confidence[order],
            "given": given[order],
            "reason": [
                reason(s, c, lab, g)
                for s, c, lab, g in zip(
                    suggested_names, confidence[order], label_names, given[order]
                )
            ],
        }
    )
