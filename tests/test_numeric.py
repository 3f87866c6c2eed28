"""Shared numeric helpers: agreement and the process-wide BLAS limit."""

import numpy as np

from fewshot.numeric import cohen_kappa, one_blas_thread


def test_cohen_kappa():
    a = np.array([0, 1, 0, 1])
    assert cohen_kappa(a, a, 2) == 1.0
    assert cohen_kappa(a, 1 - a, 2) == -1.0


def test_blas_limit_is_lifted_only_when_the_last_overlapping_fit_ends():
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = blas_threads()
    assert before, "numpy links a BLAS that threadpoolctl can see"
    first, second = one_blas_thread(), one_blas_thread()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # another session's fit is still running
    assert set(blas_threads()) <= {1}
    second.__exit__(None, None, None)
    assert blas_threads() == before
