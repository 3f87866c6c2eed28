"""The lexical view: term matrix, naive Bayes taught by another model, and its fitted weight."""

import numpy as np
import pytest

from fewshot.calibrate import temper
from fewshot.labelspace import LabelSpace
from fewshot.lexical import LexicalExpert, TermSpace, product_of_experts
from fewshot.workspace import Workspace

SPORT = "goal match team coach league striker referee season".split()
MONEY = "stock market shares profit bank investor earnings dividend".split()
FILLER = "the a today new report says after week".split()


def _corpus(rng: np.random.Generator, n: int = 200) -> tuple[list[str], np.ndarray]:
    """Documents whose class is told by their words: four class words among three fillers."""
    y = rng.integers(0, 2, n)
    texts = [
        " ".join(rng.permutation([*rng.choice((SPORT, MONEY)[c], 4), *rng.choice(FILLER, 3)]))
        for c in y
    ]
    return texts, y


def _noisy_teacher(rng: np.random.Generator, y: np.ndarray, wrong: float) -> np.ndarray:
    """A teacher wrong on a share `wrong` of the documents: 0.9 sure where right, 0.6 where wrong
    (a classifier's mistakes are mostly where it is unsure)."""
    flip = rng.random(len(y)) < wrong
    taught = np.where(flip, 1 - y, y)
    proba = np.zeros((len(y), 2))
    proba[np.arange(len(y)), taught] = np.where(flip, 0.6, 0.9)
    proba[np.arange(len(y)), 1 - taught] = np.where(flip, 0.4, 0.1)
    return proba


def test_term_matrix_rows_and_tiny_corpora():
    terms = TermSpace().fit_transform(["stock market falls", "stock market rises", "team wins"])
    assert terms.shape[0] == 3
    norms = np.sqrt(np.asarray(terms.multiply(terms).sum(axis=1))).ravel()
    # Each part (words, character 4-grams) is unit length, weighted alike.
    assert np.all(norms <= 1 + 1e-5) and norms[0] == pytest.approx(1, abs=1e-5)
    assert TermSpace().fit_transform(["alpha", "beta"]) is None  # no term in two documents


def test_lexical_view_corrects_a_noisy_teacher():
    rng = np.random.default_rng(0)
    texts, y = _corpus(rng)
    teacher = _noisy_teacher(rng, y, wrong=0.25)
    assert np.mean(teacher.argmax(1) == y) < 0.8
    expert = LexicalExpert().fit(TermSpace().fit_transform(texts), teacher)
    assert expert.scale_ > 0
    assert np.mean(expert.combined_.argmax(1) == y) > 0.95
    assert np.allclose(expert.combined_.sum(axis=1), 1, atol=1e-5)
    alone = expert.predict_proba(TermSpace().fit_transform(texts))
    assert alone.shape == (len(y), 2) and np.mean(alone.argmax(1) == y) > 0.95


def test_lexical_view_has_no_say_when_words_do_not_predict_the_teacher():
    rng = np.random.default_rng(1)
    texts, y = _corpus(rng)
    unrelated = _noisy_teacher(rng, rng.integers(0, 2, len(y)), wrong=0.0)
    expert = LexicalExpert().fit(TermSpace().fit_transform(texts), unrelated)
    assert expert.scale_ < 0.1
    assert np.mean(expert.combined_.argmax(1) == unrelated.argmax(1)) > 0.95


def test_human_labels_decide_where_the_teacher_is_unsure():
    rng = np.random.default_rng(2)
    texts, y = _corpus(rng)
    rows = np.arange(20)
    teacher = np.full((len(y), 2), 0.5)  # no idea, except on the labeled rows (as clamped)
    teacher[rows] = np.eye(2)[y[rows]]
    expert = LexicalExpert().fit(TermSpace().fit_transform(texts), teacher, rows, y[rows])
    assert expert.scale_ > 0
    assert np.mean(expert.combined_.argmax(1)[20:] == y[20:]) > 0.95
    unlabeled = LexicalExpert().fit(TermSpace().fit_transform(texts), np.full((len(y), 2), 0.5))
    assert unlabeled.scale_ == 0  # nothing to learn from a teacher without an opinion


def test_fit_checks_its_inputs():
    with pytest.raises(ValueError, match="differ"):
        LexicalExpert().fit(TermSpace().fit_transform(["a b", "a b"]), np.full((3, 2), 0.5))


def test_product_of_experts():
    a = np.array([[0.6, 0.4], [0.5, 0.5]])
    b = np.array([[0.2, 0.8], [0.9, 0.1]])
    assert np.allclose(product_of_experts(a, b), [[0.12 / 0.44, 0.32 / 0.44], [0.9, 0.1]])


def test_workspace_combines_the_lexical_view_on_the_corpus(ag_sample, embedder):
    texts = ag_sample["text"].tolist()
    labels = LabelSpace(tuple(sorted(set(ag_sample["label"]))))
    ws = Workspace(texts, embedder)
    human = {i: ag_sample["label"][i] for i in range(0, 40, 5)}
    combined = ws.predict(labels, human)
    plain = ws.predict(labels, human, lexical=False)
    assert plain.lexical is None and combined.lexical is not None
    assert combined.proba.shape == plain.proba.shape == (40, 4)
    calibrated = temper(combined.lexical.combined_, combined.temperature)
    assert combined.temperature != 1.0 and np.allclose(combined.proba, calibrated, atol=1e-6)
    inductive = ws.predict(labels, human, transductive=False)
    assert inductive.lexical is None  # a fit that ignores the corpus ignores its words too
    accuracy = ws.cross_validated_accuracy(labels, human)
    assert accuracy is not None and 0 <= accuracy <= 1
