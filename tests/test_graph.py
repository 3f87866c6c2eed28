"""The corpus's neighbour graph."""

import numpy as np

from fewshot import graph
from fewshot.numeric import normalize


def test_large_corpus_graph_is_approximate_but_close(monkeypatch):
    rng = np.random.default_rng(5)
    unit = normalize(rng.normal(size=(3000, 8)))
    exact = graph.neighbour_graph(unit, 5)
    monkeypatch.setattr(graph, "EXACT_GRAPH_LIMIT", 1000)
    approximate = graph.neighbour_graph(unit, 5, key=("approximate",))
    assert approximate.shape == exact.shape
    assert not np.any(approximate == np.arange(3000)[:, None])  # nobody is their own neighbour
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(exact, approximate)])
    assert recall > 0.6
