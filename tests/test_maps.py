"""Closed-form Zmap and Wmap, and their .npz files."""

import numpy as np
import pytest

from fewshot import FewshotError
from fewshot.maps import Wmap, Zmap


def test_zmap_recovers_a_linear_relation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 20))
    true = rng.normal(size=(20, 5))
    zmap = Zmap(alpha=1e-3).fit(x, x @ true)
    assert zmap.coef_.shape == (20, 5)
    assert np.allclose(zmap.coef_, true, atol=1e-2)


def test_wmap_is_identity_without_pull_and_moves_toward_labels():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 8))
    y = rng.normal(size=(10, 8))
    strong_prior = Wmap(lam=1e6).fit(x, y)
    assert np.allclose(strong_prior.coef_, np.eye(8), atol=1e-3)
    fitted = Wmap(lam=0.01).fit(x, y)
    before = np.linalg.norm(x - y)
    after = np.linalg.norm(fitted.transform(x) - y)
    assert after < before / 2


@pytest.mark.parametrize("rows", [0, 3, 40])  # identity, thin factors, full matrix
def test_wmap_thin_and_full_fits_are_the_same_map(rows):
    rng = np.random.default_rng(rows)
    x, y = rng.normal(size=(rows, 16)), rng.normal(size=(rows, 16))
    wmap = Wmap(lam=0.5).fit(x, y)
    ridge = np.linalg.solve(x.T @ x + 0.5 * np.eye(16), x.T @ y + 0.5 * np.eye(16))
    assert np.allclose(wmap.coef_, ridge, atol=1e-4)
    docs = rng.normal(size=(7, 16))
    assert np.allclose(wmap.transform(docs), docs @ ridge, atol=1e-4)


def test_save_and_load_round_trip_and_refuse_bad_files(tmp_path):
    wmap = Wmap(lam=1.0).fit(np.eye(4), np.eye(4)[::-1])
    wmap.save(tmp_path / "w.npz")
    assert np.allclose(Wmap.load(tmp_path / "w.npz").coef_, wmap.coef_)
    with pytest.raises(FewshotError, match="wmap map, not a zmap"):
        Zmap.load(tmp_path / "w.npz")
    (tmp_path / "junk.npz").write_bytes(b"not numbers at all")
    with pytest.raises(FewshotError, match="junk.npz"):
        Wmap.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "obj.npz", kind=np.array("wmap"), coef=np.array([{"a": 1}], dtype=object))
    with pytest.raises(FewshotError):  # object arrays would need pickle: refused
        Wmap.load(tmp_path / "obj.npz")
    with pytest.raises(FewshotError):
        Wmap(1.0).fit(np.ones((3, 4)), np.ones((3, 5)))
