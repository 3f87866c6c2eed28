"""Do no harm on the human labels: the corpus refinement gives way to the Wmap alone where held-out
labels find it worse, judged without the corpus's priors."""

import numpy as np

from fewshot.bench import sample_per_class
from fewshot.datasets import load_dataset
from fewshot.labelspace import LabelSpace
from fewshot.vouch import vouch
from fewshot.workspace import Workspace


def _sure(y: np.ndarray, right: float, n_classes: int = 3) -> np.ndarray:
    """Held-out probabilities that give each label `right` and share the rest."""
    proba = np.full((len(y), n_classes), (1 - right) / (n_classes - 1))
    proba[np.arange(len(y)), y] = right
    return proba


def test_the_refinement_is_dropped_only_when_held_out_labels_find_it_clearly_worse():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    good = rng.dirichlet(np.ones(3), size=30) * 0.3 + 0.7 * _sure(y, 0.9)
    noise = rng.dirichlet(np.ones(3), size=30)
    equal = np.full((30, 3), 1 / 3)
    dropped = vouch(noise, good, y, equal)
    assert not dropped.keep and dropped.reason.endswith("so it is dropped")
    assert vouch(good, noise, y, equal).keep
    assert vouch(good, good, y, equal).keep  # no worse: kept
    # Only surer, not better: each is judged at its own temperature, so it is a tie.
    sharper = good**3 / np.sum(good**3, axis=1, keepdims=True)
    assert vouch(good, sharper, y, equal).keep


def test_the_refined_fit_is_judged_without_its_corpus_priors():
    # The refined fit knows the corpus is 90/5/5 and says so in its probabilities; the human
    # labels are 10 of each, chosen by a user. Divided by its priors, it is the better model.
    y = np.repeat(np.arange(3), 10)
    prior = np.array([0.9, 0.05, 0.05])
    refined = _sure(y, 0.8) * prior
    refined /= refined.sum(axis=1, keepdims=True)
    plain = _sure(y, 0.5)
    assert np.mean(np.argmax(refined, axis=1) == y) < 0.5 < np.mean(np.argmax(plain, axis=1) == y)
    assert vouch(refined, plain, y, np.tile(prior, (30, 1))).keep
    assert not vouch(refined, plain, y, np.full((30, 3), 1 / 3)).keep


def test_labels_of_form_on_a_corpus_of_topics_fall_back_to_the_wmap_alone(embedder):
    # banking77 texts labeled by their form (how, why, statement, ...): the corpus clusters by
    # intent, which the labels cut across. 8 labels per class, cross-validated, see it.
    texts, gold_names = load_dataset("banking77_form")
    texts, gold_names = texts[:600], gold_names[:600]
    labels = LabelSpace(tuple(sorted(set(gold_names))))
    gold = labels.index(gold_names)
    ids = sample_per_class(gold, 8, np.random.default_rng(2))
    human = {int(i): gold_names[i] for i in ids}
    rest = np.setdiff1d(np.arange(len(texts)), ids)
    ws = Workspace(texts, embedder)
    pending = ws.predict(labels, human, wait=False)  # as the app: refined, until cross-validated
    assert pending.pending and pending.classifier.transductive_used_
    accuracy = ws.cross_validated_accuracy(labels, human)
    done = ws.calibrated(pending)
    assert not done.pending and done.refined.uncalibrated is pending.uncalibrated
    assert not done.classifier.transductive_used_ and done.lexical is None
    assert done.classifier.selection_.endswith("so it is dropped")
    assert done.cross_validated_accuracy == accuracy
    plain = ws.predict(labels, human, transductive=False)
    assert np.array_equal(done.predicted, plain.predicted)
    refined_right = np.mean(pending.predicted[rest] == gold[rest])
    assert refined_right + 0.05 < np.mean(done.predicted[rest] == gold[rest])
    # Later fits read the verdict at hand: the Wmap alone at once, no refined fit, nothing pending.
    again = ws.predict(labels, human, wait=False)
    assert not again.pending and again.refined is None
    assert (
        np.array_equal(again.predicted, plain.predicted) and again.calibration == done.calibration
    )
