"""The project store: one SQLite file per project, every write committed the moment it is made.

A reload, a server restart or a second browser tab loses nothing: each operation opens its own
connection (WAL mode, busy timeout), so threads and processes can share a project. Annotations are
an append-only event log: two people labeling one document both leave an event, the latest one is
the current label, and undo appends events rather than deleting any. Changes of the label set
(edit, rename, merge, delete) are batches too, with the lists before and after, so one undo per
user reverts whichever came last. No pickle: rows and JSON only.
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
CREATE TABLE IF NOT EXISTS label_change (
    batch INTEGER PRIMARY KEY REFERENCES batch (id), action TEXT NOT NULL, detail TEXT NOT NULL,
    before TEXT NOT NULL, after TEXT NOT NULL);
"""
_LATEST = (  # each document's latest event: its current label (NULL when removed)
    "SELECT a.doc_id, a.label, a.user, a.at FROM annotation AS a"
    " JOIN (SELECT MAX(seq) AS seq FROM annotation GROUP BY doc_id) USING (seq)"
)
_INSERT_EVENT = "INSERT INTO annotation (doc_id, label, user, at, batch) VALUES (?, ?, ?, ?, ?)"


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


def _documents(n: int) -> str:
    return f"{n:,} document" + ("" if n == 1 else "s")


def _label_rows(labels: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """(name, description) pairs cleaned and checked: names non-empty and unique."""
    rows: list[tuple[str, str]] = []
    for name, description in labels:
        name = str(name).strip()
        if not name:
            raise FewshotError("Every label needs a name")
        if any(name == row[0] for row in rows):
            raise FewshotError(f"Label '{name}' is listed twice")
        rows.append((name, str(description or "").strip()))
    return rows


def _labels(db: sqlite3.Connection) -> list[tuple[str, str]]:
    return db.execute("SELECT name, description FROM label ORDER BY position").fetchall()


def _from_json(text: str) -> list[tuple[str, str]]:
    return [(name, description) for name, description in json.loads(text)]


def _position(labels: list[tuple[str, str]], name: str) -> int:
    """Where the label called name (exactly, or else ignoring case) stands in the list."""
    for exact in (True, False):
        for i, (n, _) in enumerate(labels):
            if n == name if exact else n.casefold() == str(name).casefold():
                return i
    raise FewshotError(f"No label named '{name}'")


def _label_counts(db: sqlite3.Connection) -> dict[str, int]:
    """Documents per current human label, by the label's name ignoring case."""
    counts: dict[str, int] = {}
    for label, n in db.execute(
        f"SELECT label, COUNT(*) FROM ({_LATEST}) WHERE label IS NOT NULL GROUP BY label"
    ):
        counts[label.casefold()] = counts.get(label.casefold(), 0) + n
    return counts


def _describe_edit(before: list[tuple[str, str]], after: list[tuple[str, str]]) -> str:
    """An edit of the label list in words: what was added, removed, re-described or moved."""
    old, new = dict(before), dict(after)
    parts = []
    if added := [n for n in new if n not in old]:
        parts.append("added " + ", ".join(added))
    if removed := [n for n in old if n not in new]:
        parts.append("removed " + ", ".join(removed))
    if described := [n for n in new if n in old and new[n] != old[n]]:
        parts.append("described " + ", ".join(described))
    if [n for n in old if n in new] != [n for n in new if n in old]:
        parts.append("reordered")
    return "; ".join(parts)


def _write_labels(
    db: sqlite3.Connection,
    batch: int,
    action: str,
    detail: str,
    before: list[tuple[str, str]],
    after: list[tuple[str, str]],
) -> None:
    """Replace the label list and record the change under batch."""
    db.execute(
        "INSERT INTO label_change VALUES (?, ?, ?, ?, ?)",
        (batch, action, detail, json.dumps(before), json.dumps(after)),
    )
    db.execute("DELETE FROM label")
    db.executemany(
        "INSERT INTO label VALUES (?, ?, ?)", [(i, n, d) for i, (n, d) in enumerate(after)]
    )


def _change_labels(
    db: sqlite3.Connection,
    action: str,
    detail: str,
    before: list[tuple[str, str]],
    after: list[tuple[str, str]],
    user: str,
    relabel: dict[str, str | None] | None = None,
) -> None:
    """One batch: the new label list, and an event for every document whose current label is
    a key of relabel (by name ignoring case), setting it to the value (None removes it)."""
    relabel = relabel or {}
    moved = [
        (doc, relabel[label.casefold()])
        for doc, label, _, _ in db.execute(_LATEST + " WHERE a.label IS NOT NULL")
        if label.casefold() in relabel
    ]
    if before == after and not moved:
        return
    at = _now()
    batch = db.execute("INSERT INTO batch (user, at) VALUES (?, ?)", (user, at)).lastrowid
    _write_labels(db, batch, action, detail, before, after)
    db.executemany(_INSERT_EVENT, [(doc, label, user, at, batch) for doc, label in moved])


def _writes(current: str | None, wanted: str | None, overwrite: bool) -> bool:
    """Whether annotate writes an event for a document whose current label is current: not when
    it changes nothing, nor over another human label unless overwrite."""
    now = None if current is None else current.casefold()
    return now != wanted and (overwrite or now is None)


def _strays(
    db: sqlite3.Connection,
    action: str,
    now: list[tuple[str, str]],
    before: list[tuple[str, str]],
    reverts: list[tuple],
    user: str,
    at: str,
    batch: int,
) -> list[tuple]:
    """Events for undoing a label change: documents that would be left carrying a label the
    undo removes (labeled with it after the change). A rename takes them back to its old name;
    any other change refuses (FewshotError), as set_labels does."""
    kept = {name.casefold() for name, _ in before}
    gone = {name.casefold() for name, _ in now} - kept
    if not gone:
        return []
    reverted = {event[0]: event[1] for event in reverts}
    stray = [
        doc
        for doc, label, _, _ in db.execute(_LATEST)
        if (reverted.get(doc, label) or "").casefold() in gone
    ]
    if not stray:
        return []
    if action == "rename":
        (old,) = [name for name, _ in before if name not in dict(now)]
        return [(doc, old, user, at, batch) for doc in stray]
    raise FewshotError(
        f"{_documents(len(stray))} got a label after that change that undoing it would remove: "
        "relabel them first"
    )


def _undoable(db: sqlite3.Connection, user: str) -> int | None:
    """The user's latest batch that is neither an undo nor undone."""
    row = db.execute(
        "SELECT id FROM batch WHERE user = ? AND undoes IS NULL AND id NOT IN"
        " (SELECT undoes FROM batch WHERE undoes IS NOT NULL) ORDER BY id DESC LIMIT 1",
        (user,),
    ).fetchone()
    return None if row is None else row[0]


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
            db.execute("DELETE FROM label_change")
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

    def labels(self) -> list[tuple[str, str]]:
        with self._connect() as db:
            return _labels(db)

    def set_labels(self, labels: Sequence[tuple[str, str]], user: str = "local") -> None:
        """Replace the candidate labels: add, reorder, re-describe, or drop labels nobody uses.

        Dropping a label that documents carry as their human label is refused (it would orphan
        them): rename, merge or delete it instead. One entry in the history, which undo reverts.
        """
        after = _label_rows(labels)
        with self._connect(write=True) as db:
            before = _labels(db)
            kept = {name.casefold() for name, _ in after}
            used = _label_counts(db)
            for name, _ in before:
                if name.casefold() not in kept and used.get(name.casefold()):
                    raise FewshotError(
                        f"Label '{name}' is the human label of "
                        f"{_documents(used[name.casefold()])}: rename, merge or delete it "
                        "instead of removing its line"
                    )
            _change_labels(db, "edit", _describe_edit(before, after), before, after, user)

    def rename_label(self, old: str, new: str, user: str = "local") -> None:
        """Rename a label in place; the documents that carry it follow it to the new name."""
        new = str(new).strip()
        if not new:
            raise FewshotError("Every label needs a name")
        with self._connect(write=True) as db:
            before = _labels(db)
            i = _position(before, old)
            old = before[i][0]
            if new == old:
                return
            if any(n.casefold() == new.casefold() for j, (n, _) in enumerate(before) if j != i):
                raise FewshotError(f"Label '{new}' exists already: merge '{old}' into it instead")
            after = [*before[:i], (new, before[i][1]), *before[i + 1 :]]
            _change_labels(
                db, "rename", f"{old} → {new}", before, after, user, {old.casefold(): new}
            )

    def merge_labels(self, sources: Sequence[str], target: str, user: str = "local") -> None:
        """Fold the source labels into target: they leave the list, their documents take target."""
        with self._connect(write=True) as db:
            before = _labels(db)
            target = before[_position(before, target)][0]
            names = list(dict.fromkeys(before[_position(before, s)][0] for s in sources))
            if not names or target in names:
                raise FewshotError("Merge needs one or more labels other than the one kept")
            gone = {n.casefold() for n in names}
            after = [row for row in before if row[0].casefold() not in gone]
            detail = f"{', '.join(names)} into {target}"
            _change_labels(db, "merge", detail, before, after, user, dict.fromkeys(gone, target))

    def delete_label(self, name: str, user: str = "local") -> None:
        """Remove a label and take it off its documents; the history keeps it, undo brings it
        back with its documents."""
        with self._connect(write=True) as db:
            before = _labels(db)
            name = before[_position(before, name)][0]
            after = [row for row in before if row[0] != name]
            _change_labels(db, "delete", name, before, after, user, {name.casefold(): None})

    def label_counts(self) -> dict[str, int]:
        """Documents per current human label, by the label's name ignoring case (casefolded)."""
        with self._connect() as db:
            return _label_counts(db)

    def label_history(self) -> pd.DataFrame:
        """Every change of the label set in order: who, when, what, and whether it was undone."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT b.at, b.user, c.action, c.detail,"
                " EXISTS (SELECT 1 FROM batch AS u WHERE u.undoes = b.id)"
                " FROM label_change AS c JOIN batch AS b ON b.id = c.batch ORDER BY b.id"
            ).fetchall()
        frame = pd.DataFrame(rows, columns=["at", "user", "action", "detail", "undone"])
        return frame.astype({"undone": bool})

    # Annotations

    def annotate(
        self,
        doc_ids: int | Sequence[int],
        label: str | None,
        user: str = "local",
        overwrite: bool = True,
    ) -> int:
        """Record label (None: label removed) for the documents, as one batch that undo reverts.

        Documents that already carry this label get no new event, so a double click writes one
        label; with overwrite=False neither do documents whose human label is
        another one. Returns how many documents were written (no batch when none).
        """
        ids = [doc_ids] if isinstance(doc_ids, Integral) else doc_ids
        ids = list(dict.fromkeys(int(i) for i in ids))
        if label is not None and (not isinstance(label, str) or not label.strip()):
            raise FewshotError(f"A label must be a non-empty name, not {label!r}")
        if not user:
            raise FewshotError("An annotation needs a user name")
        if not ids:
            return 0
        at = _now()
        with self._connect(write=True) as db:
            size = db.execute("SELECT COALESCE(MAX(id) + 1, 0) FROM document").fetchone()[0]
            bad = [i for i in ids if not 0 <= i < size]
            if bad:
                raise FewshotError(f"No document with id {bad[0]} (the corpus has {size})")
            now = {
                doc: old
                for doc, old, _, _ in db.execute(
                    _LATEST + " WHERE a.doc_id IN (SELECT value FROM json_each(?))",
                    (json.dumps(ids),),
                )
            }
            wanted = None if label is None else label.casefold()
            ids = [i for i in ids if _writes(now.get(i), wanted, overwrite)]
            if ids:
                batch = db.execute(
                    "INSERT INTO batch (user, at) VALUES (?, ?)", (user, at)
                ).lastrowid
                db.executemany(_INSERT_EVENT, [(i, label, user, at, batch) for i in ids])
        return len(ids)

    def annotations(self) -> pd.DataFrame:
        """The current label of each labeled document: its latest event, unless that removed it."""
        with self._connect() as db:
            rows = db.execute(_LATEST + " WHERE a.label IS NOT NULL ORDER BY a.doc_id").fetchall()
        frame = pd.DataFrame(rows, columns=["doc_id", "label", "user", "at"])
        return frame.astype({"doc_id": "int64", "label": str, "user": str, "at": str})

    def history(self, doc_id: int | None = None) -> pd.DataFrame:
        """Every annotation event in order; label is missing for removals, undoes names a batch,
        and action says what made it: label, undo, or the label-set change (rename, merge...)."""
        query = (
            "SELECT a.seq, a.doc_id, a.label, a.user, a.at, a.batch, b.undoes,"
            " CASE WHEN b.undoes IS NOT NULL THEN 'undo' ELSE COALESCE(c.action, 'label') END"
            " FROM annotation AS a JOIN batch AS b ON b.id = a.batch"
            " LEFT JOIN label_change AS c ON c.batch = a.batch"
        )
        params: tuple[int, ...] = ()
        if doc_id is not None:
            query, params = query + " WHERE a.doc_id = ?", (int(doc_id),)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY a.seq", params).fetchall()
        frame = pd.DataFrame(
            rows, columns=["seq", "doc_id", "label", "user", "at", "batch", "undoes", "action"]
        )
        types = {"seq": "int64", "doc_id": "int64", "user": str, "at": str, "batch": "int64"}
        return frame.astype({**types, "undoes": "Int64"})  # undoes is missing outside an undo

    def last_action(self, user: str = "local") -> tuple[int, str] | None:
        """The batch undo would revert next for user, and what it did in words (None: nothing)."""
        with self._connect() as db:
            batch = _undoable(db, user)
            if batch is None:
                return None
            change = db.execute(
                "SELECT action, detail FROM label_change WHERE batch = ?", (batch,)
            ).fetchone()
            if change is not None:
                return batch, f"{change[0]} {change[1]}"
            n, labels, name = db.execute(
                "SELECT COUNT(*), COUNT(DISTINCT label), MAX(label) FROM annotation"
                " WHERE batch = ?",
                (batch,),
            ).fetchone()
        if labels == 1:
            return batch, f"label {_documents(n)} as {name}"
        return batch, f"remove the label of {_documents(n)}"

    def undo(self, user: str = "local", batch: int | None = None) -> bool:
        """Revert the user's latest batch that is not undone yet; False if there is none, or if it
        is not `batch` (so a repeated undo press reverts one batch, not two).

        Each document in that batch goes back to its label from just before the batch, unless
        someone has labeled it since: their later label stays. A label-set change gets its labels
        back, unless someone changed them again since (then nothing is undone and it says so);
        documents labeled since with a renamed label's new name go back to its old name, and
        undoing anything else that would orphan documents labeled since is refused.
        """
        with self._connect(write=True) as db:
            target = _undoable(db, user)
            if target is None or (batch is not None and target != batch):
                return False
            change = db.execute(
                "SELECT action, detail, before, after FROM label_change WHERE batch = ?",
                (target,),
            ).fetchone()
            now = _labels(db)
            if change is not None and now != _from_json(change[3]):
                raise FewshotError(
                    f"The labels were changed again after '{change[0]} {change[1]}': "
                    "undo that change first"
                )
            at = _now()
            undo = db.execute(
                "INSERT INTO batch (user, at, undoes) VALUES (?, ?, ?)", (user, at, target)
            ).lastrowid
            if change is not None:
                _write_labels(
                    db, undo, "undo", f"{change[0]} {change[1]}", now, _from_json(change[2])
                )
            events = db.execute(
                "SELECT seq, doc_id, label FROM annotation WHERE batch = ?", (target,)
            ).fetchall()
            latest = "SELECT label FROM annotation WHERE doc_id = ? ORDER BY seq DESC"
            earlier = "SELECT label FROM annotation WHERE doc_id = ? AND seq < ? ORDER BY seq DESC"
            reverts = []
            for seq, doc_id, label in events:
                if db.execute(latest, (doc_id,)).fetchone()[0] != label:
                    continue  # labeled again since then, by someone: that label stays
                before = db.execute(earlier, (doc_id, seq)).fetchone()
                reverts.append((doc_id, before[0] if before else None, user, at, undo))
            if change is not None:
                reverts += _strays(
                    db, change[0], now, _from_json(change[2]), reverts, user, at, undo
                )
            db.executemany(_INSERT_EVENT, reverts)
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
