"""Label space and the few-shot classifier: cosine to label prototypes, bent by a Wmap, and refined
on the unlabeled corpus when the corpus agrees with the labels.

Everything here is numpy in, numpy out; classes are the integer positions of a `LabelSpace`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from fewshot import FewshotError
from fewshot.maps import Wmap

TEMPLATES = ("{label}", "This text is about {label}.", "A text about {label}.")


@dataclass(frozen=True)
class LabelSpace:
    """Candidate labels, each with an optional description ("Sports: games, athletes, teams")."""

    names: tuple[str, ...]
    descriptions: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        names = tuple(str(n).strip() for n in self.names)
        descriptions = tuple(str(d).strip() for d in self.descriptions) or ("",) * len(names)
        if len(descriptions) != len(names):
            raise FewshotError("Each label needs exactly one (possibly empty) description.")
        if any(not n for n in names):
            raise FewshotError("A label name is empty.")
        seen: dict[str, str] = {}
        for name in names:
            if name.casefold() in seen:
                raise FewshotError(f"Duplicate label: '{name}' (labels are case-insensitive).")
            seen[name.casefold()] = name
        if len(names) < 2:
            raise FewshotError("At least two labels are needed to classify anything.")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "descriptions", descriptions)

    @classmethod
    def parse(cls, lines: Iterable[str]) -> LabelSpace:
        """One label per line, optionally `name: description`; blank lines and # comments skipped."""
        names, descriptions = [], []
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, description = line.partition(":")
            names.append(name)
            descriptions.append(description)
        return cls(tuple(names), tuple(descriptions))

    def __len__(self) -> int:
        return len(self.names)

    def index(self, labels: Sequence[str]) -> np.ndarray:
        """Label names to class positions; an unknown name is an error, not a silent drop."""
        lookup = {n.casefold(): i for i, n in enumerate(self.names)}
        try:
            return np.array([lookup[str(v).strip().casefold()] for v in labels], dtype=np.int64)
        except KeyError as exc:
            raise FewshotError(f"Unknown label {exc.args[0]!r}; labels are {self.names}.") from None

    def prompts(self, templates: Sequence[str] = TEMPLATES) -> list[list[str]]:
        """Texts to embed per label: its readable name in each template, plus the description."""
        out = []
        for name, description in zip(self.names, self.descriptions):
            readable = re.sub(r"[_\s]+", " ", name).strip()
            texts = [t.format(label=readable) for t in templates]
            if description:
                texts.append(f"{readable}: {description}")
            out.append(texts)
        return out


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def cohen_kappa(a: np.ndarray, b: np.ndarray, n_classes: int) -> float:
    """Agreement beyond chance between two labelings of the same documents."""
    observed = float(np.mean(a == b))
    pa = np.bincount(a, minlength=n_classes) / len(a)
    pb = np.bincount(b, minlength=n_classes) / len(b)
    expected = float(pa @ pb)
    return 1.0 if expected >= 1.0 else (observed - expected) / (1.0 - expected)


class FewShotClassifier:
    """Cosine similarity to class prototypes in a space bent by a Wmap.

    Prototypes start as the label embeddings. `fit` with labeled documents refits the Wmap toward
    their labels and adds them to their class prototypes; with an unlabeled corpus it then runs a few
    rounds of soft k-means seeded by the prototypes and anchored by the human labels. Clustering can
    pull the wrong way (a corpus that clusters by topic, labels about sentiment), so with
    `transductive="auto"` it is kept only when the data vouch for it: agreement beyond chance
    between the clustered and the plain predictions (`min_kappa`), then a veto from cross-validation
    on the human labels.
    """

    def __init__(
        self,
        label_vectors: np.ndarray,
        lam: float = 1.0,
        transductive: bool | str = "auto",
        temperature: float = 0.05,
        n_iter: int = 10,
        min_kappa: float = 0.4,
    ) -> None:
        self.label_vectors = normalize(label_vectors)
        self.lam = lam
        self.transductive = transductive
        self.temperature = temperature
        self.n_iter = n_iter
        self.min_kappa = min_kappa

    @property
    def n_classes(self) -> int:
        return len(self.label_vectors)

    def fit(
        self,
        x: np.ndarray | None = None,
        y: np.ndarray | None = None,
        corpus: np.ndarray | None = None,
    ) -> FewShotClassifier:
        """Fit from labeled rows (x, y: class positions; may be empty) and the unlabeled corpus."""
        dim = self.label_vectors.shape[1]
        x = np.zeros((0, dim), np.float32) if x is None else normalize(x)
        y = np.zeros(0, np.int64) if y is None else np.asarray(y, dtype=np.int64)
        if len(x) != len(y):
            raise FewshotError("Labeled documents and labels differ in number.")
        if len(y) and (y.min() < 0 or y.max() >= self.n_classes):
            raise FewshotError("A label is outside the label space.")
        self._fit_inductive(x, y)
        self.transductive_used_ = False
        self.selection_ = "inductive"
        if corpus is not None and len(corpus) and self.transductive:
            use = self.transductive is True or self._vouch(x, y, normalize(corpus))
            if use:
                self.prototypes_ = self._cluster(normalize(corpus), x, y)
                self.transductive_used_ = True
        return self

    def _fit_inductive(self, x: np.ndarray, y: np.ndarray) -> None:
        if len(y):
            self.wmap_ = Wmap(self.lam).fit(x, self.label_vectors[y])
        else:
            self.wmap_ = Wmap(self.lam)
            self.wmap_.coef_ = np.eye(self.label_vectors.shape[1], dtype=np.float32)
        sums = np.zeros_like(self.label_vectors)
        if len(y):
            np.add.at(sums, y, normalize(self.wmap_.transform(x)))
        self.prototypes_ = normalize(self.label_vectors + sums)

    def _cluster(self, corpus: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        docs = normalize(self.wmap_.transform(corpus))
        anchors = normalize(self.wmap_.transform(x)) if len(y) else None
        prototypes = self.prototypes_
        for _ in range(self.n_iter):
            weights = softmax(docs @ prototypes.T / self.temperature)
            sums = weights.T @ docs
            if anchors is not None:
                np.add.at(sums, y, anchors * (len(docs) / max(len(y), 1)) ** 0.5)
            prototypes = normalize(sums)
        return prototypes

    def _vouch(self, x: np.ndarray, y: np.ndarray, corpus: np.ndarray) -> bool:
        """Decide from the data at hand whether clustering the corpus helps.

        First the corpus: clustering must agree with the plain predictions beyond chance, or it is
        following some other structure than the labels. Then the human labels, when there are a
        few per class: cross-validation may veto clustering, but only by more than its own noise
        (about 1/sqrt(n)), since a handful of hard, hand-picked examples says little.
        """
        docs = normalize(self.wmap_.transform(corpus))
        plain = np.argmax(docs @ self.prototypes_.T, axis=1)
        clustered = np.argmax(docs @ self._cluster(corpus, x, y).T, axis=1)
        kappa = cohen_kappa(plain, clustered, self.n_classes)
        self.selection_ = f"kappa {kappa:.2f}"
        if kappa < self.min_kappa:
            return False
        if len(y) >= 2 * self.n_classes and len(np.unique(y)) >= 2:
            plain_acc, clustered_acc = self._cross_validate(x, y, corpus)
            self.selection_ += f"; cv {plain_acc:.2f} plain vs {clustered_acc:.2f} clustered"
            return plain_acc - clustered_acc <= 1 / np.sqrt(len(y))
        return True

    def _cross_validate(
        self, x: np.ndarray, y: np.ndarray, corpus: np.ndarray
    ) -> tuple[float, float]:
        folds = np.arange(len(y)) % min(5, len(y))
        np.random.default_rng(0).shuffle(folds)
        hits = np.zeros(2)
        for fold in np.unique(folds):
            train, test = folds != fold, folds == fold
            probe = FewShotClassifier(self.label_vectors, self.lam, False, self.temperature)
            probe.fit(x[train], y[train])
            hits[0] += np.sum(probe.predict(x[test]) == y[test])
            probe.prototypes_ = probe._cluster(corpus, x[train], y[train])
            hits[1] += np.sum(probe.predict(x[test]) == y[test])
        return tuple(hits / len(y))

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """Cosine similarity of each document to each class prototype, shape (n, n_classes)."""
        return normalize(self.wmap_.transform(normalize(x))) @ self.prototypes_.T

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.decision_function(x) / self.temperature)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(self.decision_function(x), axis=1)
