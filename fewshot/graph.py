"""The corpus graph: every document's nearest neighbours by cosine, and label spreading over it.

The graph depends on the corpus only, not on the labels, so it is computed once per corpus and
reused by every refit (a small cache keyed by the corpus's bytes). Exact search up to
EXACT_GRAPH_LIMIT documents, in blocks so memory stays bounded; beyond that an inverted-file search
(probe the nearest clusters only) keeps it to seconds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from fewshot.numeric import cohen_kappa, fingerprint, normalize
from fewshot.stored import stored

EXACT_GRAPH_LIMIT = 20_000
MAX_NEIGHBOURS = 10  # per document; fewer on a small corpus of many labels
_BLOCK = 1024
_CACHE: OrderedDict[tuple, object] = OrderedDict()  # per corpus: neighbour graph, row index, ...
_CACHE_KEPT = 12
_CACHE_LOCK = threading.Lock()


def top_k(queries: np.ndarray, base: np.ndarray, k: int, offset: int | None = None) -> np.ndarray:
    """Indices (n, k) of each query's k most similar base rows, unordered.

    offset: the queries are base[offset:offset + n] and must not find themselves.
    """
    idx = np.empty((len(queries), k), dtype=np.int32)
    for start in range(0, len(queries), _BLOCK):
        sims = queries[start : start + _BLOCK] @ base.T
        if offset is not None:
            rows = np.arange(len(sims))
            sims[rows, offset + start + rows] = -np.inf
        idx[start : start + len(sims)] = np.argpartition(sims, -k, axis=1)[:, -k:]
    return idx


def row_index(rows: np.ndarray) -> dict[int, list[int]]:
    """Positions of the rows by a hash of their bytes, to find labeled documents in the corpus."""
    index: dict[int, list[int]] = {}
    for i, row in enumerate(np.ascontiguousarray(rows)):
        index.setdefault(hash(row.tobytes()), []).append(i)
    return index


def locate(queries: np.ndarray, base: np.ndarray, index: dict[int, list[int]]) -> np.ndarray:
    """For each query row, the position of an identical base row, or -1."""
    found = np.full(len(queries), -1, dtype=np.int64)
    for i, row in enumerate(np.ascontiguousarray(queries, dtype=base.dtype)):
        for j in index.get(hash(row.tobytes()), ()):
            if np.array_equal(base[j], row):
                found[i] = j
                break
    return found


def _approximate_graph(unit: np.ndarray, k: int, probe: int = 32, rounds: int = 4) -> np.ndarray:
    """Approximate k nearest neighbours of every row: spherical k-means into about sqrt(n) cells;
    the documents of a cell search the cells whose centres are nearest to their own."""
    n = len(unit)
    n_cells = max(2, int(np.sqrt(n)))
    centres = unit[np.random.default_rng(0).choice(n, n_cells, replace=False)]
    for step in range(rounds + 1):
        cell = np.concatenate(
            [np.argmax(unit[s : s + _BLOCK] @ centres.T, axis=1) for s in range(0, n, _BLOCK)]
        )
        order = np.argsort(cell, kind="stable")
        counts = np.bincount(cell, minlength=n_cells)
        if step == rounds:
            break
        filled = counts > 0
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[filled]
        centres[filled] = normalize(np.add.reduceat(unit[order], starts, axis=0))
    members = np.split(order, np.cumsum(counts)[:-1])
    near = np.argsort(-(centres @ centres.T), axis=1)[:, :probe]
    graph = np.empty((n, k), dtype=np.int32)
    for c, own in enumerate(members):
        if not len(own):
            continue
        others = [members[o] for o in near[c] if o != c]
        candidates = np.concatenate([own, *others])
        if len(candidates) <= k:
            candidates = np.concatenate([own, np.setdiff1d(np.arange(n), own)])
        sims = unit[own] @ unit[candidates].T
        sims[np.arange(len(own)), np.arange(len(own))] = -np.inf
        graph[own] = candidates[np.argpartition(sims, -k, axis=1)[:, -k:]]
    return graph


def neighbour_graph(unit: np.ndarray, k: int, key: tuple | None = None) -> np.ndarray:
    """(n, k) indices of each row's nearest other rows by cosine (rows are unit vectors); cached
    in memory and on disk (`fewshot.stored`), so a restarted app reads it back."""
    key = key or fingerprint(unit)

    def compute() -> np.ndarray:
        return stored(key, f"graph{k}", lambda: {"graph": _graph(unit, k)})["graph"]

    return cached((key, "graph", k), compute)


def _graph(unit: np.ndarray, k: int) -> np.ndarray:
    if len(unit) <= EXACT_GRAPH_LIMIT:
        return top_k(unit, unit, k, offset=0)
    return _approximate_graph(unit, k)


def cached(key: tuple, compute: Callable[[], object]):  # noqa: ANN201 - whatever compute returns
    """compute(), kept per key (a corpus's fingerprint and what of it) for the next refit."""
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    value = compute()
    with _CACHE_LOCK:
        _CACHE[key] = value
        while len(_CACHE) > _CACHE_KEPT:
            _CACHE.popitem(last=False)
    return value


def neighbour_mean(values: np.ndarray, graph: np.ndarray) -> np.ndarray:
    out = values[graph[:, 0]].copy()
    for j in range(1, graph.shape[1]):
        out += values[graph[:, j]]
    return out / graph.shape[1]


def homophily(predicted: np.ndarray, graph: np.ndarray, n_classes: int) -> float:
    """Kappa between each document's label and its neighbours' labels: do neighbours agree?"""
    return cohen_kappa(np.repeat(predicted, graph.shape[1]), predicted[graph].ravel(), n_classes)


def propagate(
    proba: np.ndarray,
    graph: np.ndarray,
    alpha: float,
    rounds: int = 3,
    clamp: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Label spreading: mix each document's probabilities with its neighbours', a few rounds; the
    human-labeled documents (clamp: rows, one-hot rows) keep their labels and pass them on."""
    out = proba.copy()
    for _ in range(rounds):
        if clamp is not None:
            out[clamp[0]] = clamp[1]
        out = (1 - alpha) * proba + alpha * neighbour_mean(out, graph)
    if clamp is not None:
        out[clamp[0]] = clamp[1]
    return out
