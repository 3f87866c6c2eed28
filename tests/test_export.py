"""Export: the table, formula-safe CSV, JSONL, and map files in and out (garbage refused)."""

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from fewshot import FewshotError
from fewshot.export import (
    export_table,
    label_summary,
    map_from_bytes,
    map_to_bytes,
    to_csv_bytes,
    to_jsonl_bytes,
)
from fewshot.labelspace import LabelSpace
from fewshot.maps import Wmap, Zmap
from fewshot.store import open_project
from fewshot.workspace import Workspace

TEXTS = [
    "The striker scored twice in the cup final.",
    '=HYPERLINK("http://evil", "click") shares rallied',
    'Stocks fell, then "recovered" by the close.',
    "-5 degrees and snow: the match was called off",
    "@everyone the new phone chip is twice as fast",
    "Ünïcödé, commas, and\na line break in a review of a laptop",
    "+1 for the quarterly earnings beat",
    "Researchers trained a larger language model.",
]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = open_project("export", root=tmp_path_factory.mktemp("projects"))
    project.set_documents(
        pd.DataFrame({"text": TEXTS, "source": "demo.csv", "score": range(len(TEXTS))})
    )
    project.set_labels([("Sports", "games, athletes"), ("Business", ""), ("Tech", "")])
    project.annotate([0, 3], "Sports", user="ann")
    project.annotate(1, "Business", user="bob")
    return project


@pytest.fixture(scope="module")
def prediction(project, embedder):
    labels = LabelSpace(*zip(*project.labels()))
    human = dict(zip(project.annotations()["doc_id"], project.annotations()["label"]))
    return Workspace(project.documents()["text"].tolist(), embedder).predict(labels, human)


@pytest.fixture(scope="module")
def table(project, prediction):
    return export_table(project.documents(), project.annotations(), prediction)


def test_export_table_columns_and_values(table, prediction):
    assert list(table.columns) == [
        "id", "text", "source", "meta_score", "human_label", "annotated_by", "annotated_at",
        "predicted_label", "score", "score_Sports", "score_Business", "score_Tech",
    ]  # fmt: skip
    assert table["id"].tolist() == list(range(len(TEXTS)))
    assert table.loc[0, "human_label"] == "Sports" and table.loc[0, "annotated_by"] == "ann"
    assert table.loc[1, "annotated_by"] == "bob"
    assert table["human_label"].isna().sum() == len(TEXTS) - 3
    assert np.allclose(table["score"], prediction.proba.max(axis=1))
    assert table.loc[0, "predicted_label"] == "Sports"


def test_export_without_prediction_and_stale_prediction(project, prediction):
    plain = export_table(project.documents(), project.annotations())
    assert plain["predicted_label"].isna().all() and "score_Sports" not in plain
    with pytest.raises(FewshotError, match="refresh"):
        export_table(project.documents().head(3), project.annotations(), prediction)


def test_label_summary(table):
    summary = label_summary(table)
    assert summary.index.tolist() == ["Sports", "Business", "Tech"]
    assert summary.loc["Sports", "human"] == 2 and summary.loc["Business", "human"] == 1
    assert summary["predicted"].sum() == len(TEXTS)


def test_csv_neutralises_formulas_and_round_trips(table):
    back = pd.read_csv(io.BytesIO(to_csv_bytes(table)))
    assert back.columns.tolist() == table.columns.tolist()
    assert back.loc[1, "text"] == "'" + TEXTS[1]
    assert back.loc[3, "text"] == "'" + TEXTS[3]
    assert back.loc[4, "text"] == "'" + TEXTS[4]
    assert back.loc[6, "text"] == "'" + TEXTS[6]
    for i in (0, 2, 5, 7):
        assert back.loc[i, "text"] == TEXTS[i]
    assert back["id"].tolist() == table["id"].tolist()
    assert np.allclose(back["score"], table["score"])
    assert back["human_label"].fillna("").tolist() == table["human_label"].fillna("").tolist()


def test_csv_neutralises_headers_and_keeps_numbers():
    frame = pd.DataFrame({"=cmd": ["@x", "ok"], "value": [-1.5, 2.0], "n": [-3, 4]})
    back = pd.read_csv(io.BytesIO(to_csv_bytes(frame)))
    assert back.columns.tolist() == ["'=cmd", "value", "n"]
    assert back["'=cmd"].tolist() == ["'@x", "ok"]
    assert back["value"].tolist() == [-1.5, 2.0] and back["n"].tolist() == [-3, 4]


def test_jsonl_round_trip_keeps_text_verbatim(table):
    data = to_jsonl_bytes(table)
    lines = data.decode("utf-8").splitlines()
    assert len(lines) == len(TEXTS)
    assert json.loads(lines[1])["text"] == TEXTS[1]
    back = pd.read_json(io.BytesIO(data), lines=True)
    assert back["text"].tolist() == TEXTS
    assert back.loc[5, "text"] == TEXTS[5]
    assert back["human_label"].tolist()[:2] == ["Sports", "Business"]
    assert np.allclose(back["score_Tech"], table["score_Tech"])


def test_maps_round_trip(prediction, embedder):
    wmap = prediction.classifier.wmap_
    loaded = map_from_bytes(map_to_bytes(wmap), "wmap.npz")
    assert isinstance(loaded, Wmap) and np.array_equal(loaded.coef_, wmap.coef_)
    zmap = map_from_bytes(map_to_bytes(embedder.zmap), "zmap.npz")
    assert isinstance(zmap, Zmap) and zmap.coef_.shape == embedder.zmap.coef_.shape


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello, I am not a map", "not an .npz archive"),
        (b"", "not an .npz archive"),
        (npz_bytes(weights=np.eye(2)), "lacks"),
        (npz_bytes(kind=np.array("wmap"), coef=np.array([{"x": 1}], dtype=object)), "Not a map"),
        (npz_bytes(kind=np.array("wmap"), coef=np.array([["a", "b"]])), "Not a map"),
        (npz_bytes(kind=np.array("wmap"), coef=np.array([[np.nan, 1.0]])), "finite"),
        (npz_bytes(kind=np.array("evil"), coef=np.eye(2)), "expected one of"),
    ],
)
def test_garbage_map_files_are_refused(data, message):
    with pytest.raises(FewshotError, match=message):
        map_from_bytes(data, "upload.npz")


def test_oversized_map_archive_is_refused_before_reading(monkeypatch):
    monkeypatch.setattr("fewshot.export.MAX_MAP_BYTES", 2**20)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("kind.npy", b"\0" * 10)
        archive.writestr("coef.npy", b"\0" * (2 * 2**20))
    with pytest.raises(FewshotError, match="MB"):
        map_from_bytes(buffer.getvalue(), "../../bomb.npz")
