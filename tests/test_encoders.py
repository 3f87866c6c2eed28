"""The real packaged models on small inputs: sentence encoder, cache, word vectors."""

import os
from pathlib import Path

import numpy as np
import pytest

from fewshot import FewshotError, encoders
from fewshot.encoders import (
    EmbeddingCache,
    SentenceEncoder,
    load_word_vectors,
    tokenize,
    train_word2vec,
)


def test_sentence_encoder_gives_unit_vectors_that_mean_something(encoder):
    vectors = encoder.encode(
        ["The team won the match.", "The striker scored a goal.", "Stocks fell."]
    )
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2]


def test_cache_serves_repeats_and_reports_progress(tmp_path, encoder):
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    fresh = SentenceEncoder(encoder.model_path, cache=cache)
    fresh._model = encoder.model  # share the loaded weights; the cache is what is under test
    calls = []
    texts = ["alpha beta", "gamma delta", "alpha beta", ""]
    first = fresh.encode(texts, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (4, 4)
    assert np.allclose(first[0], first[2])
    calls.clear()
    fresh._model = None  # a cache hit must not need the model at all
    fresh.model_path = "/nonexistent"
    second = fresh.encode(texts, progress=lambda done, total: calls.append((done, total)))
    assert np.allclose(first, second)
    assert calls == [(4, 4)]


def test_empty_input_and_missing_model(encoder, tmp_path):
    assert encoder.encode([]).shape == (0, 384)
    with pytest.raises(FewshotError, match="no-such-model"):
        SentenceEncoder(tmp_path / "no-such-model")


def test_word_vectors_document_vectors_and_unknown_words(word_vectors):
    assert word_vectors.dim == 50
    vectors = word_vectors.encode(["football match", "zzqxv qqqzx", ""])
    assert np.isclose(np.linalg.norm(vectors[0]), 1, atol=1e-4)
    assert not vectors[1].any() and not vectors[2].any()  # no known word: zero vector
    assert word_vectors.unknown_words("Sports zzqxv") == ["zzqxv"]
    assert tokenize("card_arrival Sci/Tech") == ["card", "arrival", "sci", "tech"]


def test_packaged_word_vectors_are_memory_mapped(word_vectors):
    assert load_word_vectors() is word_vectors
    assert isinstance(word_vectors.kv.vectors, np.memmap)
    assert len(word_vectors.kv.index_to_key) == 400_000
    assert word_vectors.kv.key_to_index["null"] > 0  # a word, not a missing value


def test_user_word2vec_text_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("3 2\ncat 1 0\ndog 0.9 0.1\ncar 0 1\n")
    vectors = load_word_vectors(path)
    assert vectors.dim == 2
    a, b, c = vectors.encode(["cat", "dog", "car"])
    assert a @ b > a @ c
    kept = list((Path(os.environ["FEWSHOT_DATA_DIR"]) / "vectors").glob("tiny-*.npz"))
    assert len(kept) == 1  # parsed once, kept as plain arrays
    with np.load(kept[0], allow_pickle=False) as data:
        assert data["vectors"].shape == (3, 2)
    encoders._WORD_VECTORS.clear()  # as in a new process: the .npz is read back
    assert np.allclose(load_word_vectors(path).encode(["cat", "dog", "car"]), [a, b, c])
    with pytest.raises(FewshotError, match="missing.vec"):
        load_word_vectors(tmp_path / "missing.vec")


def test_word2vec_on_own_corpus():
    corpus = ["the bank approved the loan", "the loan was repaid to the bank"] * 20
    vectors = train_word2vec(corpus, dim=16, epochs=5)
    assert vectors.dim == 16 and "loan" in vectors.kv.key_to_index
    with pytest.raises(FewshotError):
        train_word2vec(["", "!!!"])


def test_time_left_counts_the_pace_from_the_first_report(monkeypatch):
    # 12,500 texts come from the cache at once, then 1,000 are embedded in 10 s: 86,500 to go
    # at 100 a second is about 14 minutes, not the 64 s the whole count since the start says.
    now = [0.0]
    monkeypatch.setattr(encoders.time, "monotonic", lambda: now[0])
    pace = encoders.Pace()
    assert pace(12_500, 100_000) == ""  # nothing is known of the pace yet
    now[0] = 10.0
    assert pace(13_500, 100_000) == ", about 14 min left"
    assert encoders.time_left(0.0, 13_500, 100_000) == ", about 64 s left"
    assert pace(100_000, 100_000) == ""
