"""What classifying a new document from its embedding needs, once the corpus has taught the
classifier: a few arrays, no corpus. `fewshot.classify` fits them; the labeler file carries them.

Two forms, numpy in and out: cosine to class prototypes in the space bent by the Wmap, or a linear
discriminant (shared covariance) on the unit embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fewshot.numeric import normalize, softmax


@dataclass(frozen=True)
class CosineModel:
    """softmax(cos(x W, prototypes) / temperature): the inductive classifier."""

    wmap: np.ndarray  # (dim, dim)
    prototypes: np.ndarray  # (n_classes, dim), unit rows
    temperature: float

    kind = "cosine"

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(normalize(normalize(x) @ self.wmap) @ self.prototypes.T / self.temperature)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "wmap": self.wmap,
            "prototypes": self.prototypes,
            "temperature": np.array(self.temperature),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> CosineModel:
        return cls(arrays["wmap"], arrays["prototypes"], float(arrays["temperature"]))

    @property
    def shape(self) -> tuple[int, int]:
        """(n_classes, dim)."""
        return self.prototypes.shape


@dataclass(frozen=True)
class DiscriminantModel:
    """softmax(x coef + bias) on unit embeddings: linear discriminant analysis, fitted on the
    corpus's refined probabilities."""

    coef: np.ndarray  # (dim, n_classes)
    bias: np.ndarray  # (n_classes,)

    kind = "discriminant"

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(normalize(x) @ self.coef + self.bias)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef, "bias": self.bias}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> DiscriminantModel:
        return cls(arrays["coef"], arrays["bias"])

    @property
    def shape(self) -> tuple[int, int]:
        return self.coef.shape[::-1]


EmbeddingModel = CosineModel | DiscriminantModel
MODELS: dict[str, type[CosineModel] | type[DiscriminantModel]] = {
    "cosine": CosineModel,
    "discriminant": DiscriminantModel,
}
