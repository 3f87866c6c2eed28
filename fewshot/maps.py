"""Zmap and Wmap: linear maps between embedding spaces, fitted in closed form (no SGD).

Both are saved as `.npz` (plain arrays, never pickles), so a map file from anyone is safe to load.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np

from fewshot import FewshotError


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """argmin_W ||XW - Y||^2 + alpha ||W||^2, solved through the d x d normal equations."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    gram = x.T @ x + alpha * np.eye(x.shape[1])
    return np.linalg.solve(gram, x.T @ y).astype(np.float32)


class LinearMap:
    """Shared fit-free behaviour: transform, save, load."""

    kind = "linear"
    coef_: np.ndarray

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32) @ self.coef_

    def save(self, path: str | Path | BinaryIO) -> None:
        np.savez(path, kind=np.array(self.kind), coef=self.coef_)

    @classmethod
    def load(cls, path: str | Path) -> LinearMap:
        try:
            with np.load(path, allow_pickle=False) as data:
                kind = str(data["kind"])
                coef = np.asarray(data["coef"], dtype=np.float32)
        except (OSError, ValueError, KeyError) as exc:
            raise FewshotError(f"Not a map file: {Path(path).name} ({exc})") from exc
        if kind != cls.kind:
            raise FewshotError(f"{Path(path).name} holds a {kind} map, not a {cls.kind} map.")
        if coef.ndim != 2 or not np.isfinite(coef).all():
            raise FewshotError(f"{Path(path).name}: the map is not a finite 2-D matrix.")
        instance = cls()
        instance.coef_ = coef
        return instance


class Zmap(LinearMap):
    """Ridge map from sentence-embedding space to word-vector space.

    Fitted on the sentence embeddings of frequent words against their word vectors, so that a
    document's sentence embedding can be compared with word vectors of label names.
    """

    kind = "zmap"

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, x: np.ndarray, y: np.ndarray) -> Zmap:
        if len(x) != len(y) or len(x) == 0:
            raise FewshotError("Zmap needs the same, non-zero number of rows on both sides.")
        self.coef_ = _ridge(x, y, self.alpha)
        return self


class Wmap(LinearMap):
    """Square map learned from labeled documents, pulled toward the identity.

    W = (X'X + lam I)^-1 (X'Y + lam I) = I + (X'X + lam I)^-1 X'(Y - X): with no labels it is the
    identity (pure zero-shot), and every label bends document space a little toward its label's
    embedding. Milliseconds to refit. While there are fewer labeled rows than half the dimensions
    the bend is also kept as two thin factors, so mapping a whole corpus stays cheap.
    """

    kind = "wmap"
    _factors: tuple[np.ndarray, np.ndarray] | None = None  # W - I = left @ right, when thin

    def __init__(self, lam: float = 1.0) -> None:
        self.lam = lam

    def fit(self, x: np.ndarray, y: np.ndarray) -> Wmap:
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        if x.ndim != 2 or x.shape != y.shape:
            raise FewshotError("Wmap needs documents and label embeddings of the same shape.")
        dim = x.shape[1]
        gram = (x.T @ x).astype(np.float64) + self.lam * np.eye(dim)
        target = y - x
        if len(x) < dim // 2:
            left = np.linalg.solve(gram, x.T.astype(np.float64)).astype(np.float32)
            self._factors = (left, target)
            self.coef_ = np.eye(dim, dtype=np.float32) + left @ target
        else:
            self._factors = None
            bend = np.linalg.solve(gram, (x.T @ target).astype(np.float64))
            self.coef_ = (np.eye(dim) + bend).astype(np.float32)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        if self._factors is None:
            return super().transform(x)
        left, right = self._factors
        x = np.asarray(x, dtype=np.float32)
        return x + (x @ left) @ right
