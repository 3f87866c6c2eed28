"""Shared numeric helpers: agreement, the process-wide BLAS limit, background threads' priority."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from fewshot.numeric import cohen_kappa, lower_priority

ROOT = Path(__file__).resolve().parents[1]


def test_cohen_kappa():
    a = np.array([0, 1, 0, 1])
    assert cohen_kappa(a, a, 2) == 1.0
    assert cohen_kappa(a, 1 - a, 2) == -1.0


BLAS_LIMIT_CHECK = """
from threadpoolctl import threadpool_info
from fewshot.numeric import one_blas_thread

def blas_threads():
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

before = blas_threads()
assert before and max(before) > 1, f"a BLAS with threads that threadpoolctl can see: {before}"
first, second = one_blas_thread(), one_blas_thread()
first.__enter__()
second.__enter__()
first.__exit__(None, None, None)  # another session's fit is still running
assert set(blas_threads()) == {1}, blas_threads()
second.__exit__(None, None, None)
assert blas_threads() == before, (blas_threads(), before)
"""


def test_blas_limit_is_lifted_only_when_the_last_overlapping_fit_ends():
    # In a fresh interpreter: the limit is process-wide, and the app tests in this process leave
    # threads behind (UMAP, cross-validation) whose libraries set BLAS threads of their own.
    result = subprocess.run(
        [sys.executable, "-c", BLAS_LIMIT_CHECK],
        capture_output=True,
        text=True,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "2", "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_background_threads_yield_the_cpu_and_the_rest_keep_theirs():
    seen = {}

    def background() -> None:
        lower_priority()
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    thread = threading.Thread(target=background)
    thread.start()
    thread.join()
    assert seen["nice"] == 19
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == 0
