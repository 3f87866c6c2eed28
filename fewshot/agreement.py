"""How far annotators agree, from `Project.votes()`: Cohen's kappa per pair and per label, and
the documents they disagree on.

A reviewer's resolution settles a disagreement rather than being one more independent opinion,
so the agreement between annotators leaves resolutions out (a vote's `resolution` column); the
disagreements show them as how a document was resolved. Labels compare ignoring case, as the
store matches them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score

_PAIR_COLUMNS = ["annotator_a", "annotator_b", "documents", "agreement", "kappa"]
_FIXED = ["doc_id", "votes", "labels", "resolved"]


def _independent(votes: pd.DataFrame) -> pd.DataFrame:
    """The annotators' own votes: resolutions left out."""
    if "resolution" in votes.columns:
        votes = votes[~votes["resolution"].astype(bool)]
    return votes


def _table(votes: pd.DataFrame) -> pd.DataFrame:
    """Documents by annotators, each cell the annotator's label casefolded (NaN: no vote)."""
    votes = _independent(votes)
    folded = votes.assign(label=votes["label"].str.casefold())
    return folded.pivot(index="doc_id", columns="user", values="label")


def _pairs(table: pd.DataFrame) -> Iterator[tuple[str, str, pd.Series, pd.Series]]:
    """Each pair of annotators with a shared document, and their labels of the shared ones."""
    for a, b in combinations(sorted(table.columns), 2):
        both = table[a].notna() & table[b].notna()
        if both.any():
            yield a, b, table.loc[both, a], table.loc[both, b]


def _kappa(x: Sequence[object], y: Sequence[object]) -> float:
    """Cohen's kappa, NaN on fewer than two documents or when chance explains everything."""
    if len(x) < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns where the kappa is undefined: NaN says so
        kappa = cohen_kappa_score(list(x), list(y), replace_undefined_by=np.nan)
    return float(kappa) if np.isfinite(kappa) else float("nan")


def pairwise_kappa(votes: pd.DataFrame) -> pd.DataFrame:
    """One row per pair of annotators who share a document: annotator_a, annotator_b (in name
    order), documents (both labeled), agreement (share of those with the same label), kappa."""
    rows = [
        (a, b, len(x), float(np.mean(x.to_numpy() == y.to_numpy())), _kappa(x, y))
        for a, b, x, y in _pairs(_table(votes))
    ]
    frame = pd.DataFrame(rows, columns=_PAIR_COLUMNS)
    return frame.astype({"documents": "int64", "agreement": float, "kappa": float})


def label_kappa(votes: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    """Per label (columns label, kappa): the kappa of "this label or not" on the documents both
    of a pair labeled, averaged over the pairs where it is defined (else NaN). Shows which label
    the annotators read differently."""
    pairs = list(_pairs(_table(votes)))
    rows = []
    for name in labels:
        key = str(name).casefold()
        kappas = [_kappa(x == key, y == key) for _, _, x, y in pairs]
        defined = [k for k in kappas if not np.isnan(k)]
        rows.append((name, float(np.mean(defined)) if defined else float("nan")))
    return pd.DataFrame(rows, columns=["label", "kappa"]).astype({"kappa": float})


def disagreements(votes: pd.DataFrame) -> pd.DataFrame:
    """The documents whose annotators' current votes differ, by doc_id: votes in words
    ("alice: Sports · bob: World"), labels (the distinct ones, sorted), resolved (the latest
    resolution's label, or None) and a column per annotator with their label (None: no vote)."""
    own = _independent(votes)
    if own.empty:
        return pd.DataFrame(columns=_FIXED)
    differ = own["label"].str.casefold().groupby(own["doc_id"]).nunique() > 1
    own = own[own["doc_id"].isin(differ.index[differ])]
    table = own.pivot(index="doc_id", columns="user", values="label").sort_index()
    people = sorted(table.columns)
    resolutions = votes[votes["resolution"].astype(bool)] if "resolution" in votes else votes[:0]
    resolved = resolutions.sort_values("at").groupby("doc_id")["label"].last()
    cells = table[people].astype(object).to_numpy()
    given = [[(u, v) for u, v in zip(people, row) if isinstance(v, str)] for row in cells]
    frame = pd.DataFrame(
        {
            "doc_id": table.index,
            "votes": [" · ".join(f"{u}: {v}" for u, v in pairs) for pairs in given],
            "labels": [sorted({v for _, v in pairs}) for pairs in given],
            "resolved": [resolved.get(doc) for doc in table.index],
        },
        dtype=object,
    )
    for i, user in enumerate(people):
        frame[user] = pd.Series(
            [v if isinstance(v, str) else None for v in cells[:, i]], dtype=object
        )
    return frame.astype({"doc_id": "int64"})
