"""Apply a labeler file to new documents, batch by batch: memory stays flat whatever the input.

Inputs are any file the app reads (.txt, .csv, .tsv, .jsonl, .json) or Parquet (a file or a
folder of them); they are read in batches of rows by pyarrow's streaming readers (a .json array
cannot be streamed, and is read whole within the app's upload limit). Each batch comes back with
the input's columns, then `predicted_label`, `score` and a `score_<label>` column per label, as
`fewshot classify` writes them. The same `label_frame` runs in Spark's workers (`fewshot.spark`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as pa_dataset
import pyarrow.json as pa_json

from fewshot import FewshotError
from fewshot.encoders import Progress, backend_of
from fewshot.ingest import (
    MAX_DOC_CHARS,
    guess_text_column,
    pick_text_column,
    read_path_rows,
    sniff_encoding,
)
from fewshot.labeler import Labeler, score_columns
from fewshot.views import Embedder

BATCH_ROWS = 512  # rows embedded at once: a few MB of vectors whatever the input's size
_SAMPLE = 1 << 20  # bytes read to tell the encoding and refuse binary files


def embedder_for(
    labeler: Labeler, threads: int | None = None, progress: Progress | None = None
) -> Embedder:
    """The configured models of the labeler's view (`Embedder.for_view`), checked against the
    ones it was taught with; the sentence encoder's backend is the one it was taught with, so a
    labeler keeps working whatever FEWSHOT_ENCODER says."""
    taught = labeler.encoders.get("sentence")
    backend = backend_of(taught) if taught else None
    embedder = Embedder.for_view(labeler.view, backend, threads, progress)
    labeler.check(embedder.identity(labeler.view))
    return embedder


def label_frame(
    labeler: Labeler, embedder: Embedder, frame: pd.DataFrame, column: str
) -> pd.DataFrame:
    """The frame's columns (earlier label columns dropped), then the labeler's. A repeated text
    is embedded once; an empty one gets empty label cells."""
    # As strings: a column of numbers (read as such from CSV or Parquet) is text too.
    texts = frame[column].astype("string").fillna("").str.strip().str[:MAX_DOC_CHARS].tolist()
    distinct = list(dict.fromkeys(t for t in texts if t))
    if distinct:
        proba = labeler.predict_proba(embedder.view(distinct, labeler.view), distinct)
    else:
        proba = np.zeros((0, len(labeler.labels)), dtype=np.float32)
    scores = score_columns(labeler.labels.names, proba).set_axis(distinct)
    scores = scores.reindex(texts).reset_index(drop=True)
    kept = frame.drop(columns=labeler.output_columns, errors="ignore").reset_index(drop=True)
    return pd.concat([kept, scores], axis=1)


def read_batches(
    path: str | Path,
    text_column: str | None = None,
    txt_mode: str = "lines",
    rows: int = BATCH_ROWS,
) -> tuple[str, Iterator[pd.DataFrame]]:
    """The text column (given, or guessed from the first batch) and the input's batches."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FewshotError(f"File not found: {path}")
    batches = _batches(path, txt_mode, rows)
    first = next(batches, None)
    if first is None or first.empty:
        raise FewshotError(f"{path.name} has no rows to label")
    if text_column is None:
        column = guess_text_column(first)
    else:
        column = pick_text_column(path.name, first, text_column)

    def chained() -> Iterator[pd.DataFrame]:
        yield first
        yield from batches

    return column, chained()


def _batches(path: Path, txt_mode: str, rows: int) -> Iterator[pd.DataFrame]:
    if path.is_dir() or path.suffix.lower() == ".parquet":
        yield from _parquet(path, rows)
        return
    ext = path.suffix.lower()
    with path.open("rb") as handle:
        encoding, notes = sniff_encoding(path.name, handle.read(_SAMPLE), complete=False)
    for note in notes:
        print(note, file=sys.stderr)
    if ext == ".txt" and txt_mode == "lines":
        yield from _lines(path, encoding, rows)
    elif ext in (".csv", ".tsv"):
        yield from _csv(path, encoding, rows, "\t" if ext == ".tsv" else None)
    elif ext == ".jsonl":
        yield from _arrow(_jsonl(path, encoding, rows), rows)
    else:  # .json arrays, .txt as one document, unknown types: read whole, refused as uploads are
        frame = read_path_rows(path, txt_mode=txt_mode).drop(columns="source")
        for start in range(0, len(frame), rows):
            yield frame.iloc[start : start + rows]


def _parquet(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    try:
        dataset = pa_dataset.dataset(path, format="parquet", exclude_invalid_files=False)
        for batch in dataset.to_batches(batch_size=rows):
            yield batch.to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise FewshotError(f"{path.name} could not be read as Parquet: {exc}") from None


def _lines(path: Path, encoding: str, rows: int) -> Iterator[pd.DataFrame]:
    with path.open(encoding=encoding, errors="replace") as handle:
        batch: list[str] = []
        for line in handle:
            if line.strip():
                batch.append(line.rstrip("\r\n"))
                if len(batch) == rows:
                    yield pd.DataFrame({"text": batch})
                    batch = []
        if batch:
            yield pd.DataFrame({"text": batch})


def _csv(path: Path, encoding: str, rows: int, sep: str | None) -> Iterator[pd.DataFrame]:
    if sep is None:
        with path.open(encoding=encoding, errors="replace") as handle:
            first = handle.readline()
        sep = next((s for s in ",;\t|" if s in first), ",")
    skipped = 0

    def skip(row: pa_csv.InvalidRow) -> str:
        nonlocal skipped
        skipped += 1
        return "skip"

    read = pa_csv.ReadOptions(encoding=_arrow_encoding(encoding), block_size=1 << 20)
    parse = pa_csv.ParseOptions(delimiter=sep, newlines_in_values=True, invalid_row_handler=skip)
    try:
        reader = pa_csv.open_csv(path, read_options=read, parse_options=parse)
        yield from _arrow(reader, rows)
    except pa.ArrowException as exc:
        raise FewshotError(f"{path.name} could not be parsed as a table: {exc}") from None
    if skipped:
        print(
            f"{path.name}: skipped {skipped:,} rows whose fields do not fit the header",
            file=sys.stderr,
        )


def _jsonl(path: Path, encoding: str, rows: int) -> pa.RecordBatchReader:
    if _arrow_encoding(encoding) != "utf8":
        raise FewshotError(f"{path.name}: JSON Lines must be UTF-8 (it reads as {encoding})")
    try:
        return pa_json.open_json(path, read_options=pa_json.ReadOptions(block_size=1 << 20))
    except pa.ArrowException as exc:
        raise FewshotError(f"{path.name} could not be parsed as JSON Lines: {exc}") from None


def _arrow(batches: pa.RecordBatchReader, rows: int) -> Iterator[pd.DataFrame]:
    """Arrow batches re-cut to `rows` rows."""
    for batch in batches:
        frame = batch.to_pandas()
        for start in range(0, len(frame), rows):
            yield frame.iloc[start : start + rows]


def count_rows(path: str | Path) -> int:
    """Rows of an input, for progress: exact for Parquet, its lines for a text file (an upper
    bound: blank lines and values spanning lines count too)."""
    path = Path(path).expanduser()
    if path.is_dir() or path.suffix.lower() == ".parquet":
        return pa_dataset.dataset(path, format="parquet").count_rows()
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 24):
            lines, last = lines + chunk.count(b"\n"), chunk[-1:]
    header = path.suffix.lower() in (".csv", ".tsv")
    return max(1, lines + (last != b"\n") - header)


def _arrow_encoding(encoding: str) -> str:
    return "utf8" if encoding == "utf-8-sig" else encoding


def label_batches(
    labeler: Labeler,
    embedder: Embedder,
    path: str | Path,
    text_column: str | None = None,
    txt_mode: str = "lines",
    progress: Progress | None = None,
) -> Iterator[pd.DataFrame]:
    """Every row of a file, labeled, batch by batch (progress: rows done of about how many)."""
    column, batches = read_batches(path, text_column, txt_mode)
    total = count_rows(path) if progress is not None else 0
    done = 0
    for batch in batches:
        labeled = label_frame(labeler, embedder, batch, column)
        done += len(labeled)
        if progress is not None:
            progress(done, max(total, done))
        yield labeled


def apply_file(
    labeler: Labeler,
    embedder: Embedder,
    path: str | Path,
    output: str | Path | None = None,
    text_column: str | None = None,
    txt_mode: str = "lines",
    progress: Progress | None = None,
) -> int:
    """Label every row of a file into a CSV (output, or stdout); rows written."""
    written = 0
    target = open(output, "w", newline="", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    try:
        for labeled in label_batches(labeler, embedder, path, text_column, txt_mode, progress):
            labeled.to_csv(target, index=False, header=written == 0)
            written += len(labeled)
    finally:
        if output:
            target.close()
    return written
