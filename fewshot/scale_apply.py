"""Applying a labeler at scale: documents per second of the local engine (`apply_file`) and of
Spark `local[2]` (`fewshot.spark.apply_path`) on the same documents, each worker's peak memory,
and what 10 million documents would take on 10, 50 and 200 cores at the measured per-core pace.

`python -m fewshot.scale_apply [--docs 100000] [--labeler LAB.zip]` labels AG News texts, repeated
with a row number so every document is new to the models (labeling never caches embeddings
anyway), prints a table and writes benchmarks/results/apply.json. Without --labeler it first
teaches one on 300 AG News documents with 8 labels per topic.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from fewshot import FewshotError, config
from fewshot.apply import apply_file, embedder_for
from fewshot.bench import RESULTS_DIR
from fewshot.labeler import Labeler
from fewshot.labelspace import LabelSpace
from fewshot.numeric import usable_cpus
from fewshot.report import _table
from fewshot.views import Embedder
from fewshot.workspace import Workspace

SPARK_CORES = 2  # local[2]: the machine this was written on has two
PROJECTED_DOCS = 10_000_000
CLUSTER_CORES = (10, 50, 200)
PARTS = 8  # Parquet files of the input: tasks for both cores, whatever n
WARM_DOCS = 64  # per core, labeled first so the timed run finds the models loaded


def ag_news() -> pd.DataFrame:
    return pd.read_csv(config.shared_data_dir() / "ag_news" / "normalized_test.csv")


def corpus(n: int, tag: str = "") -> pd.DataFrame:
    """n distinct documents (id, text, label): AG News texts in turn, each with its row number."""
    frame = ag_news()
    rows = np.arange(n)
    source = frame.iloc[rows % len(frame)].reset_index(drop=True)
    texts = [f"{text} [{tag}{i}]" for i, text in zip(rows, source["text"])]
    return pd.DataFrame({"id": rows, "text": texts, "label": source["label"]})


def teach_labeler(path: Path, embedder: Embedder, docs: int = 300, per_class: int = 8) -> Path:
    """A labeler taught on `docs` AG News documents, per_class of each topic human-labeled: the
    few minutes of labeling a user would start from."""
    frame = ag_news().groupby("label").sample(docs // 4, random_state=1).reset_index(drop=True)
    workspace = Workspace(frame["text"].tolist(), embedder)
    labels = LabelSpace(tuple(sorted(frame["label"].unique())))
    human = {int(i): frame["label"][i] for i in frame.groupby("label").head(per_class).index}
    workspace.labeler(workspace.predict(labels, human)).save(path)
    return path


def write_parts(frame: pd.DataFrame, folder: Path, parts: int = PARTS) -> Path:
    """A Parquet folder of `parts` files, as Spark jobs write them."""
    folder.mkdir(parents=True)
    for i, chunk in enumerate(np.array_split(np.arange(len(frame)), parts)):
        frame.iloc[chunk].to_parquet(folder / f"part-{i:05d}.parquet", index=False)
    return folder


def _spark_processes() -> dict[str, list[int]]:
    """Peak resident memory (VmHWM, MB) of this process's descendants: Spark's JVM and its
    Python workers, read while the idle workers are still alive."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
    found: dict[str, list[int]] = {"jvm": [], "python": []}
    todo = [os.getpid()]
    while todo:
        pid = todo.pop()
        for child in (p for p, pp in parent.items() if pp == pid):
            todo.append(child)
            try:
                command = (Path("/proc") / str(child) / "cmdline").read_bytes()
                status = (Path("/proc") / str(child) / "status").read_text()
            except OSError:
                continue
            peak = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("VmHWM")), 0)
            kind = "jvm" if b"java" in command else "python" if b"pyspark" in command else ""
            if kind:
                found[kind].append(round(int(peak) / 1024))
    return {kind: sorted(values, reverse=True) for kind, values in found.items()}


def measure_apply(n_docs: int, labeler_path: Path) -> dict:
    """Local then Spark local[2] on the same n_docs new documents, as one JSON-ready dict."""
    from fewshot.spark import apply_path, get_session

    begin, load_start = time.perf_counter(), os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="fewshot-apply-"))
    docs = write_parts(corpus(n_docs), work / "input")
    started = time.perf_counter()
    labeler = Labeler.load(labeler_path)
    embedder = embedder_for(labeler)
    local_rows = apply_file(labeler, embedder, docs, work / "local.csv")
    local_s = time.perf_counter() - started
    local_rss = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    local_threads = embedder.sentence.threads or usable_cpus()
    print(f"local: {local_rows:,} rows in {local_s:.1f} s", file=sys.stderr)

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    started = time.perf_counter()
    spark, _ = get_session(f"local[{SPARK_CORES}]")
    try:
        session_s = time.perf_counter() - started
        warm = write_parts(corpus(WARM_DOCS * SPARK_CORES, "warm "), work / "warm", SPARK_CORES)
        started = time.perf_counter()
        apply_path(labeler_path, warm, work / "warm-out", "text", None)
        warm_s = time.perf_counter() - started
        started = time.perf_counter()
        spark_rows = apply_path(labeler_path, docs, work / "spark", "text", None)
        spark_s = time.perf_counter() - started
        processes = _spark_processes()
        task_cpus = int(spark.conf.get("spark.task.cpus", "1") or 1)
    finally:
        spark.stop()
    print(f"spark: {spark_rows:,} rows in {spark_s:.1f} s", file=sys.stderr)

    local = pd.read_csv(work / "local.csv").set_index("id")
    spread = pd.read_parquet(work / "spark").set_index("id").loc[local.index]
    same = float((local["predicted_label"] == spread["predicted_label"]).mean())
    score_gap = float((local["score"] - spread["score"]).abs().max())
    shutil.rmtree(work)  # inputs and outputs: a few hundred MB at a million documents
    per_core = spark_rows / spark_s / SPARK_CORES
    startup_s = session_s + warm_s  # a cluster job pays it once: session, then models per worker
    return {
        "created": datetime.now().isoformat(timespec="seconds"),
        "docs": n_docs,
        "labeler": {"path": str(labeler_path), "view": labeler.view, "labels": len(labeler.labels)},
        "environment": {
            "python": platform.python_version(),
            "cpus": usable_cpus(),
            "load_average_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        },
        "local": {
            "rows": local_rows,
            "wall_s": round(local_s, 1),
            "docs_per_s": round(local_rows / local_s, 1),
            "encoder": embedder.sentence.backend,
            "encoder_threads": local_threads,
            "peak_rss_mb": local_rss,
        },
        "spark": {
            "master": f"local[{SPARK_CORES}]",
            "task_cpus": task_cpus,
            "rows": spark_rows,
            "session_start_s": round(session_s, 1),
            "warm_up_s": round(warm_s, 1),
            "warm_up_docs": WARM_DOCS * SPARK_CORES,
            "wall_s": round(spark_s, 1),
            "docs_per_s": round(spark_rows / spark_s, 1),
            "docs_per_s_per_core": round(per_core, 1),
            "python_peak_rss_mb": processes["python"],  # the workers, and their daemon
            "jvm_peak_rss_mb": processes["jvm"],
        },
        "agreement": {"same_label": same, "max_score_difference": score_gap},
        "projection": {
            "docs": PROJECTED_DOCS,
            "assumes": "per-core pace as measured here, scaling linearly (embedding is CPU-bound "
            "and rows are independent), plus this run's start-up once; no I/O limit",
            "hours": {
                str(cores): round((startup_s + PROJECTED_DOCS / (per_core * cores)) / 3600, 2)
                for cores in CLUSTER_CORES
            },
        },
        "wall_s": round(time.perf_counter() - begin, 1),
    }


def render(report: dict) -> str:
    local, spark = report["local"], report["spark"]
    workers = ", ".join(f"{mb:,}" for mb in spark["python_peak_rss_mb"]) or "-"
    lines = [f"# Applying a labeler: {report['docs']:,} documents", ""]
    lines += _table(
        ["engine", "wall s", "docs/s", "docs/s per core", "peak RSS MB"],
        [
            [
                f"local apply_file ({local['encoder']}, {local['encoder_threads']} threads)",
                local["wall_s"],
                local["docs_per_s"],
                round(local["docs_per_s"] / local["encoder_threads"], 1),
                local["peak_rss_mb"],
            ],
            [
                f"Spark {spark['master']} apply_path (after warm-up)",
                spark["wall_s"],
                spark["docs_per_s"],
                spark["docs_per_s_per_core"],
                f"Python {workers}; JVM {', '.join(map(str, spark['jvm_peak_rss_mb']))}",
            ],
        ],
    )
    lines.append(
        f"Spark start-up: session {spark['session_start_s']} s, then {spark['warm_up_s']} s to "
        f"label {spark['warm_up_docs']} documents with the models loading in each worker. "
        f"Same label on {report['agreement']['same_label']:.1%} of documents, scores within "
        f"{report['agreement']['max_score_difference']:.1e}."
    )
    lines.append("")
    projection = report["projection"]
    lines += _table(
        ["cores", f"hours for {projection['docs']:,} documents"],
        [[cores, hours] for cores, hours in projection["hours"].items()],
    )
    lines.append(f"Assumes {projection['assumes']}.")
    load = report["environment"]["load_average_1min"]
    lines.append(
        f"Load average {load[0]} before, {load[1]} after, on {report['environment']['cpus']} cores."
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fewshot.scale_apply", description=__doc__)
    parser.add_argument("--docs", type=int, default=100_000, help="documents (default 100,000)")
    parser.add_argument("--labeler", type=Path, help="labeler file (default: one taught here)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory")
    args = parser.parse_args(argv)
    if args.docs < PARTS:
        parser.error(f"--docs must be at least {PARTS}")
    try:
        with tempfile.TemporaryDirectory(prefix="fewshot-labeler-") as scratch:
            labeler = args.labeler or teach_labeler(Path(scratch) / "lab.zip", Embedder.default())
            report = measure_apply(args.docs, labeler)
    except FewshotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "apply.json").write_text(json.dumps(report, indent=2))
    print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
