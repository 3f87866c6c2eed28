"""Crash safety, for real: a process labeling or embedding is killed with SIGKILL mid-work.

Each worker prints a line after every write it saw committed; the test kills it at an arbitrary
point, then checks that everything acknowledged before the kill is on disk, the SQLite files pass
their integrity check, and work goes on from where it stopped.
"""

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fewshot import config
from fewshot.encoders import EmbeddingCache, SentenceEncoder
from fewshot.store import open_project

ROOT = Path(__file__).resolve().parents[1]

LABELER = """
import sys
from pathlib import Path
from fewshot.store import open_project
project = open_project("crash", Path(sys.argv[1]))
for i in range(100_000):
    project.annotate(i % 500, f"label {i}", user="kill-me")
    print(i, flush=True)
"""

EMBEDDER = """
import sys
from pathlib import Path
import pandas as pd
from fewshot.encoders import EmbeddingCache, SentenceEncoder
texts = pd.read_csv(sys.argv[2])["text"].tolist()
encoder = SentenceEncoder(cache=EmbeddingCache(Path(sys.argv[1])), batch_size=8)
encoder.encode(texts, progress=lambda done, total: print(done, total, flush=True))
"""


def run_until(script: str, args: list[str], enough: int) -> tuple[list[str], int]:
    """Run a worker, SIGKILL it once it has acknowledged `enough` lines; its lines and exit code."""
    worker = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines = []
    for line in worker.stdout:
        lines.append(line.split())
        if len(lines) >= enough:
            worker.send_signal(signal.SIGKILL)
            break
    code = worker.wait(timeout=60)
    worker.stdout.close()
    return lines, code


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def test_labels_acknowledged_before_a_kill_survive_it(tmp_path):
    open_project("crash", tmp_path).set_documents(pd.DataFrame({"text": map(str, range(500))}))
    lines, code = run_until(LABELER, [str(tmp_path)], enough=300)
    assert code == -signal.SIGKILL
    acknowledged = int(lines[-1][0]) + 1

    project = open_project("crash", tmp_path)
    assert integrity(project.path) == "ok"
    history = project.history()
    # every acknowledged label is there; at most the one in flight got in without its print
    assert acknowledged <= len(history) <= acknowledged + 1
    assert history["label"].tolist()[:acknowledged] == [f"label {i}" for i in range(acknowledged)]
    project.annotate(0, "after the crash")
    assert project.annotations().set_index("doc_id").loc[0, "label"] == "after the crash"


def test_embedding_resumes_after_a_kill(tmp_path, encoder):
    texts = pd.read_csv(config.shared_data_dir() / "ag_news" / "normalized_test.csv", nrows=200)
    texts = texts[["text"]].drop_duplicates()
    source = tmp_path / "texts.csv"
    texts.to_csv(source, index=False)
    cache_path = tmp_path / "embeddings.sqlite"

    lines, code = run_until(EMBEDDER, [str(cache_path), str(source)], enough=3)
    assert code == -signal.SIGKILL
    acknowledged, total = int(lines[-1][0]), int(lines[-1][1])
    assert 0 < acknowledged < total == len(texts)
    assert integrity(cache_path) == "ok"

    resumed = SentenceEncoder(cache=EmbeddingCache(cache_path), batch_size=8)
    calls: list[int] = []
    vectors = resumed.encode(texts["text"].tolist(), progress=lambda done, _: calls.append(done))
    assert acknowledged <= calls[0] < total  # it starts from what the killed run committed
    assert calls[-1] == total
    # Each row is its own text's vector; batched otherwise, bfloat16 (OpenVINO) differs a little.
    again = encoder.encode(texts["text"].tolist()[:16])
    assert np.einsum("ij,ij->i", vectors[:16], again).min() > 0.9999
