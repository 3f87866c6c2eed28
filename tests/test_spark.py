"""Spark gives the local engine's labels: one local[1] session for the module, a real labeler,
real AG News documents (with the awkward ones: quotes, a newline, a backslash, a blank, a repeat),
and the command line end to end on a Parquet folder."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from fewshot import FewshotError
from fewshot.apply import apply_file, embedder_for
from fewshot.labeler import Labeler
from fewshot.scale_apply import ag_news, teach_labeler
from fewshot.spark import apply_path, label_dataframe

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")


@pytest.fixture(scope="module")
def spark():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYSPARK_PYTHON", sys.executable)
        session = (
            SparkSession.builder.master("local[1]")
            .appName("fewshot tests")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.ui.enabled", "false")
            .getOrCreate()
        )
        yield session
        session.stop()


@pytest.fixture(scope="module")
def labeler_file(tmp_path_factory, embedder) -> Path:
    return teach_labeler(tmp_path_factory.mktemp("labeler") / "lab.zip", embedder)


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> Path:
    """300 AG News rows the labeler never saw, as a CSV with an id column."""
    frame = ag_news().iloc[5000:5300].reset_index(drop=True)[["text", "label"]]
    frame.insert(0, "id", range(len(frame)))
    frame.loc[0, "text"] = 'He said "no deal",\nthen left. ' + frame.loc[0, "text"]
    frame.loc[1, "text"] = 'A path C:\\"quoted\\" ' + frame.loc[1, "text"]
    frame.loc[2, "text"] = "   "
    frame.loc[3, "text"] = frame.loc[4, "text"]
    path = tmp_path_factory.mktemp("docs") / "docs.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def local(documents, labeler_file, tmp_path_factory) -> pd.DataFrame:
    """The local engine's output on the documents."""
    labeler = Labeler.load(labeler_file)
    out = tmp_path_factory.mktemp("local") / "local.csv"
    assert apply_file(labeler, embedder_for(labeler), documents, out) == 300
    return pd.read_csv(out).set_index("id")


def same_labels(spread: pd.DataFrame, local: pd.DataFrame) -> None:
    local = local.loc[spread.index]
    assert (
        spread["predicted_label"].fillna("").tolist()
        == local["predicted_label"].fillna("").tolist()
    )
    # Another partitioning embeds a text in another batch: in bfloat16 (OpenVINO on this CPU)
    # its vector moves by a cosine of about 1e-5, its scores by up to about 2e-3.
    scores = [c for c in local.columns if c.startswith("score")]
    gap = np.nanmax(np.abs(spread[scores].to_numpy() - local[scores].to_numpy()))
    assert gap < 5e-3, gap


def test_spark_labels_as_the_local_engine(spark, labeler_file, documents, local, tmp_path):
    rows = apply_path(labeler_file, documents.as_uri(), tmp_path / "out", None, None)
    assert rows == 300
    spread = pd.read_parquet(tmp_path / "out")
    names = Labeler.load(labeler_file).output_columns
    assert list(spread.columns) == ["id", "text", "label", *names]
    spread = spread.astype({"id": int}).set_index("id").sort_index()
    assert spread["text"].tolist() == pd.read_csv(documents)["text"].fillna("").tolist()
    same_labels(spread, local)
    assert spread["predicted_label"].isna().tolist() == [i == 2 for i in range(300)]
    assert spread.loc[3, names].equals(spread.loc[4, names])
    assert (spread["predicted_label"] == spread["label"]).mean() >= 0.7  # chance is 0.25


def test_command_line_writes_parquet_from_a_parquet_folder(
    labeler_file, documents, local, tmp_path
):
    folder = tmp_path / "in"
    folder.mkdir()
    # An earlier output as input: its label columns are replaced, not repeated.
    frame = pd.read_csv(documents).iloc[10:50].assign(predicted_label="stale")
    frame.iloc[:20].to_parquet(folder / "part-0.parquet", index=False)
    frame.iloc[20:].to_parquet(folder / "part-1.parquet", index=False)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "fewshot", "apply", labeler_file, folder, "--engine", "spark"]
        + ["--output", out, "--master", "local[1]", "--text-column", "TEXT"],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"wrote 40 rows to {out}" in result.stderr
    spread = pd.read_parquet(out)
    names = Labeler.load(labeler_file).output_columns
    assert list(spread.columns) == ["id", "text", "label", *names]
    assert sorted(spread["id"]) == list(range(10, 50))
    same_labels(spread.set_index("id"), local)


def test_a_missing_text_column_names_the_columns(spark, labeler_file):
    df = spark.createDataFrame(pd.DataFrame({"id": [1], "body_text": ["Stocks fell."]}))
    with pytest.raises(FewshotError, match="no column 'content'; available columns: id, body_text"):
        label_dataframe(df, labeler_file, "content")


def test_refusals_say_what_is_wrong_and_touch_nothing(spark, labeler_file, documents, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(FewshotError, match="out already exists"):
        apply_path(labeler_file, documents, out, None, None)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    with pytest.raises(FewshotError, match="File not found: .*nope.csv"):
        apply_path(labeler_file, tmp_path / "nope.csv", tmp_path / "new", None, None)
    (tmp_path / "docs.jsonl").write_text('{"text": "Stocks fell."}\n')
    with pytest.raises(FewshotError, match="Spark reads Parquet .* or CSV"):
        apply_path(labeler_file, tmp_path / "docs.jsonl", tmp_path / "new", None, None)
    assert not (tmp_path / "new").exists()
