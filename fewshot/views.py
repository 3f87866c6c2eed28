"""The three views of meaning: Sentence-BERT, word vectors, and SBERT mapped into word-vector space.

`Embedder` turns documents and a label space into one (documents, labels) pair of arrays per view,
so every view is classified by the same `FewShotClassifier`.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fewshot import config
from fewshot.encoders import (
    EmbeddingCache,
    Progress,
    SentenceEncoder,
    WordVectors,
    load_word_vectors,
)
from fewshot.labelspace import LabelSpace
from fewshot.maps import Zmap
from fewshot.numeric import normalize
from fewshot.stored import stored, write_atomic

VIEWS = {"sbert": "Sentence-BERT", "words": "Word vectors", "zmap": "SBERT via Zmap"}
DEFAULT_VIEW = "sbert"
_WORD = re.compile(r"^[a-z]+$")


def zmap_vocabulary(words: WordVectors, k: int) -> list[str]:
    """The k most frequent plain words (vector files list words by frequency)."""
    vocab = []
    for word in words.kv.index_to_key:
        if _WORD.match(word) and len(word) > 1:
            vocab.append(word)
            if len(vocab) == k:
                break
    return vocab


def fit_zmap(
    sentence: SentenceEncoder,
    words: WordVectors,
    k: int | None = None,
    alpha: float = 1.0,
    progress: Progress | None = None,
) -> Zmap:
    """Fit (or load the cached) Zmap for this pair of models; the first fit embeds k words once.

    k defaults to FEWSHOT_ZMAP_WORDS (20,000: about 45 s once on two cores, then cached as .npz).
    """
    k = k or config.zmap_words()
    path = config.data_dir() / "maps" / f"zmap-{sentence.name}-{words.name}-{k}-{alpha:g}.npz"
    if path.exists():
        return Zmap.load(path)
    vocab = zmap_vocabulary(words, k)
    x = sentence.encode(vocab, progress=progress)
    y = np.stack([words.kv[w] for w in vocab])
    zmap = Zmap(alpha).fit(x, y)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:  # a handle: np.savez would add .npz to a name
            zmap.save(handle)

    write_atomic(path, write)  # workers may fit side by side
    return zmap


@dataclass
class Embedder:
    """Embeds documents and labels in every view; sentence embeddings go through the cache.

    `for_view` makes one for a single view, without the models it does not need (None).
    """

    sentence: SentenceEncoder
    words: WordVectors | None
    zmap: Zmap | None

    @classmethod
    def default(cls, progress: Progress | None = None) -> Embedder:
        """The configured models with the on-disk cache: one recipe for the command line and bench.

        progress reports the one-time embedding of the Zmap vocabulary, the only slow part.
        """
        sentence = SentenceEncoder(cache=EmbeddingCache())
        words = load_word_vectors()
        return cls(sentence, words, fit_zmap(sentence, words, progress=progress))

    @classmethod
    def for_view(
        cls,
        view: str,
        backend: str | None = None,
        threads: int | None = None,
        progress: Progress | None = None,
    ) -> Embedder:
        """What labeling new documents in one view needs, uncached (data labeled once would
        fill the cache): no word vectors or Zmap for Sentence-BERT, whose load would cost every
        Spark worker time and memory. backend and threads: the sentence encoder's."""
        sentence = SentenceEncoder(cache=None, backend=backend, threads=threads)
        words = load_word_vectors() if view in ("words", "zmap") else None
        zmap = fit_zmap(sentence, words, progress=progress) if view == "zmap" else None
        return cls(sentence, words, zmap)

    def documents(
        self, texts: Sequence[str], key: str, progress: Progress | None = None
    ) -> DocumentViews:
        """A corpus in every view; the sentence embeddings now, with progress.

        They are also kept on disk as one matrix per corpus (key: its fingerprint;
        `fewshot.stored`): at 100,000 documents reading it back takes a fraction of a second
        where looking each text up in the embedding cache took 4 s.
        """
        arrays = stored(
            (key, self.sentence.name),
            "sentence",
            lambda: {"vectors": self.sentence.encode(texts, progress=progress)},
        )
        return DocumentViews(self, texts, arrays["vectors"])

    def view(self, texts: Sequence[str], view: str, progress: Progress | None = None) -> np.ndarray:
        """Documents in one view only, computing no other."""
        sbert = None if view == "words" else self.sentence.encode(texts, progress=progress)
        return self.from_sentence(sbert, texts, view)

    def identity(self, view: str) -> dict[str, str]:
        """The models a view's vectors depend on, by fingerprint: a labeler taught in one view
        applies only where the same models embed."""
        if view == "sbert":
            return {"sentence": self.sentence.name}
        if view == "words":
            return {"words": self.words.name}
        digest = hashlib.blake2b(self.zmap.coef_.tobytes(), digest_size=8).hexdigest()
        return {"sentence": self.sentence.name, "words": self.words.name, "zmap": digest}

    def from_sentence(
        self, sbert: np.ndarray | None, texts: Sequence[str], view: str
    ) -> np.ndarray:
        """One view from already computed sentence embeddings (the words view needs none)."""
        if view == "sbert":
            return sbert
        if view == "words":
            return self.words.encode(texts)
        return normalize(self.zmap.transform(sbert))

    def labels(self, space: LabelSpace) -> dict[str, np.ndarray]:
        """Per view, one unit vector per label: the mean over its prompts (name, templates, note)."""
        prompts = space.prompts()
        flat = [p for group in prompts for p in group]
        owner = np.repeat(np.arange(len(prompts)), [len(g) for g in prompts])
        sbert = self.sentence.encode(flat)
        out = {}
        for view in VIEWS:
            vectors = self.from_sentence(sbert, flat, view)
            sums = np.zeros((len(prompts), vectors.shape[1]), dtype=np.float32)
            np.add.at(sums, owner, vectors)
            out[view] = normalize(sums)
        return out

    def unknown_label_words(self, space: LabelSpace) -> dict[str, list[str]]:
        """Words of label names and descriptions that the word vectors do not know, per label."""
        unknown = {}
        for name, description in zip(space.names, space.descriptions):
            missing = self.words.unknown_words(f"{name} {description}")
            if missing:
                unknown[name] = missing
        return unknown


class DocumentViews(Mapping):
    """A corpus in every view, as a read-only mapping: Sentence-BERT at once, the two word-vector
    views the first time they are read. At 100,000 documents the words view is seconds of
    Python that a page showing the default view only need not wait for."""

    def __init__(self, embedder: Embedder, texts: Sequence[str], sbert: np.ndarray) -> None:
        self._embedder, self._texts = embedder, texts
        self._views = {"sbert": sbert}
        self._lock = threading.Lock()  # the app shares a workspace between sessions (threads)

    def __getitem__(self, view: str) -> np.ndarray:
        if view not in VIEWS:
            raise KeyError(view)
        with self._lock:
            if view not in self._views:
                sbert = self._views["sbert"]
                self._views[view] = self._embedder.from_sentence(sbert, self._texts, view)
        return self._views[view]

    def __iter__(self) -> Iterator[str]:
        return iter(VIEWS)

    def __len__(self) -> int:
        return len(VIEWS)
