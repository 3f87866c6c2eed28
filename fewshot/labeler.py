"""The labeler file: what a taught labeler needs to label new text, without its corpus.

One zip archive of JSON and `.npz` (never a pickle, so a file from anyone is safe to open):
`labeler.json` holds the format and its version, the label space, the view, the fingerprints of
the models that embed for it, the calibration and where it came from; `arrays.npz` the embedding
classifier (`fewshot.predictor`) and the lexical view's naive Bayes weights; `terms.json` the
lexical view's vocabulary. A labeler refuses, with its reason, a file of another format or
version, a damaged one, and models at hand that are not the ones it was taught with.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from fewshot import FewshotError
from fewshot.calibrate import temper
from fewshot.labelspace import LabelSpace
from fewshot.lexical import LexicalExpert, TermSpace, product_of_experts
from fewshot.predictor import MODELS, EmbeddingModel

FORMAT = "fewshot-labeler"
VERSION = 1
MAX_BYTES = 2**30  # unpacked; a labeler of 77 labels over 200,000 terms is about 70 MB
_MEMBERS = ("labeler.json", "arrays.npz", "terms.json")


def score_columns(names: tuple[str, ...], proba: np.ndarray) -> pd.DataFrame:
    """predicted_label, score (the top probability) and a score_<label> column per label."""
    proba = np.asarray(proba)
    frame = pd.DataFrame(
        {
            "predicted_label": np.array(names, dtype=object)[np.argmax(proba, axis=1)],
            "score": proba.max(axis=1, initial=0.0),
        }
    )
    for i, name in enumerate(names):
        frame[f"score_{name}"] = proba[:, i]
    return frame


@dataclass
class Labeler:
    """A fitted labeler, portable: embeddings (and texts, for the lexical view) in, scores out."""

    labels: LabelSpace
    view: str
    encoders: dict[str, str]  # model role -> fingerprint (`Embedder.identity`)
    model: EmbeddingModel
    temperature: float = 1.0  # calibration of the final log-probabilities
    terms: TermSpace | None = None  # the lexical view, when the fit used one
    lexical: LexicalExpert | None = None
    about: dict = field(default_factory=dict)  # label set id, documents, human labels, created

    def predict_proba(self, embeddings: np.ndarray, texts: list[str]) -> np.ndarray:
        """Calibrated probabilities, (n, n_labels): the embedding classifier's, times the
        lexical view's where there is one, tempered as the fit was."""
        proba = self.model.predict_proba(embeddings)
        if self.lexical is not None and self.terms is not None and len(texts):
            proba = product_of_experts(
                proba, self.lexical.predict_proba(self.terms.transform(texts))
            )
        return temper(proba, self.temperature)

    @property
    def output_columns(self) -> list[str]:
        return ["predicted_label", "score", *(f"score_{name}" for name in self.labels.names)]

    def check(self, encoders: dict[str, str]) -> None:
        """Refuse models other than the ones this labeler was taught with (Embedder.identity)."""
        for role, taught in self.encoders.items():
            here = encoders.get(role)
            if here != taught:
                raise FewshotError(
                    f"This labeler was taught with {role} model '{taught}'; the one here is "
                    f"'{here}'. Point FEWSHOT_SENTENCE_MODEL / FEWSHOT_WORD_VECTORS at the same "
                    "models, or teach the labeler again with these."
                )

    # -- the file ---------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        self.save(buffer)
        return buffer.getvalue()

    def save(self, target: str | Path | BinaryIO) -> None:
        arrays = {f"model/{k}": v for k, v in self.model.arrays().items()}
        vocabulary: dict[str, list[str]] = {}
        lexical = None
        if self.lexical is not None and self.terms is not None:
            vocabulary, idf = self.terms.state()
            arrays |= {f"idf/{part}": weights for part, weights in idf.items()}
            arrays["lexical/log_term"] = self.lexical.log_term_.astype(np.float32)
            arrays["lexical/log_prior"] = self.lexical.log_prior_
            lexical = {"scale": float(self.lexical.scale_), "parts": list(vocabulary)}
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "labels": [
                {"name": n, "description": d}
                for n, d in zip(self.labels.names, self.labels.descriptions)
            ],
            "view": self.view,
            "encoders": self.encoders,
            "model": self.model.kind,
            "temperature": self.temperature,
            "lexical": lexical,
            "about": {"created": datetime.now(UTC).isoformat(timespec="seconds"), **self.about},
        }
        npz = io.BytesIO()
        np.savez(npz, **arrays)
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("labeler.json", json.dumps(meta, indent=1, ensure_ascii=False))
            archive.writestr("arrays.npz", npz.getvalue())
            archive.writestr("terms.json", json.dumps(vocabulary, ensure_ascii=False))

    @classmethod
    def load(cls, source: str | Path | bytes | BinaryIO) -> Labeler:
        """Read a labeler file; any problem is one FewshotError saying what is wrong."""
        name = Path(source).name if isinstance(source, str | Path) else "the labeler file"
        if isinstance(source, bytes):
            source = io.BytesIO(source)
        try:
            with zipfile.ZipFile(source) as archive:
                members = {info.filename: info for info in archive.infolist()}
                missing = [m for m in _MEMBERS if m not in members]
                if missing:
                    raise FewshotError(
                        f"{name} is not a labeler file (no {', '.join(missing)} inside)."
                    )
                if sum(members[m].file_size for m in _MEMBERS) > MAX_BYTES:
                    raise FewshotError(f"{name} unpacks to more than {MAX_BYTES >> 20} MB.")
                meta = json.loads(archive.read("labeler.json"))
                _check_format(meta, name)
                vocabulary = json.loads(archive.read("terms.json"))
                with np.load(io.BytesIO(archive.read("arrays.npz")), allow_pickle=False) as data:
                    arrays = {key: data[key] for key in data.files}
        except FileNotFoundError:
            raise FewshotError(f"Labeler file not found: {name}") from None
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
            raise FewshotError(f"{name} is damaged or not a labeler file ({exc}).") from None
        try:
            return cls._from_parts(meta, vocabulary, arrays)
        except (KeyError, TypeError, ValueError, FewshotError) as exc:
            raise FewshotError(f"{name} is damaged: {exc}") from None

    @classmethod
    def _from_parts(cls, meta: dict, vocabulary: dict, arrays: dict[str, np.ndarray]) -> Labeler:
        labels = LabelSpace(
            tuple(label["name"] for label in meta["labels"]),
            tuple(label["description"] for label in meta["labels"]),
        )
        if meta["model"] not in MODELS:
            raise ValueError(f"unknown model kind {meta['model']!r}")
        prefix = "model/"
        model = MODELS[meta["model"]].from_arrays(
            {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        )
        if model.shape[0] != len(labels):
            raise ValueError(f"the model has {model.shape[0]} classes for {len(labels)} labels")
        for key, values in arrays.items():
            if values.dtype.kind == "f" and not np.isfinite(values).all():
                raise ValueError(f"{key} holds values that are not finite")
        terms = lexical = None
        if meta["lexical"] is not None:
            parts = meta["lexical"]["parts"]
            terms = TermSpace.from_state(
                {p: vocabulary[p] for p in parts}, {p: arrays[f"idf/{p}"] for p in parts}
            )
            lexical = LexicalExpert()
            lexical.log_term_ = arrays["lexical/log_term"]
            lexical.log_prior_ = arrays["lexical/log_prior"]
            lexical.scale_ = float(meta["lexical"]["scale"])
            if lexical.log_term_.shape != (len(labels), terms.n_terms):
                raise ValueError("the lexical weights do not fit its vocabulary")
        return cls(
            labels=labels,
            view=str(meta["view"]),
            encoders={str(k): str(v) for k, v in meta["encoders"].items()},
            model=model,
            temperature=float(meta["temperature"]),
            terms=terms,
            lexical=lexical,
            about=dict(meta.get("about", {})),
        )


def _check_format(meta: object, name: str) -> None:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FewshotError(f"{name} is not a labeler file (no '{FORMAT}' header).")
    if meta.get("version") != VERSION:
        raise FewshotError(
            f"{name} is a labeler file of format version {meta.get('version')}; this version "
            f"of Few-Shot Labeler reads version {VERSION}. Export it again from the app."
        )
