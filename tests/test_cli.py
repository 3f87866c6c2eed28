"""The real command line in a subprocess: output shape, accuracy on easy news, one-line errors,
a saved labeler applied to new files."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
LABELS = "World\nSports: games, athletes, teams\nBusiness\nSci/Tech\n"


def cli(*args, command: str = "classify") -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "FEWSHOT_DATA_DIR": os.environ["FEWSHOT_DATA_DIR"],
        "FEWSHOT_ZMAP_WORDS": os.environ["FEWSHOT_ZMAP_WORDS"],
    }
    return subprocess.run(
        [sys.executable, "-m", "fewshot", command, *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory, ag_sample, embedder):
    """20 news rows to label, 8 labeled examples from other rows, the label file.

    `embedder` is requested so the shared data directory already holds the word vectors and the
    Zmap: the subprocesses then only embed their own few rows.
    """
    folder = tmp_path_factory.mktemp("cli")
    by_class = ag_sample.groupby("label", group_keys=False)
    by_class.head(5).to_csv(folder / "input.csv", index=False)
    by_class.nth([5, 6]).to_csv(folder / "examples.csv", index=False)
    (folder / "labels.txt").write_text(LABELS)
    return folder


def check_output(frame: pd.DataFrame, expected: pd.DataFrame) -> None:
    scores = ["score_World", "score_Sports", "score_Business", "score_Sci/Tech"]
    assert list(frame.columns) == ["text", "source", "label", "predicted_label", "score", *scores]
    assert frame["text"].tolist() == expected["text"].tolist()
    assert frame["score"].between(0, 1).all()
    # Chance is 0.25; on 20 rows one row is 5 points (zero-shot gets 0.65, few-shot 0.55 here).
    assert (frame["label"] == frame["predicted_label"]).mean() >= 0.45


def test_zero_shot_writes_every_row_with_scores(files):
    result = cli(files / "input.csv", "--labels-file", files / "labels.txt")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(io.StringIO(result.stdout))
    check_output(frame, pd.read_csv(files / "input.csv"))
    assert "zero-shot" in result.stderr


def test_examples_make_it_few_shot(files, tmp_path):
    out = tmp_path / "out.csv"
    result = cli(
        files / "input.csv",
        "--labels-file",
        files / "labels.txt",
        "--examples",
        files / "examples.csv",
        "--output",
        out,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    check_output(pd.read_csv(out), pd.read_csv(files / "input.csv"))
    assert "few-shot on 8 examples" in result.stderr


def test_every_input_row_comes_back_in_order_even_empty_and_repeated_ones(files, tmp_path):
    rows = pd.read_csv(files / "input.csv").head(3)[["text"]]
    rows = pd.concat([rows, rows.head(1), pd.DataFrame({"text": ["  "]}), rows.head(1)])
    rows.to_csv(tmp_path / "rows.csv", index=False)
    result = cli(tmp_path / "rows.csv", "--labels-file", files / "labels.txt")
    assert result.returncode == 0, result.stderr
    assert "6 rows (3 distinct texts)" in result.stderr
    frame = pd.read_csv(io.StringIO(result.stdout), keep_default_na=False)
    assert len(frame) == 6 and frame["text"].tolist()[:3] == rows["text"].tolist()[:3]
    predicted = frame["predicted_label"].tolist()
    assert predicted[3] == predicted[5] == predicted[0] != ""
    assert predicted[4] == "" and frame["score"][4] == ""


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing input", "File not found"),
        ("one label", "At least two labels"),
        ("duplicate labels", "Duplicate label"),
        ("unknown example label", "Unknown label"),
        ("no such text column", "no column 'body'"),
    ],
)
def test_mistakes_end_in_one_line_and_exit_2(files, tmp_path, case, message):
    labels, examples = files / "labels.txt", files / "examples.csv"
    extra = []
    if case == "one label":
        labels = tmp_path / "one.txt"
        labels.write_text("World\n")
    elif case == "duplicate labels":
        labels = tmp_path / "dup.txt"
        labels.write_text(LABELS + "world: again\n")
    elif case == "unknown example label":
        examples = tmp_path / "bad.csv"
        examples.write_text("text,label\nRain all week,Weather\n")
    elif case == "no such text column":
        extra = ["--text-column", "body"]
    source = tmp_path / "nope.csv" if case == "missing input" else files / "input.csv"
    result = cli(source, "--labels-file", labels, "--examples", examples, *extra)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_a_saved_labeler_labels_new_files_as_a_user_would(files, ag_sample, tmp_path):
    lab = tmp_path / "lab.zip"
    result = cli(
        files / "input.csv", "--labels-file", files / "labels.txt",
        "--examples", files / "examples.csv", "--output", tmp_path / "out.csv",
        "--save-labeler", lab,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"saved the labeler to {lab}" in result.stderr
    # Rows it never saw (7 to 9 of each class), with an empty and a repeated one, as JSON Lines.
    new = ag_sample.groupby("label", group_keys=False).nth([7, 8, 9])[["label", "text"]]
    rows = pd.concat([new, pd.DataFrame({"label": ["?"], "text": [""]}), new.head(1)])
    rows.to_json(tmp_path / "new.jsonl", orient="records", lines=True)
    result = cli(lab, tmp_path / "new.jsonl", "--output", tmp_path / "new.csv", command="apply")
    assert result.returncode == 0, result.stderr
    assert "wrote 14 rows" in result.stderr
    frame = pd.read_csv(tmp_path / "new.csv", keep_default_na=False)
    scores = ["score_World", "score_Sports", "score_Business", "score_Sci/Tech"]
    assert list(frame.columns) == ["label", "text", "predicted_label", "score", *scores]
    assert frame["text"].tolist() == rows["text"].tolist()
    assert frame["predicted_label"][12] == "" and frame.iloc[13].equals(frame.iloc[0])
    assert (frame["label"] == frame["predicted_label"]).head(12).mean() >= 0.5
    # The same labeler over a Parquet folder of two parts gives the same labels.
    (tmp_path / "parts").mkdir()
    new.iloc[:6].to_parquet(tmp_path / "parts" / "a.parquet")
    new.iloc[6:].to_parquet(tmp_path / "parts" / "b.parquet")
    result = cli(lab, tmp_path / "parts", "--text-column", "text", command="apply")
    assert result.returncode == 0, result.stderr
    again = pd.read_csv(io.StringIO(result.stdout))
    assert sorted(again["predicted_label"]) == sorted(frame["predicted_label"].head(12))


@pytest.fixture(scope="module")
def zero_shot_labeler(files):
    lab = files / "zero-shot.zip"
    result = cli(files / "input.csv", "--labels-file", files / "labels.txt", "--save-labeler", lab)
    assert result.returncode == 0, result.stderr
    return lab


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("damaged labeler", "damaged or not a labeler file"),
        ("missing labeler", "Labeler file not found"),
        ("no such text column", "no column 'body'"),
        ("binary input", "looks like a binary file"),
    ],
)
def test_apply_mistakes_end_in_one_line_and_exit_2(
    files, zero_shot_labeler, tmp_path, case, message
):
    lab, source, extra = zero_shot_labeler, files / "input.csv", []
    if case == "damaged labeler":
        lab = tmp_path / "damaged.zip"
        lab.write_bytes(zero_shot_labeler.read_bytes()[:100])
    elif case == "missing labeler":
        lab = tmp_path / "nope.zip"
    elif case == "no such text column":
        extra = ["--text-column", "body"]
    elif case == "binary input":
        source = tmp_path / "photo.csv"
        source.write_bytes(bytes(range(256)) * 8)
    result = cli(lab, source, *extra, command="apply")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()  # after what it read of the labeler, if anything
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == lines[-1:] and message in errors[0], lines
