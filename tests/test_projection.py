"""Layouts: PCA at once, one real (tiny) UMAP fit in the background, cached on disk.

The UMAP fit in this file is the only one: the first fit in a process pays 30-60 s of numba
compilation, so everything UMAP-related is checked on that single fit.
"""

import re
import time

import numpy as np
import pytest

from fewshot import FewshotError
from fewshot.projection import (
    MIN_UMAP_POINTS,
    Layout,
    LayoutCache,
    fingerprint,
    pca_layout,
    plot_sample,
)


def clusters(n_per: int = 12, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three tight, well separated blobs of unit vectors, and their centres."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dim, dtype=np.float32)[:3]
    x = np.repeat(centres, n_per, axis=0) + 0.05 * rng.normal(size=(3 * n_per, dim))
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), centres


def test_pca_layout_shape_and_stability():
    x, _ = clusters()
    layout = pca_layout(x)
    assert layout.shape == (len(x), 2) and np.isfinite(layout).all()
    assert np.array_equal(layout, pca_layout(x.copy()))
    assert layout[:, 0].var() >= layout[:, 1].var()
    assert pca_layout(x[:1]).shape == (1, 2)


def test_pca_places_label_points_in_the_same_space():
    x, centres = clusters()
    layout = Layout("pca").fit(x)
    assert np.allclose(layout.transform(x), layout.embedding_, atol=1e-5)
    labels = layout.transform(centres)
    assert labels.shape == (3, 2)
    for i, label in enumerate(labels):  # each centre lands among its own blob
        nearest = np.argmin(np.linalg.norm(layout.embedding_ - label, axis=1))
        assert nearest // 12 == i
    with pytest.raises(FewshotError, match="dimension"):
        layout.transform(np.zeros((1, 5)))


def test_layout_rejects_bad_input():
    with pytest.raises(FewshotError):
        Layout("tsne")
    with pytest.raises(FewshotError):
        Layout("pca").fit(np.zeros((0, 4)))
    with pytest.raises(FewshotError, match="at least"):
        Layout("umap").fit(np.eye(MIN_UMAP_POINTS - 1, dtype=np.float32))


def test_plot_sample_is_reproducible_and_bounded():
    assert np.array_equal(plot_sample(30, limit=100), np.arange(30))
    sample = plot_sample(20_000, limit=5000)
    assert len(sample) == 5000 and len(np.unique(sample)) == 5000
    assert np.all(np.diff(sample) > 0)
    assert np.array_equal(sample, plot_sample(20_000, limit=5000))


def test_fingerprint_depends_on_data_and_parameters():
    x, _ = clusters()
    assert fingerprint(x) == fingerprint(x.astype(np.float64))
    assert fingerprint(x) != fingerprint(x[:-1])
    assert fingerprint(x) != fingerprint(x, n_neighbors=5)


def test_too_few_points_stay_pca(tmp_path):
    cache = LayoutCache(tmp_path)
    x = np.eye(4, dtype=np.float32)
    assert cache.layout(x).method == "pca"
    assert cache.status(x) == "too few points"


def test_background_umap_is_fitted_once_and_cached_on_disk(tmp_path):
    x, centres = clusters()
    cache = LayoutCache(tmp_path / "layouts")
    assert cache.status(x) == "not started"

    started = time.perf_counter()
    first = cache.layout(x)  # returns at once with PCA, the UMAP fit runs in the background
    assert time.perf_counter() - started < 5
    assert first.method == "pca"
    assert cache.status(x) in ("computing", "ready")

    assert cache.progress(x)  # "finding each document's nearest neighbours", or the steps
    fitted = cache.wait(x, timeout=600)
    assert fitted.method == "umap"
    assert re.fullmatch(r"arranging the points, step (\d+) of \1", cache.progress(x))
    assert fitted.embedding_.shape == (len(x), 2) and np.isfinite(fitted.embedding_).all()
    assert cache.status(x) == "ready"
    assert cache.layout(x) is fitted
    # The blobs stay apart: every point's nearest 2-D neighbour is from its own blob.
    distances = np.linalg.norm(fitted.embedding_[:, None] - fitted.embedding_[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    assert np.all(distances.argmin(axis=1) // 12 == np.arange(len(x)) // 12)

    # A new process (a new cache) reads the stored layout instead of fitting again.
    assert cache.path(x).exists()
    restarted = LayoutCache(tmp_path / "layouts")
    assert restarted.status(x) == "ready"
    again = restarted.layout(x)
    assert again.method == "umap"
    assert np.array_equal(again.embedding_, fitted.embedding_)

    # Label points land among their own blob in the UMAP layout too.
    for i, label in enumerate(again.transform(centres)):
        nearest = np.argmin(np.linalg.norm(again.embedding_ - label, axis=1))
        assert nearest // 12 == i

    # A damaged cache file is dropped, not trusted (and not fitted again unless asked).
    cache.path(x).write_bytes(b"garbage")
    assert LayoutCache(tmp_path / "layouts").status(x) == "not started"
    assert not cache.path(x).exists()
