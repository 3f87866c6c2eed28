"""The project store: every write committed the moment it is made, on SQLite or PostgreSQL.

By default each project is one SQLite file in the data directory; with FEWSHOT_DATABASE_URL set
(`postgresql://...`) the projects live in that PostgreSQL database, shared by every server that
points there (`fewshot.database`: the tables, their schema version, how writers queue). A reload,
a server restart or a second browser tab loses nothing: each operation is its own transaction,
so threads and processes can share a project. Annotations are an append-only event log: two
people labeling one document both leave an event, the latest one is the current label, and undo
appends events rather than deleting any. Changes of the label set (edit, rename, merge, delete)
are batches too, with the lists before and after, so one undo per user reverts whichever came
last. No pickle: rows and JSON only.

With several annotators each has a vote per document (`votes`), a reviewer can settle a document
(`resolve`, a batch marked in the table `review`), and a counting rule (`COUNTING_RULES`) says
which label counts: the latest of anyone's, the majority of the votes, or the resolution.
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
from sqlalchemy import Connection, Select, case, delete, distinct, func, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from fewshot import FewshotError, config
from fewshot import database as tables
from fewshot.votes import (
    COUNTED_COLUMNS,
    COUNTING_RULES,
    VOTE_COLUMNS,
    majority,
    own_votes,
    read_votes,
    reviewed,
)

SUFFIX = ".sqlite"
_NAME = re.compile(r"[A-Za-z0-9_-](?:[A-Za-z0-9 ._-]{0,62}[A-Za-z0-9._-])?")
_FIXED = ("id", "text", "source")
_IN_LIMIT = 1000  # annotate filters by id in SQL up to this many ids, and in Python beyond


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _jsonable(value: object) -> object:
    """numpy scalars and arrays as plain lists and numbers; anything else as its string."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _document_rows(frame: pd.DataFrame, start: int) -> list[dict[str, Any]]:
    """Rows of the document table (metadata as JSON); an input id column is dropped, ids are ours."""
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
        {
            "id": start + i,
            "text": texts[i],
            "source": sources[i],
            "meta": json.dumps(
                {str(k): None if _missing(v) else v for k, v in metas[i].items()},
                ensure_ascii=False,
                default=_jsonable,
            ),
        }
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


def _insert(db: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """Many rows in one statement (none: nothing, where SQLAlchemy would insert one empty row)."""
    if rows:
        db.execute(insert(table), rows)


def _event(doc_id: int, label: str | None, user: str, at: str, batch: int) -> dict[str, Any]:
    return {"doc_id": doc_id, "label": label, "user": user, "at": at, "batch": batch}


def _new_batch(db: Connection, user: str, at: str, undoes: int | None = None) -> int:
    added = db.execute(insert(tables.batch).values(user=user, at=at, undoes=undoes))
    return added.inserted_primary_key[0]


def _latest() -> Select:
    """Each document's latest event: its current label (NULL when removed)."""
    a = tables.annotation
    last = select(func.max(a.c.seq).label("seq")).group_by(a.c.doc_id).subquery()
    return select(a.c.doc_id, a.c.label, a.c.user, a.c.at).join_from(a, last, last.c.seq == a.c.seq)


def _current(db: Connection, ids: list[int]) -> dict[int, str | None]:
    """The current label of each of ids that has an event (and perhaps of others: with many ids
    every document's, rather than an IN list longer than a driver takes)."""
    query = _latest()
    if len(ids) <= _IN_LIMIT:
        query = query.where(tables.annotation.c.doc_id.in_(ids))
    return {doc: label for doc, label, _, _ in db.execute(query)}


def _labels(db: Connection) -> list[tuple[str, str]]:
    rows = db.execute(
        select(tables.label.c.name, tables.label.c.description).order_by(tables.label.c.position)
    )
    return [tuple(row) for row in rows]


def _from_json(text: str) -> list[tuple[str, str]]:
    return [(name, description) for name, description in json.loads(text)]


def _position(labels: list[tuple[str, str]], name: str) -> int:
    """Where the label called name (exactly, or else ignoring case) stands in the list."""
    for exact in (True, False):
        for i, (n, _) in enumerate(labels):
            if n == name if exact else n.casefold() == str(name).casefold():
                return i
    raise FewshotError(f"No label named '{name}'")


def _label_counts(db: Connection) -> dict[str, int]:
    """Documents per current human label, by the label's name ignoring case."""
    latest = _latest().where(tables.annotation.c.label.is_not(None)).subquery()
    counts: dict[str, int] = {}
    for label, n in db.execute(select(latest.c.label, func.count()).group_by(latest.c.label)):
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
    db: Connection,
    batch: int,
    action: str,
    detail: str,
    before: list[tuple[str, str]],
    after: list[tuple[str, str]],
) -> None:
    """Replace the label list and record the change under batch."""
    db.execute(
        insert(tables.label_change).values(
            batch=batch,
            action=action,
            detail=detail,
            before=json.dumps(before),
            after=json.dumps(after),
        )
    )
    db.execute(delete(tables.label))
    rows = [{"position": i, "name": n, "description": d} for i, (n, d) in enumerate(after)]
    _insert(db, tables.label, rows)


def _change_labels(
    db: Connection,
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
        for doc, label, _, _ in db.execute(_latest().where(tables.annotation.c.label.is_not(None)))
        if label.casefold() in relabel
    ]
    if before == after and not moved:
        return
    at = _now()
    batch = _new_batch(db, user, at)
    _write_labels(db, batch, action, detail, before, after)
    _insert(db, tables.annotation, [_event(doc, label, user, at, batch) for doc, label in moved])


def _writes(current: str | None, own: str | None, wanted: str | None, overwrite: bool) -> bool:
    """Whether annotate writes an event for a document whose current label is current and the
    user's own vote own: not when it changes neither, nor over another human label unless
    overwrite. A second annotator giving the label it carries does write: that is their vote."""
    now, mine = (None if x is None else x.casefold() for x in (current, own))
    if now == wanted and mine == wanted:
        return False
    return overwrite or now is None or now == wanted


def _strays(
    db: Connection,
    action: str,
    now: list[tuple[str, str]],
    before: list[tuple[str, str]],
    reverts: list[dict[str, Any]],
    user: str,
    at: str,
    batch: int,
) -> list[dict[str, Any]]:
    """Events for undoing a label change: documents that would be left carrying a label the
    undo removes (labeled with it after the change). A rename takes them back to its old name;
    any other change refuses (FewshotError), as set_labels does."""
    kept = {name.casefold() for name, _ in before}
    gone = {name.casefold() for name, _ in now} - kept
    if not gone:
        return []
    reverted = {event["doc_id"]: event["label"] for event in reverts}
    stray = [
        doc
        for doc, label, _, _ in db.execute(_latest())
        if (reverted.get(doc, label) or "").casefold() in gone
    ]
    if not stray:
        return []
    if action == "rename":
        (old,) = [name for name, _ in before if name not in dict(now)]
        return [_event(doc, old, user, at, batch) for doc in stray]
    raise FewshotError(
        f"{_documents(len(stray))} got a label after that change that undoing it would remove: "
        "relabel them first"
    )


def _undoable(db: Connection, user: str) -> int | None:
    """The user's latest batch that is neither an undo nor undone."""
    b, undone = tables.batch, tables.batch.alias("undone")
    undone_ids = select(undone.c.undoes).where(undone.c.undoes.is_not(None))
    query = (
        select(b.c.id)
        .where(b.c.user == user, b.c.undoes.is_(None), b.c.id.not_in(undone_ids))
        .order_by(b.c.id.desc())
        .limit(1)
    )
    return db.execute(query).scalar()


def _batch_events(db: Connection, batch: int) -> list[tuple[int, str | None, str | None, Any]]:
    """(document, label, its current label, its label just before) for each event of batch."""
    event, later, earlier = (tables.annotation.alias(n) for n in ("event", "later", "earlier"))
    newest = (
        select(later.c.label)
        .where(later.c.doc_id == event.c.doc_id)
        .order_by(later.c.seq.desc())
        .limit(1)
    )
    previous = (
        select(earlier.c.label)
        .where(earlier.c.doc_id == event.c.doc_id, earlier.c.seq < event.c.seq)
        .order_by(earlier.c.seq.desc())
        .limit(1)
    )
    query = select(
        event.c.doc_id, event.c.label, newest.scalar_subquery(), previous.scalar_subquery()
    )
    return [tuple(row) for row in db.execute(query.where(event.c.batch == batch))]


def _change(db: Connection, batch: int) -> tuple[str, str, str, str] | None:
    """The label change batch made (action, detail, labels before and after, as JSON), if any."""
    c = tables.label_change
    query = select(c.c.action, c.c.detail, c.c.before, c.c.after).where(c.c.batch == batch)
    row = db.execute(query).first()
    return None if row is None else tuple(row)


def _ids(doc_ids: int | Sequence[int]) -> list[int]:
    ids = [doc_ids] if isinstance(doc_ids, Integral) else doc_ids
    return list(dict.fromkeys(int(i) for i in ids))


def _check_ids(db: Connection, ids: list[int]) -> None:
    size = Project._size(db)
    bad = [i for i in ids if not 0 <= i < size]
    if bad:
        raise FewshotError(f"No document with id {bad[0]} (the corpus has {size})")


class Project:
    """One labeling project; share it freely between threads and processes.

    path is its SQLite file, or a PostgreSQL URL (then name says which project in that database,
    and the attribute path is None). create=False refuses a project that does not exist yet.
    """

    def __init__(self, path: str | Path, name: str | None = None, create: bool = True) -> None:
        mode = "create" if create else "open"
        if tables.is_postgres(path):
            if not name:
                raise FewshotError("A project in PostgreSQL needs a name")
            self.path, self.name, self.url = None, name, str(path)
            self._db = tables.postgres_database(self.url, name, mode)
        else:
            self.path = Path(make_url(path).database if str(path).startswith("sqlite:") else path)
            self.name, self.url = name or self.path.stem, None
            self._db = tables.sqlite_database(self.path, self.name, mode)

    @property
    def key(self) -> str:
        """What tells this project apart from any other, in any store (a cache key)."""
        return str(self.path) if self.path is not None else f"{self.url}#{self.name}"

    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[Connection]:
        """One transaction, committed on exit; with write=True it queues behind other writers,
        so a read-then-write (undo, add_documents) cannot interleave with another writer."""
        with self._db.connect(write) as db:
            yield db

    # Documents

    def set_documents(self, frame: pd.DataFrame) -> None:
        """Replace the corpus (ids 0..n-1) and forget its annotations, in one transaction: a crash
        in between must not leave the old documents' labels on the new documents that take their
        ids."""
        rows = _document_rows(frame, 0)
        with self._connect(write=True) as db:
            db.execute(delete(tables.document))
            _insert(db, tables.document, rows)
            for table in (tables.annotation, tables.label_change, tables.review, tables.batch):
                db.execute(delete(table))

    def add_documents(self, frame: pd.DataFrame) -> None:
        """Append documents; existing ids (and their annotations) are unchanged."""
        with self._connect(write=True) as db:
            _insert(db, tables.document, _document_rows(frame, self._size(db)))

    @staticmethod
    def _size(db: Connection) -> int:
        """One past the largest document id: the corpus's size, as ids are 0..n-1."""
        return db.execute(select(func.coalesce(func.max(tables.document.c.id) + 1, 0))).scalar()

    def documents(self) -> pd.DataFrame:
        """Columns id, text, source, then the metadata columns the documents came with."""
        d = tables.document
        with self._connect() as db:
            rows = db.execute(select(d.c.id, d.c.text, d.c.source, d.c.meta).order_by(d.c.id))
            rows = [tuple(row) for row in rows]
        frame = pd.DataFrame(rows, columns=[*_FIXED, "meta"])
        frame = frame.astype({"id": "int64", "text": str, "source": str})
        metas = [json.loads(m) for m in frame.pop("meta").tolist()]
        if any(metas):
            frame = pd.concat([frame, pd.DataFrame(metas, index=frame.index)], axis=1)
        return frame

    def texts(self) -> list[str]:
        """The documents' texts in id order: what every page run needs, without the metadata."""
        d = tables.document
        with self._connect() as db:
            return list(db.execute(select(d.c.text).order_by(d.c.id)).scalars())

    def n_documents(self) -> int:
        with self._connect() as db:
            return db.execute(select(func.count()).select_from(tables.document)).scalar_one()

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
        b, c, undo = tables.batch, tables.label_change, tables.batch.alias("undo")
        undone = select(undo.c.id).where(undo.c.undoes == b.c.id).exists()
        query = (
            select(b.c.at, b.c.user, c.c.action, c.c.detail, undone)
            .join_from(c, b, b.c.id == c.c.batch)
            .order_by(b.c.id)
        )
        with self._connect() as db:
            rows = [tuple(row) for row in db.execute(query)]
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

        Documents that already carry this label, by this user's vote too, get no new event, so a
        double click writes one label; with overwrite=False neither do documents whose human
        label is another one. Returns how many documents were written (no batch when none).
        """
        ids = _ids(doc_ids)
        if label is not None and (not isinstance(label, str) or not label.strip()):
            raise FewshotError(f"A label must be a non-empty name, not {label!r}")
        if not user:
            raise FewshotError("An annotation needs a user name")
        if not ids:
            return 0
        at = _now()
        with self._connect(write=True) as db:
            _check_ids(db, ids)
            now = _current(db, ids)
            wanted = None if label is None else label.casefold()
            mine = tables.annotation.c.user == user
            if len(ids) <= _IN_LIMIT:
                mine = mine & tables.annotation.c.doc_id.in_(ids)
            own = {
                doc: vote
                for doc, _, vote, _, resolution, *_ in db.execute(own_votes(mine))
                if not resolution
            }
            ids = [i for i in ids if _writes(now.get(i), own.get(i), wanted, overwrite)]
            if ids:
                batch = _new_batch(db, user, at)
                _insert(db, tables.annotation, [_event(i, label, user, at, batch) for i in ids])
        return len(ids)

    def resolve(self, doc_ids: int | Sequence[int], label: str, user: str = "local") -> int:
        """A reviewer settles the documents as label: one batch of its own, marked in `review`,
        so the rule "reviewer" counts it, history() says "resolve" and undo reverts it.

        Documents whose latest event is already a resolution as label get none (a double click
        writes one). Returns how many documents were written (no batch when none).
        """
        ids = _ids(doc_ids)
        if not isinstance(label, str) or not label.strip():
            raise FewshotError(f"A resolution needs a label, not {label!r}")
        if not user:
            raise FewshotError("A resolution needs a user name")
        if not ids:
            return 0
        a, r = tables.annotation, tables.review
        at = _now()
        with self._connect(write=True) as db:
            _check_ids(db, ids)
            latest = _latest().add_columns(r.c.batch).outerjoin(r, r.c.batch == a.c.batch)
            if len(ids) <= _IN_LIMIT:
                latest = latest.where(a.c.doc_id.in_(ids))
            settled = {
                doc
                for doc, now, _, _, review in db.execute(latest)
                if review is not None and now is not None and now.casefold() == label.casefold()
            }
            ids = [i for i in ids if i not in settled]
            if ids:
                batch = _new_batch(db, user, at)
                db.execute(insert(r).values(batch=batch))
                _insert(db, a, [_event(i, label, user, at, batch) for i in ids])
        return len(ids)

    def votes(self) -> pd.DataFrame:
        """Each annotator's current label of each document, one row per (doc_id, user), and a row
        apart for a reviewer's latest resolution of it: columns doc_id, user, label, at,
        resolution (agreement leaves those out). A removal or an undo takes the user's vote
        back; a rename, merge or delete moves it with its label."""
        with self._connect() as db:
            return read_votes(db)[VOTE_COLUMNS]

    def annotations(self, rule: str = "latest") -> pd.DataFrame:
        """The label that counts for each labeled document by rule (COUNTING_RULES): "latest"
        is its latest event, unless that removed it; "majority" the label most annotators give
        (a tie goes to the latest of the tied labels); "reviewer" its latest resolution, else
        the latest. Columns doc_id, label, user (who gave it), at."""
        if rule not in COUNTING_RULES:
            raise FewshotError(
                f"Unknown counting rule {rule!r}: use one of {', '.join(COUNTING_RULES)}"
            )
        a = tables.annotation
        with self._connect() as db:
            votes = read_votes(db) if rule != "latest" else None
            rows = [] if rule == "majority" else db.execute(_latest().where(a.c.label.is_not(None)))
            latest = pd.DataFrame([tuple(row) for row in rows], columns=COUNTED_COLUMNS)
        if rule == "majority":
            latest = majority(votes)[COUNTED_COLUMNS]
        elif rule == "reviewer":
            latest = reviewed(votes, latest)
        frame = latest.sort_values("doc_id", ignore_index=True)
        return frame.astype({"doc_id": "int64", "label": str, "user": str, "at": str})

    def history(self, doc_id: int | None = None) -> pd.DataFrame:
        """Every annotation event in order; label is missing for removals, undoes names a batch,
        and action says what made it: label, resolve, undo, or the label-set change (rename,
        merge...)."""
        a, b, c, r = tables.annotation, tables.batch, tables.label_change, tables.review
        action = case(
            (b.c.undoes.is_not(None), "undo"),
            (r.c.batch.is_not(None), "resolve"),
            else_=func.coalesce(c.c.action, "label"),
        )
        query = (
            select(a.c.seq, a.c.doc_id, a.c.label, a.c.user, a.c.at, a.c.batch, b.c.undoes, action)
            .join_from(a, b, b.c.id == a.c.batch)
            .outerjoin(c, c.c.batch == a.c.batch)
            .outerjoin(r, r.c.batch == a.c.batch)
            .order_by(a.c.seq)
        )
        if doc_id is not None:
            query = query.where(a.c.doc_id == int(doc_id))
        with self._connect() as db:
            rows = [tuple(row) for row in db.execute(query)]
        frame = pd.DataFrame(
            rows, columns=["seq", "doc_id", "label", "user", "at", "batch", "undoes", "action"]
        )
        types = {"seq": "int64", "doc_id": "int64", "user": str, "at": str, "batch": "int64"}
        return frame.astype({**types, "undoes": "Int64"})  # undoes is missing outside an undo

    def last_action(self, user: str = "local") -> tuple[int, str] | None:
        """The batch undo would revert next for user, and what it did in words (None: nothing)."""
        a = tables.annotation
        with self._connect() as db:
            batch = _undoable(db, user)
            if batch is None:
                return None
            change = _change(db, batch)
            if change is not None:
                return batch, f"{change[0]} {change[1]}"
            n, labels, name = db.execute(
                select(func.count(), func.count(distinct(a.c.label)), func.max(a.c.label)).where(
                    a.c.batch == batch
                )
            ).one()
            review = tables.review
            resolved = db.execute(select(review.c.batch).where(review.c.batch == batch)).first()
        if labels == 1:
            return batch, f"{'resolve' if resolved else 'label'} {_documents(n)} as {name}"
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
            change = _change(db, target)
            now = _labels(db)
            if change is not None and now != _from_json(change[3]):
                raise FewshotError(
                    f"The labels were changed again after '{change[0]} {change[1]}': "
                    "undo that change first"
                )
            at = _now()
            undo = _new_batch(db, user, at, undoes=target)
            if change is not None:
                _write_labels(
                    db, undo, "undo", f"{change[0]} {change[1]}", now, _from_json(change[2])
                )
            reverts = [
                _event(doc_id, before, user, at, undo)
                for doc_id, label, latest, before in _batch_events(db, target)
                if latest == label  # else labeled again since then, by someone: that label stays
            ]
            if change is not None:
                reverts += _strays(
                    db, change[0], now, _from_json(change[2]), reverts, user, at, undo
                )
            _insert(db, tables.annotation, reverts)
        return True

    # Settings

    def get_setting(self, key: str, default: Any = None) -> Any:
        s = tables.setting
        with self._connect() as db:
            value = db.execute(select(s.c.value).where(s.c.key == key)).scalar()
        return default if value is None else json.loads(value)

    def set_setting(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value (TypeError otherwise)."""
        text = json.dumps(value)
        s = tables.setting
        with self._connect(write=True) as db:  # writers queue, so delete-then-insert is safe
            db.execute(delete(s).where(s.c.key == key))
            db.execute(insert(s).values(key=key, value=text))


def projects_dir(root: Path | None = None) -> Path:
    return Path(root) if root is not None else config.data_dir() / "projects"


def _store(root: str | Path | None) -> str | Path:
    """Where projects live: root (a folder, or a postgresql:// URL), else FEWSHOT_DATABASE_URL,
    else the data directory's projects folder."""
    if root is None:
        return config.database_url() or projects_dir()
    return str(root) if tables.is_postgres(root) else Path(root)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise FewshotError(
            f"Invalid project name {name!r}: use 1-64 letters, digits, spaces, '-', '_' or '.', "
            "not starting with '.' and not starting or ending with a space"
        )


def _project_path(name: str, root: Path | None) -> Path:
    _check_name(name)
    base = projects_dir(root).resolve()
    path = (base / f"{name}{SUFFIX}").resolve()
    if path.parent != base:
        raise FewshotError(f"Invalid project name {name!r}: it points outside {base}")
    return path


@contextmanager
def _reaching(what: str) -> Iterator[None]:
    """A database that cannot be read (not a database, unreachable, refused) as a FewshotError."""
    try:
        yield
    except (SQLAlchemyError, sqlite3.DatabaseError) as exc:
        reason = getattr(exc, "orig", None) or exc
        raise FewshotError(f"{what}: {str(reason).strip().splitlines()[0]}") from exc


def _location(name: str, root: str | Path | None) -> str | Path:
    """The file or database URL holding the project called name (checked) under root."""
    store = _store(root)
    if isinstance(store, Path):
        return _project_path(name, store)
    _check_name(name)
    return store


def list_projects(root: str | Path | None = None) -> list[str]:
    """Names of the projects under root: a folder of SQLite files or a postgresql:// URL (default:
    FEWSHOT_DATABASE_URL, else the data directory's projects folder)."""
    store = _store(root)
    if isinstance(store, str):
        with _reaching(f"Projects in {tables.shown(store)} could not be listed"):
            return sorted(tables.postgres_names(store), key=str.lower)
    if not store.is_dir():
        return []
    names = (p.stem for p in store.glob(f"*{SUFFIX}") if _NAME.fullmatch(p.stem))
    return sorted(names, key=str.lower)


def open_project(name: str, root: str | Path | None = None, create: bool = True) -> Project:
    """The project called name, created (empty) unless create=False; root as for list_projects."""
    location = _location(name, root)
    with _reaching(f"Project '{name}' could not be opened"):
        return Project(location, name, create)


def _copy_target(name: str, to: str) -> str | Path:
    """Where copy_project writes: a postgresql:// URL, a sqlite:/// URL or .sqlite file, or a
    folder of projects (the file NAME.sqlite in it)."""
    if tables.is_postgres(to):
        return to
    if to.startswith("sqlite:"):
        if not make_url(to).database:
            raise FewshotError(f"{to} names no file: give sqlite:///path/to/{name}{SUFFIX}")
        return Path(make_url(to).database)
    return Path(to) if to.endswith(SUFFIX) else _project_path(name, Path(to))


def copy_project(name: str, to: str, root: str | Path | None = None) -> dict[str, int]:
    """Copy the project called name (under root, as open_project finds it) with everything it
    holds into the store `to`, ids and history as they are; a project of that name already
    there is refused and left untouched, and a copy that fails leaves nothing behind. Returns
    the rows copied per table (review's are among the batches)."""
    source = open_project(name, root, create=False)
    target = _copy_target(name, to)
    with _reaching(f"Project '{name}' could not be copied"):
        if isinstance(target, str):
            database = tables.postgres_database(target, name, "new")
        else:
            database = tables.sqlite_database(target, name, "new")
        try:
            return tables.copy_rows(source._db, database)
        except BaseException:
            tables.discard(database, None if isinstance(target, str) else target)
            raise
