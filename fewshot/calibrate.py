"""Scores that mean what they say: one temperature on the final log-probabilities.

The corpus refinements (clustering, the discriminant, the lexical view's product of experts)
rank documents well but leave their probabilities too sure (banking77 zero-shot: 0.94 mean top
score for 69% right) or, on faint labels such as sentiment, too unsure. One temperature fixes
most of it without changing any prediction (Guo et al. 2017). It is fitted from the data the app
has: held-out human labels when there are enough of them, otherwise the corpus (see
`corpus_accuracy`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq, minimize_scalar

from fewshot.numeric import softmax

LOG_T_BOUNDS = (np.log(0.05), np.log(50.0))


def temper(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities with their log divided by the temperature, renormalized: argmax unchanged."""
    log = np.log(np.maximum(np.asarray(proba, dtype=np.float64), 1e-30))
    return softmax(log / temperature).astype(np.float32)


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimizing the log-loss of held-out probabilities against their labels."""
    rows = np.arange(len(y))

    def loss(log_t: float) -> float:
        return -float(np.mean(np.log(np.maximum(temper(proba, np.exp(log_t))[rows, y], 1e-30))))

    return float(np.exp(minimize_scalar(loss, bounds=LOG_T_BOUNDS, method="bounded").x))


def match_confidence(proba: np.ndarray, accuracy: float) -> float:
    """The temperature at which the mean top score equals an estimate of the accuracy."""

    def gap(log_t: float) -> float:
        return float(temper(proba, np.exp(log_t)).max(axis=1).mean()) - accuracy

    low, high = LOG_T_BOUNDS
    if gap(low) <= 0:
        return float(np.exp(low))
    if gap(high) >= 0:
        return float(np.exp(high))
    return float(np.exp(brentq(gap, low, high, xtol=1e-4)))


def corpus_accuracy(embedding: np.ndarray, plain: np.ndarray | None) -> float:
    """An estimate of the final model's accuracy on the corpus without any label.

    Two signals, biased in opposite ways, averaged: the embedding classifier's own mean top score
    (before the lexical view sharpens it), too sure where the corpus clusters by something the
    label names only faintly point at; and how often it agrees with the plain model (cosine to
    the labels, no corpus), too low where the refinement rightly corrected the plain model a lot.
    Measured on the shared sets and stand-ins, each alone misses by up to 0.3; the mean by about
    0.1 at most, except where clusters are confident but partly misnamed (ag_news_abstract: 75%
    for 56%; see the benchmark's calibration column). plain None: the embedding classifier
    did not refine the plain model (it is cosine at a temperature, calibrated as it is), so
    agreement says nothing and its confidence is the estimate.
    """
    confidence = float(embedding.max(axis=1).mean())
    if plain is None:
        return confidence
    agreement = float(np.mean(np.argmax(embedding, axis=1) == np.argmax(plain, axis=1)))
    return 0.5 * (confidence + agreement)


@dataclass(frozen=True)
class Estimate:
    """A quantity estimated from calibrated scores, with a 95% interval."""

    value: float
    low: float
    high: float


def corpus_estimates(
    proba: np.ndarray, known: np.ndarray | None = None
) -> tuple[Estimate, list[Estimate]]:
    """What calibrated scores say about the whole corpus: the share of documents whose predicted
    label is right, and the number of documents of each label.

    known: (rows, class positions) of the human-labeled documents, counted as they are. Each
    other document is right with probability its top score, and is of label c with probability
    its score for c, independently, so sums are Poisson-binomial: mean the sum, variance the sum
    of p(1 - p) (normal interval). The interval is the sampling part only: it holds to the extent
    the scores are calibrated (the benchmark reports how far they are).
    """
    proba = np.asarray(proba, dtype=np.float64)
    n = len(proba)
    counts = np.zeros(proba.shape[1])
    free = np.ones(n, dtype=bool)
    if known is not None and len(known[0]):
        free[known[0]] = False
        counts += np.bincount(known[1], minlength=proba.shape[1])
    rest = proba[free]
    top = rest.max(axis=1)
    right = top.sum() + (n - len(rest))
    spread = 1.96 * np.sqrt(np.sum(top * (1 - top)))
    accuracy = Estimate(right / n, max(0.0, (right - spread) / n), min(1.0, (right + spread) / n))
    per_label = []
    for c in range(proba.shape[1]):
        mean = counts[c] + rest[:, c].sum()
        half = 1.96 * np.sqrt(np.sum(rest[:, c] * (1 - rest[:, c])))
        per_label.append(
            Estimate(float(mean), float(max(counts[c], mean - half)), float(mean + half))
        )
    return accuracy, per_label
