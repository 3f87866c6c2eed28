"""Votes: each annotator's own current label of each document, and the counting rules that turn
several votes into the one label that counts (the latest, the majority, the reviewer's).

A vote is a user's latest own event for a document; undoing it, or an undo's revert, takes it back
rather than casting one, and a label-set change (rename, merge, delete) moves the votes with their
label rather than voting. A reviewer's resolution is kept apart from their own vote.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Select, func, select

from fewshot import database as tables

COUNTING_RULES = ("latest", "majority", "reviewer")
VOTE_COLUMNS = ["doc_id", "user", "label", "at", "resolution"]
COUNTED_COLUMNS = ["doc_id", "label", "user", "at"]


def _names(labels_json: str) -> list[str]:
    """The label names of a label list as label_change stores it (JSON pairs)."""
    return [name for name, _ in json.loads(labels_json)]


def own_votes(*where: Any) -> Select:
    """Each user's latest own label per document, and apart from it their latest resolution
    of it (of the events matching where): not an undo, not undone (undoing retracts the vote,
    even where the undo reverts the document to someone else's label), not a label change (that
    moves votes, see _moves). So resolving a document leaves the reviewer's own vote, and the
    agreement, as they were. Label NULL: no vote."""
    a, b, r, c = tables.annotation, tables.batch, tables.review, tables.label_change
    undone = tables.batch.alias("undone")
    retracted = select(undone.c.undoes).where(undone.c.undoes.is_not(None))
    own = (
        select(func.max(a.c.seq).label("seq"))
        .join_from(a, b, b.c.id == a.c.batch)
        .outerjoin(r, r.c.batch == a.c.batch)
        .where(b.c.undoes.is_(None), b.c.id.not_in(retracted), b.c.id.not_in(select(c.c.batch)))
        .where(*where)
        .group_by(a.c.doc_id, a.c.user, r.c.batch.is_not(None))
        .subquery()
    )
    resolution = r.c.batch.is_not(None)
    return (
        select(a.c.doc_id, a.c.user, a.c.label, a.c.at, resolution, a.c.seq, a.c.batch)
        .join_from(a, own, own.c.seq == a.c.seq)
        .outerjoin(r, r.c.batch == a.c.batch)
    )


def _moves(db: Connection) -> list[tuple[int, dict[str, str | None]]]:
    """The label changes that stand (not undone), in order, each as the batch and how it moves
    the votes cast before it: {old name casefolded: new name, None when deleted}. An undone
    rename's undo moves the votes cast with the new name back; other undos move none."""
    b, c, undo = tables.batch, tables.label_change, tables.batch.alias("undo")
    undone = select(undo.c.id).where(undo.c.undoes == b.c.id).exists()
    query = (
        select(c.c.batch, c.c.action, c.c.detail, c.c.before, c.c.after)
        .join_from(c, b, b.c.id == c.c.batch)
        .where(~undone)
        .order_by(c.c.batch)
    )
    moves = []
    for batch, action, detail, before, after in db.execute(query):
        old, new = _names(before), _names(after)
        gone, added = [n for n in old if n not in new], [n for n in new if n not in old]
        if action == "undo" and detail.startswith("rename "):
            action = "rename"
        if action == "rename" and len(gone) == len(added) == 1:
            moves.append((batch, {gone[0].casefold(): added[0]}))
        elif action == "merge":
            target = max((n for n in new if detail.endswith(f" into {n}")), key=len, default=None)
            moves.append((batch, dict.fromkeys((n.casefold() for n in gone), target)))
        elif action == "delete":
            moves.append((batch, dict.fromkeys((n.casefold() for n in gone), None)))
    return moves


def read_votes(db: Connection) -> pd.DataFrame:
    """votes() with each vote's seq and batch, for the counting rules' tie-breaks."""
    rows = [
        tuple(row) for row in db.execute(own_votes().where(tables.annotation.c.label.is_not(None)))
    ]
    frame = pd.DataFrame(rows, columns=[*VOTE_COLUMNS, "seq", "batch"], dtype=object)
    labels, folded = frame["label"].copy(), frame["label"].map(str.casefold)
    for batch, move in _moves(db):
        hit = (frame["batch"] < batch) & folded.isin(list(move))
        labels[hit] = folded[hit].map(move)
        folded[hit] = labels[hit].map(lambda n: None if n is None else n.casefold())
    frame["label"] = labels
    frame = frame[frame["label"].notna()].sort_values(["doc_id", "user"], ignore_index=True)
    types = {"doc_id": "int64", "user": str, "label": str, "at": str, "resolution": bool}
    return frame.astype({**types, "seq": "int64", "batch": "int64"})


def majority(votes: pd.DataFrame) -> pd.DataFrame:
    """Per document the label with the most votes (ignoring case); a tie goes to the label whose
    latest vote is the latest, and that vote gives the row its label, user and time."""
    resolved = votes.loc[votes["resolution"], ["doc_id", "user"]]
    replaced = pd.MultiIndex.from_frame(votes[["doc_id", "user"]]).isin(
        pd.MultiIndex.from_frame(resolved)
    )
    votes = votes[votes["resolution"] | ~replaced]  # a reviewer's resolution is their vote
    keyed = votes.assign(key=votes["label"].str.casefold())
    groups = keyed.groupby(["doc_id", "key"])["seq"].agg(["size", "max"]).reset_index()
    winners = groups.sort_values(["doc_id", "size", "max"]).groupby("doc_id").tail(1)
    return votes[votes["seq"].isin(winners["max"])]


def reviewed(votes: pd.DataFrame, latest: pd.DataFrame) -> pd.DataFrame:
    """The latest resolution of each document that has one, else its latest label."""
    resolutions = votes[votes["resolution"]].sort_values("seq").groupby("doc_id").tail(1)
    rest = latest[~latest["doc_id"].isin(resolutions["doc_id"])]
    return pd.concat([resolutions[COUNTED_COLUMNS], rest], ignore_index=True)
