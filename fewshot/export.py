"""What leaves the app: one table of documents, labels and scores (CSV / JSONL), and the fitted maps.

CSV files get opened in spreadsheets, which run any cell that starts like a formula, so text cells
are neutralised there. Map files are plain `.npz` arrays both ways, checked before they are read.
"""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from fewshot import FewshotError
from fewshot.maps import LinearMap, Wmap, Zmap
from fewshot.workspace import Prediction

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MAP_KINDS: dict[str, type[LinearMap]] = {"wmap": Wmap, "zmap": Zmap}
MAX_MAP_BYTES = 256 * 1024 * 1024  # unpacked; an upload claiming more is refused before reading


def export_table(
    documents: pd.DataFrame, annotations: pd.DataFrame, prediction: Prediction | None = None
) -> pd.DataFrame:
    """One row per document: id, text, source and metadata, the human label with who and when,
    the predicted label, its score, and a score_<label> column per label.

    documents and annotations are as `Project.documents()` / `Project.annotations()` return them;
    prediction rows follow the documents' order (the Workspace is built from the same list).
    Metadata columns whose names clash with the exported ones get a `meta_` prefix.
    """
    if prediction is not None and len(prediction.proba) != len(documents):
        raise FewshotError(
            f"The predictions cover {len(prediction.proba)} documents but the project has "
            f"{len(documents)}: refresh the predictions first."
        )
    frame = documents.reset_index(drop=True)
    human = annotations.set_index("doc_id")
    added = {
        "human_label": frame["id"].map(human["label"]),
        "annotated_by": frame["id"].map(human["user"]),
        "annotated_at": frame["id"].map(human["at"]),
    }
    if prediction is not None:
        names = np.array(prediction.labels.names, dtype=object)
        added["predicted_label"] = names[prediction.predicted]
        added["score"] = prediction.proba.max(axis=1)
        for i, name in enumerate(prediction.labels.names):
            added[f"score_{name}"] = prediction.proba[:, i]
    else:
        added["predicted_label"] = None
        added["score"] = np.nan
    clashes = {c: f"meta_{c}" for c in frame.columns if c in added}
    frame = frame.rename(columns=clashes)
    return pd.concat([frame, pd.DataFrame(added, index=frame.index)], axis=1)


def label_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Documents per label, by human label and by predicted label (an export_table as input)."""
    human = table["human_label"].value_counts()
    predicted = table["predicted_label"].value_counts()
    order = [c.removeprefix("score_") for c in table.columns if c.startswith("score_")]
    order += sorted(set(human.index).union(predicted.index) - set(order))  # e.g. retired labels
    summary = pd.DataFrame({"human": human, "predicted": predicted}).reindex(order)
    summary.index.name = "label"
    return summary.fillna(0).astype(int)


def _neutralise(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """UTF-8 CSV (with BOM, so Excel reads accents) where no cell or header can run as a formula."""
    safe = frame.map(_neutralise)
    safe.columns = [_neutralise(str(c)) for c in frame.columns]
    return safe.to_csv(index=False).encode("utf-8-sig")


def to_jsonl_bytes(frame: pd.DataFrame) -> bytes:
    """One JSON object per document and line; missing values are null, text is kept verbatim."""
    text = frame.to_json(orient="records", lines=True, force_ascii=False)
    return (text + "\n" if text and not text.endswith("\n") else text).encode("utf-8")


def map_to_bytes(linear_map: LinearMap) -> bytes:
    """The map's `.npz` file as bytes, for a download button."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "map.npz"
        linear_map.save(path)
        return path.read_bytes()


def map_from_bytes(data: bytes, name: str = "map.npz") -> LinearMap:
    """A Wmap or Zmap from an uploaded `.npz`; anything else is a FewshotError naming the file.

    The archive is inspected before any array is read, so an oversized one costs no memory.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
            members = set(archive.namelist())
    except zipfile.BadZipFile as exc:
        raise FewshotError(f"Not a map file: {name} is not an .npz archive.") from exc
    if unpacked > MAX_MAP_BYTES:
        raise FewshotError(f"{name} unpacks to {unpacked / 2**20:.0f} MB; a map is far smaller.")
    if not {"kind.npy", "coef.npy"} <= members:
        raise FewshotError(f"Not a map file: {name} lacks the 'kind' and 'coef' arrays.")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            kind = str(arrays["kind"])
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise FewshotError(f"Not a map file: {name} ({exc})") from exc
    if kind not in MAP_KINDS:
        raise FewshotError(f"{name} holds a '{kind}' map; expected one of {', '.join(MAP_KINDS)}.")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(name).stem).strip("_") or "map"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{stem}.npz"  # the user's name in messages, never as a path
        path.write_bytes(data)
        return MAP_KINDS[kind].load(path)
