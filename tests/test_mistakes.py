"""Likely mistakes: the order and its reasons on plain arrays, then flipped AG News labels found
through Workspace with the real packaged models."""

import numpy as np
import pandas as pd
import pytest

from fewshot import config
from fewshot.bench import label_space, sample_per_class
from fewshot.mistakes import COLUMNS, likely_mistakes, reason
from fewshot.mistakes_bench import flip_labels, score_ranking
from fewshot.workspace import Workspace

NAMES = ("Business", "Sports", "World")


def test_contradicted_labels_come_lowest_given_first_with_a_reason():
    held_out = np.array(
        [
            [0.90, 0.05, 0.05],  # labeled Business: agreed, not listed
            [0.10, 0.30, 0.60],  # labeled Sports: World suggested, Sports 0.30
            [0.02, 0.95, 0.03],  # labeled Business: Sports suggested, Business 0.02
            [0.70, 0.25, 0.05],  # labeled World: Business suggested, World 0.05
            [0.20, 0.20, 0.60],  # labeled World: agreed
        ]
    )
    y = np.array([0, 1, 0, 2, 2])
    ids = np.array([10, 11, 12, 13, 14])
    frame = likely_mistakes(held_out, y, ids, NAMES)
    assert tuple(frame.columns) == COLUMNS
    assert frame["doc_id"].tolist() == [12, 13, 11]
    assert frame["label"].tolist() == ["Business", "World", "Sports"]
    assert frame["suggested"].tolist() == ["Sports", "Business", "World"]
    assert frame["given"].tolist() == pytest.approx([0.02, 0.05, 0.30])
    assert frame["confidence"].tolist() == pytest.approx([0.95, 0.70, 0.60])
    assert frame["reason"].iloc[0] == "a fit without this label gives Sports 0.95 and Business 0.02"


def test_ties_in_the_human_label_go_to_the_surer_suggestion():
    held_out = np.array([[0.1, 0.6, 0.3], [0.1, 0.9, 0.0], [0.1, 0.3, 0.6], [0.4, 0.3, 0.3]])
    frame = likely_mistakes(held_out, np.array([0, 0, 0, 0]), np.array([5, 6, 7, 8]), NAMES)
    assert frame["doc_id"].tolist() == [6, 5, 7]


def test_reason_never_rounds_to_certainty():
    assert reason("Sports", 0.9999, "World", 0.00001) == (
        "a fit without this label gives Sports over 0.99 and World under 0.01"
    )
    assert reason("Sports", 0.93, "World", 0.02) == (
        "a fit without this label gives Sports 0.93 and World 0.02"
    )


def test_fewer_than_four_labels_or_none_contradicted_give_an_empty_frame():
    three = likely_mistakes(np.eye(3)[[1, 2, 0]], np.array([0, 0, 0]), np.arange(3), NAMES)
    assert three.empty and tuple(three.columns) == COLUMNS
    none = likely_mistakes(np.zeros((0, 3)), np.zeros(0), np.zeros(0), NAMES)
    assert none.empty and tuple(none.columns) == COLUMNS
    agreed = likely_mistakes(np.eye(3)[[0, 1, 2, 0]], np.array([0, 1, 2, 0]), np.arange(4), NAMES)
    assert agreed.empty and tuple(agreed.columns) == COLUMNS


def test_mismatched_shapes_and_labels_are_refused():
    with pytest.raises(ValueError, match="held_out is"):
        likely_mistakes(np.ones((4, 2)), np.zeros(4), np.arange(4), NAMES)
    with pytest.raises(ValueError, match="held_out is"):
        likely_mistakes(np.ones((4, 3)), np.zeros(4), np.arange(5), NAMES)
    with pytest.raises(ValueError, match="class positions"):
        likely_mistakes(np.ones((4, 3)), np.array([0, 1, 2, 3]), np.arange(4), NAMES)


def test_flips_go_to_another_class_and_scores_count_them():
    rng = np.random.default_rng(0)
    gold = np.repeat(np.arange(4), 25)
    y, flipped = flip_labels(gold, 0.1, 4, rng)
    assert len(flipped) == 10
    assert np.all(y[flipped] != gold[flipped])
    assert np.array_equal(np.delete(y, flipped), np.delete(gold, flipped))
    scores = score_ranking(np.array([1, 9, 8, 2, 7, 6, 5, 3]), {1, 2, 3})
    assert scores == {"precision_at_k": 0.3333, "recall_at_2k": 0.6667, "recall_listed": 1.0}


@pytest.fixture(scope="module")
def ag(embedder):
    """400 AG News documents, 40 per class labeled, 16 of those 160 labels flipped to a random
    wrong class (as fewshot.mistakes_bench does, on a corpus small enough for a test)."""
    frame = pd.read_csv(config.shared_data_dir() / "ag_news" / "normalized_test.csv")
    sample = frame.groupby("label").sample(100, random_state=0).reset_index(drop=True)
    labels, gold = label_space(sample["label"].tolist())
    rng = np.random.default_rng(0)
    ids = sample_per_class(gold, 40, rng)
    y, flipped = flip_labels(gold[ids], 0.1, len(labels), rng)
    human = {int(i): labels.names[c] for i, c in zip(ids, y)}
    right = {int(i): labels.names[c] for i, c in zip(ids, gold[ids])}
    ws = Workspace(sample["text"].tolist(), embedder)
    return ws, labels, gold, human, right, {int(d) for d in ids[flipped]}


def _count_fits(ws, monkeypatch):
    fits = []
    fit = ws._fit
    monkeypatch.setattr(ws, "_fit", lambda *args, **kw: fits.append(1) or fit(*args, **kw))
    return fits


def test_flipped_labels_rank_on_top(ag):
    ws, labels, gold, human, _, flipped = ag
    frame = ws.likely_mistakes(labels, human)
    k = len(flipped)
    assert k == 16
    found = score_ranking(frame["doc_id"].to_numpy(), flipped)
    # by chance a tenth of the top k; the whole list holds about a third flipped labels
    assert found["precision_at_k"] >= 0.6
    assert found["recall_at_2k"] >= 0.75
    hits = frame[frame["doc_id"].isin(flipped)]
    assert (hits["suggested"] == [labels.names[gold[d]] for d in hits["doc_id"]]).mean() >= 0.9
    assert np.all(np.diff(frame["given"]) >= 0)
    assert np.all(frame["confidence"] > frame["given"])
    assert np.all(frame["confidence"] + frame["given"] <= 1 + 1e-6)  # calibrated rows sum to one
    assert (
        frame["reason"].iloc[0].startswith(f"a fit without this label gives {frame.suggested[0]}")
    )


def test_right_labels_are_contradicted_less_and_less_surely(ag):
    ws, labels, _, human, right, flipped = ag
    noisy = ws.likely_mistakes(labels, human)
    clean = ws.likely_mistakes(labels, right)
    assert len(clean) < len(noisy) - len(flipped) / 2
    assert clean["given"].median() > noisy["given"].iloc[: len(flipped)].median()


def test_reuses_the_background_cross_validation_and_follows_corrections(ag, monkeypatch):
    ws, labels, _, human, _, _ = ag
    ws.cross_validated_accuracy(labels, human)  # what the app runs in the background
    fits = _count_fits(ws, monkeypatch)
    frame = ws.likely_mistakes(labels, human)
    assert fits == []
    fixed = int(frame["doc_id"].iloc[0])
    corrected = {**human, fixed: frame["suggested"].iloc[0]}
    after = ws.likely_mistakes(labels, corrected)
    assert fits == []  # the same documents: the kept cross-validation still speaks for them
    assert fixed not in set(after["doc_id"])
    assert after["doc_id"].tolist() == frame["doc_id"].tolist()[1:]


def test_few_labels_cross_validate_once_and_leave_the_calibration_alone(ag, monkeypatch):
    ws, labels, gold, _, _, _ = ag
    docs = [int(d) for c in np.unique(gold) for d in np.flatnonzero(gold == c)[:3]]  # 12 labels
    human = {d: labels.names[gold[d]] for d in docs}
    sports = next(d for d in docs if labels.names[gold[d]] == "Sports")
    human[sports] = "Business"
    ws._held_out_cache.clear()
    fits = _count_fits(ws, monkeypatch)
    frame = ws.likely_mistakes(labels, human)
    assert len(fits) == 5  # one per fold, kept apart from what calibrates later fits
    assert list(ws._held_out_cache) == [("likely_mistakes", labels, "sbert", "auto", True)]
    assert sports in set(frame["doc_id"])
    again = ws.likely_mistakes(labels, human)
    assert len(fits) == 5
    pd.testing.assert_frame_equal(frame, again)


def test_no_or_too_few_labels_give_an_empty_frame(ag, monkeypatch):
    ws, labels, gold, _, _, _ = ag
    fits = _count_fits(ws, monkeypatch)
    three = {0: labels.names[gold[0]], 1: labels.names[gold[1]], 2: "Sports", 3: "no such label"}
    for human in (None, {}, three):
        frame = ws.likely_mistakes(labels, human)
        assert frame.empty and tuple(frame.columns) == COLUMNS
    assert fits == []
