"""Label space and the few-shot classifier: cosine to label prototypes, bent by a Wmap, and refined
on the unlabeled corpus when the corpus agrees with the labels.

Everything here is numpy in, numpy out; classes are the integer positions of a `LabelSpace`.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from fewshot import FewshotError
from fewshot.maps import Wmap

TEMPLATES = ("{label}", "This text is about {label}.", "A text about {label}.")


MAX_NAME_CHARS = (
    100  # a name is a button, a legend entry and a column value; a description says more
)


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
        long = next((n for n in names if len(n) > MAX_NAME_CHARS), None)
        if long is not None:
            raise FewshotError(
                f"Label '{long[:40]}...' is {len(long)} characters long; keep names to "
                f"{MAX_NAME_CHARS} and put the rest in a description after ':'."
            )
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


def estimate_priors(proba: np.ndarray, rounds: int = 100, tol: float = 1e-4) -> np.ndarray:
    """Class priors of a corpus from a model's probabilities, which assume equal priors: EM
    (Saerens et al. 2002) reweights every row by the current priors and averages, until they
    settle."""
    n_classes = proba.shape[1]
    prior = np.full(n_classes, 1.0 / n_classes)
    for _ in range(rounds):
        weighted = proba * (prior * n_classes)
        weighted /= weighted.sum(axis=1, keepdims=True)
        new = np.maximum(weighted.mean(axis=0), 1e-6)
        if np.abs(new - prior).max() < tol:
            return new
        prior = new
    return prior


def cohen_kappa(a: np.ndarray, b: np.ndarray, n_classes: int) -> float:
    """Agreement beyond chance between two labelings of the same documents."""
    observed = float(np.mean(a == b))
    pa = np.bincount(a, minlength=n_classes) / len(a)
    pb = np.bincount(b, minlength=n_classes) / len(b)
    expected = float(pa @ pb)
    return 1.0 if expected >= 1.0 else (observed - expected) / (1.0 - expected)


# The corpus graph: every document's nearest neighbours by cosine. It depends on the corpus only,
# not on the labels, so it is computed once per corpus and reused by every refit (a small cache keyed
# by the corpus's bytes). Exact search up to EXACT_GRAPH_LIMIT documents, in blocks so memory stays
# bounded; beyond that an inverted-file search (probe the nearest clusters only) keeps it to seconds.
EXACT_GRAPH_LIMIT = 20_000
CV_SAMPLE = 2_000
VETO_LABELS = 5  # human labels per class before cross-validation may veto clustering
DISCRIMINANT_ROUNDS = 2
SHRINKAGE = 0.1  # of the shared covariance toward a multiple of the identity
PRIOR_PSEUDO_DOCS = 20  # per class, shrinking the clustering's class priors toward equal
_BLOCK = 1024
_CACHE: OrderedDict[tuple, object] = OrderedDict()  # per corpus: neighbour graph, row index
_CACHE_KEPT = 12
_CACHE_LOCK = threading.Lock()


_BLAS_LOCK = threading.Lock()
_BLAS_USERS = 0
_BLAS_LIMIT: threadpool_limits | None = None


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Fits and predictions run BLAS on one thread. Their matrix products are small and many: on
    two cores, a second BLAS thread contending with anything else the machine does (the app's
    other work) was seen to make a refit five to ten times slower, never much faster. The limit is
    process-wide, so it is counted: the first fit to start sets it, the last one to end lifts it,
    whichever sessions of the app they belong to."""
    global _BLAS_USERS, _BLAS_LIMIT
    with _BLAS_LOCK:
        if _BLAS_USERS == 0:
            _BLAS_LIMIT = threadpool_limits(limits=1, user_api="blas")
        _BLAS_USERS += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS -= 1
            if _BLAS_USERS == 0 and _BLAS_LIMIT is not None:
                _BLAS_LIMIT.restore_original_limits()
                _BLAS_LIMIT = None


def fingerprint(x: np.ndarray) -> tuple:
    """Identity of an array's content: shape, dtype and a hash of its bytes."""
    x = np.ascontiguousarray(x)
    digest = hashlib.sha1(memoryview(x).cast("B"), usedforsecurity=False).digest()
    return x.shape, x.dtype.str, digest


def _top_k(queries: np.ndarray, base: np.ndarray, k: int, offset: int | None = None) -> np.ndarray:
    """Indices (n, k) of each query's k most similar base rows, unordered.

    offset: the queries are base[offset:offset + n] and must not find themselves.
    """
    idx = np.empty((len(queries), k), dtype=np.int32)
    for start in range(0, len(queries), _BLOCK):
        sims = queries[start : start + _BLOCK] @ base.T
        if offset is not None:
            rows = np.arange(len(sims))
            sims[rows, offset + start + rows] = -np.inf
        idx[start : start + len(sims)] = np.argpartition(sims, -k, axis=1)[:, -k:]
    return idx


def _row_index(rows: np.ndarray) -> dict[int, list[int]]:
    """Positions of the rows by a hash of their bytes, to find labeled documents in the corpus."""
    index: dict[int, list[int]] = {}
    for i, row in enumerate(np.ascontiguousarray(rows)):
        index.setdefault(hash(row.tobytes()), []).append(i)
    return index


def _locate(queries: np.ndarray, base: np.ndarray, index: dict[int, list[int]]) -> np.ndarray:
    """For each query row, the position of an identical base row, or -1."""
    found = np.full(len(queries), -1, dtype=np.int64)
    for i, row in enumerate(np.ascontiguousarray(queries, dtype=base.dtype)):
        for j in index.get(hash(row.tobytes()), ()):
            if np.array_equal(base[j], row):
                found[i] = j
                break
    return found


def _approximate_graph(unit: np.ndarray, k: int, probe: int = 32, rounds: int = 4) -> np.ndarray:
    """Approximate k nearest neighbours of every row: spherical k-means into about sqrt(n) cells;
    the documents of a cell search the cells whose centres are nearest to their own."""
    n = len(unit)
    n_cells = max(2, int(np.sqrt(n)))
    centres = unit[np.random.default_rng(0).choice(n, n_cells, replace=False)]
    for step in range(rounds + 1):
        cell = np.concatenate(
            [np.argmax(unit[s : s + _BLOCK] @ centres.T, axis=1) for s in range(0, n, _BLOCK)]
        )
        order = np.argsort(cell, kind="stable")
        counts = np.bincount(cell, minlength=n_cells)
        if step == rounds:
            break
        filled = counts > 0
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[filled]
        centres[filled] = normalize(np.add.reduceat(unit[order], starts, axis=0))
    members = np.split(order, np.cumsum(counts)[:-1])
    near = np.argsort(-(centres @ centres.T), axis=1)[:, :probe]
    graph = np.empty((n, k), dtype=np.int32)
    for c, own in enumerate(members):
        if not len(own):
            continue
        others = [members[o] for o in near[c] if o != c]
        candidates = np.concatenate([own, *others])
        if len(candidates) <= k:
            candidates = np.concatenate([own, np.setdiff1d(np.arange(n), own)])
        sims = unit[own] @ unit[candidates].T
        sims[np.arange(len(own)), np.arange(len(own))] = -np.inf
        graph[own] = candidates[np.argpartition(sims, -k, axis=1)[:, -k:]]
    return graph


def neighbour_graph(unit: np.ndarray, k: int, key: tuple | None = None) -> np.ndarray:
    """(n, k) indices of each row's nearest other rows by cosine (rows are unit vectors); cached."""
    return _cached((key or fingerprint(unit), "graph", k), lambda: _graph(unit, k))


def _graph(unit: np.ndarray, k: int) -> np.ndarray:
    if len(unit) <= EXACT_GRAPH_LIMIT:
        return _top_k(unit, unit, k, offset=0)
    return _approximate_graph(unit, k)


def _cached(key: tuple, compute: Callable[[], object]):  # noqa: ANN202 - whatever compute returns
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    value = compute()
    with _CACHE_LOCK:
        _CACHE[key] = value
        while len(_CACHE) > _CACHE_KEPT:
            _CACHE.popitem(last=False)
    return value


def _moments(unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the corpus rows."""
    mean = unit.mean(axis=0)
    cov = (unit.T @ unit).astype(np.float64) / len(unit) - np.outer(mean, mean)
    return mean, cov


def neighbour_mean(values: np.ndarray, graph: np.ndarray) -> np.ndarray:
    out = values[graph[:, 0]].copy()
    for j in range(1, graph.shape[1]):
        out += values[graph[:, j]]
    return out / graph.shape[1]


def homophily(predicted: np.ndarray, graph: np.ndarray, n_classes: int) -> float:
    """Kappa between each document's label and its neighbours' labels: do neighbours agree?"""
    return cohen_kappa(np.repeat(predicted, graph.shape[1]), predicted[graph].ravel(), n_classes)


def propagate(
    proba: np.ndarray,
    graph: np.ndarray,
    alpha: float,
    rounds: int = 3,
    clamp: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Label spreading: mix each document's probabilities with its neighbours', a few rounds; the
    human-labeled documents (clamp: rows, one-hot rows) keep their labels and pass them on."""
    out = proba.copy()
    for _ in range(rounds):
        if clamp is not None:
            out[clamp[0]] = clamp[1]
        out = (1 - alpha) * proba + alpha * neighbour_mean(out, graph)
    if clamp is not None:
        out[clamp[0]] = clamp[1]
    return out


@dataclass
class _Corpus:
    """What predict_proba needs to answer for the fitted corpus and its neighbourhood."""

    key: tuple
    raw: np.ndarray  # the corpus as given (not copied); unit rows are recomputed when needed
    graph: np.ndarray | None  # None: no spreading
    proba: np.ndarray


class FewShotClassifier:
    """Cosine similarity to class prototypes in a space bent by a Wmap, refined on the corpus.

    Labeled documents refit the Wmap toward their labels' embeddings. Without a corpus (or with
    `transductive=False`) the prototypes are the label embeddings plus the mapped labeled
    documents. With an unlabeled corpus, each step below runs only when the data vouch for it:

    1. soft k-means, seeded by the label embeddings alone and anchored by the labeled documents,
       for `n_iter` rounds, weighted by the corpus's class priors: estimated by EM from the plain
       probabilities (`estimate_priors`), re-estimated each round, shrunk toward equal by
       PRIOR_PSEUDO_DOCS documents per class. Without them a rare class's cluster grabs
       documents of a common one (AG News at 70/20/7/3: macro-F1 50 instead of 62 zero-shot).
       The human labels never set the priors: users and suggestions choose them. The priors
       decide where the prototypes settle; the probabilities from the prototypes leave them out
       (adding them there cost 2.6 points on balanced AG News), the discriminant weighs its
       classes by the corpus, and the lexical view's naive Bayes priors follow the
       probabilities it is taught with. Few rounds move the prototypes from label text to where
       the documents are; many rounds drift. It is kept only with agreement beyond chance
       (`min_kappa`) between the clustered and the plain predictions, most clusters still
       nearest their own label (zero-shot), and no veto from
       cross-validation on the human labels (corpus clusters about something else than the
       labels, such as topics under sentiment labels, fail these);
    2. a shared-covariance refinement (`discriminant`, two EM rounds of linear discriminant
       analysis), when the clustering was kept and the corpus has, on average, at least as many
       documents per class as dimensions;
    3. label spreading over the corpus's nearest-neighbour graph: each document's probabilities
       are mixed with its neighbours' for a few rounds, and labeled documents pass their label on.
       How much (`smoothing_`, 0 to 0.8) follows from how well neighbours agree on the labels of
       the plain model, which never saw the corpus (`homophily`, a kappa): not at all up to 0.3,
       fully from 0.6.

    Documents of the fitted corpus get these probabilities; any other document gets the same
    mix of its own prediction and its corpus neighbours'. `selection_` says what was chosen and
    why. The neighbour graph, computed once per corpus and cached, is `neighbours_`.
    """

    def __init__(
        self,
        label_vectors: np.ndarray,
        lam: float = 3.0,
        transductive: bool | str = "auto",
        temperature: float = 0.05,
        n_iter: int = 2,
        min_kappa: float = 0.4,
        smoothing: float | str = "auto",
        n_neighbors: int | None = None,
        discriminant: bool | str = "auto",
    ) -> None:
        self.label_vectors = normalize(label_vectors)
        self.lam = lam
        self.transductive = transductive
        self.temperature = temperature
        self.n_iter = n_iter
        self.min_kappa = min_kappa
        self.smoothing = smoothing
        self.n_neighbors = n_neighbors
        self.discriminant = discriminant

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
        with one_blas_thread():
            return self._fit(x, y, corpus)

    def _fit(
        self, x: np.ndarray | None, y: np.ndarray | None, corpus: np.ndarray | None
    ) -> FewShotClassifier:
        dim = self.label_vectors.shape[1]
        raw = np.zeros((0, dim), np.float32) if x is None else np.asarray(x)
        x = normalize(raw)
        y = np.zeros(0, np.int64) if y is None else np.asarray(y, dtype=np.int64)
        if len(x) != len(y):
            raise FewshotError("Labeled documents and labels differ in number.")
        if len(y) and (y.min() < 0 or y.max() >= self.n_classes):
            raise FewshotError("A label is outside the label space.")
        use_corpus = corpus is not None and len(corpus) > 0 and bool(self.transductive)
        self._fit_inductive(x, y, with_documents=not use_corpus or self._all_classes(y))
        self.transductive_used_ = False
        self.selection_ = "inductive"
        self.smoothing_ = 0.0
        self.neighbours_: np.ndarray | None = None
        self.discriminant_: tuple[np.ndarray, np.ndarray] | None = None
        self._corpus: _Corpus | None = None
        self.plain_: np.ndarray | None = None
        self.prior_: np.ndarray | None = None  # the corpus's class priors (EM), when clustered
        if not use_corpus:
            return self
        corpus = np.asarray(corpus)
        key = fingerprint(corpus)
        unit = normalize(corpus)
        docs = self._map(unit)
        anchors = self._map(x)
        # The plain model the checks compare with, and the clustering's seed: label embeddings
        # alone, labeled documents acting through the Wmap (and as anchors). Prototypes that
        # already contain documents out-pull classes with none, and one document per class is a
        # noisy prototype where classes differ in a faint direction (sentiment).
        plain = self.plain_ = np.argmax(docs @ self.label_vectors.T, axis=1)
        self.prior_ = estimate_priors(softmax(docs @ self.label_vectors.T / self.temperature))
        clustered = self._cluster(docs, anchors, y, self.label_vectors, self.prior_)
        checks = []
        if self.transductive is True or self._vouch(x, y, unit, plain, docs, clustered, checks):
            self.prototypes_ = clustered
            self.transductive_used_ = True
        proba = softmax(docs @ self.prototypes_.T / self.temperature)
        clamp = None
        if len(y):
            rows = _locate(raw, corpus, _cached((key, "rows"), lambda: _row_index(corpus)))
            if (rows >= 0).any():
                clamp = (rows[rows >= 0], np.eye(self.n_classes, dtype=np.float32)[y[rows >= 0]])
        if self.transductive_used_ and self._wants_discriminant(unit):
            proba = self._discriminant(key, unit, proba, checks)
        self._spread(key, corpus, unit, plain, proba, clamp, checks)
        self.selection_ = "; ".join(checks) or self.selection_
        return self

    # -- inductive part: Wmap and prototypes -------------------------------------------------

    def _fit_inductive(self, x: np.ndarray, y: np.ndarray, with_documents: bool = True) -> None:
        """The Wmap from the labeled rows (the identity without any), then the prototypes."""
        self.wmap_ = Wmap(self.lam).fit(x, self.label_vectors[y])
        self.prototypes_ = self.label_vectors.copy()
        if with_documents and len(y):
            self.prototypes_ = normalize(self.label_vectors + self._class_sums(self._map(x), y))

    def _all_classes(self, y: np.ndarray) -> bool:
        return len(np.unique(y)) == self.n_classes

    def _class_sums(self, rows: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Sum of the rows of each class, shape (n_classes, dim)."""
        return np.eye(self.n_classes, dtype=np.float32)[:, y] @ rows

    def _map(self, unit: np.ndarray) -> np.ndarray:
        """Unit rows through the Wmap, renormalized."""
        return normalize(self.wmap_.transform(unit)) if len(unit) else unit

    # -- transductive part: clustering and label spreading -----------------------------------

    def _cluster(
        self,
        docs: np.ndarray,
        anchors: np.ndarray,
        y: np.ndarray,
        prototypes: np.ndarray,
        prior: np.ndarray,
        n_iter: int | None = None,
    ) -> np.ndarray:
        """Soft k-means on the mapped corpus from the given prototypes and the corpus's class
        priors (re-estimated each round), anchored by human labels."""
        pull = self._class_sums(anchors, y) * (len(docs) / max(len(y), 1)) ** 0.5
        # Shrunk toward equal by PRIOR_PSEUDO_DOCS per class: with few documents per class (77
        # intents of 40), the plain estimate lets big clusters swallow their neighbours.
        n, pseudo = len(docs), PRIOR_PSEUDO_DOCS
        for _ in range(self.n_iter if n_iter is None else n_iter):
            shrunk = (n * prior + pseudo) / (n + self.n_classes * pseudo)
            weights = softmax(docs @ prototypes.T / self.temperature + np.log(shrunk))
            prior = weights.mean(axis=0)
            prototypes = normalize(weights.T @ docs + pull)
        return prototypes

    def _vouch(
        self,
        x: np.ndarray,
        y: np.ndarray,
        unit: np.ndarray,
        plain: np.ndarray,
        docs: np.ndarray,
        clustered: np.ndarray,
        checks: list[str],
    ) -> bool:
        """Decide from the data at hand whether clustering the corpus helps.

        First the corpus: clustering must agree beyond chance with the plain predictions (label
        embeddings, documents through the Wmap), or it is following some other structure than the
        labels. Without human labels nothing anchors the clusters, so most of them (more than
        half) must also still lie nearest their own label's embedding, or they have drifted to
        ground the labels do not name (on sentiment, word vectors cluster by topic, and both
        clusters end up nearest "negative"). With labels, that test misfires: the Wmap bends the
        space, and on sentiment one prototype sits a hair nearer the other label while
        clustering still helps (SST-2 sessions lost up to 14 points with it). Then the
        human labels, once there are VETO_LABELS per class: cross-validation may veto clustering,
        but only when the held-out labels it gets wrong and plain gets right outnumber the
        reverse by three standard errors (a paired, McNemar-style test). Labels
        chosen by the app's suggestions are the hard cases, where both do badly, so a looser
        test vetoes clustering that is right on the rest of the corpus.
        """
        kappa = cohen_kappa(plain, np.argmax(docs @ clustered.T, axis=1), self.n_classes)
        checks.append(f"kappa {kappa:.2f}")
        if kappa < self.min_kappa:
            return False
        if not len(y):
            nearest = np.argmax(clustered @ self.label_vectors.T, axis=1)
            named = float(np.mean(nearest == np.arange(self.n_classes)))
            checks.append(f"clusters by their label {named:.2f}")
            if named <= 0.5:
                return False
        if len(y) >= VETO_LABELS * self.n_classes and len(np.unique(y)) >= 2:
            plain_ok, clustered_ok = self._cross_validate(x, y, unit)
            checks.append(f"cv {plain_ok.mean():.2f} plain vs {clustered_ok.mean():.2f} clustered")
            worse = int(np.sum(plain_ok & ~clustered_ok))
            better = int(np.sum(clustered_ok & ~plain_ok))
            return worse - better < 3 * np.sqrt(max(worse + better, 1))
        return True

    def _cross_validate(
        self, x: np.ndarray, y: np.ndarray, unit: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Whether each human label is predicted right when held out, plain and clustered. The
        folds cluster a sample of the corpus (CV_SAMPLE documents): prototypes need no more, and
        refits stay fast."""
        rng = np.random.default_rng(0)
        folds = np.arange(len(y)) % min(5, len(y))
        rng.shuffle(folds)
        if len(unit) > CV_SAMPLE:
            unit = unit[np.sort(rng.choice(len(unit), CV_SAMPLE, replace=False))]
        plain_ok = np.zeros(len(y), dtype=bool)
        clustered_ok = np.zeros(len(y), dtype=bool)
        for fold in np.unique(folds):
            train, test = folds != fold, folds == fold
            probe = FewShotClassifier(self.label_vectors, self.lam, False, self.temperature)
            probe._fit_inductive(x[train], y[train], self._all_classes(y[train]))
            held_out = probe._map(x[test])
            plain_ok[test] = np.argmax(held_out @ probe.prototypes_.T, axis=1) == y[test]
            # The corpus's priors as the full fit estimated them: EM on every fold's sample
            # would cost most of a refit on many classes.
            clustered = self._cluster(
                probe._map(unit), probe._map(x[train]), y[train], self.label_vectors, self.prior_
            )
            clustered_ok[test] = np.argmax(held_out @ clustered.T, axis=1) == y[test]
        return plain_ok, clustered_ok

    def _wants_discriminant(self, unit: np.ndarray) -> bool:
        """Shared-covariance refinement: on request, or by default when each class has, on
        average, at least as many corpus documents as dimensions to estimate its mean from."""
        if self.discriminant == "auto":
            return len(unit) >= self.n_classes * unit.shape[1]
        return bool(self.discriminant)

    def _discriminant(
        self,
        key: tuple,
        unit: np.ndarray,
        proba: np.ndarray,
        checks: list[str],
    ) -> np.ndarray:
        """A few EM rounds of a Gaussian mixture with one covariance shared by all classes (linear
        discriminant analysis on the corpus), started from the clustered probabilities.

        Cosine to a prototype treats every direction alike; the shared covariance discounts the
        directions along which documents of one class vary (sub-topics, style) and so separates
        broad classes better. Kept only if it agrees with its start beyond chance (min_kappa).
        Human labels are not clamped here: where the clustered probabilities are soft (labels
        about a faint direction, such as sentiment), a handful of one-hot rows would dominate the
        class means and the discriminant would fit their idiosyncrasies.
        """
        mean, cov = _cached((key, "moments"), lambda: _moments(unit))
        dim = unit.shape[1]
        resp = proba
        for _ in range(DISCRIMINANT_ROUNDS):
            counts = resp.sum(axis=0) + 1e-6
            centred = (resp.T @ unit) / counts[:, None] - mean
            within = cov - (centred.T * (counts / counts.sum())) @ centred
            within = (1 - SHRINKAGE) * within + SHRINKAGE * np.trace(within) / dim * np.eye(dim)
            coef = np.linalg.solve(within, centred.T).astype(np.float32)
            bias = np.log(counts / counts.sum()) - 0.5 * np.sum(centred * coef.T, axis=1)
            bias = (bias - mean @ coef).astype(np.float32)
            resp = softmax(unit @ coef + bias)
        kappa = cohen_kappa(np.argmax(proba, 1), np.argmax(resp, 1), self.n_classes)
        checks.append(f"discriminant kappa {kappa:.2f}")
        if kappa < self.min_kappa:
            return proba
        self.discriminant_ = (coef, bias)
        return resp

    def _spread(
        self,
        key: tuple,
        corpus: np.ndarray,
        unit: np.ndarray,
        plain: np.ndarray,
        proba: np.ndarray,
        clamp: tuple[np.ndarray, np.ndarray] | None,
        checks: list[str],
    ) -> None:
        """Label spreading over the corpus graph, as much as neighbours agree (see the class)."""
        n = len(unit)
        k = self.n_neighbors or int(np.clip(n // (8 * self.n_classes), 3, 10))
        if self.smoothing is False or self.smoothing is None or n <= 2 * k:
            self._corpus = _Corpus(key, corpus, None, proba)
            return
        graph = self.neighbours_ = neighbour_graph(unit, k, key)
        if self.smoothing == "auto":
            agree = homophily(plain, graph, self.n_classes)
            alpha = 0.8 * float(np.clip((agree - 0.3) / 0.3, 0.0, 1.0))
            checks.append(f"neighbours kappa {agree:.2f}, spreading {alpha:.2f}")
        else:
            alpha = float(self.smoothing)
        if alpha > 0:
            self.smoothing_ = alpha
            proba = propagate(proba, graph, alpha, clamp=clamp)
        self._corpus = _Corpus(key, corpus, graph if alpha > 0 else None, proba)

    # -- prediction ---------------------------------------------------------------------------

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        with one_blas_thread():
            return self._predict_proba(x)

    def _predict_proba(self, x: np.ndarray) -> np.ndarray:
        corpus = self._corpus
        x = np.asarray(x)
        if corpus is not None and x.shape == corpus.raw.shape and fingerprint(x) == corpus.key:
            return corpus.proba.copy()
        unit = normalize(x)
        if self.discriminant_ is not None:
            coef, bias = self.discriminant_
            proba = softmax(unit @ coef + bias)
        else:
            proba = softmax(self._map(unit) @ self.prototypes_.T / self.temperature)
        if corpus is None or not len(unit):
            return proba
        if corpus.graph is not None:
            graph = _top_k(unit, normalize(corpus.raw), corpus.graph.shape[1])
            alpha = self.smoothing_
            proba = (1 - alpha) * proba + alpha * neighbour_mean(corpus.proba, graph)
        index = _cached((corpus.key, "rows"), lambda: _row_index(corpus.raw))
        rows = _locate(x, corpus.raw, index)
        proba[rows >= 0] = corpus.proba[rows[rows >= 0]]
        return proba

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """Log-probabilities, shape (n, n_classes): without the corpus, cosine similarity to the
        class prototypes over the temperature, shifted per row."""
        return np.log(np.maximum(self.predict_proba(x), 1e-30))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(self.predict_proba(x), axis=1)
