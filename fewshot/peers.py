"""Published few-shot methods, run beside ours by the benchmark on the same draws (bench only).

SetFit (Tunstall et al., 2022) fine-tunes the sentence encoder on pairs of labeled examples, then fits
a logistic regression on its embeddings. It is the strongest published peer on AG News, so the
benchmark runs it with the same encoder body as ours (the packaged MiniLM), on the same documents.
The `setfit` package is not in requirements.txt: `make bench-setfit` installs requirements-bench.txt
into a separate environment, and the benchmark refuses `--peers setfit` with that advice without it.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import version

import numpy as np

from fewshot import FewshotError

PEERS = {"setfit": "SetFit (MiniLM body, logistic-regression head)"}
PEER_SIZES = (8, 64)  # labels per class in the SetFit paper's tables
# The SetFit paper's few-shot setup: 20 pair iterations per example, one epoch, batch 16; the
# package's defaults for the rest (CosineSimilarityLoss, learning rate 2e-5, logistic head).
SETFIT_ARGS = {"num_iterations": 20, "num_epochs": 1, "batch_size": 16}


def check_installed(peers: Sequence[str]) -> None:
    """Fail before hours of benchmark with a message that says how to get the peer."""
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        raise FewshotError(f"Unknown peer(s) {unknown}; choose from {', '.join(PEERS)}")
    if "setfit" in peers and importlib.util.find_spec("setfit") is None:
        raise FewshotError(
            "--peers setfit needs the setfit package, which is bench-only: run `make bench-setfit` "
            "(a separate environment from requirements-bench.txt)"
        )


def describe(peers: Sequence[str]) -> dict:
    """What a report needs to reproduce the peers' numbers: method, settings, package versions."""
    packages = ("setfit", "sentence-transformers", "transformers", "torch")
    return {
        peer: {
            "method": PEERS[peer],
            "settings": SETFIT_ARGS,
            "versions": {package: version(package) for package in packages},
        }
        for peer in peers
    }


def use_threads(threads: int) -> None:
    """Pool initializer: one torch thread per worker, so two workers use two cores without the
    OpenMP oversubscription that makes a 2-thread process several times slower on a busy machine."""
    import torch

    torch.set_num_threads(threads)


def setfit(model_path: str, texts: Sequence[str], train: Sequence[int], gold: np.ndarray) -> dict:
    """Fine-tune a fresh SetFit model on texts[train] and predict every text.

    Returns the predicted class indices (as a list) and the times in seconds of the fit (pair
    fine-tuning plus head, after loading the model) and of predicting every text.
    """
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    model = SetFitModel.from_pretrained(model_path, device="cpu")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="setfit-") as scratch:
        args = TrainingArguments(
            **SETFIT_ARGS,
            output_dir=scratch,
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            show_progress_bar=False,
        )
        data = Dataset.from_dict(
            {"text": [texts[i] for i in train], "label": [int(gold[i]) for i in train]}
        )
        Trainer(model=model, args=args, train_dataset=data).train()
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    predicted = np.asarray(model.predict(list(texts), use_labels=False))
    return {
        "predicted": predicted.tolist(),
        "fit_s": fit_s,
        "predict_s": time.perf_counter() - start,
    }
