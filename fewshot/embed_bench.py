"""Embedding throughput, side by side: sentence-transformers, the cached torch path, ONNX int8, OpenVINO.

`python -m fewshot.embed_bench [--docs 2000] [--rounds 3]` embeds the same AG News texts with
every variant in one process, round after round (interleaved, so load from elsewhere on the
machine hits them alike), each time into a fresh empty cache, and reports documents per second
(median over rounds), CPU seconds per 1,000 documents and the cosine of each variant's vectors to
plain sentence-transformers'. Then, for the gate "a backend becomes the default only if its
vectors keep cosine >= 0.99 to float32 on every shared set", it compares each ONNX backend with
float32 on a 1,000-text sample of each shared set: min, 1st percentile and mean cosine, and how
often a text's nearest neighbour stays the same. The models are exported into a temporary data
directory, so the export time is measured too. Prints a table, writes
benchmarks/results/embedding.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np

from fewshot import FewshotError, config
from fewshot.datasets import SHARED, load_dataset
from fewshot.encoders import EmbeddingCache, SentenceEncoder
from fewshot.numeric import usable_cpus
from fewshot.onnx_encoder import OnnxEncoder, model_file

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "embedding.json"
PLAIN = "sentence-transformers encode, batch 64"
SAMPLE = 1000  # texts per shared set for the agreement gate


def _rss_mb() -> float:
    """Resident memory now (not the peak): what a loaded model adds."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _cosines(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Row-wise cosine of two unit-row matrices, and nearest-neighbour agreement."""
    cos = np.einsum("ij,ij->i", a, b)
    out = {
        "min": round(float(cos.min()), 4),
        "p01": round(float(np.percentile(cos, 1)), 4),
        "mean": round(float(cos.mean()), 4),
    }
    if len(a) <= 5000:
        nearest = []
        for x in (a, b):
            sims = x @ x.T
            np.fill_diagonal(sims, -np.inf)
            nearest.append(sims.argmax(axis=1))
        out["same_nearest_neighbour"] = round(float(np.mean(nearest[0] == nearest[1])), 4)
    return out


def _with_cache(encoder: SentenceEncoder, tmp: Path) -> Callable[[list[str]], np.ndarray]:
    """The project's path: every call starts from a new, empty SQLite cache."""
    calls = iter(range(1_000_000))

    def encode(texts: list[str]) -> np.ndarray:
        encoder.cache = EmbeddingCache(tmp / f"cache-{encoder.backend}-{next(calls)}.sqlite")
        return encoder.encode(texts)

    return encode


def _variants(tmp: Path) -> tuple[dict[str, Callable[[list[str]], np.ndarray]], dict]:
    """Every variant, loaded (and the ONNX models exported) before any clock starts."""
    from sentence_transformers import SentenceTransformer

    loads: dict[str, float] = {"rss_start_mb": round(_rss_mb())}
    start = time.perf_counter()
    plain = SentenceTransformer(config.sentence_model(), device="cpu")
    short = SentenceTransformer(config.sentence_model(), device="cpu")
    short.max_seq_length = 128
    loads["torch_load_s"] = round(time.perf_counter() - start, 2)
    loads["rss_after_torch_mb"] = round(_rss_mb())
    torch_encoder = SentenceEncoder(backend="torch")
    torch_encoder._model = plain  # the same loaded weights: the cache path is what differs

    def st(model, batch_size: int) -> Callable[[list[str]], np.ndarray]:  # noqa: ANN001
        return lambda texts: model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )

    variants = {
        PLAIN: st(plain, 64),
        "sentence-transformers encode, batch 32": st(plain, 32),
        "sentence-transformers encode, batch 128": st(plain, 128),
        "sentence-transformers encode, max_seq_length 128": st(short, 64),
        "SentenceEncoder torch, fresh cache": _with_cache(torch_encoder, tmp),
    }
    for backend in ("onnx-int8", "openvino"):
        encoder = SentenceEncoder(backend=backend)
        start = time.perf_counter()
        file = model_file(encoder._onnx.pipeline, encoder._onnx.fingerprint, backend)
        loads[f"{backend}_export_s"] = round(time.perf_counter() - start, 2)
        loads[f"{backend}_file_mb"] = round(file.stat().st_size / 2**20, 1)
        start = time.perf_counter()
        encoder.encode(["warm up"])  # the session or compiled model, not timed below
        loads[f"{backend}_load_s"] = round(time.perf_counter() - start, 2)
        loads[f"rss_after_{backend}_mb"] = round(_rss_mb())
        variants[f"SentenceEncoder {backend}, fresh cache"] = _with_cache(encoder, tmp)
        onnx = encoder._onnx
        variants[f"{backend}, batch 16"] = lambda texts, e=onnx: e.encode(texts, batch_size=16)
        variants[f"{backend}, batch 64"] = lambda texts, e=onnx: e.encode(texts, batch_size=64)
        one = OnnxEncoder(encoder.model_path, onnx.fingerprint, backend, threads=1)
        variants[f"{backend}, 1 thread"] = one.encode
        cut = OnnxEncoder(encoder.model_path, onnx.fingerprint, backend)
        cut.pipeline.max_seq_length = 128
        variants[f"{backend}, max_seq_length 128"] = cut.encode
    return variants, loads


def throughput(texts: list[str], rounds: int, tmp: Path) -> tuple[list[dict], dict]:
    """Documents per second of every variant on the same texts, interleaved round by round."""
    variants, loads = _variants(tmp)
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    vectors: dict[str, np.ndarray] = {}
    for round_ in range(rounds):
        for name, encode in variants.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            vectors[name] = np.asarray(encode(list(texts)), dtype=np.float32)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            print(
                f"round {round_ + 1}/{rounds}: {name}: {len(texts) / wall[name][-1]:.0f} docs/s",
                file=sys.stderr,
                flush=True,
            )
    plain = len(texts) / statistics.median(wall[PLAIN])
    rows = []
    for name in variants:
        rate = len(texts) / statistics.median(wall[name])
        rows.append(
            {
                "variant": name,
                "docs_per_s": round(rate, 1),
                "docs_per_s_rounds": [round(len(texts) / w, 1) for w in wall[name]],
                "cpu_s_per_1000_docs": round(1000 * statistics.median(cpu[name]) / len(texts), 2),
                "vs_plain": round(rate / plain, 2),
                "cosine_to_plain": _cosines(vectors[PLAIN], vectors[name]),
            }
        )
    return rows, loads


def agreement(seed: int) -> dict[str, dict[str, dict[str, float]]]:
    """Per shared set, each ONNX backend's vectors against sentence-transformers float32."""
    encoders = {b: SentenceEncoder(backend=b) for b in ("torch", "onnx-int8", "openvino")}
    out: dict[str, dict[str, dict[str, float]]] = {}
    rng = np.random.default_rng(seed)
    for name in SHARED:
        texts, _ = load_dataset(name)
        pick = rng.choice(len(texts), size=min(SAMPLE, len(texts)), replace=False)
        sample = [texts[i] for i in pick]
        vectors = {b: e.encode(sample) for b, e in encoders.items()}
        out[name] = {b: _cosines(vectors["torch"], vectors[b]) for b in ("onnx-int8", "openvino")}
    return out


def _environment(load: float) -> dict:
    import onnxruntime
    import openvino
    import torch

    info = Path("/proc/cpuinfo").read_text()
    flags = info.split("flags", 1)[-1].split("\n", 1)[0].split()
    model = info.split("model name", 1)[-1].split("\n", 1)[0].strip(" :\t")
    return {
        "python": platform.python_version(),
        "cpu": model or platform.processor(),
        "cpus": usable_cpus(),
        "cpu_int8_bf16": sorted(
            f for f in flags if f.startswith(("amx", "avx512_vnni", "avx512_bf16"))
        ),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": onnxruntime.__version__,
        "openvino": openvino.__version__,
        "openvino_precision": openvino.Core()
        .get_property("CPU", "INFERENCE_PRECISION_HINT")
        .to_string(),
        "load_average_1min": [round(load, 2), round(os.getloadavg()[0], 2)],
    }


def run(docs: int, rounds: int, seed: int = 0, command: str = "") -> dict:
    """The whole measurement as one JSON-ready dict, in a temporary data directory."""
    texts, _ = load_dataset("ag_news")
    if docs > len(texts):
        raise FewshotError(f"--docs is at most {len(texts):,} (AG News test texts)")
    pick = np.random.default_rng(seed).choice(len(texts), size=docs, replace=False)
    sample = [texts[i] for i in pick]
    load = os.getloadavg()[0]
    previous = os.environ.get("FEWSHOT_DATA_DIR")
    with tempfile.TemporaryDirectory(prefix="fewshot-embed-bench-") as tmp:
        os.environ["FEWSHOT_DATA_DIR"] = tmp
        try:
            rows, loads = throughput(sample, rounds, Path(tmp))
            gate = agreement(seed)
        finally:
            if previous is None:
                os.environ.pop("FEWSHOT_DATA_DIR")
            else:
                os.environ["FEWSHOT_DATA_DIR"] = previous
    return {
        "command": command,
        "created": datetime.now().isoformat(timespec="seconds"),
        "docs": docs,
        "rounds": rounds,
        "seed": seed,
        "mean_chars": round(float(np.mean([len(t) for t in sample])), 1),
        "environment": _environment(load),
        "models": loads,
        "throughput": rows,
        "agreement_with_fp32": gate,
    }


def render(report: dict) -> str:
    """The report as Markdown tables."""
    lines = [
        f"Embedding {report['docs']:,} AG News texts (mean {report['mean_chars']:.0f} characters), "
        f"{report['environment']['cpus']} CPUs ({report['environment']['cpu']}), median of "
        f"{report['rounds']} rounds",
        "",
        "| variant | docs/s | vs plain | CPU s / 1k docs | cosine to plain min / mean |",
        "|---|---:|---:|---:|---|",
    ]
    for row in report["throughput"]:
        cos = row["cosine_to_plain"]
        lines.append(
            f"| {row['variant']} | {row['docs_per_s']:.0f} | {row['vs_plain']:.2f}x | "
            f"{row['cpu_s_per_1000_docs']:.1f} | {cos['min']:.4f} / {cos['mean']:.4f} |"
        )
    lines += [
        "",
        f"Agreement with float32 on {SAMPLE:,} texts per set (cosine min / 1st percentile / mean;"
        " same nearest neighbour):",
        "",
        "| set | backend | min | p01 | mean | same neighbour |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, by_backend in report["agreement_with_fp32"].items():
        for backend, c in by_backend.items():
            lines.append(
                f"| {name} | {backend} | {c['min']:.4f} | {c['p01']:.4f} | {c['mean']:.4f} | "
                f"{c['same_nearest_neighbour']:.1%} |"
            )
    models = report["models"]
    lines += [
        "",
        f"Export: onnx-int8 {models['onnx-int8_export_s']:.1f} s (export and quantize, "
        f"{models['onnx-int8_file_mb']:.0f} MB), openvino {models['openvino_export_s']:.1f} s "
        f"(fp32, {models['openvino_file_mb']:.0f} MB); OpenVINO computes in "
        f"{report['environment']['openvino_precision']}.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fewshot.embed_bench", description=__doc__)
    parser.add_argument("--docs", type=int, default=2000, help="AG News texts (default 2,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every variant (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON file to write")
    args = parser.parse_args(argv)
    if args.docs < 10 or args.rounds < 1:
        parser.error("--docs must be at least 10 and --rounds at least 1")
    command = " ".join(
        ["python -m fewshot.embed_bench", *(argv if argv is not None else sys.argv[1:])]
    )
    try:
        report = run(args.docs, args.rounds, args.seed, command=command)
    except FewshotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
