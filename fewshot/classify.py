"""How the corpus refines the few-shot classifier: cosine to label prototypes, bent by a Wmap,
then clustering, a discriminant and label spreading on the unlabeled corpus where it agrees with
the labels. What predicting a new document needs afterwards is in `fewshot.predictor`.

Everything here is numpy in, numpy out; classes are the integer positions of a `LabelSpace`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fewshot import FewshotError
from fewshot.graph import (
    MAX_NEIGHBOURS,
    cached,
    homophily,
    locate,
    neighbour_graph,
    propagate,
    row_index,
)
from fewshot.maps import Wmap
from fewshot.numeric import cohen_kappa, fingerprint, normalize, one_blas_thread, softmax
from fewshot.predictor import CosineModel, DiscriminantModel, EmbeddingModel


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


CV_SAMPLE = 2_000
VETO_LABELS = 5  # human labels per class before cross-validation may veto clustering
DISCRIMINANT_ROUNDS = 2
SHRINKAGE = 0.1  # of the shared covariance toward a multiple of the identity
PRIOR_PSEUDO_DOCS = 20  # per class, shrinking the clustering's class priors toward equal
SUREST_SHARE = 0.2  # of the corpus, where the plain model is surest
MIN_SUREST_KEPT = 0.8  # of the plain predictions there that clustering must keep


def _moments(unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the corpus rows."""
    mean = unit.mean(axis=0)
    cov = (unit.T @ unit).astype(np.float64) / len(unit) - np.outer(mean, mean)
    return mean, cov


def fit_discriminant(
    unit: np.ndarray, resp: np.ndarray, moments: tuple[np.ndarray, np.ndarray]
) -> DiscriminantModel:
    """Linear discriminant analysis from soft class memberships of the corpus rows (resp), its
    shared covariance shrunk by SHRINKAGE toward a multiple of the identity."""
    mean, cov = moments
    dim = unit.shape[1]
    counts = resp.sum(axis=0) + 1e-6
    centred = (resp.T @ unit) / counts[:, None] - mean
    within = cov - (centred.T * (counts / counts.sum())) @ centred
    within = (1 - SHRINKAGE) * within + SHRINKAGE * np.trace(within) / dim * np.eye(dim)
    coef = np.linalg.solve(within, centred.T).astype(np.float32)
    bias = np.log(counts / counts.sum()) - 0.5 * np.sum(centred * coef.T, axis=1)
    return DiscriminantModel(coef, (bias - mean @ coef).astype(np.float32))


@dataclass
class _Corpus:
    """The fitted corpus and its refined probabilities, for predict_proba on its rows."""

    key: tuple
    raw: np.ndarray  # the corpus as given (not copied)
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
       (`min_kappa`) between the clustered and the plain predictions, most of the plain
       model's surest predictions kept, most clusters still nearest their own label
       (zero-shot), and no veto from cross-validation on the human labels (corpus clusters
       about something else than the labels, such as topics under sentiment labels or intents
       under labels of form, fail these);
    2. a shared-covariance refinement (`discriminant`, two EM rounds of linear discriminant
       analysis), when the clustering was kept and the corpus has, on average, at least as many
       documents per class as dimensions;
    3. label spreading over the corpus's nearest-neighbour graph: each document's probabilities
       are mixed with its neighbours' for a few rounds, and labeled documents pass their label on.
       How much (`smoothing_`, 0 to 0.8) follows from how well neighbours agree on the labels of
       the plain model, which never saw the corpus (`homophily`, a kappa): not at all up to 0.3,
       fully from 0.6. None where clustering overturned the plain model's surest predictions:
       the neighbours follow the same structure the labels cut across (banking77 labeled by
       form, zero-shot: macro-F1 45.6 with spreading, 50.7 without, plain 48.6).

    Documents of the fitted corpus get these probabilities. Any other document gets `model_`'s
    (`fewshot.predictor`), which needs no corpus: after the discriminant, one more discriminant
    fitted on the final, spread probabilities of the corpus (distilled, so new documents get
    most of what spreading gave the corpus: on AG News halves, 0.5 of the 1.3 points lost by
    leaving the corpus); otherwise cosine to the prototypes through the Wmap. `selection_` says
    what was chosen and why. The neighbour graph, computed once per corpus and cached, is
    `neighbours_`.
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
        self.discriminant_: DiscriminantModel | None = None
        self.model_: EmbeddingModel = self._cosine()
        self._corpus: _Corpus | None = None
        self.plain_: np.ndarray | None = None
        self.prior_: np.ndarray | None = None  # the corpus's class priors (EM), when clustered
        self.surest_kept_: float | None = None  # share of plain's surest kept by clustering
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
        cosines = docs @ self.label_vectors.T
        plain = self.plain_ = np.argmax(cosines, axis=1)
        self.prior_ = estimate_priors(softmax(cosines / self.temperature))
        clustered = self._cluster(docs, anchors, y, self.label_vectors, self.prior_)
        checks = []
        if self.transductive is True or self._vouch(x, y, unit, cosines, docs, clustered, checks):
            self.prototypes_ = clustered
            self.transductive_used_ = True
        proba = softmax(docs @ self.prototypes_.T / self.temperature)
        clamp = None
        if len(y):
            rows = locate(raw, corpus, cached((key, "rows"), lambda: row_index(corpus)))
            if (rows >= 0).any():
                clamp = (rows[rows >= 0], np.eye(self.n_classes, dtype=np.float32)[y[rows >= 0]])
        if self.transductive_used_ and self._wants_discriminant(unit):
            proba = self._discriminant(key, unit, proba, checks)
        if self.surest_kept_ is None or self.surest_kept_ >= MIN_SUREST_KEPT:
            proba = self._spread(key, unit, plain, proba, clamp, checks)
        else:
            checks.append("no spreading")
        self._corpus = _Corpus(key, corpus, proba)
        self.model_ = self._cosine()
        if self.discriminant_ is not None:
            moments = cached((key, "moments"), lambda: _moments(unit))
            self.model_ = fit_discriminant(unit, proba, moments)
        self.selection_ = "; ".join(checks) or self.selection_
        return self

    def _cosine(self) -> CosineModel:
        return CosineModel(self.wmap_.coef_, self.prototypes_, self.temperature)

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
        cosines: np.ndarray,
        docs: np.ndarray,
        clustered: np.ndarray,
        checks: list[str],
    ) -> bool:
        """Decide from the data at hand whether clustering the corpus helps.

        First the corpus: clustering must agree beyond chance with the plain predictions (label
        embeddings, documents through the Wmap), or it is following some other structure than the
        labels; and it must keep at least MIN_SUREST_KEPT of the plain predictions on the
        SUREST_SHARE of documents where plain is surest (largest margin), the ones most likely
        right. Clusters about something the labels cut across overturn them wholesale (banking77
        texts labeled by their form: 74% kept; every set where clustering helps: 85% or more).
        Without human labels nothing anchors the clusters, so most of them (more than
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
        plain = np.argmax(cosines, axis=1)
        predicted = np.argmax(docs @ clustered.T, axis=1)
        kappa = cohen_kappa(plain, predicted, self.n_classes)
        checks.append(f"kappa {kappa:.2f}")
        if kappa < self.min_kappa:
            return False
        top2 = np.sort(cosines, axis=1)[:, -2:]
        margin = top2[:, -1] - top2[:, 0]
        surest = margin >= np.quantile(margin, 1 - SUREST_SHARE)
        kept = self.surest_kept_ = float(np.mean(plain[surest] == predicted[surest]))
        checks.append(f"surest kept {kept:.2f}")
        if kept < MIN_SUREST_KEPT:
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
        moments = cached((key, "moments"), lambda: _moments(unit))
        resp = proba
        for _ in range(DISCRIMINANT_ROUNDS):
            model = fit_discriminant(unit, resp, moments)
            resp = model.predict_proba(unit)
        kappa = cohen_kappa(np.argmax(proba, 1), np.argmax(resp, 1), self.n_classes)
        checks.append(f"discriminant kappa {kappa:.2f}")
        if kappa < self.min_kappa:
            return proba
        self.discriminant_ = model
        return resp

    def _spread(
        self,
        key: tuple,
        unit: np.ndarray,
        plain: np.ndarray,
        proba: np.ndarray,
        clamp: tuple[np.ndarray, np.ndarray] | None,
        checks: list[str],
    ) -> np.ndarray:
        """Label spreading over the corpus graph, as much as neighbours agree (see the class)."""
        n = len(unit)
        k = self.n_neighbors or int(np.clip(n // (8 * self.n_classes), 3, MAX_NEIGHBOURS))
        if self.smoothing is False or self.smoothing is None or n <= 2 * k:
            return proba
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
        return proba

    # -- prediction ---------------------------------------------------------------------------

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        with one_blas_thread():
            return self._predict_proba(x)

    def _predict_proba(self, x: np.ndarray) -> np.ndarray:
        corpus = self._corpus
        x = np.asarray(x)
        if corpus is not None and x.shape == corpus.raw.shape and fingerprint(x) == corpus.key:
            return corpus.proba.copy()
        proba = self.model_.predict_proba(x) if len(x) else np.zeros((0, self.n_classes))
        if corpus is not None and len(x):
            index = cached((corpus.key, "rows"), lambda: row_index(corpus.raw))
            rows = locate(x, corpus.raw, index)
            proba[rows >= 0] = corpus.proba[rows[rows >= 0]]
        return proba

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """Log-probabilities, shape (n, n_classes)."""
        return np.log(np.maximum(self.predict_proba(x), 1e-30))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(self.predict_proba(x), axis=1)
