"""Files in, a clean table of documents out (text, source, then metadata), or a FewshotError.

Every problem a user can cause (wrong encoding, a binary file, a ragged CSV, a missing column) ends
either in a readable table plus a note in the report, or in one clear error message. Parsing is
plain text and JSON only: no pickle, no eval.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fewshot import FewshotError

SUPPORTED = (".txt", ".csv", ".tsv", ".jsonl", ".json")
MAX_BYTES = 200 * 1024 * 1024
MAX_DOC_CHARS = 20_000
TXT_MODES = ("lines", "file")
# Column names that say "this is the text", most telling first.
TEXT_NAMES = (
    "text", "sentence", "document", "content", "body", "review", "comment", "message", "tweet",
    "utterance", "abstract", "description", "question", "title",
)  # fmt: skip
RESERVED = ("text", "source", "id")  # output columns (the store adds id); inputs' own are renamed
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")  # not \t \n \v \f \r
_NEWLINE = re.compile(r"\r\n?|\n")
_BOMS = (  # the codecs named here read the BOM and drop it
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: its BOM starts the same way
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass
class IngestReport:
    """What cleaning did, so the user can see why fewer documents came out than rows went in."""

    rows_read: int = 0
    empty_dropped: int = 0
    duplicates_dropped: int = 0
    truncated: int = 0
    documents: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.documents} documents from {self.rows_read} rows "
            f"({self.empty_dropped} empty and {self.duplicates_dropped} duplicate rows dropped)"
        )


@dataclass
class IngestResult:
    frame: pd.DataFrame
    report: IngestReport


def sniff_encoding(name: str, data: bytes, complete: bool = True) -> tuple[str, list[str]]:
    """The codec that reads a file: UTF-8 (BOM or not), UTF-16/32 with a BOM, else Windows-1252
    or Latin-1 (with a note). data: the whole file, or its start (complete False: a character
    may be cut at the end). Refuses empty and binary files."""
    if not data:
        raise FewshotError(f"{name} is empty")
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                sample = _read(data, encoding, complete)
            except UnicodeDecodeError:
                raise FewshotError(f"{name} looks like a binary file, not text") from None
            _refuse_binary(name, sample)
            return encoding, []
    if b"\x00" in data:
        raise FewshotError(f"{name} looks like a binary file, not text")
    notes: list[str] = []
    try:
        encoding = "utf-8-sig"
        sample = _read(data, encoding, complete)
    except UnicodeDecodeError:
        try:
            encoding, sample = "cp1252", data.decode("cp1252")
            notes.append(f"{name}: not valid UTF-8, read as Windows-1252")
        except UnicodeDecodeError:
            encoding, sample = "latin-1", data.decode("latin-1")
            notes.append(f"{name}: not valid UTF-8, read as Latin-1")
    _refuse_binary(name, sample)
    return encoding, notes


def _read(data: bytes, encoding: str, complete: bool) -> str:
    if complete:
        return data.decode(encoding)
    return codecs.getincrementaldecoder(encoding)().decode(data, final=False)


def _refuse_binary(name: str, text: str) -> None:
    sample = text[: 1 << 20]
    if len(_CONTROL.findall(sample)) > 0.05 * len(sample) or "\x00" in text:
        raise FewshotError(f"{name} looks like a binary file, not text")


def _decode(name: str, data: bytes) -> tuple[str, list[str]]:
    """Text from bytes, decoded as `sniff_encoding` says."""
    if len(data) > MAX_BYTES:
        raise FewshotError(
            f"{name} is {len(data) / 2**20:.0f} MB; the limit is {MAX_BYTES // 2**20} MB"
        )
    encoding, notes = sniff_encoding(name, data)
    text = data.decode(encoding)
    if not text:
        raise FewshotError(f"{name} is empty")
    return text, notes


def _unique_names(names: list[str]) -> list[str]:
    """Header names made usable: blanks become column_N, repeats get .1, .2 (as pandas does)."""
    out: list[str] = []
    for i, raw in enumerate(names):
        base = raw.strip() or f"column_{i + 1}"
        candidate, k = base, 0
        while candidate in out:
            k += 1
            candidate = f"{base}.{k}"
        out.append(candidate)
    return out


def _read_csv(name: str, text: str, sep: str) -> tuple[pd.DataFrame, list[str]]:
    """CSV/TSV with a header row, tolerant of ragged rows and stray quotes, each one reported.

    Python's csv module rather than pandas.read_csv: pandas silently truncates or drops some ragged
    and badly quoted rows (index_col inference, EOF inside a quote), and here every loss is counted.
    """
    notes: list[str] = []

    def rows(strict: bool) -> tuple[list[list[str]], list[int]]:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=strict)
        out, lines = [], []
        for row in reader:
            if row:  # a blank line
                out.append(row)
                lines.append(reader.line_num)
        return out, lines

    try:
        records, lines = rows(strict=True)
    except csv.Error as exc:
        if "end of data" in str(exc) or "field limit" in str(exc):
            raise FewshotError(
                f"{name} could not be parsed as a table: a quote is never closed ({exc})"
            ) from None
        try:
            records, lines = rows(strict=False)
        except csv.Error as again:
            raise FewshotError(f"{name} could not be parsed as a table: {again}") from None
        notes.append(f"{name}: stray quotes ({exc}); those fields were read leniently")
    if not records:
        raise FewshotError(f"{name} has no header row")
    header = _unique_names(records[0])
    width = len(header)
    table, skipped = [], []
    for row, line in zip(records[1:], lines[1:], strict=True):
        if len(row) > width:
            if width == 1:  # a one-column file of sentences with unquoted delimiters in them
                row = [sep.join(row)]
            elif any(cell.strip() for cell in row[width:]):
                skipped.append(line)
                continue
            else:  # trailing delimiters
                row = row[:width]
        table.append(row + [""] * (width - len(row)))
    if skipped:
        shown = ", ".join(map(str, skipped[:5])) + (", ..." if len(skipped) > 5 else "")
        notes.append(
            f"{name}: skipped rows with more fields than the header (an unquoted "
            f"delimiter?): {len(skipped):,}, on lines {shown}"
        )
    return pd.DataFrame(table, columns=header, dtype=object), notes


def _read_json(name: str, text: str) -> tuple[pd.DataFrame, list[str]]:
    """A JSON list of objects, or JSON Lines (one object per line); a bare string is a text."""
    notes: list[str] = []
    try:
        whole = json.loads(text)
        values = whole if isinstance(whole, list) else [whole]
        lines = list(range(1, len(values) + 1))
    except (ValueError, RecursionError):
        values, lines, bad = [], [], []
        for number, line in enumerate(_NEWLINE.split(text), start=1):
            if not line.strip():
                continue
            try:
                values.append(json.loads(line))
                lines.append(number)
            except (ValueError, RecursionError):
                bad.append(number)
        if bad and not values:
            raise FewshotError(
                f"{name} could not be parsed as JSON or JSON Lines (line {bad[0]} is not JSON)"
            ) from None
        if bad:
            shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
            notes.append(f"{name}: skipped {len(bad)} lines that are not JSON: {shown}")
    records, odd = [], []
    for value, number in zip(values, lines, strict=True):
        if isinstance(value, dict):
            records.append({str(k): v for k, v in value.items()})
        elif isinstance(value, str):
            records.append({"text": value})
        else:
            odd.append(number)
    if odd and not records:
        raise FewshotError(f"{name} should hold JSON objects, one per document")
    if odd:
        notes.append(f"{name}: skipped {len(odd)} entries that are not JSON objects")
    frame = pd.DataFrame(records, dtype=object)
    if frame.columns.empty:
        raise FewshotError(f"{name} has no fields to read text from")
    return frame, notes


def _extension(name: str) -> str:
    ext = Path(name).suffix.lower()
    if ext not in SUPPORTED:
        raise FewshotError(
            f"{name}: unsupported file type '{ext or '(none)'}'; use one of {', '.join(SUPPORTED)}"
        )
    return ext


def _table(name: str, data: bytes) -> tuple[pd.DataFrame, list[str]]:
    """The raw table in a .csv/.tsv/.json/.jsonl file, every column as read."""
    ext = _extension(name)
    text, notes = _decode(name, data)
    if ext in (".json", ".jsonl"):
        frame, more = _read_json(name, text)
    else:
        first = text.lstrip("\r\n").split("\n", 1)[0]
        sep = "\t" if ext == ".tsv" else next((s for s in ",;\t|" if s in first), ",")
        frame, more = _read_csv(name, text, sep)
    return frame, notes + more


def table_columns(name: str, data: bytes) -> list[str]:
    """Column names for the UI's text column picker; a .txt file has none."""
    if _extension(name) == ".txt":
        return []
    return [str(c) for c in _table(name, data)[0].columns]


def read_table(name: str, data: bytes) -> pd.DataFrame:
    """A table file as read, every column, so the UI can preselect guess_text_column's pick; a .txt
    file has no columns (an empty frame)."""
    if _extension(name) == ".txt":
        return pd.DataFrame()
    return _table(name, data)[0]


def guess_text_column(frame: pd.DataFrame) -> str:
    """A column named like text (text, sentence, content, ...), else the one with the longest texts.

    Length counts only values with a letter in them, so long ids and timestamps do not win.
    """
    if frame.columns.empty:
        raise FewshotError("The table has no columns")
    by_name = {str(c).strip().lower(): c for c in frame.columns}
    for wanted in TEXT_NAMES:
        if wanted in by_name:
            return by_name[wanted]
    sample = frame.head(1000)

    def score(column: object) -> float:
        values = sample[column]
        if isinstance(values, pd.DataFrame):  # repeated column name
            values = values.iloc[:, 0]
        lengths = [
            len(v) if isinstance(v, str) and any(ch.isalpha() for ch in v) else 0 for v in values
        ]
        return sum(lengths) / max(len(lengths), 1)

    return max(frame.columns, key=score)


def _as_text(value: object) -> str | None:
    """A cell as a string; nested JSON stays JSON, missing values stay missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, bool)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def pick_text_column(name: str, frame: pd.DataFrame, text_column: str | None) -> str:
    if text_column is None:
        return guess_text_column(frame)
    columns = [str(c) for c in frame.columns]
    if text_column in columns:
        return text_column
    folded = [c for c in columns if c.lower() == text_column.lower()]
    if len(folded) == 1:
        return folded[0]
    raise FewshotError(
        f"{name} has no column '{text_column}'; available columns: {', '.join(columns)}"
    )


def _parse(
    name: str, data: bytes, text_column: str | None, txt_mode: str
) -> tuple[pd.DataFrame, list[str]]:
    if txt_mode not in TXT_MODES:
        raise FewshotError(f"txt_mode must be one of {', '.join(TXT_MODES)}, not '{txt_mode}'")
    if _extension(name) == ".txt":
        text, notes = _decode(name, data)
        texts = [text] if txt_mode == "file" else _NEWLINE.split(text)
        texts = [t for t in texts if t.strip()]
        return pd.DataFrame({"text": pd.Series(texts, dtype=str), "source": name}), notes
    table, notes = _table(name, data)
    column = pick_text_column(name, table, text_column)
    out = {
        "text": [_as_text(v) or "" for v in table[column].tolist()],
        "source": [name] * len(table),
    }
    renamed = []
    for other in table.columns:
        if other == column:
            continue
        key = str(other)
        while key in out or key in RESERVED:
            key = f"original_{key}"
        if key != other:
            renamed.append(f"'{other}' to '{key}'")
        out[key] = [_as_text(v) for v in table[other].tolist()]
    if renamed:
        notes.append(f"{name}: renamed column {', '.join(renamed)}")
    if not any(any(ch.isalpha() for ch in t) for t in out["text"][:1000]):
        notes.append(f"{name}: column '{column}' has no text in it (no letters); pick another")
    return pd.DataFrame(out).astype({"text": str, "source": str}), notes


def read_upload(
    name: str, data: bytes, *, text_column: str | None = None, txt_mode: str = "lines"
) -> pd.DataFrame:
    """One file's documents as read (not yet stripped or deduplicated): text, source, metadata.

    .txt is one document per non-empty line (txt_mode="lines") or per file ("file"); tables take
    their text from text_column, or from guess_text_column when it is None.
    """
    return _parse(name, data, text_column, txt_mode)[0]


def _clean(parsed: list[tuple[str, pd.DataFrame]], report: IngestReport) -> pd.DataFrame:
    """Strip, drop empty rows, truncate very long documents, drop exact duplicates (first kept)."""
    kept = []
    for name, frame in parsed:
        texts = [t.strip() for t in frame["text"].tolist()]
        keep = [bool(t) for t in texts]
        long = sum(len(t) > MAX_DOC_CHARS for t in texts)
        if long:
            texts = [t[:MAX_DOC_CHARS] for t in texts]
            report.notes.append(
                f"{name}: documents longer than {MAX_DOC_CHARS:,} characters were cut short: {long:,}"
            )
        report.rows_read += len(frame)
        report.empty_dropped += len(frame) - sum(keep)
        report.truncated += long
        kept.append(frame.assign(text=pd.Series(texts, index=frame.index, dtype=str)).loc[keep])
    frame = pd.concat(kept, ignore_index=True)
    duplicated = frame["text"].duplicated()
    for name, count in frame.loc[duplicated, "source"].value_counts(sort=False).items():
        report.notes.append(f"{name}: {count} duplicate texts dropped")
    report.duplicates_dropped = int(duplicated.sum())
    frame = frame[~duplicated].reset_index(drop=True)
    report.documents = len(frame)
    return frame


def read_uploads(
    files: list[tuple[str, bytes]], *, text_column: str | None = None, txt_mode: str = "lines"
) -> IngestResult:
    """Several (name, bytes) files as one clean corpus, with a report of what cleaning did."""
    if not files:
        raise FewshotError("No files to read")
    report = IngestReport()
    parsed = []
    for name, data in files:
        frame, notes = _parse(name, data, text_column, txt_mode)
        report.notes.extend(notes)
        parsed.append((name, frame))
    frame = _clean(parsed, report)
    if frame.empty:
        raise FewshotError(f"No documents found in {', '.join(name for name, _ in files)}")
    return IngestResult(frame, report)


def _file(path: str | Path) -> tuple[str, bytes]:
    """(name, bytes) of a file on disk, refused like an upload when missing or too big."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FewshotError(f"File not found: {path}")
    if path.stat().st_size > MAX_BYTES:
        raise FewshotError(f"{path.name} is larger than the {MAX_BYTES // 2**20} MB limit")
    return path.name, path.read_bytes()


def read_path(
    path: str | Path, *, text_column: str | None = None, txt_mode: str = "lines"
) -> pd.DataFrame:
    """A file on disk, cleaned like read_uploads (a corpus: the demo, the CLI's examples)."""
    return read_uploads([_file(path)], text_column=text_column, txt_mode=txt_mode).frame


def read_path_rows(
    path: str | Path, *, text_column: str | None = None, txt_mode: str = "lines"
) -> pd.DataFrame:
    """A file on disk with every row kept, empty and repeated ones too: the CLI writes one output
    row per input row, so a result lines up with its input."""
    name, data = _file(path)
    return read_upload(name, data, text_column=text_column, txt_mode=txt_mode)
