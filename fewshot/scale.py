"""Scale measurement: a large synthetic corpus through the real store, encoder, classifier and pages.

`python -m fewshot.scale [--docs 50000]` builds a corpus from the shared labeled sets (AG News,
banking77, SST-2: 12,501 texts), repeated with small variations so every document is distinct,
stores it as a project, embeds it with progress through the embedding cache, times the
classifier's refits, then renders every app page for that project in a fresh process
(`benchmarks/page_timing.py`, which holds the one streamlit import). It prints a table and writes
`<name>.json` and `<name>.md` to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from fewshot import FewshotError, config
from fewshot.bench import RESULTS_DIR, _median_seconds, _table, load_dataset, usable_cpus
from fewshot.classify import LabelSpace
from fewshot.encoders import print_progress
from fewshot.store import open_project
from fewshot.views import Embedder
from fewshot.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("ag_news", "banking77", "sst2")
LABELS = (("World", ""), ("Sports", ""), ("Business", ""), ("Sci/Tech", ""))  # AG's topics
PER_CLASS = 8  # human labels per topic, on documents from AG News
# Variations of a repeated text: what a real corpus repeats with (forwarded mail, reposts).
PREFIXES = ("Re: ", "Fwd: ", "Update: ", "Note: ", "Reminder: ", "From the archive: ", "FYI - ")
SUFFIXES = ("", " (via email)", " Thanks.", " - posted again", " [translated]", " Any news?")


def peak_rss_mb() -> int:
    """Peak resident memory of this process so far (ru_maxrss is in KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _vary(text: str, round_: int, rng: np.random.Generator) -> str:
    """The round_-th copy of a text: sentences rotated, a prefix per round, maybe a suffix."""
    sentences = text.split(". ")
    if len(sentences) > 1 and rng.random() < 0.5:
        shift = int(rng.integers(1, len(sentences)))
        sentences = sentences[shift:] + sentences[:shift]
    prefix = PREFIXES[(round_ - 1) % len(PREFIXES)]
    return prefix + ". ".join(sentences) + SUFFIXES[int(rng.integers(len(SUFFIXES)))]


def synthetic_corpus(n: int, seed: int = 0) -> pd.DataFrame:
    """n distinct documents (text, source, gold): the shared sets shuffled together, then copied
    with variations (round r of the pool gets the r-th prefix) until there are n. Deterministic."""
    pool = [
        (text, name, gold)
        for name in SOURCES
        for text, gold in zip(*load_dataset(name))
        if text.strip()
    ]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pool))
    seen: set[str] = set()
    rows = []
    for i in range(n):
        text, source, gold = pool[order[i % len(pool)]]
        round_ = i // len(pool)
        if round_:
            text = _vary(text, round_, rng)
        while text in seen:  # the sets hold a few duplicates of their own
            text += " ."
        seen.add(text)
        rows.append((text, source, gold))
    return pd.DataFrame(rows, columns=["text", "source", "gold"])


def human_labels(corpus: pd.DataFrame, per_class: int) -> dict[int, str]:
    """The first per_class documents of each AG topic (the corpus is shuffled), labeled with their
    gold label: a user's first few minutes of labeling."""
    ag = corpus[(corpus["source"] == "ag_news") & corpus["gold"].isin([n for n, _ in LABELS])]
    return {int(i): str(label) for i, label in ag.groupby("gold").head(per_class)["gold"].items()}


def _timed(action: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    value = action()
    return value, time.perf_counter() - start


def measure_classifier(ws: Workspace, labels: LabelSpace, human: dict[int, str]) -> dict:
    """The costs of one label click at this size: the first fit (builds the corpus's neighbour
    graph, cached per corpus), a refit after one more label, the inductive floor, suggestions and
    the Teach page's cross-validation."""
    _, first = _timed(lambda: ws.predict(labels, human))
    rng = np.random.default_rng(0)
    extra = int(rng.choice(np.setdiff1d(np.arange(len(ws.texts)), list(human))))
    more = {**human, extra: labels.names[0]}
    prediction = ws.predict(labels, more)
    _, cv = _timed(lambda: ws.cross_validated_accuracy(labels, more))
    return {
        "first_fit_s": round(first, 2),
        "refit_predict_s": round(_median_seconds(lambda: ws.predict(labels, more), 3), 3),
        "refit_predict_inductive_s": round(
            _median_seconds(lambda: ws.predict(labels, more, transductive=False), 3), 3
        ),
        "suggest_s": round(_median_seconds(lambda: ws.suggest(prediction, set(more), n=1), 3), 3),
        "cross_validation_s": round(cv, 2),
        "selection": prediction.classifier.selection_,
    }


def render_pages(project: str, umap: bool) -> dict:
    """Every page rendered headless (AppTest) in a fresh process, as a new server would."""
    command = [sys.executable, "-m", "benchmarks.page_timing", "--project", project]
    result = subprocess.run(
        [*command, *([] if umap else ["--no-umap"])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise FewshotError(f"Page timing failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)


def run(n: int, seed: int = 0, umap: bool = True, command: str = "") -> dict:
    """The whole measurement as one JSON-ready dict."""
    start, load_start = time.perf_counter(), os.getloadavg()[0]
    corpus, build_s = _timed(lambda: synthetic_corpus(n, seed))
    print(f"corpus: {len(corpus):,} documents in {build_s:.1f} s", file=sys.stderr)
    project = open_project(f"scale-{n}")
    _, write_s = _timed(lambda: project.set_documents(corpus))
    project.set_labels(list(LABELS))
    human = human_labels(corpus, PER_CLASS)
    for doc, label in human.items():
        project.annotate(doc, label, user="scale")
    _, read_s = _timed(project.documents)  # with metadata, as the Data and Export pages read it
    texts = project.texts()
    rss_store = peak_rss_mb()

    embedder, load_s = _timed(lambda: Embedder.default())
    counts: list[tuple[int, int]] = []
    report = print_progress("embedding")

    def progress(done: int, total: int) -> None:
        counts.append((done, total))
        report(done, total)

    ws, embed_s = _timed(lambda: Workspace(texts, embedder, progress=progress))
    cached = counts[0][0]
    embedded = len(texts) - cached
    rss_embed = peak_rss_mb()
    matrix_mb = sum(v.nbytes for v in ws.views.values()) / 2**20

    labels = LabelSpace(tuple(n for n, _ in LABELS))
    classifier = measure_classifier(ws, labels, human)
    rss_classify = peak_rss_mb()
    pages = render_pages(project.name, umap)
    return {
        "command": command,
        "created": datetime.now().isoformat(timespec="seconds"),
        "docs": len(texts),
        "human_labels": len(human),
        "sources": corpus["source"].value_counts().to_dict(),
        "environment": {
            "python": platform.python_version(),
            "cpus": usable_cpus(),
            "load_average_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],
            "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
            "data_dir": str(config.data_dir()),
        },
        "store": {
            "build_corpus_s": round(build_s, 2),
            "write_s": round(write_s, 2),
            "read_s": round(read_s, 2),
            "file_mb": round(project.path.stat().st_size / 2**20, 1),
        },
        "embedding": {
            "model_load_s": round(load_s, 2),
            "wall_s": round(embed_s, 1),
            "embedded": embedded,
            "from_cache": cached,
            "docs_per_s": round(embedded / embed_s, 1) if embedded else None,
            "progress_reports": len(counts),
            "matrices_mb": round(matrix_mb, 1),
        },
        "classifier": classifier,
        "memory_mb": {
            "after_store": rss_store,
            "after_embedding": rss_embed,
            "overall": rss_classify,
            "app_process": pages["peak_rss_mb"],
        },
        "pages": pages["pages"],
        "wall_s": round(time.perf_counter() - start, 1),
    }


def render_markdown(report: dict) -> str:
    env, emb, mem, cls = (
        report[k] for k in ("environment", "embedding", "memory_mb", "classifier")
    )
    store = report["store"]
    rate = f"{emb['docs_per_s']} docs/s" if emb["docs_per_s"] else "all from the cache"
    lines = [
        f"# Scale {report['created']}: {report['docs']:,} documents",
        "",
        f"`{report['command']}`: {report['wall_s']:.0f} s wall on {env['cpus']} CPUs (load average "
        f"{' then '.join(map(str, env['load_average_1min']))}). Sources: "
        + ", ".join(f"{k} {v:,}" for k, v in report["sources"].items())
        + f"; {report['human_labels']} human labels.",
        "",
    ]
    lines += _table(
        ["store write", "store read", "embedding", "embedded", "peak RSS after embedding",
         "peak RSS overall", "app process peak RSS"],
        [[
            f"{store['write_s']:.1f} s ({store['file_mb']} MB)",
            f"{store['read_s']:.2f} s",
            f"{emb['wall_s']:.0f} s ({rate})",
            f"{emb['embedded']:,} new, {emb['from_cache']:,} cached",
            f"{mem['after_embedding']:,} MB",
            f"{mem['overall']:,} MB",
            f"{mem['app_process']:,} MB",
        ]],
    )  # fmt: skip
    lines += _table(
        ["first fit", "refit + re-predict", "(inductive)", "suggest", "cross-validation"],
        [[
            f"{cls['first_fit_s']:.1f} s",
            f"{cls['refit_predict_s']:.2f} s",
            f"{cls['refit_predict_inductive_s']:.2f} s",
            f"{cls['suggest_s']:.2f} s",
            f"{cls['cross_validation_s']:.1f} s",
        ]],
    )  # fmt: skip
    lines += _table(
        ["page", "first run", "rerun", "largest table sent", "points drawn"],
        [
            [
                page,
                f"{p['first_s']:.1f} s",
                f"{p['rerun_s']:.1f} s",
                f"{p['table_rows']:,} rows" if p["table_rows"] is not None else "-",
                f"{p['points']:,}" if p["points"] is not None else "-",
            ]
            for page, p in report["pages"].items()
        ],
    )
    if umap := report["pages"]["Map"].get("umap"):
        lines += [
            f"Map with its UMAP layout: drawn {umap['drawn']}, after waiting {umap['waited_s']:.0f} s "
            f"for the background fit; a run of the finished map {umap['run_s']:.1f} s.",
            "",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fewshot.scale", description=__doc__)
    parser.add_argument("--docs", type=int, default=50_000, help="corpus size (default 50,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-umap", action="store_true", help="skip waiting for the UMAP map")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory")
    parser.add_argument("--name", default="scale", help="result file name (default: scale)")
    args = parser.parse_args(argv)
    if args.docs < 20:
        parser.error("--docs must be at least 20")
    command = " ".join(["python -m fewshot.scale", *(argv if argv is not None else sys.argv[1:])])
    try:
        report = run(args.docs, args.seed, umap=not args.no_umap, command=command)
    except FewshotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=2))
    text = render_markdown(report)
    (args.out / f"{args.name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
