import math

import pandas as pd
import pytest

from fewshot.agreement import disagreements, label_kappa, pairwise_kappa
from fewshot.store import open_project

# Who labeled what (rev's row is a resolution, which agreement leaves out):
#   doc  ann  bob  cat
#    0    A    A    -
#    1    A    B    A     rev resolves as A
#    2    B    B    B
#    3    B    C    -
#    4    A    A    A
#    5    -    B    A
TABLE = {
    "ann": ["A", "A", "B", "B", "A", None],
    "bob": ["A", "B", "B", "C", "A", "B"],
    "cat": [None, "A", "B", None, "A", "A"],
}


def example() -> pd.DataFrame:
    rows = [
        (doc, user, label, f"2026-01-01T10:00:0{doc}.000+00:00", False)
        for user, labels in TABLE.items()
        for doc, label in enumerate(labels)
        if label is not None
    ]
    rows.append((1, "rev", "A", "2026-01-01T11:00:00.000+00:00", True))
    return pd.DataFrame(rows, columns=["doc_id", "user", "label", "at", "resolution"])


def test_pairwise_kappa_by_hand():
    pairs = pairwise_kappa(example())
    assert list(pairs.columns) == ["annotator_a", "annotator_b", "documents", "agreement", "kappa"]
    assert pairs[["annotator_a", "annotator_b", "documents"]].values.tolist() == [
        ["ann", "bob", 5], ["ann", "cat", 3], ["bob", "cat", 4],
    ]  # fmt: skip
    # ann and bob: same on 3 of 5; chance 3/5 * 2/5 (A) + 2/5 * 2/5 (B) = 0.4.
    # ann and cat: all 3 the same. bob and cat: 2 of 4; chance 1/4 * 3/4 + 3/4 * 1/4 = 0.375.
    assert pairs["agreement"].tolist() == pytest.approx([0.6, 1.0, 0.5])
    assert pairs["kappa"].tolist() == pytest.approx([(0.6 - 0.4) / 0.6, 1.0, 0.125 / 0.625])


def test_label_kappa_by_hand():
    per_label = label_kappa(example(), ["A", "B", "C", "D"])
    assert list(per_label.columns) == ["label", "kappa"]
    assert per_label["label"].tolist() == ["A", "B", "C", "D"]
    # "A or not": ann-bob 4 of 5 the same, chance .6 * .4 + .4 * .6; ann-cat 1; bob-cat 0.2.
    a = ((0.8 - 0.48) / 0.52 + 1 + 0.2) / 3
    # "B or not": ann-bob 3 of 5, chance .4 * .4 + .6 * .6; ann-cat 1; bob-cat 0.2.
    b = ((0.6 - 0.52) / 0.48 + 1 + 0.2) / 3
    # "C or not": only bob gives C (once, to ann's B): kappa 0 for ann-bob; undefined for the
    # pairs where nobody gives it, so they are left out of the mean. Nobody gives D: NaN.
    assert per_label["kappa"].tolist()[:3] == pytest.approx([a, b, 0.0])
    assert math.isnan(per_label["kappa"].iloc[3])


def test_kappa_is_nan_when_undefined_and_pairs_without_shared_documents_are_left_out():
    votes = pd.DataFrame(
        [(0, "ann", "A"), (0, "bob", "B"), (1, "ann", "A"), (1, "cat", "A"), (2, "ann", "A"),
         (2, "cat", "a"), (3, "dan", "A")],
        columns=["doc_id", "user", "label"],
    ).assign(at="", resolution=False)  # fmt: skip
    pairs = pairwise_kappa(votes)
    assert pairs[["annotator_a", "annotator_b", "documents", "agreement"]].values.tolist() == [
        ["ann", "bob", 1, 0.0],  # one shared document: no kappa
        ["ann", "cat", 2, 1.0],  # both always A (ignoring case): chance explains it all
    ]
    assert pairs["kappa"].isna().all()
    assert label_kappa(votes, ["A", "B"])["kappa"].isna().all()
    empty = votes[:0]
    assert pairwise_kappa(empty).empty and list(pairwise_kappa(empty).columns)[-1] == "kappa"
    assert label_kappa(empty, ["A"])["kappa"].isna().all()


def test_disagreements_lists_documents_with_different_votes_and_their_resolution():
    table = disagreements(example())
    assert list(table.columns) == ["doc_id", "votes", "labels", "resolved", "ann", "bob", "cat"]
    assert table.drop(columns=["ann", "bob", "cat"]).to_dict("records") == [
        {"doc_id": 1, "votes": "ann: A · bob: B · cat: A", "labels": ["A", "B"], "resolved": "A"},
        {"doc_id": 3, "votes": "ann: B · bob: C", "labels": ["B", "C"], "resolved": None},
        {"doc_id": 5, "votes": "bob: B · cat: A", "labels": ["A", "B"], "resolved": None},
    ]
    assert table[["ann", "bob", "cat"]].values.tolist() == [
        ["A", "B", "A"], ["B", "C", None], [None, "B", "A"],
    ]  # fmt: skip
    same = pd.DataFrame(
        {
            "doc_id": [0, 0],
            "user": ["ann", "bob"],
            "label": ["a", "A"],
            "at": "",
            "resolution": False,
        }
    )
    assert disagreements(same).empty  # labels match ignoring case
    assert list(disagreements(same[:0]).columns) == ["doc_id", "votes", "labels", "resolved"]


def test_agreement_of_a_projects_votes(tmp_path):
    project = open_project("team", tmp_path)
    project.set_documents(pd.DataFrame({"text": [f"document {i}" for i in range(4)]}))
    project.annotate([0, 1, 2], "A", user="ann")
    project.annotate([0, 1], "A", user="bob")
    project.annotate(2, "B", user="bob")
    project.resolve(2, "B", user="rev")
    votes = project.votes()
    pairs = pairwise_kappa(votes)
    assert pairs[["annotator_a", "annotator_b", "documents"]].values.tolist() == [["ann", "bob", 3]]
    assert pairs["agreement"].iloc[0] == pytest.approx(2 / 3)
    table = disagreements(votes)
    assert table[["doc_id", "votes", "resolved"]].values.tolist() == [[2, "ann: A · bob: B", "B"]]
    assert project.undo("rev") and disagreements(project.votes())["resolved"].tolist() == [None]
