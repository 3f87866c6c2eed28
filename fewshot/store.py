"""The project store: one SQLite file per project, every write committed the moment it is made.

A reload, a server restart or a second browser tab loses nothing: each operation opens its own
connection (WAL mode, busy timeout), so threads and processes can share a project. Annotations are
an append-only event log: two people labeling one document both leave an event, the latest one is
the current label, and undo appends events rather than deleting any. No pickle: rows and JSON only.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from numbers import Integral
from pathlib import Path
from typing import Any

import pandas as pd

from fewshot import FewshotError, config

SUFFIX = ".sqlite"
_NAME = re.compile(r"[A-Za-z0-9_-](?:[A-Za-z0-9 ._-]{0,62}[A-Za-z0-9._-])?")
_FIXED = ("id", "text", "source")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS document (
    id INTEGER PRIMARY KEY, text TEXT NOT NULL, source TEXT NOT NULL, meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS label (
    position INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batch (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL, at TEXT NOT NULL,
    undoes INTEGER REFERENCES batch (id));
CREATE TABLE IF NOT EXISTS annotation (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, doc_id INTEGER NOT NULL, label TEXT,
    user TEXT NOT NULL, at TEXT NOT NULL, batch INTEGER NOT NULL REFERENCES batch (id));
CREATE INDEX IF NOT EXISTS annotation_doc ON annotation (doc_id, seq);
CREATE INDEX IF NOT EXISTS annotation_batch ON annotation (batch);
CREATE TABLE IF NOT EXISTS setting (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _jsonable(value: object) -> object:
    """numpy scalars and arrays as plain lists and numbers; anything else as its string."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _document_rows(frame: pd.DataFrame, start: int) -> list[tuple[int, str, str, str]]:
    """(id, text, source, metadata JSON) rows; an input id column is dropped, ids are ours."""
    if "text" not in frame.columns:
        raise FewshotError("Documents need a 'text' column")
    texts = frame["text"].tolist()
    empty = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if empty is not None:
        raise FewshotError(f"Every document needs a text; row {empty} has none")
    n = len(texts)
    sources = frame["source"].tolist() if "source" in frame.columns else [""] * n
    sources = ["" if _missing(s) else str(s) for s in sources]
    extra = [c for c in frame.columns if c not in _FIXED]
    metas = frame[extra].to_dict("records") if extra else [{}] * n
    return [
        (
            start + i,
            texts[i],
            sources[i],
            json.dumps(
                {str(k): None if _missing(v) else v for k, v in metas[i].items()},
                ensure_ascii=False,
                default=_jsonable,
            ),
        )
        for i in range(n)
    ]


class Project:
    """One labeling project in one SQLite file; share it freely between threads and processes."""

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or self.path.stem
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A fresh connection; with write=True one IMMEDIATE transaction, committed on exit.

        IMMEDIATE takes the write lock up front, so a read-then-write (undo, add_documents) cannot
        interleave with another writer, and waiting writers queue on the busy timeout.
        """
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            if write:
                db.execute("BEGIN IMMEDIATE")
            yield db
            if write:
                db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    # Documents

    def set_documents(self, frame: pd.DataFrame) -> None:
        """Replace the corpus (ids 0..n-1) and forget its annotations, in one transaction: a crash
        in between must not leave the old documents' labels on the new documents that take their
        ids."""
        rows = _document_rows(frame, 0)
        with self._connect(write=True) as db:
            db.execute("DELETE FROM document")
            db.executemany("INSERT INTO document VALUES (?, ?, ?, ?)", rows)
            db.execute("DELETE FROM annotation")
            db.execute("DELETE FROM batch")

    def add_documents(self, frame: pd.DataFrame) -> None:
        """Append documents; existing ids (and their annotations) are unchanged."""
        with self._connect(write=True) as db:
            start = db.execute("SELECT COALESCE(MAX(id) + 1, 0) FROM document").fetchone()[0]
            db.executemany("INSERT INTO document VALUES (?, ?, ?, ?)", _document_rows(frame, start))

    def documents(self) -> pd.DataFrame:
        """Columns id, text, source, then the metadata columns the documents came with."""
        with self._connect() as db:
            rows = db.execute("SELECT id, text, source, meta FROM document ORDER BY id").fetchall()
        frame = pd.DataFrame(rows, columns=[*_FIXED, "meta"])
        frame = frame.astype({"id": "int64", "text": str, "source": str})
        metas = [json.loads(m) for m in frame.pop("meta").tolist()]
        if any(metas):
            frame = pd.concat([frame, pd.DataFrame(metas, index=frame.index)], axis=1)
        return frame

    def texts(self) -> list[str]:
        """The documents' texts in id order: what every page run needs, without the metadata."""
        with self._connect() as db:
            return [row[0] for row in db.execute("SELECT text FROM document ORDER BY id")]

    def n_documents(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM document").fetchone()[0]

    # Labels

    def set_labels(self, labels: Sequence[tuple[str, str]]) -> None:
        """Replace the candidate labels: (name, description) pairs, names unique and non-empty."""
        rows: list[tuple[int, str, str]] = []
        for position, (name, description) in enumerate(labels):
            name = str(name).strip()
            if not name:
                raise FewshotError("Every label needs a name")
            if any(name == row[1] for row in rows):
                raise FewshotError(f"Label '{name}' is listed twice")
            rows.append((position, name, str(description or "").strip()))
        with self._connect(write=True) as db:
            db.execute("DELETE FROM label")
            db.executemany("INSERT INTO label VALUES (?, ?, ?)", rows)

    def labels(self) -> list[tuple[str, str]]:
        with self._connect() as db:
            return db.execute("SELECT name, description FROM label ORDER BY position").fetchall()

    # Annotations

    def annotate(
        self, doc_ids: int | Sequence[int], label: str | None, user: str = "local"
    ) -> None:
        """Record label (None: label removed) for the documents, as one batch that undo reverts."""
        ids = [doc_ids] if isinstance(doc_ids, Integral) else doc_ids
        ids = list(dict.fromkeys(int(i) for i in ids))
        if label is not None and (not isinstance(label, str) or not label.strip()):
            raise FewshotError(f"A label must be a non-empty name, not {label!r}")
        if not user:
            raise FewshotError("An annotation needs a user name")
        if not ids:
            return
        at = _now()
        with self._connect(write=True) as db:
            size = db.execute("SELECT COALESCE(MAX(id) + 1, 0) FROM document").fetchone()[0]
            bad = [i for i in ids if not 0 <= i < size]
            if bad:
                raise FewshotError(f"No document with id {bad[0]} (the corpus has {size})")
            batch = db.execute("INSERT INTO batch (user, at) VALUES (?, ?)", (user, at)).lastrowid
            db.executemany(
                "INSERT INTO annotation (doc_id, label, user, at, batch) VALUES (?, ?, ?, ?, ?)",
                [(i, label, user, at, batch) for i in ids],
            )

    def annotations(self) -> pd.DataFrame:
        """The current label of each labeled document: its latest event, unless that removed it."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT a.doc_id, a.label, a.user, a.at FROM annotation AS a"
                " JOIN (SELECT MAX(seq) AS seq FROM annotation GROUP BY doc_id) USING (seq)"
                " WHERE a.label IS NOT NULL ORDER BY a.doc_id"
            ).fetchall()
        frame = pd.DataFrame(rows, columns=["doc_id", "label", "user", "at"])
        return frame.astype({"doc_id": "int64", "label": str, "user": str, "at": str})

    def history(self, doc_id: int | None = None) -> pd.DataFrame:
        """Every annotation event in order; label is missing for removals, undoes names a batch."""
        query = (
            "SELECT a.seq, a.doc_id, a.label, a.user, a.at, a.batch, b.undoes"
            " FROM annotation AS a JOIN batch AS b ON b.id = a.batch"
        )
        params: tuple[int, ...] = ()
        if doc_id is not None:
            query, params = query + " WHERE a.doc_id = ?", (int(doc_id),)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY a.seq", params).fetchall()
        frame = pd.DataFrame(
            rows, columns=["seq", "doc_id", "label", "user", "at", "batch", "undoes"]
        )
        types = {"seq": "int64", "doc_id": "int64", "user": str, "at": str, "batch": "int64"}
        return frame.astype({**types, "undoes": "Int64"})  # undoes is missing outside an undo

    def undo(self, user: str = "local") -> bool:
        """Revert the user's latest annotate call that is not undone yet; False if there is none.

        Each document in that batch goes back to its label from just before the batch, unless
        someone has labeled it since: their later label stays.
        """
        with self._connect(write=True) as db:
            row = db.execute(
                "SELECT id FROM batch WHERE user = ? AND undoes IS NULL AND id NOT IN"
                " (SELECT undoes FROM batch WHERE undoes IS NOT NULL) ORDER BY id DESC LIMIT 1",
                (user,),
            ).fetchone()
            if row is None:
                return False
            at = _now()
            batch = db.execute(
                "INSERT INTO batch (user, at, undoes) VALUES (?, ?, ?)", (user, at, row[0])
            ).lastrowid
            events = db.execute(
                "SELECT seq, doc_id, label FROM annotation WHERE batch = ?", (row[0],)
            ).fetchall()
            latest = "SELECT label FROM annotation WHERE doc_id = ? ORDER BY seq DESC"
            earlier = "SELECT label FROM annotation WHERE doc_id = ? AND seq < ? ORDER BY seq DESC"
            reverts = []
            for seq, doc_id, label in events:
                if db.execute(latest, (doc_id,)).fetchone()[0] != label:
                    continue  # labeled again since then, by someone: that label stays
                before = db.execute(earlier, (doc_id, seq)).fetchone()
                reverts.append((doc_id, before[0] if before else None, user, at, batch))
            db.executemany(
                "INSERT INTO annotation (doc_id, label, user, at, batch) VALUES (?, ?, ?, ?, ?)",
                reverts,
            )
        return True

    # Settings

    def get_setting(self, key: str, default: Any = None) -> Any:
        with self._connect() as db:
            row = db.execute("SELECT value FROM setting WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_setting(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value (TypeError otherwise)."""
        text = json.dumps(value)
        with self._connect(write=True) as db:
            db.execute(
                "INSERT INTO setting VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, text),
            )


def projects_dir(root: Path | None = None) -> Path:
    return Path(root) if root is not None else config.data_dir() / "projects"


def _project_path(name: str, root: Path | None) -> Path:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise FewshotError(
            f"Invalid project name {name!r}: use 1-64 letters, digits, spaces, '-', '_' or '.', "
            "not starting with '.' and not starting or ending with a space"
        )
    base = projects_dir(root).resolve()
    path = (base / f"{name}{SUFFIX}").resolve()
    if path.parent != base:
        raise FewshotError(f"Invalid project name {name!r}: it points outside {base}")
    return path


def list_projects(root: Path | None = None) -> list[str]:
    """Names of the projects under root (default: the data directory's projects folder)."""
    base = projects_dir(root)
    if not base.is_dir():
        return []
    names = (p.stem for p in base.glob(f"*{SUFFIX}") if _NAME.fullmatch(p.stem))
    return sorted(names, key=str.lower)


def open_project(name: str, root: Path | None = None, create: bool = True) -> Project:
    """The project called name, created (empty) unless create=False."""
    path = _project_path(name, root)
    if not create and not path.exists():
        raise FewshotError(f"No project named '{name}'")
    try:
        return Project(path, name)
    except sqlite3.DatabaseError as exc:
        raise FewshotError(f"Project '{name}' could not be opened: {exc}") from exc
