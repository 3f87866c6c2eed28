"""What a corpus computes once and keeps on disk: read back instead of computed, damaged files
computed again, old ones pruned; and the views a page does not show are not computed."""

import numpy as np
import pytest

from fewshot import graph, stored
from fewshot.lexical import TermSpace
from fewshot.workspace import Workspace


def _never(*args, **kwargs) -> dict:
    raise AssertionError("computed again")


def test_arrays_are_read_back_and_a_damaged_file_is_computed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("FEWSHOT_DATA_DIR", str(tmp_path))
    first = stored.stored(("corpus", 1), "thing", lambda: {"a": np.arange(5), "b": np.eye(2)})
    again = stored.stored(("corpus", 1), "thing", _never)
    assert np.array_equal(again["a"], first["a"]) and np.array_equal(again["b"], np.eye(2))
    stored.path_for(("corpus", 1), "thing").write_bytes(b"PK\x03\x04 half a file")
    recomputed = stored.stored(("corpus", 1), "thing", lambda: {"a": np.ones(2)})
    assert np.array_equal(recomputed["a"], np.ones(2))
    assert [p.name for p in (tmp_path / "corpora").iterdir() if p.name.startswith(".")] == []


def test_only_the_most_recently_read_files_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("FEWSHOT_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(stored, "KEPT", 3)
    for i in range(5):
        stored.stored(("corpus", i), "thing", lambda i=i: {"i": np.array(i)})
    assert len(list((tmp_path / "corpora").glob("*.npz"))) == 3
    assert stored.stored(("corpus", 4), "thing", _never)["i"] == 4  # the newest survived


def test_term_space_round_trips_through_arrays():
    texts = ["refund my card", "card refunded today", "the match today", "match refund card"]
    space = TermSpace()
    matrix = space.fit_transform(texts)
    loaded, back = TermSpace.from_arrays(space.to_arrays(matrix))
    assert (back != matrix).nnz == 0 and loaded.n_terms == space.n_terms
    new = ["a refunded match"]
    assert np.allclose(loaded.transform(new).toarray(), space.transform(new).toarray())


def test_a_new_workspace_reads_the_corpus_index_from_disk(embedder, ag_sample, monkeypatch):
    texts = ag_sample["text"].tolist()
    first = Workspace(texts, embedder)
    first.prepare()
    raw = first.views["sbert"]
    graph._CACHE.clear()  # as in a restarted app: only the disk has them
    monkeypatch.setattr(TermSpace, "fit_transform", _never)
    monkeypatch.setattr(graph, "_graph", _never)
    monkeypatch.setattr(embedder.sentence, "encode", _never)  # nor the embedding cache
    second = Workspace(texts, embedder)
    assert np.array_equal(second.views["sbert"], raw)
    assert (second.terms != first.terms).nnz == 0
    assert second.term_space.n_terms == first.term_space.n_terms
    keyed = graph.neighbour_graph(raw, graph.MAX_NEIGHBOURS, graph.fingerprint(raw))
    assert keyed.shape == (len(texts), graph.MAX_NEIGHBOURS)


def test_word_vector_views_wait_until_read(embedder, ag_sample, monkeypatch):
    calls = []
    encode = embedder.words.encode
    monkeypatch.setattr(
        embedder.words, "encode", lambda texts, **kw: calls.append(len(texts)) or encode(texts)
    )
    workspace = Workspace(ag_sample["text"].tolist(), embedder)
    assert calls == []
    words = workspace.views["words"]
    assert workspace.views["words"] is words and calls == [len(ag_sample)]
    assert set(workspace.views) == {"sbert", "words", "zmap"}
    with pytest.raises(KeyError):
        workspace.views["glove"]
