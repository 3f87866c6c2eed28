"""Benchmark of the likely mistakes: does the list put wrong human labels on top?

`python -m fewshot.mistakes_bench [--draws 5] [--per-class 64] [--flip 0.1] [--datasets ag_news]`
draws labels per class from a shared data set, flips a share of them to a random wrong class, and
lets the app find them: the background cross-validation (`Workspace.cross_validated_accuracy`),
then `Workspace.likely_mistakes`, exactly as the Review page calls them. Scored: precision of the
flipped labels among the top k of the list (k = the number flipped), recall of them in the top 2k
and in the whole list, for the shipped order and for the orders it was chosen over. Prints a
table and writes benchmarks/results/mistakes.json.

The data sets' own labels are not all right either (AG News has many a business story filed
under World), so a flagged label that was not flipped is not always a false alarm: each is also
checked against a reference that has seen every gold label (logistic regression on the SBERT
embeddings, out of fold over the whole data set), and the report counts the flagged ones whose
gold label that reference contradicts too. The benchmark only, never the app.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from fewshot import FewshotError
from fewshot.bench import RESULTS_DIR, _log, environment, label_space, sample_per_class
from fewshot.datasets import DATASETS, load_dataset
from fewshot.encoders import print_progress
from fewshot.evaluate import summary
from fewshot.labelspace import LabelSpace
from fewshot.views import Embedder
from fewshot.workspace import Workspace

# The shipped order, and the ones it was chosen over: a score per row, highest first.
ORDERS = {
    "given": lambda frame: -frame["given"].to_numpy(),  # shipped (fewshot.mistakes)
    "margin": lambda frame: (frame["confidence"] - frame["given"]).to_numpy(),
    "confidence": lambda frame: frame["confidence"].to_numpy(),
}
SHIPPED = "given"


def flip_labels(
    gold: np.ndarray, share: float, n_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """gold with round(share * n) positions (at least one) moved to a random other class (uniformly); returns
    the new labels and the flipped positions."""
    y = gold.copy()
    flipped = rng.choice(len(y), max(1, round(share * len(y))), replace=False)
    y[flipped] = (y[flipped] + rng.integers(1, n_classes, len(flipped))) % n_classes
    return y, np.sort(flipped)


def reference_predictions(embeddings: np.ndarray, gold: np.ndarray, folds: int = 10) -> np.ndarray:
    """Out-of-fold predictions of logistic regression fitted on the data set's gold labels."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        model = LogisticRegression(max_iter=2000, C=10)
        return cross_val_predict(model, embeddings, gold, cv=folds)


def score_ranking(ranked: np.ndarray, flipped: set[int]) -> dict:
    """Precision of the flipped documents among the top k ids (k = how many were flipped), and
    the share of them in the top 2k and in the whole list."""
    k = len(flipped)

    def found(top: np.ndarray) -> int:
        return sum(int(d) in flipped for d in top)

    return {
        "precision_at_k": round(found(ranked[:k]) / k, 4),
        "recall_at_2k": round(found(ranked[: 2 * k]) / k, 4),
        "recall_listed": round(found(ranked) / k, 4),
    }


def one_draw(
    ws: Workspace,
    labels: LabelSpace,
    gold: np.ndarray,
    reference: np.ndarray,
    per_class: int,
    share: float,
    rng: np.random.Generator,
) -> dict:
    """Sample, flip, cross-validate and rank as the app does; score every order."""
    ids = sample_per_class(gold, per_class, rng)
    y, positions = flip_labels(gold[ids], share, len(labels), rng)
    human = {int(i): labels.names[c] for i, c in zip(ids, y)}
    flipped = {int(ids[p]) for p in positions}
    k = len(flipped)
    start = time.perf_counter()
    accuracy = ws.cross_validated_accuracy(labels, human)  # the app's background job
    cv_s = time.perf_counter() - start
    start = time.perf_counter()
    frame = ws.likely_mistakes(labels, human)
    rank_s = time.perf_counter() - start
    out = {
        "labels": len(ids),
        "flipped": k,
        "listed": len(frame),
        "cross_validated_accuracy": round(float(accuracy), 4),
        "cross_validate_s": round(cv_s, 2),
        "rank_s": round(rank_s, 3),
    }
    for name, score in ORDERS.items():
        ranked = frame["doc_id"].to_numpy()[np.argsort(-score(frame), kind="stable")]
        out[name] = score_ranking(ranked, flipped)
    top = frame["doc_id"].to_numpy()[:k]
    unflipped = [int(d) for d in top if int(d) not in flipped]
    contested = [d for d in unflipped if reference[d] != gold[d]]
    out["top_k_unflipped"] = len(unflipped)
    out["top_k_unflipped_gold_contested"] = len(contested)
    out["precision_at_k_flipped_or_contested"] = round((k - len(unflipped) + len(contested)) / k, 4)
    return out


def bench_dataset(
    name: str,
    embedder: Embedder,
    *,
    draws: int,
    per_class: int,
    share: float,
    seed: int,
    max_docs: int | None = None,
) -> dict:
    """Every draw on one data set. per_class is capped at half the smallest class, so labeled
    documents never outnumber the rest of the corpus in a class (banking77: 20 of 40)."""
    texts, gold_names = load_dataset(name)
    if max_docs is not None and len(texts) > max_docs:
        keep = np.sort(np.random.default_rng(seed).choice(len(texts), max_docs, replace=False))
        texts, gold_names = [texts[i] for i in keep], [gold_names[i] for i in keep]
    labels, gold = label_space(gold_names)
    smallest = int(np.bincount(gold).min())
    k = min(per_class, smallest // 2)
    ws = Workspace(texts, embedder, progress=print_progress(f"{name}: embedding"))
    ws.prepare()
    start = time.perf_counter()
    reference = reference_predictions(ws.views["sbert"], gold)
    reference_s = time.perf_counter() - start
    runs = []
    for draw in range(draws):
        runs.append(
            one_draw(ws, labels, gold, reference, k, share, np.random.default_rng([seed, draw]))
        )
        shipped = runs[-1][SHIPPED]
        _log(
            f"{name}: draw {draw}: precision@{runs[-1]['flipped']} "
            f"{shipped['precision_at_k']:.3f}, cross-validation {runs[-1]['cross_validate_s']} s"
        )
    result: dict = {
        "n_docs": len(texts),
        "n_classes": len(labels),
        "per_class": k,
        "labels": runs[0]["labels"],
        "flipped": runs[0]["flipped"],
        "reference_accuracy": round(float(np.mean(reference == gold)), 4),
        "reference_s": round(reference_s, 1),
    }
    for order in ORDERS:
        result[order] = {
            metric: summary([r[order][metric] for r in runs]) for metric in runs[0][order]
        }
    for metric in (
        "precision_at_k_flipped_or_contested",
        "cross_validated_accuracy",
        "cross_validate_s",
        "rank_s",
        "listed",
    ):
        result[metric] = summary([r[metric] for r in runs])
    result["runs"] = runs
    return result


def render(report: dict) -> str:
    """The report as a markdown table: one row per data set, mean (min-max) over the draws."""

    def cell(values: dict) -> str:
        return f"{values['mean']:.3f} ({min(values['runs']):.2f}-{max(values['runs']):.2f})"

    rows = []
    for name, data in report["datasets"].items():
        rows.append(
            {
                "data set": name,
                "labels (flipped)": f"{data['labels']} ({data['flipped']})",
                "precision@k": cell(data[SHIPPED]["precision_at_k"]),
                "recall@2k": cell(data[SHIPPED]["recall_at_2k"]),
                "listed": f"{data['listed']['mean']:.0f}",
                "by margin": f"{data['margin']['precision_at_k']['mean']:.3f}",
                "by confidence": f"{data['confidence']['precision_at_k']['mean']:.3f}",
                "flipped or gold contested": cell(data["precision_at_k_flipped_or_contested"]),
                "cv s": f"{data['cross_validate_s']['mean']:.1f}",
            }
        )
    table = pd.DataFrame(rows)
    header = "| " + " | ".join(table.columns) + " |"
    lines = [header, "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(
        [
            f"Likely mistakes: {report['draws']} draws, {report['flip']:.0%} of the labels "
            f"flipped, ranked by the held-out probability of the human label (k = flipped)",
            "",
            *lines,
        ]
    )


def run(
    datasets: Sequence[str],
    *,
    draws: int = 5,
    per_class: int = 64,
    share: float = 0.1,
    seed: int = 0,
    max_docs: int | None = None,
    command: str = "",
) -> dict:
    start, load_start = time.perf_counter(), os.getloadavg()[0]
    embedder = Embedder.default(progress=print_progress("Zmap vocabulary"))
    results = {}
    for name in datasets:
        results[name] = bench_dataset(
            name,
            embedder,
            draws=draws,
            per_class=per_class,
            share=share,
            seed=seed,
            max_docs=max_docs,
        )
    return {
        "command": command,
        "created": datetime.now().isoformat(timespec="seconds"),
        "draws": draws,
        "per_class": per_class,
        "flip": share,
        "seed": seed,
        "max_docs": max_docs,
        "order": f"{SHIPPED} ascending (the held-out probability of the human's label)",
        "environment": environment(embedder, load_start),
        "datasets": results,
        "wall_s": round(time.perf_counter() - start, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fewshot.mistakes_bench", description=__doc__)
    parser.add_argument("--datasets", default="ag_news", help="comma-separated")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument(
        "--per-class", type=int, default=64, help="labels per class (at most half the smallest)"
    )
    parser.add_argument("--flip", type=float, default=0.1, help="share of labels flipped")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-docs", type=int, help="a random subset of the corpus, this large")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory")
    parser.add_argument("--name", default="mistakes", help="result file name, without .json")
    args = parser.parse_args(argv)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown or not datasets:
        parser.error(f"unknown data set(s) {unknown}; choose from {', '.join(DATASETS)}")
    if args.draws < 1 or args.per_class < 2:
        parser.error("--draws must be at least 1 and --per-class at least 2")
    if not 0 < args.flip < 1:
        parser.error("--flip must be between 0 and 1")
    command = " ".join(
        ["python -m fewshot.mistakes_bench", *(argv if argv is not None else sys.argv[1:])]
    )
    try:
        report = run(
            datasets,
            draws=args.draws,
            per_class=args.per_class,
            share=args.flip,
            seed=args.seed,
            max_docs=args.max_docs,
            command=command,
        )
    except FewshotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name}.json"
    path.write_text(json.dumps(report, indent=2))
    print(render(report))
    _log(f"wrote {path} in {report['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
