"""A second, lexical view of the corpus, taught by the embedding classifier (self-training).

Sentence embeddings blur rare but telling words (names, products, jargon); a bag of n-grams keeps
them. Its errors are partly independent of the embedding's, so the two views combined are right
more often than either. The lexical view has no labels of its own: a naive Bayes model over the
corpus's word and character n-grams is trained on the embedding classifier's probabilities for
every document (the human labels weigh more), and its probabilities are multiplied with the
embedding's (a product of experts). How much it counts is fitted, not set: the scale of its
log-probabilities that best predicts the embedding's probabilities on documents it was not trained
on (cross-fitted, maximum likelihood, zero allowed), so a lexical view whose words do not carry
what the embeddings see has little or no say.

numpy and scipy sparse in and out; classes are the integer positions of a `LabelSpace`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from fewshot.numeric import softmax

SCALE_BOUNDS = (0.0, 10.0)  # of the lexical log-probabilities; 0 switches the view off


# The two parts of the term space: word uni- and bigrams, character 4-grams inside words.
TERM_PARTS = {
    "words": {"ngram_range": (1, 2)},
    "characters": {"analyzer": "char_wb", "ngram_range": (4, 4)},
}


def _vectorizer(part: str) -> TfidfVectorizer:
    return TfidfVectorizer(min_df=2, sublinear_tf=True, dtype=np.float32, **TERM_PARTS[part])


class TermSpace:
    """TF-IDF rows of word uni- and bigrams and of character 4-grams inside words, each part
    L2-normalized and weighted alike; terms in fewer than two documents of the corpus are
    dropped (they cannot carry a label from one document to another).

    Character n-grams catch inflections and compounds a word vocabulary splits ("refund" in
    "refunded"), which matters most on short texts. `fit_transform(corpus)` learns the
    vocabulary and weights (`vectorizers_`, by part); `transform(texts)` puts any other texts in
    the same space, which is how a labeler file reads new documents.
    """

    def fit_transform(self, texts: Sequence[str]) -> sparse.csr_matrix | None:
        """The corpus's term matrix; None when no term is left (a tiny corpus)."""
        self.vectorizers_: dict[str, TfidfVectorizer] = {}
        parts = []
        for part in TERM_PARTS:
            vectorizer = _vectorizer(part)
            try:
                parts.append(vectorizer.fit_transform(texts))
            except ValueError:  # empty vocabulary: every term occurs once at most
                continue
            self.vectorizers_[part] = vectorizer
        return self._join(parts) if parts else None

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        return self._join([v.transform(texts) for v in self.vectorizers_.values()])

    def _join(self, parts: list[sparse.csr_matrix]) -> sparse.csr_matrix:
        return (sparse.hstack(parts, format="csr") * np.float32(1 / np.sqrt(len(parts)))).tocsr()

    @property
    def n_terms(self) -> int:
        return sum(len(v.vocabulary_) for v in self.vectorizers_.values())

    def state(self) -> tuple[dict[str, list[str]], dict[str, np.ndarray]]:
        """Per part, the terms in column order (JSON) and their IDF weights (arrays)."""
        terms, idf = {}, {}
        for part, vectorizer in self.vectorizers_.items():
            terms[part] = vectorizer.get_feature_names_out().tolist()
            idf[part] = vectorizer.idf_.astype(np.float32)
        return terms, idf

    def to_arrays(self, matrix: sparse.csr_matrix) -> dict[str, np.ndarray]:
        """The fitted space and its corpus's matrix as plain arrays, for `fewshot.stored`."""
        terms, idf = self.state()
        arrays = {
            "shape": np.array(matrix.shape),
            "data": matrix.data,
            "indices": matrix.indices,
            "indptr": matrix.indptr,
        }
        for part, words in terms.items():  # no term holds a newline: both analyzers split on it
            arrays[f"terms/{part}"] = np.frombuffer("\n".join(words).encode(), dtype=np.uint8)
            arrays[f"idf/{part}"] = idf[part]
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> tuple[TermSpace, sparse.csr_matrix]:
        parts = [part for part in TERM_PARTS if f"terms/{part}" in arrays]
        space = cls.from_state(
            {part: bytes(arrays[f"terms/{part}"]).decode().split("\n") for part in parts},
            {part: arrays[f"idf/{part}"] for part in parts},
        )
        matrix = (arrays["data"], arrays["indices"], arrays["indptr"])
        return space, sparse.csr_matrix(matrix, shape=tuple(arrays["shape"]))

    @classmethod
    def from_state(cls, terms: dict[str, list[str]], idf: dict[str, np.ndarray]) -> TermSpace:
        space = cls()
        space.vectorizers_ = {}
        for part, words in terms.items():
            if part not in TERM_PARTS or len(words) != len(idf[part]):
                raise ValueError(f"term part {part!r} does not fit its weights")
            vectorizer = _vectorizer(part)
            vectorizer.vocabulary = {term: i for i, term in enumerate(words)}
            vectorizer.idf_ = idf[part]
            space.vectorizers_[part] = vectorizer
        return space


def product_of_experts(*probas: np.ndarray) -> np.ndarray:
    """Normalized product of probability rows: where one expert is unsure, the other decides."""
    log = sum(np.log(np.maximum(p, 1e-30)) for p in probas)
    return softmax(np.asarray(log, dtype=np.float64)).astype(np.float32)


class LexicalExpert:
    """Multinomial naive Bayes on a corpus's term matrix, fitted to another model's soft labels.

    `fit(terms, proba, rows, y)`: terms (n, V) of the corpus, proba (n, C) the embedding
    classifier's probabilities for the same documents, rows/y the human-labeled documents (given
    `label_weight` times the weight of a pseudo-label). Each of `rounds` rounds retrains naive
    Bayes on the current combined probabilities (co-training), so documents the two views agree
    on teach the next round. The weight of the lexical view (`scale_`) is fitted on `folds`
    held-out folds: naive Bayes fits its own training documents too well to judge itself on them.
    `combined_` is the product of both views on the corpus; `predict_proba(terms)` the lexical view
    alone. Naive Bayes fits are sums over the corpus (sparse products): milliseconds per round.
    """

    def __init__(
        self,
        alpha: float = 0.03,
        label_weight: float = 3.0,
        rounds: int = 2,
        folds: int = 5,
    ) -> None:
        self.alpha = alpha
        self.label_weight = label_weight
        self.rounds = rounds
        self.folds = folds

    def fit(
        self,
        terms: sparse.spmatrix,
        proba: np.ndarray,
        rows: np.ndarray | None = None,
        y: np.ndarray | None = None,
    ) -> LexicalExpert:
        terms = sparse.csr_matrix(terms, dtype=np.float32)
        proba = np.asarray(proba, dtype=np.float64)
        n = terms.shape[0]
        if n != len(proba):
            raise ValueError("The term matrix and the probabilities differ in documents.")
        rows = np.zeros(0, np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        y = np.zeros(0, np.int64) if y is None else np.asarray(y, dtype=np.int64)
        fold_of = np.arange(n) % max(1, min(self.folds, n))
        np.random.default_rng(0).shuffle(fold_of)
        parts = [np.flatnonzero(fold_of == f) for f in range(fold_of.max() + 1)]
        blocks = [terms[part] for part in parts]
        combined = proba
        for _ in range(self.rounds):
            weights = combined.astype(np.float32)
            weights[rows] = 0.0
            weights[rows, y] = self.label_weight
            per_fold = [np.asarray(b.T @ weights[part]).T for b, part in zip(blocks, parts)]
            counts = sum(per_fold)  # (C, V)
            self.log_term_, self.log_prior_ = self._naive_bayes(counts)
            scores = self._scores(terms)
            held_out = np.empty_like(scores)
            for block, part, own in zip(blocks, parts, per_fold):
                log_term, log_prior = self._naive_bayes(counts - own if len(parts) > 1 else counts)
                held_out[part] = np.asarray(block @ log_term.T, dtype=np.float64) + log_prior
            self.scale_ = self._fit_scale(held_out, proba)
            combined = product_of_experts(proba, softmax(self.scale_ * scores))
        self.combined_ = combined
        return self

    def _naive_bayes(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log term probabilities per class (smoothed by alpha) and log class priors."""
        counts = counts + np.float32(self.alpha)
        mass = counts.sum(axis=1, dtype=np.float64)
        log_term = np.log(counts) - np.log(mass).astype(np.float32)[:, None]
        return log_term, np.log(mass / mass.sum())

    def _scores(self, terms: sparse.spmatrix) -> np.ndarray:
        return np.asarray(terms @ self.log_term_.T, dtype=np.float64) + self.log_prior_

    @staticmethod
    def _fit_scale(scores: np.ndarray, proba: np.ndarray, steps: int = 12) -> float:
        """The scale s >= 0 minimizing the cross-entropy of softmax(s * scores) against proba.

        The loss is convex in s, so a few Newton steps find it: the slope is the expected score
        under softmax(s * scores) minus the expected score under proba, the curvature the
        variance of the scores under softmax(s * scores). Naive Bayes is overconfident; this makes
        it as sure as it can back up, and gives it no say (s = 0) when it backs up nothing.
        """
        scores = (scores - scores.mean(axis=1, keepdims=True)).astype(np.float32)
        target = float(np.mean(np.sum(proba * scores, axis=1)))
        low, high = SCALE_BOUNDS  # the minimum stays between them: slope < 0 at low, > 0 at high
        scale = low
        for _ in range(steps):
            q = softmax(scale * scores)
            mean = np.sum(q * scores, axis=1)
            slope = float(np.mean(mean)) - target
            if slope < 0:
                low = scale
            else:
                high = scale
            if scale == SCALE_BOUNDS[0] and slope >= 0:
                return 0.0  # no scale fits better than none
            curvature = float(np.mean(np.sum(q * scores**2, axis=1) - mean**2))
            step = scale - slope / curvature if curvature > 1e-12 else high
            # Newton where it stays inside the bracket, bisection where it would leave it.
            step = step if low < step < high else 0.5 * (low + high)
            if abs(step - scale) < 1e-3:
                return step
            scale = step
        return scale

    def predict_proba(self, terms: sparse.spmatrix) -> np.ndarray:
        """The lexical view's own (scaled) probabilities for rows of the same term space."""
        return softmax(self.scale_ * self._scores(terms)).astype(np.float32)
