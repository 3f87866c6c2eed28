"""Calibration: the temperature, the corpus estimates, the class priors, and the workspace's use."""

import numpy as np
import pytest

from fewshot.calibrate import (
    corpus_accuracy,
    corpus_estimates,
    fit_temperature,
    match_confidence,
    temper,
)
from fewshot.classify import estimate_priors
from fewshot.datasets import resample
from fewshot.evaluate import expected_calibration_error, macro_f1
from fewshot.labelspace import LabelSpace
from fewshot.numeric import softmax
from fewshot.workspace import CALIBRATION_LABELS, MIN_HELD_OUT, Prediction, Workspace


def overconfident(n=4000, classes=4, sharpen=3.0, seed=0):
    """Labels drawn from softmax(z), probabilities softmax(sharpen * z): too sure by `sharpen`."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, classes))
    truth = softmax(z)
    y = np.array([rng.choice(classes, p=p) for p in truth])
    return softmax(sharpen * z), y


def test_temper_keeps_the_ranking_and_one_is_the_identity():
    proba, _ = overconfident(200)
    assert np.allclose(temper(proba, 1.0), proba, atol=1e-6)
    softer = temper(proba, 2.0)
    assert (np.argmax(softer, 1) == np.argmax(proba, 1)).all()
    assert softer.max(axis=1).mean() < proba.max(axis=1).mean()


def test_fitted_temperature_undoes_overconfidence():
    proba, y = overconfident()
    t = fit_temperature(proba, y)
    assert t == pytest.approx(3.0, rel=0.15)
    assert (
        expected_calibration_error(temper(proba, t), y)
        < 0.03
        < expected_calibration_error(proba, y)
    )


def test_matched_confidence_hits_its_target():
    proba, _ = overconfident(500)
    for target in (0.5, 0.8):
        t = match_confidence(proba, target)
        assert temper(proba, t).max(axis=1).mean() == pytest.approx(target, abs=1e-3)


def test_corpus_estimates_count_labeled_documents_as_they_are():
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5]])
    accuracy, per_label = corpus_estimates(proba, (np.array([3]), np.array([1])))
    assert accuracy.value == pytest.approx((0.9 + 0.6 + 0.8 + 1) / 4)
    assert per_label[0].value == pytest.approx(1.7) and per_label[1].value == pytest.approx(2.3)
    assert sum(e.value for e in per_label) == pytest.approx(4)
    assert all(e.low <= e.value <= e.high for e in [accuracy, *per_label])
    assert per_label[1].low >= 1  # the labeled document is certain


def test_priors_are_recovered_from_probabilities_that_assume_equal_ones():
    rng = np.random.default_rng(1)
    prior = np.array([0.7, 0.2, 0.07, 0.03])
    y = rng.choice(4, 20000, p=prior)
    x = 2.0 * np.eye(4)[y] + rng.normal(0, 1.0, (len(y), 4))  # class means 2 e_c, unit noise
    likelihood = softmax(2.0 * x)  # the exact posterior under equal priors
    assert np.abs(likelihood.mean(axis=0) - prior).max() > 0.1  # the plain mean is far off
    assert np.abs(estimate_priors(likelihood) - prior).max() < 0.05


def test_resample_gives_the_shares_asked_for():
    texts = [str(i) for i in range(300)]
    gold = ["a"] * 100 + ["b"] * 100 + ["c"] * 100
    out_texts, out_gold = resample(texts, gold, {"a": 0.7, "b": 0.2, "c": 0.1})
    counts = {c: out_gold.count(c) for c in "abc"}
    assert counts == {"a": 100, "b": 29, "c": 14}
    assert all(gold[int(t)] == g for t, g in zip(out_texts, out_gold))  # rows stay paired


def test_macro_f1_weighs_a_rare_class_like_a_common_one():
    gold = np.array([0] * 90 + [1] * 10)
    always_common = np.zeros(100, dtype=int)
    assert np.mean(always_common == gold) == 0.9
    assert macro_f1(always_common, gold, 2) == pytest.approx(0.9474 / 2, abs=1e-3)


def test_workspace_calibrates_from_the_corpus_then_from_held_out_labels(ag_sample, embedder):
    texts = ag_sample["text"].tolist()
    labels = LabelSpace(tuple(sorted(set(ag_sample["label"]))))
    ws = Workspace(texts, embedder)
    zero = ws.predict(labels)
    assert zero.calibration.startswith("from the corpus") and zero.held_out is None
    assert np.isclose(zero.proba.sum(axis=1), 1, atol=1e-5).all()
    assert MIN_HELD_OUT < 24 < CALIBRATION_LABELS
    human = {i: ag_sample["label"][i] for i in range(24)}
    first = ws.predict(labels, human)
    assert first.held_out.shape == (24, 4) and "on 24 cross-validated" in first.calibration
    assert first.cross_validated_accuracy == ws.cross_validated_accuracy(labels, human)
    # One more label reuses the held-out fit; a changed label set recomputes it.
    more = ws.predict(labels, {**human, 30: ag_sample["label"][30]})
    assert more.held_out is first.held_out and more.temperature != zero.temperature
    fewer = ws.predict(labels, {i: human[i] for i in range(1, 24)})
    assert fewer.held_out is not first.held_out and fewer.held_out.shape == (23, 4)
    accuracy, per_label = first.estimates()
    assert 0 <= accuracy.low <= accuracy.value <= accuracy.high <= 1
    assert sum(e.value for e in per_label) == pytest.approx(len(texts), rel=1e-4)


def test_a_prediction_that_does_not_wait_is_calibrated_once_its_cross_validation_is_done(
    ag_sample, embedder
):
    texts = ag_sample["text"].tolist()
    labels = LabelSpace(tuple(sorted(set(ag_sample["label"]))))
    human = {i: ag_sample["label"][i] for i in range(24)}
    ws = Workspace(texts, embedder)
    pending = ws.predict(labels, human, wait=False)
    assert pending.pending and pending.held_out is None
    assert pending.calibration.startswith("from the corpus")
    assert pending.calibration.endswith("cross-validating the newest labels")
    assert ws.calibrated(pending) is pending  # nothing to calibrate with yet
    accuracy = ws.cross_validated_accuracy(labels, human)  # what the app runs in the background
    done = ws.calibrated(pending)
    assert not done.pending and "on 24 cross-validated" in done.calibration
    assert done.cross_validated_accuracy == accuracy
    waited = Workspace(texts, embedder).predict(labels, human)
    assert done.temperature == pytest.approx(waited.temperature, rel=1e-6)
    assert np.allclose(done.proba, waited.proba, atol=1e-6)
    # A label more: the cross-validation at hand still speaks for it, nothing is pending.
    assert not ws.predict(labels, {**human, 30: ag_sample["label"][30]}, wait=False).pending


def test_prediction_estimates_count_human_labels_not_the_model_s_guess():
    labels = LabelSpace(("a", "b"))
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]], dtype=np.float32)
    prediction = Prediction(
        "sbert", labels, proba, None, np.array([0]), fitted_labels=np.array([1])
    )
    accuracy, per_label = prediction.estimates()
    assert per_label[1].value == pytest.approx(1 + 0.2 + 0.7)  # document 0 is a "b", by hand
    assert accuracy.value == pytest.approx((1 + 0.8 + 0.7) / 3)


def test_corpus_accuracy_mixes_confidence_and_agreement_unless_nothing_was_refined():
    embedding = np.array([[0.9, 0.1], [0.7, 0.3], [0.4, 0.6], [0.8, 0.2]])
    plain = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])  # agrees on 3 of 4
    assert corpus_accuracy(embedding, plain) == pytest.approx(0.5 * (0.75 + 0.75))
    assert corpus_accuracy(embedding, None) == pytest.approx(0.75)
