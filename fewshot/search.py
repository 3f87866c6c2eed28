"""Finding documents: by words, a "quoted phrase" or a /regular expression/, or by meaning.

A word matches where a word starts ("refund" finds "refunds" and "refunded", not "nonrefundable"),
case-insensitively; several words or phrases must all occur. Text between slashes is a Python
regular expression, also case-insensitive. By meaning, documents are ranked by cosine to the query's
sentence embedding (or to a document's, for "more like this"). Filters on the prediction table
(predicted label, human label, score, source, metadata) combine with either. Matching runs RE2
(through Arrow) over the whole corpus, a few hundredths of a second at 50,000 documents (measured
in `fewshot.scale`), so there is no index to keep fresh.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fewshot import FewshotError
from fewshot.numeric import normalize

NO_LABEL = "(none)"  # the human-label filter's value for documents nobody labeled
MODES = ("words", "meaning", "like")
_WORD_START = r"(?:^|[^\pL\pN_])"  # RE2: a word begins here (its \b knows only ASCII)


@dataclass(frozen=True)
class Pattern:
    """A parsed search box: every part must match somewhere in a document.

    Parts are RE2 patterns, run by Arrow over the whole corpus at once (linear time, so no
    pattern can hang the server); marks are the same parts for Python's re, to highlight the
    matches in the few documents shown (a regular expression re cannot read gets no marks).
    """

    text: str
    parts: tuple[str, ...]
    marks: tuple[re.Pattern, ...]

    @classmethod
    def parse(cls, text: str) -> Pattern:
        """Words and "quoted phrases", or /a regular expression/; a bad one is a FewshotError."""
        text = text.strip()
        if len(text) >= 2 and text.startswith("/") and text.endswith("/"):
            source = text[1:-1]
            if not source:
                raise FewshotError("The pattern between the slashes is empty.")
            try:
                pc.match_substring_regex(pa.array([""]), source, ignore_case=True)
            except pa.ArrowInvalid as exc:
                reason = str(exc).removeprefix("Invalid regular expression: ")
                raise FewshotError(f"Bad pattern {text}: {reason}.") from None
            try:
                marks: tuple[re.Pattern, ...] = (re.compile(source, re.IGNORECASE),)
            except re.error:
                marks = ()
            return cls(text, (source,), marks)
        terms = [
            phrase or word.strip('"')
            for phrase, word in re.findall(r'"([^"]*)"|(\S+)', text)
        ]  # fmt: skip
        terms = [t.split() for t in terms if t.strip()]
        parts = tuple(_WORD_START + r"\s+".join(map(re.escape, t)) for t in terms)
        marks = tuple(
            re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, t)), re.IGNORECASE) for t in terms
        )
        return cls(text, parts, marks)

    def hits(self, texts: pa.Array) -> np.ndarray:
        """Matches per text (an Arrow string array), 0 where some part is missing; -1 for every
        text when there are no parts (an empty box finds everything)."""
        if not self.parts:
            return np.full(len(texts), -1)
        counts = [
            pc.count_substring_regex(texts, part, ignore_case=True).to_numpy(zero_copy_only=False)
            for part in self.parts
        ]
        return np.where(np.min(counts, axis=0) > 0, np.sum(counts, axis=0), 0)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where the parts match in text, as sorted, merged (start, end) pairs."""
        found = sorted(m.span() for mark in self.marks for m in mark.finditer(text))
        merged: list[tuple[int, int]] = []
        for start, end in found:
            if end == start:
                continue
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged


def highlight_html(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """text as HTML, escaped, with each span wrapped in <mark>."""
    out, last = [], 0
    for start, end in spans:
        out += [html.escape(text[last:start]), "<mark>", html.escape(text[start:end]), "</mark>"]
        last = end
    out.append(html.escape(text[last:]))
    return "".join(out)


@dataclass(frozen=True)
class Query:
    """What the user asked for: a mode, its input, the filters, and how to sort.

    mode "words" reads `text` as a Pattern; "meaning" ranks by cosine to the embedded `text`;
    "like" ranks by cosine to document `like`. Meaning and like keep the `top` best documents.
    Filters: `predicted` and `human` label names (NO_LABEL for none), `score` as (low, high),
    `sources`, and `meta` as (column, allowed values) pairs; an empty filter lets everything through.
    """

    text: str = ""
    mode: str = "words"
    like: int | None = None
    top: int = 50
    predicted: tuple[str, ...] = ()
    human: tuple[str, ...] = ()
    score: tuple[float, float] = (0.0, 1.0)
    sources: tuple[str, ...] = ()
    meta: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (column, allowed values) pairs
    sort: str = "relevance"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise FewshotError(f"Unknown search mode '{self.mode}'; use one of {', '.join(MODES)}.")
        if self.mode == "like" and self.like is None:
            raise FewshotError("'More like this' needs a document.")

    @property
    def active(self) -> bool:
        """Whether the query narrows anything down (else the page shows no results list)."""
        filtered = self.predicted or self.human or self.sources or any(v for _, v in self.meta)
        return bool(
            self.text.strip() or self.mode == "like" or filtered or self.score != (0.0, 1.0)
        )


def find(
    table: pd.DataFrame,
    query: Query,
    texts: pa.Array,
    vectors: np.ndarray,
    encode: Callable[[str], np.ndarray],
) -> pd.DataFrame:
    """The rows of table (a prediction table with id, text, human_label, predicted_label, score,
    margin, and any source or metadata columns) that the query finds, with a `relevance` column
    (hits for words, cosine by meaning), sorted by relevance or by doubt (smallest margin first).

    texts (`corpus_texts`) and vectors (unit sentence embeddings) hold row i of table at i;
    encode embeds the query text. A bad pattern is a FewshotError.
    """
    keep = _filters(table, query)
    if query.mode == "words":
        hits = Pattern.parse(query.text).hits(texts)
        rows = np.flatnonzero(keep & (hits != 0))
        relevance = np.maximum(hits[rows], 0).astype(float)
    else:
        if query.mode == "meaning":
            if not query.text.strip():
                raise FewshotError("Type what the documents should be about.")
            target = encode(query.text.strip())
        else:
            target = vectors[query.like]
        rows = np.flatnonzero(keep)
        ids = table["id"].to_numpy()
        if query.mode == "like":
            rows = rows[ids[rows] != query.like]
        relevance = vectors[ids[rows]] @ normalize(np.asarray(target, dtype=np.float32))
        best = np.argsort(-relevance, kind="stable")[: query.top]
        rows, relevance = rows[best], relevance[best]
    found = table.iloc[rows].assign(relevance=relevance)
    if query.sort == "doubt":
        return found.sort_values(["margin", "id"], kind="stable")
    return found.sort_values(["relevance", "id"], ascending=[False, True], kind="stable")


def corpus_texts(texts: Sequence[str]) -> pa.Array:
    """The corpus as Arrow strings, for `find`: built once per corpus (50,000 texts: 0.07 s)."""
    return pa.array(texts, type=pa.large_string())


def _filters(table: pd.DataFrame, query: Query) -> np.ndarray:
    keep = np.ones(len(table), dtype=bool)
    if query.predicted:
        keep &= table["predicted_label"].isin(query.predicted).to_numpy()
    if query.human:
        human = table["human_label"].astype(object).where(table["human_label"].notna(), NO_LABEL)
        keep &= human.isin(query.human).to_numpy()
    low, high = query.score
    if (low, high) != (0.0, 1.0):
        keep &= table["score"].between(low, high).to_numpy()
    if query.sources:
        keep &= table["source"].isin(query.sources).to_numpy()
    for column, values in query.meta:
        if values:
            keep &= table[column].astype(str).isin(values).to_numpy()
    return keep
