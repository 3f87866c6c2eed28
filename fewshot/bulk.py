"""Bulk labels: what giving one label to many documents would do, before anything is written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BulkPreview:
    """Counts for labeling `ids` as `label`; `Project.annotate` changes the label of exactly
    `to_write` (and adds the annotator's vote to those of `same` that someone else labeled)."""

    label: str
    ids: tuple[int, ...]
    unlabeled: int  # no human label yet: they get it
    same: int  # already carry the label: unchanged
    other: int  # carry another human label: kept, unless overwrite
    predicted: int  # the classifier already predicts the label for these

    def to_write(self, overwrite: bool) -> int:
        return self.unlabeled + (self.other if overwrite else 0)


def preview(
    ids: Sequence[int], label: str, human: Mapping[int, str], predicted: Sequence[str]
) -> BulkPreview:
    """human: current human label per document id; predicted: the predicted label of every
    document, by id. Names compare ignoring case, as the store does."""
    ids = tuple(dict.fromkeys(int(i) for i in ids))
    wanted = label.casefold()
    current = [human.get(i) for i in ids]
    same = sum(1 for c in current if c is not None and c.casefold() == wanted)
    unlabeled = sum(1 for c in current if c is None)
    names = np.asarray(predicted, dtype=object)[list(ids)] if ids else np.array([], dtype=object)
    hits = int(sum(1 for name in names if str(name).casefold() == wanted))
    return BulkPreview(label, ids, unlabeled, same, len(ids) - same - unlabeled, hits)
