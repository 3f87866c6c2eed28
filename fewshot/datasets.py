"""The shared labeled data sets, and stand-ins built from them for data nobody tuned for.

The labeler is also judged on data sets we do not have: skewed classes, short texts, labels whose
names say little. The stand-ins resample and relabel the shared sets into those shapes (fixed
seeds, so every run sees the same documents); every setting of the method must hold on all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from fewshot import FewshotError, config

# file under config.shared_data_dir(), label column
SHARED = {
    "ag_news": ("ag_news/normalized_test.csv", "label"),
    "banking77": ("banking77/test.csv", "category"),
    "sst2": ("sst2/normalized_test.csv", "label"),
}


def read_shared(file: str, columns: Sequence[str]) -> pd.DataFrame:
    path = config.shared_data_dir() / file
    if not path.is_file():
        raise FewshotError(f"Benchmark data not found: {path} (set FEWSHOT_SHARED_DATA)")
    frame = pd.read_csv(path, keep_default_na=False, dtype=str)  # "nan" is a word, not missing
    return frame[list(columns)]


def _shared(name: str) -> tuple[list[str], list[str]]:
    file, label = SHARED[name]
    frame = read_shared(file, ["text", label])
    return frame["text"].tolist(), frame[label].tolist()


def resample(
    texts: Sequence[str], gold: Sequence[str], shares: dict[str, float], seed: int = 0
) -> tuple[list[str], list[str]]:
    """A random subset whose classes have the given shares, as large as the classes allow."""
    gold_arr = np.asarray(gold, dtype=object)
    have = {c: np.flatnonzero(gold_arr == c) for c in shares}
    total = min(len(have[c]) / share for c, share in shares.items())
    rng = np.random.default_rng(seed)
    keep = np.concatenate(
        [rng.choice(have[c], max(2, round(total * s)), replace=False) for c, s in shares.items()]
    )
    keep = np.sort(keep)
    return [texts[i] for i in keep], [gold[i] for i in keep]


def _ag_news_skewed() -> tuple[list[str], list[str]]:
    """AG News at 70/20/7/3: the two confusable classes (Business, Sci/Tech) are the rare ones."""
    shares = {"World": 0.70, "Sports": 0.20, "Business": 0.07, "Sci/Tech": 0.03}
    return resample(*_shared("ag_news"), shares)


def _sst2_skewed() -> tuple[list[str], list[str]]:
    """SST-2 at 87/13, positive the rare class: short texts, two imbalanced classes."""
    return resample(*_shared("sst2"), {"negative": 0.87, "positive": 0.13})


def _banking77_tail() -> tuple[list[str], list[str]]:
    """banking77 (test and train together) with a long tail: class sizes fall geometrically by a
    factor of ten over the 77 intents (158 to 16: the smallest intents have no more), in a random
    order of intents."""
    frames = [read_shared(f"banking77/{f}.csv", ["text", "category"]) for f in ("test", "train")]
    frame = pd.concat(frames, ignore_index=True)
    classes = sorted(frame["category"].unique())
    order = np.random.default_rng(0).permutation(len(classes))
    sizes = np.round(170 * 0.1 ** (np.arange(len(classes)) / (len(classes) - 1))).astype(int)
    total = sizes.sum()
    shares = {classes[c]: sizes[rank] / total for rank, c in enumerate(order)}
    return resample(frame["text"].tolist(), frame["category"].tolist(), shares)


def _ag_news_titles() -> tuple[list[str], list[str]]:
    """AG News headlines alone: short texts (about 7 words)."""
    frame = read_shared("ag_news/normalized_test.csv", ["title", "label"])
    return frame["title"].tolist(), frame["label"].tolist()


def _ag_news_tech_vs_rest() -> tuple[list[str], list[str]]:
    """AG News headlines as one topic against the rest, 13/87: "technology" or "other". Short
    texts, two imbalanced classes, and a catch-all class whose name points nowhere, as in spam
    against everything else."""
    frame = read_shared("ag_news/normalized_test.csv", ["title", "label"])
    gold = ["technology" if g == "Sci/Tech" else "other" for g in frame["label"]]
    return resample(frame["title"].tolist(), gold, {"technology": 0.13, "other": 0.87})


ABSTRACT = {
    "World": "Global",
    "Sports": "Competition",
    "Business": "Commerce",
    "Sci/Tech": "Progress",
}


def _ag_news_abstract() -> tuple[list[str], list[str]]:
    """AG News under abstract label names a user might type (Global, Competition, Commerce,
    Progress): they point the right way, but faintly."""
    texts, gold = _shared("ag_news")
    return texts, [ABSTRACT[g] for g in gold]


def _sst2_abstract() -> tuple[list[str], list[str]]:
    """SST-2 under unhelpful names (the text's form, not what it says): "praise", "complaint"."""
    texts, gold = _shared("sst2")
    return texts, ["praise" if g == "positive" else "complaint" for g in gold]


YES_NO_OPENERS = frozenset("am are can could did do does has have is should will would".split())


def text_form(text: str) -> str | None:
    """What a banking77 text does, read off its first word and its question mark: asks how, why,
    what, where or when, a yes-or-no question, or a statement about oneself; None for the rest."""
    words = text.lower().split()
    if not words:
        return None
    first, question = words[0].strip("?,.!"), text.rstrip().endswith("?")
    forms = {"how": "how", "why": "why", "what": "what", "what's": "what", "which": "what"}
    forms |= {"where": "where or when", "when": "where or when"}
    if first in forms:
        return forms[first]
    if first in YES_NO_OPENERS and question:
        return "yes or no"
    if first in ("i", "my", "i'm", "i've") and not question:
        return "statement"
    return None


def _banking77_form() -> tuple[list[str], list[str]]:
    """4,000 banking77 texts (test and train) labeled by their form, not their topic (how, why,
    what, where or when, yes or no, statement; 31% to 5%), as in question-type sets: the corpus
    clusters by its 77 intents, which the labels cut across, so refining by the corpus's
    clusters is the wrong move here."""
    frames = [read_shared(f"banking77/{f}.csv", ["text"]) for f in ("test", "train")]
    texts = pd.concat(frames, ignore_index=True)["text"].tolist()
    forms = [text_form(t) for t in texts]
    have = [i for i, form in enumerate(forms) if form is not None]
    keep = np.sort(np.random.default_rng(0).choice(have, 4_000, replace=False))
    return [texts[i] for i in keep], [forms[i] for i in keep]


STAND_INS: dict[str, Callable[[], tuple[list[str], list[str]]]] = {
    "ag_news_skewed": _ag_news_skewed,
    "sst2_skewed": _sst2_skewed,
    "banking77_tail": _banking77_tail,
    "ag_news_titles": _ag_news_titles,
    "ag_news_tech_vs_rest": _ag_news_tech_vs_rest,
    "ag_news_abstract": _ag_news_abstract,
    "sst2_abstract": _sst2_abstract,
    "banking77_form": _banking77_form,
}
DATASETS = (*SHARED, *STAND_INS)


def load_dataset(name: str) -> tuple[list[str], list[str]]:
    """Texts and gold label names of a shared data set or a stand-in."""
    if name in SHARED:
        return _shared(name)
    if name in STAND_INS:
        return STAND_INS[name]()
    raise FewshotError(f"Unknown data set '{name}'; choose from {', '.join(DATASETS)}.")
