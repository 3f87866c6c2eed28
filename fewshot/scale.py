"""Scale measurement: a large synthetic corpus through the real store, encoder, classifier and pages.

`python -m fewshot.scale [--docs 50000]` builds a corpus from the shared labeled sets (AG News,
banking77, SST-2: 12,501 texts), repeated with small variations so every document is distinct,
stores it as a project, embeds it with progress through the embedding cache, times the
classifier's refits and the search box's queries (`fewshot.search.find` on the real prediction
table), then renders every app page for that project in a fresh process
(`benchmarks/page_timing.py`, which holds the one streamlit import) and, in real Chromium, times a
key press on the Teach page until the next document is on screen (`benchmarks/keypress_timing.py`;
noted as skipped without chromium). It prints a table and writes `<name>.json` and `<name>.md` to
benchmarks/results/.
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

from fewshot import FewshotError, config, stored
from fewshot.bench import RESULTS_DIR, _median_seconds
from fewshot.datasets import load_dataset
from fewshot.encoders import print_progress
from fewshot.labelspace import LabelSpace
from fewshot.lexical import TERM_PARTS
from fewshot.numeric import usable_cpus
from fewshot.report import _table
from fewshot.search import NO_LABEL, Query, find
from fewshot.store import open_project
from fewshot.views import Embedder
from fewshot.workspace import Prediction, Workspace

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("ag_news", "banking77", "sst2")
LABELS = (("World", ""), ("Sports", ""), ("Business", ""), ("Sci/Tech", ""))  # AG's topics
PER_CLASS = 8  # human labels per topic, on documents from AG News
# Variations of a repeated text: what a real corpus repeats with (forwarded mail, reposts).
PREFIXES = ("Re: ", "Fwd: ", "Update: ", "Note: ", "Reminder: ", "From the archive: ", "FYI - ")
SUFFIXES = ("", " (via email)", " Thanks.", " - posted again", " [translated]", " Any news?")
# One query per kind the search box takes, on words the three sets use (like: document 0).
SEARCHES = {
    "keyword": Query(text="market"),
    "phrase": Query(text='"exchange rate"'),
    "regex": Query(text=r"/refund(ed|s)?|charg(e|ed|es)/"),
    "meaning": Query(text="wants the money back", mode="meaning"),
    "like": Query(mode="like", like=0),
    "filter": Query(predicted=("Business",), human=(NO_LABEL,), score=(0.5, 1.0)),
}


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
    """The costs of one label click at this size: the first fit as the app makes it (its
    calibration's cross-validation left to the background), a refit after one more label, the
    inductive floor, suggestions and the background cross-validation (which also calibrates)."""
    _, first = _timed(lambda: ws.predict(labels, human, wait=False))
    rng = np.random.default_rng(0)
    extra = int(rng.choice(np.setdiff1d(np.arange(len(ws.texts)), list(human))))
    more = {**human, extra: labels.names[0]}
    _, cv = _timed(lambda: ws.cross_validated_accuracy(labels, more))
    prediction = ws.predict(labels, more)  # calibrated by that cross-validation: no wait
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


def measure_search(
    ws: Workspace, prediction: Prediction, human: dict[int, str], meta: pd.DataFrame, runs: int = 5
) -> dict:
    """The search box's costs at this size, as the Teach and Map pages pay them: the table a
    search runs on (the prediction table with the human labels and the documents' metadata, built
    per search), the corpus as Arrow strings (once per corpus), and `find` for each kind of query
    (SEARCHES): its first run, and the median of `runs` more. By meaning, the query's embedding
    comes from the embedding cache after its first run (in an earlier scale run, perhaps), as on a
    rerun of the page; "meaning, new query" runs the sentence model (loaded beforehand, as in a
    running app) every time, which is what a newly typed query costs, and caches nothing."""
    n = len(ws.texts)

    def table() -> pd.DataFrame:
        labeled = pd.Series(human, dtype=object).reindex(range(n))
        return pd.concat([prediction.table(ws.texts, labeled), meta.drop(columns="id")], axis=1)

    frame, table_s = _timed(table)
    _, texts_s = _timed(lambda: ws.search_texts)
    vectors, sentence = ws.views["sbert"], ws.embedder.sentence

    def encode(text: str) -> np.ndarray:
        return sentence.encode([text])[0]

    def encode_new(text: str) -> np.ndarray:
        return sentence.embed([text])[0]

    searches = {**SEARCHES, "meaning, new query": SEARCHES["meaning"]}
    sentence.load()  # before the clock starts
    queries = {}
    for kind, query in searches.items():
        embed = encode_new if kind == "meaning, new query" else encode

        def search(q: Query = query, embed: Callable = embed) -> pd.DataFrame:
            return find(frame, q, ws.search_texts, vectors, embed)

        found, first = _timed(search)
        seconds = _median_seconds(search, runs)
        queries[kind] = {
            "query": query.text or _describe(query),
            "found": len(found),
            "first_s": round(first, 4),
            "s": round(seconds, 4),
        }
    return {
        "table_s": round(table_s, 3),
        "arrow_texts_s": round(texts_s, 3),
        "runs": runs,
        "queries": queries,
    }


def _describe(query: Query) -> str:
    if query.mode == "like":
        return f"more like document {query.like}"
    parts = [f"predicted {', '.join(query.predicted)}"] if query.predicted else []
    parts += [f"human {', '.join(query.human)}"] if query.human else []
    if query.score != (0.0, 1.0):
        parts.append(f"score {query.score[0]:.2f}-{query.score[1]:.2f}")
    return "; ".join(parts)


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


def time_keypresses(project: str, presses: int) -> dict:
    """Key press to next document on the Teach page, in Chromium, against a new app server
    (`benchmarks/keypress_timing.py`, in a fresh process). A failure is reported, not raised: the
    figures measured before it are worth keeping."""
    if presses <= 0:
        return {"skipped": "skipped: --presses 0"}
    command = [sys.executable, "-m", "benchmarks.keypress_timing", "--project", project]
    result = subprocess.run(
        [*command, "--presses", str(presses)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        print(f"key press timing failed:\n{result.stderr[-3000:]}", file=sys.stderr)
        return {"error": result.stderr[-3000:]}
    if "skipped" in (found := json.loads(result.stdout)):
        print(f"key press timing {found['skipped']}", file=sys.stderr)
    return found


def run(n: int, seed: int = 0, umap: bool = True, command: str = "", presses: int = 10) -> dict:
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
    documents, read_s = _timed(project.documents)  # with metadata, as the Data and Export pages
    texts = project.texts()
    rss_store = peak_rss_mb()

    embedder, load_s = _timed(lambda: Embedder.default())
    counts: list[tuple[int, int]] = []
    report = print_progress("embedding")

    def progress(done: int, total: int) -> None:
        counts.append((done, total))
        report(done, total)

    ws, embed_s = _timed(lambda: Workspace(texts, embedder, progress=progress))
    cached = counts[0][0] if counts else len(texts)  # none: read back whole (fewshot.stored)
    embedded = len(texts) - cached
    rss_embed = peak_rss_mb()
    # The n-gram matrix and neighbour graph, as the Data page builds them after embedding: kept
    # on disk per corpus, so only the first run for a corpus computes them.
    indexed = stored.path_for((ws.key, repr(TERM_PARTS)), "terms").exists()
    _, index_s = _timed(ws.prepare)
    matrix_mb = sum(v.nbytes for v in ws.views.values()) / 2**20

    labels = LabelSpace(tuple(n for n, _ in LABELS))
    classifier = measure_classifier(ws, labels, human)
    search = measure_search(ws, ws.predict(labels, human), human, documents.drop(columns="text"))
    print(f"search: {search}", file=sys.stderr)
    rss_classify = peak_rss_mb()
    pages = render_pages(project.name, umap)
    keypress = time_keypresses(project.name, presses)
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
            # a PostgreSQL store has no file of its own
            "file_mb": round(project.path.stat().st_size / 2**20, 1) if project.path else None,
        },
        "embedding": {
            "model_load_s": round(load_s, 2),
            "wall_s": round(embed_s, 1),
            "embedded": embedded,
            "from_cache": cached,
            "docs_per_s": round(embedded / embed_s, 1) if embedded else None,
            "progress_reports": len(counts),
            "matrices_mb": round(matrix_mb, 1),
            "index_s": round(index_s, 1),
            "index_from_disk": indexed,
        },
        "classifier": classifier,
        "search": search,
        "memory_mb": {
            "after_store": rss_store,
            "after_embedding": rss_embed,
            "overall": rss_classify,
            "app_process": pages["peak_rss_mb"],
        },
        "pages": pages["pages"],
        "keypress": keypress,
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
            f"{store['write_s']:.1f} s"
            + (f" ({store['file_mb']} MB)" if store["file_mb"] is not None else ""),
            f"{store['read_s']:.2f} s",
            f"{emb['wall_s']:.0f} s ({rate})",
            f"{emb['embedded']:,} new, {emb['from_cache']:,} cached",
            f"{mem['after_embedding']:,} MB",
            f"{mem['overall']:,} MB",
            f"{mem['app_process']:,} MB",
        ]],
    )  # fmt: skip
    lines += _table(
        ["index (n-grams, graph)", "first fit", "refit + re-predict", "(inductive)", "suggest",
         "cross-validation"],
        [[
            f"{emb['index_s']:.1f} s ({'from disk' if emb['index_from_disk'] else 'computed'})",
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
    search = report["search"]
    lines += [
        f"Search (`fewshot.search.find`, median of {search['runs']} runs; the table it runs on "
        f"{search['table_s']:.2f} s per search, the corpus as Arrow strings "
        f"{search['arrow_texts_s']:.2f} s once):",
        "",
    ]
    lines += _table(
        ["query", "", "found", "first run", "median"],
        [
            [
                kind,
                "`" + q["query"].replace("|", "\\|") + "`",
                f"{q['found']:,}",
                f"{q['first_s'] * 1000:.1f} ms",
                f"{q['s'] * 1000:.1f} ms",
            ]
            for kind, q in search["queries"].items()
        ],
    )
    lines += [_keypress_line(report["keypress"]), ""]
    if umap := report["pages"]["Map"].get("umap"):
        lines += [
            f"Map with its UMAP layout: drawn {umap['drawn']}, after waiting {umap['waited_s']:.0f} s "
            f"for the background fit; a run of the finished map {umap['run_s']:.1f} s.",
            "",
        ]
    return "\n".join(lines)


def _keypress_line(keys: dict) -> str:
    if "skipped" in keys or "error" in keys:
        return f"Key press to next document (Chromium): {keys.get('skipped') or 'failed'}."
    return (
        f"Key press to next document on the Teach page (Chromium, {keys['presses']} presses of "
        f'"{keys["key"]}", each from a settled page): median {keys["next_document_median_s"]:.2f} s, '
        f"max {keys['next_document_max_s']:.2f} s; the run each press starts finished after "
        f"{keys['run_done_median_s']:.1f} s (median; cross-validation is drawn last). A new "
        f"server showed the first document {keys['first_visit_s']:.0f} s after the app was "
        f"opened."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fewshot.scale", description=__doc__)
    parser.add_argument("--docs", type=int, default=50_000, help="corpus size (default 50,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-umap", action="store_true", help="skip waiting for the UMAP map")
    parser.add_argument(
        "--presses",
        type=int,
        default=10,
        help="key presses timed on the Teach page in Chromium (default 10; 0 skips the browser)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory")
    parser.add_argument("--name", default="scale", help="result file name (default: scale)")
    args = parser.parse_args(argv)
    if args.docs < 20:
        parser.error("--docs must be at least 20")
    command = " ".join(["python -m fewshot.scale", *(argv if argv is not None else sys.argv[1:])])
    try:
        report = run(
            args.docs, args.seed, umap=not args.no_umap, command=command, presses=args.presses
        )
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
