"""Search (words, phrases, regular expressions, meaning, filters) and bulk-label previews."""

import numpy as np
import pandas as pd
import pytest

from fewshot import FewshotError
from fewshot.bulk import preview
from fewshot.numeric import normalize
from fewshot.search import NO_LABEL, Pattern, Query, corpus_texts, find, highlight_html

TEXTS = [
    "I want a refund for my order",
    "The refunded amount never arrived",
    "Nonrefundable tickets, sorry",
    "Oil prices rose again; OIL   PRICES matter",
    "Café owners protest new taxes",
    "Shares fell sharply on Monday",
]


def table() -> pd.DataFrame:
    n = len(TEXTS)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "text": TEXTS,
            "human_label": ["Money", None, None, "Money", None, "Markets"],
            "predicted_label": ["Money", "Money", "Travel", "Markets", "Travel", "Markets"],
            "score": [0.9, 0.8, 0.4, 0.7, 0.3, 0.95],
            "margin": [0.5, 0.1, 0.05, 0.3, 0.2, 0.9],
            "source": ["a.csv", "a.csv", "b.csv", "b.csv", "b.csv", "a.csv"],
            "team": ["x", "y", "x", "y", "x", "y"],
        }
    )


def run(query: Query, vectors: np.ndarray | None = None, encode=None) -> list[int]:
    vectors = normalize(np.eye(len(TEXTS), 8, dtype=np.float32)) if vectors is None else vectors
    return find(table(), query, corpus_texts(TEXTS), vectors, encode)["id"].tolist()


def test_words_match_at_word_starts_ignoring_case_and_all_must_occur():
    assert run(Query("refund")) == [0, 1]  # not "Nonrefundable": no word starts there
    assert run(Query("REFUND order")) == [0]
    assert run(Query("café")) == [4]  # word starts outside ASCII too
    assert run(Query("cafe")) == []


def test_phrases_allow_any_whitespace_and_rank_by_hits():
    assert run(Query('"oil prices"')) == [3]
    assert run(Query('"prices rose" oil')) == [3]
    assert run(Query('"sharply on" "oil prices"')) == []
    hits = find(table(), Query('"oil prices"'), corpus_texts(TEXTS), np.zeros((6, 2)), None)
    assert hits["relevance"].tolist() == [2.0]


def test_regular_expressions_and_their_errors():
    assert run(Query("/refund(ed)?\\b/")) == [0, 1]
    assert run(Query("/^shares/")) == [5]
    for bad, message in [("/refund(/", "Bad pattern /refund(/: missing )"),
                         ("//", "empty"), ("/(?<!x)a/", "Bad pattern")]:  # fmt: skip
        with pytest.raises(FewshotError, match=message.replace("(", r"\(").replace(")", r"\)")):
            run(Query(bad))


def test_a_pathological_pattern_answers_at_once():
    texts = ["a" * 5000 + "!"] * 50
    found = Pattern.parse("/(a+)+$/").hits(corpus_texts(texts))
    assert found.tolist() == [0] * 50  # RE2 runs in linear time; Python's re would hang here


def test_filters_combine_with_a_search_or_alone():
    assert run(Query("refund", predicted=("Money",))) == [0, 1]
    assert run(Query("refund", human=(NO_LABEL,))) == [1]
    assert run(Query(human=("Money", NO_LABEL), score=(0.5, 1.0), sort="doubt")) == [1, 3, 0]
    assert run(Query(sources=("b.csv",), meta=(("team", ("x",)),))) == [2, 4]
    assert not Query().active and Query(score=(0.2, 1.0)).active


def test_sort_by_doubt_puts_the_smallest_margin_first():
    assert run(Query(predicted=("Money", "Travel"), sort="doubt")) == [2, 1, 4, 0]


def test_meaning_and_more_like_this_rank_by_cosine():
    vectors = normalize(np.array([[1, 0], [0.9, 0.1], [0, 1], [0.5, 0.5], [0.1, 1], [1, 0.2]]))
    encode = lambda text: np.array([0.0, 2.0])  # noqa: E731 - the query's embedding
    assert run(Query("x", mode="meaning", top=3), vectors, encode) == [2, 4, 3]
    assert run(Query(mode="like", like=0, top=2), vectors, encode) == [1, 5]  # never itself
    assert run(Query(mode="like", like=0, top=9, predicted=("Travel",)), vectors, encode) == [4, 2]
    with pytest.raises(FewshotError, match="Type what"):
        run(Query("  ", mode="meaning"), vectors, encode)
    with pytest.raises(FewshotError, match="needs a document"):
        Query(mode="like")


def test_highlights_are_escaped_and_merged():
    text = "Oil <b>prices</b>, oil prices"
    pattern = Pattern.parse('"oil prices" oil')
    assert pattern.spans(text) == [(0, 3), (19, 29)]
    assert highlight_html(text, pattern.spans(text)) == (
        "<mark>Oil</mark> &lt;b&gt;prices&lt;/b&gt;, <mark>oil prices</mark>"
    )


def test_bulk_preview_counts_what_would_happen():
    human = {0: "Money", 1: "money", 3: "Markets"}
    predicted = ["Money", "Markets", "Money", "Money", "Travel"]
    counts = preview([0, 1, 2, 3, 4, 4], "Money", human, predicted)
    assert (counts.unlabeled, counts.same, counts.other, counts.predicted) == (2, 2, 1, 3)
    assert counts.ids == (0, 1, 2, 3, 4)
    assert counts.to_write(False) == 2 and counts.to_write(True) == 3
