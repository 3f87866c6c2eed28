"""Label space and the few-shot classifier, on synthetic geometry and on real AG News rows."""

import numpy as np
import pandas as pd
import pytest

from fewshot import FewshotError, config
from fewshot.classify import FewShotClassifier, LabelSpace, cohen_kappa


def test_label_space_parses_names_and_descriptions():
    space = LabelSpace.parse(["# topics", "Sports: games, athletes", "", "card_arrival"])
    assert space.names == ("Sports", "card_arrival")
    assert space.descriptions == ("games, athletes", "")
    prompts = space.prompts()
    assert "Sports: games, athletes" in prompts[0]
    assert "This text is about card arrival." in prompts[1]
    assert list(space.index(["sports", "card_arrival"])) == [0, 1]


@pytest.mark.parametrize(
    "lines, message",
    [
        (["Sports", "sports"], "Duplicate label"),
        (["Sports", ": no name"], "empty"),
        (["Sports"], "At least two labels"),
        ([], "At least two labels"),
        (["Sports", "x" * 200], "200 characters long"),
    ],
)
def test_label_space_refuses_bad_labels(lines, message):
    with pytest.raises(FewshotError, match=message):
        LabelSpace.parse(lines)


def test_unknown_label_is_an_error():
    with pytest.raises(FewshotError, match="Unknown label"):
        LabelSpace(("a", "b")).index(["c"])


def _blobs(rng, centers, n):
    x = np.concatenate([c + 0.35 * rng.normal(size=(n, centers.shape[1])) for c in centers])
    return x, np.repeat(np.arange(len(centers)), n)


def test_labels_correct_a_misleading_zero_shot_prior():
    rng = np.random.default_rng(0)
    centers = np.eye(3, 16) * 3
    x, y = _blobs(rng, centers, 40)
    # Label vectors that point at the wrong clusters: zero-shot is wrong for classes 0 and 1.
    misleading = centers[[1, 0, 2]]
    zero = FewShotClassifier(misleading, transductive=False).fit()
    assert np.mean(zero.predict(x) == y) < 0.5
    labeled = np.array([0, 1, 40, 41, 80, 81])
    taught = FewShotClassifier(misleading, lam=0.1, transductive=False).fit(x[labeled], y[labeled])
    assert np.mean(taught.predict(x) == y) > 0.9
    proba = taught.predict_proba(x)
    assert proba.shape == (120, 3) and np.allclose(proba.sum(axis=1), 1)


def test_transductive_auto_uses_clusters_that_agree_and_refuses_others():
    rng = np.random.default_rng(1)
    centers = np.eye(2, 16) * 3
    x, y = _blobs(rng, centers, 50)
    # Weak but right prior: clustering the corpus should help and be kept.
    weak = np.eye(2, 16) + 0.8 * np.eye(2, 16)[::-1] + 0.3
    auto = FewShotClassifier(weak, transductive="auto").fit(corpus=x)
    assert auto.transductive_used_
    assert np.mean(auto.predict(x) == y) > 0.95


def test_transductive_auto_refuses_clusters_about_something_else():
    # The corpus clusters by topic (axis 0); the labels are about a faint other axis (axis 1),
    # like sentiment within movie reviews. Clustering would follow the topics.
    rng = np.random.default_rng(2)
    n = 200
    topic = rng.choice([-3.0, 3.0], size=n)
    y = rng.integers(0, 2, size=n)
    x = np.zeros((n, 8))
    x[:, 0] = topic
    x[:, 1] = np.where(y == 1, 0.6, -0.6) + 0.1 * rng.normal(size=n)
    x[:, 2:] = 0.3 * rng.normal(size=(n, 6))
    labels = np.array([[0.1, -1, 0, 0, 0, 0, 0, 0], [-0.1, 1, 0, 0, 0, 0, 0, 0]], dtype=float)
    plain = FewShotClassifier(labels, transductive=False).fit(corpus=x)
    forced = FewShotClassifier(labels, transductive=True).fit(corpus=x)
    auto = FewShotClassifier(labels, transductive="auto").fit(corpus=x)
    accuracy = {
        name: np.mean(c.predict(x) == y)
        for name, c in [("plain", plain), ("forced", forced), ("auto", auto)]
    }
    assert accuracy["plain"] > 0.9 > 0.7 > accuracy["forced"]
    assert not auto.transductive_used_
    assert accuracy["auto"] == accuracy["plain"]


def test_fit_checks_its_inputs():
    clf = FewShotClassifier(np.eye(2, 4))
    with pytest.raises(FewshotError):
        clf.fit(np.ones((2, 4)), np.array([0]))
    with pytest.raises(FewshotError):
        clf.fit(np.ones((1, 4)), np.array([5]))


def test_cohen_kappa():
    a = np.array([0, 1, 0, 1])
    assert cohen_kappa(a, a, 2) == 1.0
    assert cohen_kappa(a, 1 - a, 2) == -1.0


def test_corpus_rows_new_documents_and_labels_are_consistent():
    rng = np.random.default_rng(3)
    centers = np.eye(3, 16) * 3
    x, y = _blobs(rng, centers, 60)
    weak = np.eye(3, 16) + 0.5
    labeled = np.array([0, 60, 120])
    clf = FewShotClassifier(weak).fit(x[labeled], y[labeled], corpus=x)
    proba = clf.predict_proba(x)
    assert proba.shape == (180, 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert clf.smoothing_ > 0 and clf.neighbours_ is not None
    # Rows of the corpus, alone or among others, get the corpus answer; labeled rows their label.
    assert np.allclose(clf.predict_proba(x[10:20]), proba[10:20], atol=1e-6)
    assert list(clf.predict(x[labeled])) == list(y[labeled])
    # A new document is placed by its own prediction and its corpus neighbours'.
    fresh, fresh_y = _blobs(np.random.default_rng(4), centers, 5)
    assert np.mean(clf.predict(fresh) == fresh_y) > 0.9
    assert np.array_equal(np.argmax(clf.decision_function(x), axis=1), clf.predict(x))


def test_large_corpus_graph_is_approximate_but_close(monkeypatch):
    import fewshot.classify as classify

    rng = np.random.default_rng(5)
    unit = classify.normalize(rng.normal(size=(3000, 8)))
    exact = classify.neighbour_graph(unit, 5)
    monkeypatch.setattr(classify, "EXACT_GRAPH_LIMIT", 1000)
    approximate = classify.neighbour_graph(unit, 5, key=("approximate",))
    assert approximate.shape == exact.shape
    assert not np.any(approximate == np.arange(3000)[:, None])  # nobody is their own neighbour
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(exact, approximate)])
    assert recall > 0.6


def test_blas_limit_is_lifted_only_when_the_last_overlapping_fit_ends():
    from threadpoolctl import threadpool_info

    from fewshot.classify import one_blas_thread

    def blas_threads() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = blas_threads()
    assert before, "numpy links a BLAS that threadpoolctl can see"
    first, second = one_blas_thread(), one_blas_thread()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # another session's fit is still running
    assert set(blas_threads()) <= {1}
    second.__exit__(None, None, None)
    assert blas_threads() == before


def test_transductive_auto_refuses_clusters_that_lose_their_labels(word_vectors):
    # Real data: with word vectors, SST-2's reviews cluster by what they are about, and both
    # clusters seeded by "negative" and "positive" drift nearest "negative". Kept, they cost
    # 12 points; the check must refuse them and keep the plain predictions' accuracy.
    frame = pd.read_csv(config.shared_data_dir() / "sst2" / "normalized_test.csv")
    space = LabelSpace(("negative", "positive"))
    gold = space.index(frame["label"].tolist())
    docs = word_vectors.encode(frame["text"].tolist())
    labels = np.stack([word_vectors.encode(group).mean(axis=0) for group in space.prompts()])
    forced = FewShotClassifier(labels, transductive=True, smoothing=False).fit(corpus=docs)
    auto = FewShotClassifier(labels, smoothing=False).fit(corpus=docs)
    plain = FewShotClassifier(labels, transductive=False).fit(corpus=docs)
    assert "clusters by their label 0.50" in auto.selection_
    assert not auto.transductive_used_
    assert np.mean(forced.predict(docs) == gold) < 0.55 < 0.6 < np.mean(auto.predict(docs) == gold)
    assert np.mean(auto.predict(docs) == gold) == np.mean(plain.predict(docs) == gold)
