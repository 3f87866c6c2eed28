"""Benchmark: accuracy and cost of every view and method on the shared labeled data sets.

`python -m fewshot.bench [--quick]` prints a table and writes JSON plus `latest.md` to
benchmarks/results/, so a change to the method shows up as numbers on every data set at once, and
the goals (accuracy, refit time) are checked here rather than in timed unit tests. Accuracy is
always measured through `Workspace`, exactly as the app computes it; only the logistic-regression
baseline and the fit timings reach below it. `--peers setfit` adds SetFit, fine-tuned on the same
draws (fewshot/peers.py; bench-only, see `make bench-setfit`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np

from fewshot import FewshotError, config
from fewshot.classify import FewShotClassifier, LabelSpace
from fewshot.datasets import DATASETS, SHARED, load_dataset
from fewshot.encoders import SentenceEncoder, print_progress
from fewshot.evaluate import expected_calibration_error, macro_f1
from fewshot.maps import Wmap, Zmap
from fewshot.peers import PEER_SIZES, PEERS, check_installed, describe, use_threads
from fewshot.views import VIEWS, Embedder, zmap_vocabulary
from fewshot.workspace import Workspace

SIZES = (1, 2, 4, 8, 16, 32, 64)
STAND_IN_STEPS = ("zero_shot", "few_shot")
QUICK_SIZES = (1, 8, 64)
CHECKPOINTS = (4, 8, 16, 32, 64)  # total labels at which the simulated session is scored
QUICK_CHECKPOINTS = (4, 8)
METHODS = {
    "ours": "ours (sbert, auto)",
    "wmap": "Wmap only (sbert, inductive)",
    "logreg": "logistic regression (sbert)",
}
RESULTS_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def label_space(gold_names: Sequence[str]) -> tuple[LabelSpace, np.ndarray]:
    """The data set's own label names, sorted, and every document's gold class index."""
    labels = LabelSpace(tuple(sorted(set(gold_names))))
    return labels, labels.index(gold_names)


def sample_per_class(gold: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k random documents of every class (a stratified draw, as in the published few-shot setups)."""
    return np.concatenate(
        [rng.choice(np.flatnonzero(gold == c), k, replace=False) for c in np.unique(gold)]
    )


def _accuracy_on_rest(predicted: np.ndarray, gold: np.ndarray, labeled: Sequence[int]) -> float:
    """Accuracy on the documents nobody labeled: the labeled ones would flatter every method."""
    rest = np.ones(len(gold), dtype=bool)
    rest[np.asarray(labeled, dtype=np.int64)] = False
    return float(np.mean(predicted[rest] == gold[rest]))


def _summary(values: Sequence[float]) -> dict:
    return {
        "mean": round(float(np.mean(values)), 4),
        "std": round(float(np.std(values)), 4),
        "runs": [round(v, 4) for v in values],
    }


def _median_seconds(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _scores(proba: np.ndarray, gold: np.ndarray, rest: np.ndarray | None = None) -> dict:
    """Accuracy, macro-F1 and calibration error of probabilities, on the rows in rest (or all)."""
    if rest is not None:
        proba, gold = proba[rest], gold[rest]
    predicted = np.argmax(proba, axis=1)
    return {
        "accuracy": round(float(np.mean(predicted == gold)), 4),
        "macro_f1": round(macro_f1(predicted, gold, proba.shape[1]), 4),
        "ece": round(expected_calibration_error(proba, gold), 4),
    }


def zero_shot(ws: Workspace, labels: LabelSpace, gold: np.ndarray) -> dict:
    """Every view with no labels, inductive and with transductive="auto" (and what auto chose).

    For the default view, the do-no-harm checks are put to the test: the corpus refinement
    forced on and off, and the lexical view left out, so the report can say whether each check
    chose the better side (macro-F1, within a point).
    """
    out, fits = {}, {}
    for view in VIEWS:
        plain = ws.predict(labels, view=view, transductive=False)
        auto = fits[view] = ws.predict(labels, view=view, transductive="auto")
        out[view] = {
            "inductive": round(float(np.mean(plain.predicted == gold)), 4),
            "auto": round(float(np.mean(auto.predicted == gold)), 4),
            "auto_mode": "transductive" if auto.classifier.transductive_used_ else "inductive",
            "auto_reason": auto.classifier.selection_,
            "inductive_scores": _scores(plain.proba, gold),
            "auto_scores": _scores(auto.proba, gold),
            "calibration": auto.calibration,
        }
    sbert = out["sbert"]
    forced = _scores(ws.predict(labels, transductive=True).proba, gold)["macro_f1"]
    unforced = sbert["inductive_scores"]["macro_f1"]
    without_lexical = ws.predict(labels, lexical=False)
    chose = sbert["auto_mode"] == "transductive"
    lexical_weight = round(float(getattr(fits["sbert"].lexical, "scale_", 0.0)), 3)
    no_lexical = _scores(without_lexical.proba, gold)["macro_f1"]
    auto_f1 = sbert["auto_scores"]["macro_f1"]
    sbert["checks"] = {
        "clustering": {
            "kept": chose,
            "macro_f1_kept": forced,
            "macro_f1_dropped": unforced,
            "right": (forced >= unforced - 0.01) if chose else (unforced >= forced - 0.01),
        },
        "lexical": {
            "weight": lexical_weight,
            "macro_f1_with": auto_f1,
            "macro_f1_without": no_lexical,
            "right": auto_f1 >= no_lexical - 0.01 if lexical_weight > 0 else True,
        },
    }
    return out


def few_shot(
    ws: Workspace,
    labels: LabelSpace,
    gold: np.ndarray,
    sizes: Sequence[int],
    draws: int,
    seed: int,
) -> dict:
    """k labeled documents per class, the same random draws for every method, scored on the rest."""
    from sklearn.linear_model import LogisticRegression

    sbert = ws.views["sbert"]
    out: dict[str, dict] = {method: {} for method in METHODS}
    for k in sizes:
        runs: dict[str, list[dict]] = {method: [] for method in METHODS}
        transductive = 0
        for draw in range(draws):
            ids = sample_per_class(gold, k, np.random.default_rng([seed, k, draw]))
            rest = np.ones(len(gold), dtype=bool)
            rest[ids] = False
            human = {int(i): labels.names[gold[i]] for i in ids}
            ours = ws.predict(labels, human, "sbert", transductive="auto")
            transductive += ours.classifier.transductive_used_
            wmap = ws.predict(labels, human, "sbert", transductive=False)
            with warnings.catch_warnings():  # "more classes than half the samples": by design
                warnings.filterwarnings("ignore", "The number of unique classes", UserWarning)
                logreg = LogisticRegression(max_iter=1000).fit(sbert[ids], gold[ids])
            runs["ours"].append(_scores(ours.proba, gold, rest))
            runs["wmap"].append(_scores(wmap.proba, gold, rest))
            runs["logreg"].append(_scores(logreg.predict_proba(sbert), gold, rest))
        for method, scores in runs.items():
            out[method][str(k)] = {
                **_summary([s["accuracy"] for s in scores]),
                "macro_f1": _summary([s["macro_f1"] for s in scores]),
                "ece": _summary([s["ece"] for s in scores]),
            }
        out["ours"][str(k)]["transductive_share"] = round(transductive / draws, 4)
    return out


def usable_cpus() -> int:
    """CPUs this process may run on: under `taskset` two benchmarks can share a machine, one core
    each, without their torch threads fighting over both."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def peer_few_shot(
    data: dict[str, tuple[list[str], np.ndarray]],
    *,
    peers: Sequence[str],
    model_path: str,
    draws: int,
    seed: int,
    jobs: int,
    sizes: Sequence[int] = PEER_SIZES,
    deadline: float = float("inf"),
) -> dict[str, dict]:
    """Each peer at `sizes` per class on the draws of few_shot (same seeds and documents), scored alike.

    data maps a data set's name to its texts and gold class indices. A fit takes minutes to hours
    on a CPU, so fits run in `jobs` processes, smaller sizes first, and at the deadline (a
    time.monotonic() value) the running ones are stopped: each cell lists the draws that finished,
    so ours and logistic regression can be compared on exactly those. Times are medians over the
    finished draws.
    """
    from fewshot import peers as peer_methods

    tasks = [
        (name, peer, k, draw)
        for peer in peers
        for k in sizes
        for name, (_, gold) in data.items()
        if k <= int(np.bincount(gold).min()) // 2
        for draw in range(draws)
    ]
    done: dict[tuple[str, str, int, int], tuple[float, float, float]] = {}
    failed: list[BaseException] = []

    def finished(task: tuple[str, str, int, int], ids: np.ndarray) -> Callable[[dict], None]:
        def record(result: dict) -> None:
            accuracy = _accuracy_on_rest(np.asarray(result["predicted"]), data[task[0]][1], ids)
            done[task] = (accuracy, result["fit_s"], result["predict_s"])
            _log(
                "{}: {} {}/class draw {}: ".format(*task)
                + f"{accuracy:.4f}, fit {result['fit_s']:.0f} s, predict {result['predict_s']:.0f} s"
            )

        return record

    threads = max(1, usable_cpus() // jobs)
    context = multiprocessing.get_context("spawn")  # forking a process that holds torch can hang
    with context.Pool(jobs, use_threads, (threads,)) as pool:  # leaving it stops running fits
        for task in tasks:
            name, peer, k, draw = task
            texts, gold = data[name]
            ids = sample_per_class(gold, k, np.random.default_rng([seed, k, draw]))
            pool.apply_async(
                getattr(peer_methods, peer),
                (model_path, texts, ids, gold),
                callback=finished(task, ids),
                error_callback=failed.append,
            )
        while len(done) < len(tasks) and not failed and time.monotonic() < deadline:
            time.sleep(1)
    if failed:
        raise failed[0]
    if len(done) < len(tasks):
        _log(f"peers: time budget spent, {len(done)} of {len(tasks)} fits finished")
    out: dict[str, dict] = {name: {} for name in data}
    for name, peer, k, draw in sorted(done):
        runs = out[name].setdefault(peer, {}).setdefault(str(k), {})
        runs[draw] = done[name, peer, k, draw]
    for by_peer in out.values():
        for by_size in by_peer.values():
            for k, runs in by_size.items():
                by_size[k] = {
                    **_summary([r[0] for r in runs.values()]),
                    "draws": list(runs),
                    "fit_s": round(statistics.median(r[1] for r in runs.values()), 1),
                    "predict_s": round(statistics.median(r[2] for r in runs.values()), 1),
                }
    return out


def session(
    ws: Workspace,
    labels: LabelSpace,
    gold: np.ndarray,
    checkpoints: Sequence[int],
    draws: int,
    seed: int,
) -> dict:
    """A simulated user: start zero-shot, label whatever `suggest` offers, refit after every label.

    Against the same budget spent on randomly chosen documents (`draws` random orders).
    """
    human: dict[int, str] = {}
    prediction = ws.predict(labels, human)
    suggested = {"0": round(_accuracy_on_rest(prediction.predicted, gold, []), 4)}
    for n in range(1, max(checkpoints) + 1):
        pick = ws.suggest(prediction, set(human), n=1)[0]
        human[pick] = labels.names[gold[pick]]
        prediction = ws.predict(labels, human)
        if n in checkpoints:
            suggested[str(n)] = round(_accuracy_on_rest(prediction.predicted, gold, list(human)), 4)
    random: dict[str, list[float]] = {str(n): [] for n in checkpoints}
    for draw in range(draws):
        order = np.random.default_rng([seed, draw]).permutation(len(gold))
        for n in checkpoints:
            ids = order[:n]
            chosen = ws.predict(labels, {int(i): labels.names[gold[i]] for i in ids})
            random[str(n)].append(_accuracy_on_rest(chosen.predicted, gold, ids))
    return {"suggest": suggested, "random": {n: _summary(v) for n, v in random.items()}}


def cost(
    ws: Workspace,
    labels: LabelSpace,
    gold: np.ndarray,
    fresh: SentenceEncoder,
    n_fresh: int,
    seed: int,
) -> dict:
    """Embedding speed (uncached), Wmap fit, and refit + re-predict of the corpus after one label.

    "auto" is what the app runs on every label; the inductive refit is its floor.
    """
    rng = np.random.default_rng(seed)
    sample = [ws.texts[i] for i in rng.choice(len(ws.texts), min(n_fresh, len(ws.texts)), False)]
    fresh.encode(sample[:4])  # first call pays one-off setup; the rate below is the steady one
    start = time.perf_counter()
    fresh.encode(sample)
    embed_s = time.perf_counter() - start
    k = min(8, int(np.bincount(gold).min()) - 1)
    ids = sample_per_class(gold, k, rng)
    vectors = ws.label_vectors(labels)["sbert"]
    x, y = ws.views["sbert"][ids], gold[ids]
    inductive = FewShotClassifier(vectors, transductive=False)
    human = {int(i): labels.names[gold[i]] for i in ids}
    extra = int(rng.choice(np.setdiff1d(np.arange(len(gold)), ids)))
    more = {**human, extra: labels.names[gold[extra]]}
    return {
        "docs_per_s": round(len(sample) / embed_s, 1),
        "wmap_fit_ms": round(1000 * _median_seconds(lambda: Wmap().fit(x, vectors[y]), 11), 3),
        # The classifier's own fit: Wmap (low-rank while labels are few) plus prototypes.
        "inductive_fit_ms": round(1000 * _median_seconds(lambda: inductive.fit(x, y), 11), 3),
        "wmap_labels_per_class": k,
        "refit_predict_s": round(_median_seconds(lambda: ws.predict(labels, more), 5), 4),
        "refit_predict_inductive_s": round(
            _median_seconds(lambda: ws.predict(labels, more, transductive=False), 5), 4
        ),
    }


def bench_dataset(
    texts: list[str],
    gold_names: list[str],
    embedder: Embedder,
    *,
    fresh: SentenceEncoder,
    sizes: Sequence[int] = SIZES,
    draws: int = 5,
    checkpoints: Sequence[int] = CHECKPOINTS,
    n_fresh: int = 200,
    seed: int = 0,
    name: str = "data",
    steps: Sequence[str] = ("zero_shot", "few_shot", "session", "cost"),
) -> dict:
    """Every measurement (of `steps`) on one labeled corpus; label names are the data set's own,
    untuned.

    Sizes that would leave less than half of the smallest class for scoring are skipped.
    fresh is an encoder without a cache, for an honest embedding rate.
    """
    labels, gold = label_space(gold_names)
    smallest = int(np.bincount(gold).min())
    sizes = [k for k in sizes if k <= smallest // 2]
    start = time.perf_counter()
    ws = Workspace(texts, embedder, progress=print_progress(f"{name}: embedding"))
    result = {
        "n_docs": len(texts),
        "n_classes": len(labels),
        "labels": list(labels.names),
        "workspace_s": round(time.perf_counter() - start, 2),
    }
    actions = {
        "zero_shot": lambda: zero_shot(ws, labels, gold),
        "few_shot": lambda: few_shot(ws, labels, gold, sizes, draws, seed),
        "session": lambda: session(ws, labels, gold, checkpoints, draws, seed),
        "cost": lambda: cost(ws, labels, gold, fresh, n_fresh, seed),
    }
    result["priors"] = [round(float(p), 4) for p in np.bincount(gold) / len(gold)]
    for step in steps:
        action = actions[step]
        start = time.perf_counter()
        result[step] = action()
        _log(f"{name}: {step} done in {time.perf_counter() - start:.1f} s")
    return result


def zmap_cost(embedder: Embedder) -> dict:
    """Zmap fit time on the (cached) sentence embeddings of the configured vocabulary."""
    vocab = zmap_vocabulary(embedder.words, config.zmap_words())
    x = embedder.sentence.encode(vocab, progress=print_progress("Zmap vocabulary"))
    y = np.stack([embedder.words.kv[w] for w in vocab])
    return {
        "zmap_words": len(vocab),
        "zmap_fit_s": round(_median_seconds(lambda: Zmap().fit(x, y), 3), 4),
    }


def _get(tree: dict, *keys: str) -> object:
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


HARM_SIZES = ("0", "4", "8", "16")  # labels per class where do-no-harm is judged


def do_no_harm(data: dict, k: str) -> float | None:
    """Macro-F1 of ours minus the better of plain cosine (the Wmap alone once there are labels)
    and logistic regression on the same embeddings and draws; None where not measured."""
    if k == "0":
        z = _get(data, "zero_shot", "sbert")
        return (
            None if z is None else z["auto_scores"]["macro_f1"] - z["inductive_scores"]["macro_f1"]
        )
    few = data.get("few_shot", {})
    if k not in few.get("ours", {}):
        return None
    return few["ours"][k]["macro_f1"]["mean"] - max(
        few[m][k]["macro_f1"]["mean"] for m in ("wmap", "logreg")
    )


def calibration_error(data: dict, k: str) -> float | None:
    """Mean expected calibration error of ours at k labels per class ("0": zero-shot)."""
    if k == "0":
        return _get(data, "zero_shot", "sbert", "auto_scores", "ece")
    return _get(data, "few_shot", "ours", k, "ece", "mean")


def _worst(values: Sequence[float | None], pick: Callable) -> float | None:
    known = [v for v in values if v is not None]
    return pick(known) if known else None


def targets(datasets: dict) -> list[dict]:
    """The goals on AG News (current issue, then issue 4): measured value, goal, and verdict.

    Accuracies here are in percent, like the goals; a value is None when the run did not measure it.
    """
    ag = datasets.get("ag_news", {})
    zero = _get(ag, "zero_shot") or {}
    best_zero = max(
        (v[mode] for v in zero.values() for mode in ("inductive", "auto")), default=None
    )
    at_8, at_64 = (_get(ag, "few_shot", "ours", k, "mean") for k in ("8", "64"))
    refit = _get(ag, "cost", "refit_predict_s")
    goals = [
        ("now", "zero-shot accuracy % (best view)", best_zero, ">=", 75),
        ("now", "8 labels/class accuracy %", at_8, ">=", 80),
        ("now", "Wmap fit ms (8/class)", _get(ag, "cost", "wmap_fit_ms"), "<", 50),
        ("issue 4", "zero-shot accuracy % (best view)", best_zero, ">=", 85),
        ("issue 4", "8 labels/class accuracy %", at_8, ">=", 87),
        ("issue 4", "64 labels/class accuracy %", at_64, ">=", 89),
        ("issue 4", "refit + re-predict all docs, s", refit, "<", 1),
        (
            "issue 12",
            "worst zero-shot calibration error, all sets",
            _worst([calibration_error(d, "0") for d in datasets.values()], max),
            "<=",
            0.10,
        ),
        (
            "issue 12",
            "worst calibration error at 8/class, all sets",
            _worst([calibration_error(d, "8") for d in datasets.values()], max),
            "<=",
            0.05,
        ),
        (
            "issue 12",
            "worst do-no-harm (macro-F1 points, 0-16/class)",
            _worst(
                [
                    None if (h := do_no_harm(d, k)) is None else round(100 * h, 1)
                    for d in datasets.values()
                    for k in HARM_SIZES
                ],
                min,
            ),
            ">=",
            -1.0,
        ),
    ]
    out = []
    for issue, what, value, op, goal in goals:
        if value is not None and "%" in what:
            value = round(100 * value, 1)
        compare = {">=": lambda v, g: v >= g, "<": lambda v, g: v < g, "<=": lambda v, g: v <= g}
        met = None if value is None else compare[op](value, goal)
        out.append(
            {"issue": issue, "what": what, "value": value, "goal": f"{op} {goal}", "met": met}
        )
    return out


def run(
    datasets: Sequence[str],
    *,
    quick: bool = False,
    draws: int | None = None,
    seed: int = 0,
    command: str = "",
    peers: Sequence[str] = (),
    jobs: int = 1,
    peer_sizes: Sequence[int] = PEER_SIZES,
    peer_minutes: float | None = None,
) -> dict:
    """The whole benchmark as one JSON-ready dict; peers run last, on every data set at once."""
    check_installed(peers)
    start, load_start = time.perf_counter(), os.getloadavg()[0]
    deadline = time.monotonic() + 60 * peer_minutes if peer_minutes else float("inf")
    embedder = Embedder.default(progress=print_progress("Zmap vocabulary"))
    model_start = time.perf_counter()
    fresh = SentenceEncoder(embedder.sentence.model_path)
    fresh.model  # noqa: B018 - loading is what is being timed
    model_load_s = time.perf_counter() - model_start
    draws = draws or (2 if quick else 5)
    results, peer_data = {}, {}
    for name in datasets:
        texts, gold = load_dataset(name)
        peer_data[name] = (texts, label_space(gold)[1])
        _log(f"{name}: {len(texts):,} documents")
        results[name] = bench_dataset(
            texts,
            gold,
            embedder,
            fresh=fresh,
            sizes=QUICK_SIZES if quick else SIZES,
            draws=draws,
            checkpoints=QUICK_CHECKPOINTS if quick else CHECKPOINTS,
            n_fresh=50 if quick else 200,
            seed=seed,
            name=name,
            # Stand-ins check that accuracy and calibration generalize; sessions and costs are
            # the shared sets' business.
            steps=("zero_shot", "few_shot", "session", "cost")
            if name in SHARED
            else STAND_IN_STEPS,
        )
    if peers:
        by_dataset = peer_few_shot(
            peer_data,
            peers=peers,
            model_path=embedder.sentence.model_path,
            draws=draws,
            seed=seed,
            jobs=jobs,
            sizes=peer_sizes,
            deadline=deadline,
        )
        for name, by_peer in by_dataset.items():
            results[name]["peers"] = by_peer
    return {
        "command": command,
        "created": datetime.now().isoformat(timespec="seconds"),
        "quick": quick,
        "draws": draws,
        "seed": seed,
        "environment": {
            "python": platform.python_version(),
            "cpus": usable_cpus(),
            "sentence_model": embedder.sentence.name,
            "word_vectors": embedder.words.name,
            # Timings depend on these: other load on the machine, and BLAS threads.
            "load_average_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],
            "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
        },
        "methods": METHODS,
        **(
            {
                "peers": describe(peers),
                "peer_sizes": list(peer_sizes),
                "peer_jobs": jobs,
                "peer_minutes": peer_minutes,
            }
            if peers
            else {}
        ),
        "datasets": results,
        "cost": {
            "model_load_s": round(model_load_s, 2),
            **zmap_cost(embedder),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        },
        "targets": targets(results),
        "wall_s": round(time.perf_counter() - start, 1),
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _pm(cell: dict) -> str:
    return f"{100 * cell['mean']:.1f} ± {100 * cell['std']:.1f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _peer_table(data: dict) -> list[str]:
    """Each peer against ours and logistic regression on exactly its draws, and what it cost."""
    few, rows = data["few_shot"], []
    for peer, by_size in data["peers"].items():
        for k, cell in by_size.items():
            same = [[few[m][k]["runs"][d] for d in cell["draws"]] for m in ("ours", "logreg")]
            rows.append(
                [
                    k,
                    PEERS[peer],
                    len(cell["draws"]),
                    _pm(cell),
                    *(_pm(_summary(runs)) for runs in same),
                    f"{cell['fit_s']:.0f} s",
                    f"{cell['predict_s']:.0f} s",
                ]
            )
    header = [
        "k",
        "peer",
        "draws",
        "peer accuracy",
        "ours, same draws",
        "logistic regression, same",
    ]
    header += ["fit (median)", f"predict {data['n_docs']:,} docs (median)"]
    return ["Peers against ours on exactly the draws they finished:", "", *_table(header, rows)]


def _results_by_set(datasets: dict) -> list[str]:
    """One row per set: accuracy, macro-F1, calibration error and do-no-harm of ours, zero-shot
    and at 4, 8, 16 labels per class."""
    rows = []
    for name, data in datasets.items():
        z = data["zero_shot"]["sbert"]["auto_scores"]
        row = [
            name,
            f"{data['n_docs']:,} / {data['n_classes']}",
            f"{100 * min(data['priors']):.1f}",
            f"{_pct(z['accuracy'])} / {_pct(z['macro_f1'])}",
            f"{z['ece']:.3f}",
            _signed(do_no_harm(data, "0")),
        ]
        for k in HARM_SIZES[1:]:
            cell = _get(data, "few_shot", "ours", k)
            row += (
                ["-", "-", "-"]
                if cell is None
                else [
                    f"{_pct(cell['mean'])} / {_pct(cell['macro_f1']['mean'])}",
                    f"{cell['ece']['mean']:.3f}",
                    _signed(do_no_harm(data, k)),
                ]
            )
        rows.append(row)
    header = ["set", "docs / classes", "rarest %", "0: acc / F1", "ECE", "harm"]
    for k in HARM_SIZES[1:]:
        header += [f"{k}/class: acc / F1", "ECE", "harm"]
    return [
        "## Results by set (ours, sbert, auto)",
        "",
        "Accuracy and macro-F1 in %, on the documents not labeled; ECE: expected calibration "
        "error of the top score (10 bins); harm: macro-F1 points of ours minus the better of plain "
        "cosine (the Wmap alone with labels) and logistic regression, same draws.",
        "",
        *_table(header, rows),
    ]


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.1f}"


def _checks(sbert: dict) -> list[str]:
    """What the do-no-harm checks chose zero-shot, against what forcing either side scored."""
    verdict = {True: "right", False: "**wrong**"}
    c, lex = sbert["checks"]["clustering"], sbert["checks"]["lexical"]
    return [
        f"Checks (zero-shot, macro-F1 %): clustering {'kept' if c['kept'] else 'dropped'} "
        f"({_pct(c['macro_f1_kept'])} forced on, {_pct(c['macro_f1_dropped'])} off: "
        f"{verdict[c['right']]}); lexical view weight {lex['weight']:.2f} "
        f"({_pct(lex['macro_f1_with'])} with, {_pct(lex['macro_f1_without'])} without: "
        f"{verdict[lex['right']]}); scores calibrated {sbert['calibration']}.",
        "",
    ]


def render_markdown(report: dict) -> str:
    """The report as markdown tables (accuracy in %), readable in a terminal and in the README."""
    env = report["environment"]
    lines = [
        f"# Benchmark {report['created']}",
        "",
        f"`{report['command']}`: {report['wall_s']:.0f} s wall on {env['cpus']} CPUs (load "
        f"average {' then '.join(map(str, env['load_average_1min']))}, OpenBLAS threads "
        f"{env['openblas_threads']}), {env['sentence_model']} + {env['word_vectors']}. "
        "Accuracy in % on the documents not "
        f"labeled; few-shot is mean ± std over {report['draws']} random draws per size.",
        "",
        "## Targets (AG News; issue 12: every set)",
        "",
    ]
    verdict = {True: "yes", False: "**no**", None: "-"}
    lines += _table(
        ["issue", "what", "value", "goal", "met"],
        [
            [
                t["issue"],
                t["what"],
                "-" if t["value"] is None else t["value"],
                t["goal"],
                verdict[t["met"]],
            ]
            for t in report["targets"]
        ],
    )
    lines += _results_by_set(report["datasets"])
    for name, data in report["datasets"].items():
        lines += [
            f"## {name}: {data['n_docs']:,} documents, {data['n_classes']} classes",
            "",
            "Zero-shot:",
            "",
        ]
        lines += _checks(data["zero_shot"]["sbert"])
        lines += _table(
            ["view", "inductive", "transductive auto", "auto chose"],
            [
                [
                    VIEWS[view],
                    _pct(z["inductive"]),
                    _pct(z["auto"]),
                    f"{z['auto_mode']} ({z['auto_reason']})",
                ]
                for view, z in data["zero_shot"].items()
            ],
        )
        few, peers = data["few_shot"], data.get("peers", {})
        lines += ["Few-shot, k labeled documents per class:", ""]
        lines += _table(
            ["k", *METHODS.values(), *(PEERS[p] for p in peers), "auto went transductive"],
            [
                [
                    k,
                    *(_pm(few[m][k]) for m in METHODS),
                    *(_pm(peers[p][k]) if k in peers[p] else "-" for p in peers),
                    f"{few['ours'][k]['transductive_share']:.0%}",
                ]
                for k in few["ours"]
            ],
        )
        lines += _peer_table(data) if peers else []
        lines += _session_and_cost(data) if "session" in data else []
    c = report["cost"]
    lines += ["## Cost", ""]
    lines += _table(
        ["model load (incl. torch import)", "Zmap fit", "peak memory"],
        [
            [
                f"{c['model_load_s']:.1f} s",
                f"{c['zmap_fit_s']:.3f} s on {c['zmap_words']:,} words",
                f"{c['peak_rss_mb']:,} MB",
            ]
        ],
    )
    return "\n".join(lines)


def _session_and_cost(data: dict) -> list[str]:
    sim = data["session"]
    lines = ["Labeling session (sbert, auto), total labels:", ""]
    lines += _table(
        ["labels", "suggested documents", "random documents"],
        [["0", _pct(sim["suggest"]["0"]), ""]]
        + [[n, _pct(sim["suggest"][n]), _pm(cell)] for n, cell in sim["random"].items()],
    )
    c = data["cost"]
    lines += _table(
        [
            "docs embedded/s",
            "Wmap fit",
            "classifier fit",
            "refit + re-predict (auto)",
            "(inductive)",
            "workspace",
        ],
        [
            [
                c["docs_per_s"],
                f"{c['wmap_fit_ms']:.2f} ms at {c['wmap_labels_per_class']}/class",
                f"{c['inductive_fit_ms']:.2f} ms",
                f"{c['refit_predict_s']:.3f} s",
                f"{c['refit_predict_inductive_s']:.3f} s",
                f"{data['workspace_s']:.1f} s",
            ]
        ],
    )
    return lines


def write_report(report: dict, out: Path, name: str) -> Path:
    """<name>.json plus latest.json and latest.md beside it; returns the named JSON file."""
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2)
    path = out / f"{name}.json"
    path.write_text(text)
    (out / "latest.json").write_text(text)
    (out / "latest.md").write_text(render_markdown(report))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fewshot.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer draws and sizes (< 2 min)")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated")
    parser.add_argument("--draws", type=int, help="random draws per size (default 5, quick 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory")
    parser.add_argument("--name", help="result file name (default: a timestamp)")
    parser.add_argument("--peers", default="", help=f"comma-separated peers: {', '.join(PEERS)}")
    parser.add_argument(
        "--peer-sizes",
        default=",".join(map(str, PEER_SIZES)),
        help="comma-separated labels per class the peers are fitted at (a data set is skipped at "
        "sizes beyond half its smallest class)",
    )
    parser.add_argument(
        "--peer-minutes",
        type=float,
        help="stop peer fits once the whole run has taken this many minutes; the report lists "
        "the draws that finished",
    )
    parser.add_argument(
        "--jobs", type=int, default=usable_cpus(), help="peer fits run in this many processes"
    )
    args = parser.parse_args(argv)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown or not datasets:
        parser.error(f"unknown data set(s) {unknown}; choose from {', '.join(DATASETS)}")
    if args.draws is not None and args.draws < 1:
        parser.error("--draws must be at least 1")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    try:
        peer_sizes = [int(k) for k in args.peer_sizes.split(",") if k.strip()]
    except ValueError:
        parser.error("--peer-sizes must be comma-separated whole numbers")
    if not peer_sizes or min(peer_sizes) < 1:
        parser.error("--peer-sizes must list sizes of at least 1")
    command = " ".join(["python -m fewshot.bench", *(argv if argv is not None else sys.argv[1:])])
    try:
        report = run(
            datasets,
            quick=args.quick,
            draws=args.draws,
            seed=args.seed,
            command=command,
            peers=peers,
            jobs=args.jobs,
            peer_sizes=peer_sizes,
            peer_minutes=args.peer_minutes,
        )
    except FewshotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    name = args.name or datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    path = write_report(report, args.out, name)
    print(render_markdown(report))
    _log(f"wrote {path} in {report['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
