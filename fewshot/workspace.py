"""One project's corpus, labels and human annotations, with the classifiers fitted on them.

The single place where the app and the command line turn stored state into predictions, so every
page shows the same numbers. Document embeddings are computed once per corpus (through the cache);
everything that depends on labels is refitted on demand: under a second on 10,000 documents, a
few on 100,000, and the app leaves the calibration's cross-validation to the background.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import sparse

from fewshot import FewshotError, mistakes
from fewshot.calibrate import (
    Estimate,
    corpus_accuracy,
    corpus_estimates,
    fit_temperature,
    match_confidence,
    temper,
)
from fewshot.classify import FewShotClassifier
from fewshot.encoders import Progress
from fewshot.graph import MAX_NEIGHBOURS, neighbour_graph
from fewshot.labeler import Labeler, score_columns
from fewshot.labelspace import LabelSpace
from fewshot.lexical import TERM_PARTS, LexicalExpert, TermSpace
from fewshot.numeric import cohen_kappa, fingerprint, normalize, text_fingerprint
from fewshot.search import corpus_texts
from fewshot.stored import stored
from fewshot.views import DEFAULT_VIEW, VIEWS, Embedder
from fewshot.vouch import Verdict, vouch


@dataclass
class Prediction:
    """A fitted view's output over the whole corpus."""

    view: str
    labels: LabelSpace
    proba: np.ndarray  # (n_docs, n_labels)
    classifier: FewShotClassifier
    fitted_on: np.ndarray  # ids of the human-labeled documents it was fitted on
    lexical: LexicalExpert | None = None  # the n-gram view combined with the classifier's, if any
    fitted_labels: np.ndarray | None = None  # their human labels (class positions)
    temperature: float = 1.0  # applied to the fitted log-probabilities (fewshot.calibrate)
    calibration: str = "as fitted"  # where the temperature came from
    held_out: np.ndarray | None = None  # cross-validated probabilities of fitted_on, if computed
    held_out_labels: np.ndarray | None = None  # their human labels (class positions)
    fit: tuple = ()  # (transductive, lexical): the fit's settings, to match its cross-validation
    uncalibrated: np.ndarray | None = None  # proba before the temperature
    corpus_temperature: float = 1.0  # the temperature the corpus's accuracy estimate asks for
    estimate: float | None = None  # that estimate
    pending: bool = False  # its cross-validation is still to come (predict(wait=False))
    refined: Prediction | None = None  # the corpus-refined fit this one replaced (`vouch`)

    @property
    def cross_validated_accuracy(self) -> float | None:
        """Share of the human labels a fit without them predicts right (None: not computed)."""
        if self.held_out is None:
            return None
        return float(np.mean(np.argmax(self.held_out, axis=1) == self.held_out_labels))

    def estimates(self) -> tuple[Estimate, list[Estimate]]:
        """Accuracy on the whole corpus and documents per label, from the calibrated scores
        (human-labeled documents counted as labeled)."""
        known = None if self.fitted_labels is None else (self.fitted_on, self.fitted_labels)
        return corpus_estimates(self.proba, known)

    @property
    def predicted(self) -> np.ndarray:
        return np.argmax(self.proba, axis=1)

    def table(self, texts: list[str], human: pd.Series | None = None) -> pd.DataFrame:
        """text, human label, predicted label, score, margin to the runner-up, a column per label."""
        top2 = np.sort(self.proba, axis=1)[:, -2:]
        frame = pd.DataFrame(
            {
                "id": np.arange(len(texts)),
                "text": texts,
                "human_label": human if human is not None else pd.Series([None] * len(texts)),
            }
        )
        scores = score_columns(self.labels.names, self.proba)
        scores.insert(2, "margin", top2[:, 1] - top2[:, 0])
        return pd.concat([frame, scores], axis=1)


MIN_HELD_OUT = 20  # human labels before cross-validation has a say (temperature, `vouch`)
CALIBRATION_LABELS = 40  # held-out labels worth as much as the corpus's estimate
FOLDS = 5  # of the cross-validation on the human labels


@dataclass(frozen=True)
class HeldOut:
    """A cross-validation on the human labels, kept for the fits that come after it."""

    ids: np.ndarray  # the human-labeled documents
    y: np.ndarray  # their labels (class positions)
    proba: np.ndarray  # their held-out probabilities, from fits with the settings of the key
    temperature: float  # fitted to those
    plain: np.ndarray | None = None  # the Wmap alone's held-out probabilities (refining fits)
    plain_temperature: float = 1.0
    verdict: Verdict | None = None  # whether the corpus refinement beats the Wmap alone

    @property
    def dropped(self) -> bool:
        return self.verdict is not None and not self.verdict.keep

    @property
    def accuracy(self) -> float:
        """Of the model the fits use: the Wmap alone where the refinement was dropped."""
        proba = self.plain if self.dropped else self.proba
        return float(np.mean(np.argmax(proba, axis=1) == self.y))


class Workspace:
    """Corpus embeddings in every view plus the fits on the current labels."""

    def __init__(
        self, texts: list[str], embedder: Embedder, progress: Progress | None = None
    ) -> None:
        if not texts:
            raise FewshotError("The corpus is empty: add documents first.")
        self.texts = list(texts)
        self.key = text_fingerprint(self.texts)
        self.embedder = embedder
        self.views = embedder.documents(self.texts, self.key, progress=progress)
        self._label_cache: tuple[LabelSpace, dict[str, np.ndarray]] | None = None
        self.term_space = TermSpace()  # fitted on the corpus with the first use of `terms`
        self._terms: list[sparse.csr_matrix | None] = []  # computed on first use, then kept
        self._search_texts: pa.Array | None = None
        # per (labels, view, transductive, lexical)
        self._held_out_cache: dict[tuple, HeldOut] = {}
        self.fit_seconds: dict[str, float] = {}  # per view, the last fit's: what the next will take

    @property
    def terms(self) -> sparse.csr_matrix | None:
        """The corpus's term matrix (the lexical view): fitted once per corpus (3 s at 10,000
        documents, 30 s at 100,000) and kept on disk (`fewshot.stored`); None when the corpus has
        no repeated term. Fresh or read back, it goes through the same arrays."""
        if not self._terms:
            arrays = stored((self.key, repr(TERM_PARTS)), "terms", self._fit_terms)
            matrix = None
            if arrays:
                self.term_space, matrix = TermSpace.from_arrays(arrays)
            self._terms.append(matrix)
        return self._terms[0]

    def _fit_terms(self) -> dict[str, np.ndarray]:
        matrix = self.term_space.fit_transform(self.texts)
        return {} if matrix is None else self.term_space.to_arrays(matrix)

    def prepare(self, view: str = DEFAULT_VIEW) -> None:
        """What the view's first fit needs that depends on the corpus alone, computed now (while
        the user still watches the embedding finish) and kept on disk: the n-gram matrix and the
        neighbour graph. The first visit of a page then fits on labels only."""
        _ = self.terms
        if len(self.views[view]) > 2 * MAX_NEIGHBOURS:  # smaller ones are not spread (classify)
            self.neighbours(view)

    def neighbours(self, view: str = DEFAULT_VIEW) -> np.ndarray:
        """The view's neighbour graph, MAX_NEIGHBOURS per document (`fewshot.graph`): the one a
        fit on a large corpus spreads over, computed once per corpus and kept on disk."""
        raw = self.views[view]
        return neighbour_graph(normalize(raw), MAX_NEIGHBOURS, fingerprint(raw))

    @property
    def search_texts(self) -> pa.Array:
        """The texts as Arrow strings for `fewshot.search.find`: built once, then kept."""
        if self._search_texts is None:
            self._search_texts = corpus_texts(self.texts)
        return self._search_texts

    def label_vectors(self, labels: LabelSpace) -> dict[str, np.ndarray]:
        # Read the cache once: the app shares a workspace between sessions (threads).
        cached = self._label_cache
        if cached is None or cached[0] != labels:
            cached = (labels, self.embedder.labels(labels))
            self._label_cache = cached
        return cached[1]

    def predict(
        self,
        labels: LabelSpace,
        human: dict[int, str] | None = None,
        view: str = DEFAULT_VIEW,
        transductive: bool | str = "auto",
        lexical: bool = True,
        wait: bool = True,
        progress: Progress | None = None,
    ) -> Prediction:
        """Fit the view on the human labels (doc id -> label name) and the corpus; score every doc.

        With `lexical` (and a corpus-using fit), the corpus's n-gram view is trained on the
        view's probabilities and combined with them (`fewshot.lexical`), weighted as the data say.
        Without `wait`, a cross-validation the calibration needs is left to `cross_validated_
        accuracy` (the app runs it in the background; five fits are seconds on a large corpus):
        the prediction is then `pending`, tempered by what is at hand, and `calibrated` later.
        progress(done, total) counts fits: one, and the cross-validation's when it waits for them.
        """
        if view not in VIEWS:
            raise FewshotError(f"Unknown view '{view}'; choose one of {', '.join(VIEWS)}.")
        ids, y = self._human(labels, human)
        held = self._held_out_cache.get((labels, view, transductive, lexical))
        cross_validate = bool(transductive) and self._wants_held_out(ids, y)
        cross_validate = cross_validate and not self._fresh(held, ids)
        if held is not None and held.dropped and self._fresh(held, ids):
            # The verdict at hand still speaks for these labels: no refined fit to throw away.
            return self._without_refinement(labels, view, ids, y, held, (transductive, lexical))
        folds = min(FOLDS, len(ids)) if cross_validate and wait else 0
        report = progress or (lambda done, total: None)
        report(0, 1 + folds)
        prediction, embedding = self._fit(labels, view, ids, y, transductive, lexical)
        report(1, 1 + folds)
        if not transductive:
            return prediction  # cosine at the classifier's temperature is calibrated as it is
        classifier = prediction.classifier
        plain = np.eye(len(labels))[classifier.plain_] if classifier.transductive_used_ else None
        prediction.estimate = corpus_accuracy(embedding, plain)
        prediction.corpus_temperature = match_confidence(prediction.proba, prediction.estimate)
        prediction.uncalibrated, prediction.fit = prediction.proba, (transductive, lexical)
        if cross_validate:
            if wait:
                fold_done = lambda done, total: report(1 + done, 1 + total)  # noqa: E731
                self._cross_validate(labels, view, ids, y, transductive, lexical, fold_done)
            else:
                prediction.pending = True
        return self._tempered(prediction)

    def calibrated(self, prediction: Prediction) -> Prediction:
        """A pending prediction tempered (and vouched for) anew once its cross-validation is done
        (else as it is)."""
        if not prediction.pending:
            return prediction
        if not self._fresh(self._held_out_entry(prediction), prediction.fitted_on):
            return prediction
        return self._tempered(replace(prediction.refined or prediction, pending=False))

    @staticmethod
    def _wants_held_out(ids: np.ndarray, y: np.ndarray) -> bool:
        return len(ids) >= MIN_HELD_OUT and len(np.unique(y)) >= 2

    def _held_out_entry(self, prediction: Prediction) -> HeldOut | None:
        key = (prediction.labels, prediction.view, *prediction.fit)
        return self._held_out_cache.get(key)

    @staticmethod
    def _fresh(held: HeldOut | None, ids: np.ndarray) -> bool:
        """Whether a cached cross-validation still speaks for these human labels: its labels are
        among them, and they have grown by at most a tenth since. It changes slowly, and the app
        refits on every label."""
        return held is not None and set(held.ids) <= set(ids) and len(ids) <= 1.1 * len(held.ids)

    def _tempered(self, prediction: Prediction) -> Prediction:
        """Temper the prediction (fewshot.calibrate): by the corpus's accuracy estimate, and once
        there are MIN_HELD_OUT human labels also by cross-validation on them, weighted by their
        number against CALIBRATION_LABELS (a few held-out labels give a noisy temperature). A
        pending prediction uses the last cross-validation at hand, if any; where that found the
        corpus refinement doing harm (`vouch`), the Wmap alone takes the prediction's place."""
        temperature = prediction.corpus_temperature
        how = f"from the corpus (estimated accuracy {prediction.estimate:.0%})"
        held = self._held_out_entry(prediction)
        if held is not None and self._wants_held_out(
            prediction.fitted_on, prediction.fitted_labels
        ):
            if held.dropped:
                return self._without_refinement(
                    prediction.labels,
                    prediction.view,
                    prediction.fitted_on,
                    prediction.fitted_labels,
                    held,
                    prediction.fit,
                    prediction,
                )
            temperature = _blend(held, held.temperature, temperature)
            how = (
                f"on {len(held.ids)} cross-validated human labels and the corpus "
                f"({prediction.estimate:.0%})"
            )
            prediction.held_out, prediction.held_out_labels = held.proba, held.y
        if prediction.pending:
            how += "; cross-validating the newest labels"
        prediction.proba = temper(prediction.uncalibrated, temperature)
        prediction.temperature, prediction.calibration = temperature, how
        return prediction

    def _without_refinement(
        self,
        labels: LabelSpace,
        view: str,
        ids: np.ndarray,
        y: np.ndarray,
        held: HeldOut,
        fit: tuple,
        refined: Prediction | None = None,
    ) -> Prediction:
        """The Wmap alone in place of a corpus-refined fit (if one was made: `refined`) that the
        held-out labels found worse, tempered by its own cross-validation (cosine is calibrated
        as it is, for the rest). `fit` keeps the refined settings, under which the
        cross-validation is kept."""
        plain, _ = self._fit(labels, view, ids, y, False, False)
        plain.classifier.selection_ = held.verdict.reason
        temperature = _blend(held, held.plain_temperature, 1.0)
        pending = refined is not None and refined.pending
        how = f"on {len(held.ids)} cross-validated human labels"
        if pending:
            how += "; cross-validating the newest labels"
        return replace(
            plain,
            proba=temper(plain.proba, temperature),
            uncalibrated=plain.proba,
            temperature=temperature,
            calibration=how,
            held_out=held.plain,
            held_out_labels=held.y,
            fit=fit,
            pending=pending,
            refined=refined,
        )

    def _cross_validate(
        self,
        labels: LabelSpace,
        view: str,
        ids: np.ndarray,
        y: np.ndarray,
        transductive: bool | str,
        lexical: bool,
        progress: Progress | None = None,
    ) -> HeldOut:
        """Held-out probabilities of the human labels, kept (with their temperature, and for a
        fit that decides on the corpus by itself, the Wmap alone's and the `vouch` verdict) for
        the calibration of later fits with these settings."""
        held_out, prior = self._held_out(labels, view, ids, y, transductive, lexical, progress)
        held = HeldOut(ids, y, held_out, fit_temperature(held_out, y))
        if transductive == "auto" and len(np.unique(y)) >= 2:
            plain = self._held_out_plain(labels, view, ids, y)
            held = replace(
                held,
                plain=plain,
                plain_temperature=fit_temperature(plain, y),
                verdict=vouch(held_out, plain, y, prior),
            )
        if self._wants_held_out(ids, y):
            self._held_out_cache[(labels, view, transductive, lexical)] = held
        return held

    def _fit(
        self,
        labels: LabelSpace,
        view: str,
        ids: np.ndarray,
        y: np.ndarray,
        transductive: bool | str = "auto",
        lexical: bool = True,
    ) -> tuple[Prediction, np.ndarray]:
        """The uncalibrated prediction, and the embedding classifier's part of it."""
        started = time.perf_counter()
        docs = self.views[view]
        classifier = FewShotClassifier(self.label_vectors(labels)[view], transductive=transductive)
        classifier.fit(docs[ids], y, corpus=docs)
        embedding = proba = classifier.predict_proba(docs)
        expert = None
        terms = self.terms if lexical and transductive else None
        if terms is not None:
            expert = LexicalExpert().fit(terms, proba, ids, y)
            proba = expert.combined_
        prediction = Prediction(view, labels, proba, classifier, ids, expert, fitted_labels=y)
        self.fit_seconds[view] = time.perf_counter() - started
        return prediction, embedding

    def _held_out(
        self,
        labels: LabelSpace,
        view: str,
        ids: np.ndarray,
        y: np.ndarray,
        transductive: bool | str = "auto",
        lexical: bool = True,
        progress: Progress | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Uncalibrated probabilities of each human-labeled document from a fit without its fold,
        and the class shares that fit predicts over the corpus (progress: folds done of FOLDS)."""
        out = np.zeros((len(ids), len(labels)), dtype=np.float32)
        prior = np.zeros_like(out)
        folds = _folds(len(ids))
        for fold, (train, test) in enumerate(folds):
            fitted, _ = self._fit(labels, view, ids[train], y[train], transductive, lexical)
            out[test] = fitted.proba[ids[test]]
            prior[test] = fitted.proba.mean(axis=0)
            if progress is not None:
                progress(fold + 1, len(folds))
        return out, prior

    def _held_out_plain(
        self, labels: LabelSpace, view: str, ids: np.ndarray, y: np.ndarray
    ) -> np.ndarray:
        """The same folds' held-out probabilities from the Wmap alone (no corpus: milliseconds)."""
        docs, vectors = self.views[view], self.label_vectors(labels)[view]
        out = np.zeros((len(ids), len(labels)), dtype=np.float32)
        for train, test in _folds(len(ids)):
            plain = FewShotClassifier(vectors, transductive=False)
            out[test] = plain.fit(docs[ids[train]], y[train]).predict_proba(docs[ids[test]])
        return out

    def labeler(self, prediction: Prediction, label_set: str = "") -> Labeler:
        """The prediction's fit as a portable labeler (`fewshot.labeler`): new documents get
        what this corpus taught, without the corpus."""
        lexical = prediction.lexical
        return Labeler(
            labels=prediction.labels,
            view=prediction.view,
            encoders=self.embedder.identity(prediction.view),
            model=prediction.classifier.model_,
            temperature=prediction.temperature,
            terms=self.term_space if lexical is not None else None,
            lexical=lexical,
            about={
                "label_set": label_set,
                "documents": len(self.texts),
                "human_labels": len(prediction.fitted_on),
                "calibration": prediction.calibration,
                "selection": prediction.classifier.selection_,
            },
        )

    @staticmethod
    def agreement(predictions: dict[str, Prediction]) -> pd.DataFrame:
        """Share of documents on which each pair of views picks the same label, and kappa."""
        rows = []
        names = list(predictions)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                pa, pb = predictions[a].predicted, predictions[b].predicted
                rows.append(
                    {
                        "views": f"{VIEWS[a]} / {VIEWS[b]}",
                        "agree": float(np.mean(pa == pb)),
                        "kappa": cohen_kappa(pa, pb, len(predictions[a].labels)),
                    }
                )
        return pd.DataFrame(rows)

    def suggest(
        self,
        prediction: Prediction,
        labeled: set[int],
        n: int = 5,
        settled: Iterable[int] = (),
    ) -> list[int]:
        """Documents to label next: where the model is least sure, spread over the corpus.

        settled: documents labeled after the prediction was fitted (the app shows the next
        document before it refits); their neighbours are passed over, as their label will settle
        them though this fit still doubts them.

        Doubt is one minus the margin between the top two labels, averaged with the doubt of the
        document's nearest neighbours: a label settles its neighbourhood too, so a doubtful
        region beats a lone odd document. Among the most doubtful, a greedy farthest-point pick
        keeps the suggestions from all coming out of one corner.
        """
        top2 = np.sort(prediction.proba, axis=1)[:, -2:]
        doubt = 1 - (top2[:, 1] - top2[:, 0])
        raw = self.views[prediction.view]
        graph = getattr(prediction.classifier, "neighbours_", None)
        if graph is None and len(raw) > 20:
            graph = self.neighbours(prediction.view)
        if graph is not None and len(graph) == len(doubt):
            doubt = 0.5 * doubt + 0.5 * doubt[graph].mean(axis=1)
        order = np.argsort(-doubt, kind="stable")
        done = np.fromiter(labeled, dtype=np.int64, count=len(labeled))
        order = order[~np.isin(order, done)]
        settled = np.fromiter(settled, dtype=np.int64)
        if graph is not None and len(graph) == len(doubt) and len(settled):
            unsettled = order[~np.isin(order, graph[settled])]
            order = unsettled if len(unsettled) else order
        candidates = [int(i) for i in order[: max(50, 10 * n)]]
        if not candidates:
            return []
        docs = normalize(raw[candidates])  # not the whole corpus: this runs before each document
        chosen = [0]
        closest = docs @ docs[0]
        while len(chosen) < min(n, len(candidates)):
            score = (1 - closest) * doubt[candidates]
            score[chosen] = -np.inf
            pick = int(np.argmax(score))
            chosen.append(pick)
            closest = np.maximum(closest, docs @ docs[pick])
        return [candidates[i] for i in chosen]

    def cross_validated_accuracy(
        self, labels: LabelSpace, human: dict[int, str], view: str = DEFAULT_VIEW
    ) -> float | None:
        """Accuracy on the human labels, each fold predicted by a fit on the others (None if < 4);
        it also calibrates later fits of the view (what `predict(wait=False)` left pending)."""
        ids, y = self._human(labels, human)
        if len(ids) < 4:
            return None
        held = self._held_out_cache.get((labels, view, "auto", True))
        if held is None or not np.array_equal(held.ids, ids) or not np.array_equal(held.y, y):
            held = self._cross_validate(labels, view, ids, y, "auto", True)
        return held.accuracy

    def likely_mistakes(
        self, labels: LabelSpace, human: dict[int, str] | None, view: str = DEFAULT_VIEW
    ) -> pd.DataFrame:
        """Human labels a fit without them contradicts, most likely mistake first
        (`fewshot.mistakes`), on the calibrated scale.

        Reads the cross-validation `cross_validated_accuracy` keeps while it still speaks for
        these labels (`_fresh`: documents labeled since, a tenth at most, wait for the next one),
        else runs it. A document's held-out probabilities do not depend on its own label, so a
        label corrected since is judged as it is now and leaves the list.
        """
        ids, y = self._human(labels, human)
        if len(ids) < mistakes.MIN_LABELS:
            return mistakes.empty()
        key = (labels, view, "auto", True)
        if not self._wants_held_out(ids, y):  # kept apart: too few to calibrate later fits
            key = ("likely_mistakes", *key)
        held = self._held_out_cache.get(key)
        if not self._fresh(held, ids):
            held = self._held_out_cache[key] = self._cross_validate(
                labels, view, ids, y, "auto", True
            )
        now = dict(zip(ids.tolist(), y.tolist()))
        y_now = np.array([now[i] for i in held.ids.tolist()], dtype=np.int64)
        return mistakes.likely_mistakes(
            temper(held.proba, held.temperature), y_now, held.ids, labels.names
        )

    @staticmethod
    def _human(labels: LabelSpace, human: dict[int, str] | None) -> tuple[np.ndarray, np.ndarray]:
        known = {n.casefold() for n in labels.names}
        pairs = [(i, lab) for i, lab in (human or {}).items() if str(lab).casefold() in known]
        ids = np.array([i for i, _ in pairs], dtype=np.int64)
        return ids, labels.index([lab for _, lab in pairs])


def _folds(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) masks of the cross-validation on n human labels: FOLDS folds at most, the
    same for every fit (seeded), so held-out probabilities of two models pair up."""
    fold_of = np.arange(n) % min(FOLDS, n)
    np.random.default_rng(0).shuffle(fold_of)
    return [(fold_of != fold, fold_of == fold) for fold in range(fold_of.max() + 1)]


def _blend(held: HeldOut, cross_validated: float, otherwise: float) -> float:
    """A temperature between the cross-validated one and another, weighted by the number of
    held-out labels against CALIBRATION_LABELS (a few held-out labels give a noisy one)."""
    weight = len(held.ids) / (len(held.ids) + CALIBRATION_LABELS)
    return float(np.exp(weight * np.log(cross_validated) + (1 - weight) * np.log(otherwise)))
