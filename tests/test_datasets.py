"""The stand-ins the benchmark uses for data nobody tuned for: the shapes they promise."""

from collections import Counter

import pytest

from fewshot import FewshotError
from fewshot.datasets import DATASETS, load_dataset, text_form


def shares(gold):
    counts = Counter(gold)
    return {label: count / len(gold) for label, count in counts.items()}


def test_skewed_stand_ins_have_their_priors():
    _, gold = load_dataset("ag_news_skewed")
    got = shares(gold)
    want = {"World": 0.70, "Sports": 0.20, "Business": 0.07, "Sci/Tech": 0.03}
    assert got == pytest.approx(want, abs=0.002)
    _, gold = load_dataset("sst2_skewed")
    assert shares(gold)["positive"] == pytest.approx(0.13, abs=0.002)
    texts, gold = load_dataset("ag_news_tech_vs_rest")
    assert shares(gold) == pytest.approx({"technology": 0.13, "other": 0.87}, abs=0.002)
    assert sum(len(t.split()) for t in texts) / len(texts) < 10  # headlines


def test_long_tail_and_renamed_stand_ins():
    texts, gold = load_dataset("banking77_tail")
    counts = sorted(Counter(gold).values())
    assert len(counts) == 77 and counts[-1] / counts[0] == pytest.approx(10, rel=0.05)
    assert counts[0] >= 16 and len(texts) == len(gold)  # 8 per class leave half for scoring
    _, gold = load_dataset("ag_news_abstract")
    assert set(gold) == {"Global", "Competition", "Commerce", "Progress"}
    titles, _ = load_dataset("ag_news_titles")
    assert sum(len(t.split()) for t in titles) / len(titles) < 10


def test_form_stand_in_labels_what_a_text_does():
    texts, gold = load_dataset("banking77_form")
    assert len(texts) == 4_000 and len(set(texts)) > 3_900
    assert set(gold) == {"how", "why", "what", "where or when", "yes or no", "statement"}
    assert 0.04 < min(shares(gold).values()) < max(shares(gold).values()) < 0.35
    assert text_form("Why is my card blocked?") == "why"
    assert text_form("Can I top up by cheque?") == "yes or no"
    assert text_form("My card has not arrived yet.") == "statement"
    assert text_form("Can I top up by cheque") is None  # a request, not a question
    assert text_form("") is None


def test_unknown_data_set_is_refused():
    assert len(DATASETS) == 11
    with pytest.raises(FewshotError, match="Unknown data set 'nope'"):
        load_dataset("nope")
