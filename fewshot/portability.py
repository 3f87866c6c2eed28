"""What leaving the corpus costs: a labeler taught on one half of a data set, applied to the other,
against classifying that other half as its own corpus with the same labeled examples.

The applied labeler has no corpus to cluster or spread over (`fewshot.predictor`, `fewshot.labeler`);
the own-corpus fit does. Part of `python -m fewshot.bench` on the shared sets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fewshot.evaluate import macro_f1, summary
from fewshot.labelspace import LabelSpace
from fewshot.views import Embedder
from fewshot.workspace import Workspace


def leave_corpus(
    texts: Sequence[str],
    gold: np.ndarray,
    labels: LabelSpace,
    embedder: Embedder,
    k: int = 8,
    draws: int = 5,
    seed: int = 0,
) -> dict:
    """Accuracy and macro-F1 (means over draws) on the second half of a random split: applied
    (taught on the first half, k labeled documents per class from it) and own corpus (the second
    half plus those labeled documents). gap: own minus applied, accuracy points; k is lowered
    for classes too small to spare k."""
    order = np.random.default_rng(seed).permutation(len(texts))
    first, second = order[: len(order) // 2], order[len(order) // 2 :]
    # Half of the smallest class of the first half at most, so every class keeps unlabeled ones.
    k = min(k, int(np.bincount(gold[first], minlength=len(labels)).min()) // 2)
    taught = Workspace([texts[i] for i in first], embedder)
    new = [texts[i] for i in second]
    vectors: dict[str, np.ndarray] = {}
    runs: dict[str, list[tuple[float, float]]] = {"applied": [], "own_corpus": []}
    for draw in range(draws):
        rng = np.random.default_rng([seed, k, draw])
        ids = np.concatenate(
            [
                rng.choice(np.flatnonzero(gold[first] == c), k, replace=False)
                for c in np.unique(gold)
            ]
        )
        human = {int(i): labels.names[gold[first][i]] for i in ids}
        labeler = taught.labeler(taught.predict(labels, human))
        if labeler.view not in vectors:
            vectors[labeler.view] = embedder.view(new, labeler.view)
        applied = np.argmax(labeler.predict_proba(vectors[labeler.view], new), axis=1)
        own = Workspace(new + [taught.texts[i] for i in ids], embedder)
        human_own = {len(new) + j: name for j, name in enumerate(human.values())}
        predicted = own.predict(labels, human_own).predicted[: len(new)]
        for name, guess in (("applied", applied), ("own_corpus", predicted)):
            right = float(np.mean(guess == gold[second]))
            runs[name].append((right, macro_f1(guess, gold[second], len(labels))))
    out: dict = {"k": k, "n_taught": len(first), "n_new": len(second)}
    for name, scores in runs.items():
        out[name] = {
            **summary([a for a, _ in scores]),
            "macro_f1": summary([f for _, f in scores]),
        }
    out["gap_points"] = round(100 * (out["own_corpus"]["mean"] - out["applied"]["mean"]), 2)
    return out
