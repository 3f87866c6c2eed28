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
from fewshot.classify import FewShotClassifier
from fewshot.datasets import DATASETS, SHARED, load_dataset
from fewshot.encoders import SentenceEncoder, print_progress
from fewshot.evaluate import expected_calibration_error, macro_f1, summary
from fewshot.labelspace import LabelSpace
from fewshot.maps import Wmap, Zmap
from fewshot.numeric import usable_cpus
from fewshot.peers import PEER_SIZES, PEERS, check_installed, describe, use_threads
from fewshot.portability import leave_corpus
from fewshot.report import render_markdown, targets, write_report
from fewshot.views import VIEWS, Embedder, zmap_vocabulary
from fewshot.workspace import Workspace

SIZES = (1, 2, 4, 8, 16, 32, 64)
SHARED_STEPS = ("zero_shot", "few_shot", "session", "cost", "portable")
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
    """k labeled documents per class, the same random draws for every method, scored on the rest.

    For ours, also how often held-out human labels dropped the corpus refinement (`vouch`), and
    in how many of those draws that was right (the Wmap alone within a point of the refined fit's
    macro-F1, or ahead)."""
    from sklearn.linear_model import LogisticRegression

    sbert = ws.views["sbert"]
    out: dict[str, dict] = {method: {} for method in METHODS}
    for k in sizes:
        runs: dict[str, list[dict]] = {method: [] for method in METHODS}
        transductive, dropped, dropped_right = 0, 0, 0
        for draw in range(draws):
            ids = sample_per_class(gold, k, np.random.default_rng([seed, k, draw]))
            rest = np.ones(len(gold), dtype=bool)
            rest[ids] = False
            human = {int(i): labels.names[gold[i]] for i in ids}
            ours = ws.predict(labels, human, "sbert", transductive="auto")
            transductive += ours.classifier.transductive_used_
            if ours.refined is not None:
                dropped += 1
                final = _scores(ours.proba, gold, rest)["macro_f1"]
                dropped_right += final >= _scores(ours.refined.proba, gold, rest)["macro_f1"] - 0.01
            wmap = ws.predict(labels, human, "sbert", transductive=False)
            with warnings.catch_warnings():  # "more classes than half the samples": by design
                warnings.filterwarnings("ignore", "The number of unique classes", UserWarning)
                logreg = LogisticRegression(max_iter=1000).fit(sbert[ids], gold[ids])
            runs["ours"].append(_scores(ours.proba, gold, rest))
            runs["wmap"].append(_scores(wmap.proba, gold, rest))
            runs["logreg"].append(_scores(logreg.predict_proba(sbert), gold, rest))
        for method, scores in runs.items():
            out[method][str(k)] = {
                **summary([s["accuracy"] for s in scores]),
                "macro_f1": summary([s["macro_f1"] for s in scores]),
                "ece": summary([s["ece"] for s in scores]),
            }
        out["ours"][str(k)]["transductive_share"] = round(transductive / draws, 4)
        out["ours"][str(k)]["refinement_dropped"] = [dropped, dropped_right]
    return out


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
                    **summary([r[0] for r in runs.values()]),
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
    return {"suggest": suggested, "random": {n: summary(v) for n, v in random.items()}}


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
    steps: Sequence[str] = SHARED_STEPS,
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
        "portable": lambda: leave_corpus(texts, gold, labels, embedder, 8, draws, seed),
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


def environment(embedder: Embedder, load_start: float) -> dict:
    """What a benchmark's numbers depend on besides the code: the machine, the models, and for
    timings the other load on the machine (1-minute load average at the start and now) and BLAS
    threads."""
    return {
        "python": platform.python_version(),
        "cpus": usable_cpus(),
        "sentence_model": embedder.sentence.name,
        "word_vectors": embedder.words.name,
        "load_average_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
    }


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
    fresh.load()  # loading is what is being timed
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
            steps=SHARED_STEPS if name in SHARED else STAND_IN_STEPS,
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
        "environment": environment(embedder, load_start),
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
