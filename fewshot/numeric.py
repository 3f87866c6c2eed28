"""Small numeric helpers every model shares: unit rows, softmax, agreement, array and corpus identity, the
CPUs at hand, background threads' priority, and one BLAS thread for the many small matrix products
of a fit."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator, Sequence

import numpy as np
from threadpoolctl import threadpool_limits


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def cohen_kappa(a: np.ndarray, b: np.ndarray, n_classes: int) -> float:
    """Agreement beyond chance between two labelings of the same documents."""
    observed = float(np.mean(a == b))
    pa = np.bincount(a, minlength=n_classes) / len(a)
    pb = np.bincount(b, minlength=n_classes) / len(b)
    expected = float(pa @ pb)
    return 1.0 if expected >= 1.0 else (observed - expected) / (1.0 - expected)


# The corpus graph: every document's nearest neighbours by cosine. It depends on the corpus only,
# not on the labels, so it is computed once per corpus and reused by every refit (a small cache keyed


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity): under `taskset` two benchmarks can share a
    machine, one core each, without their threads fighting over both."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def lower_priority(niceness: int = 19) -> None:
    """Let the calling thread yield the CPU to the app's other threads (Linux keeps a nice value
    per thread): background work such as a UMAP fit or a cross-validation then never slows the
    page a user waits for, and still uses whatever the machine has spare. Threads it starts (numba's
    workers) inherit it. Elsewhere a no-op."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)


_BLAS_LOCK = threading.Lock()
_BLAS_USERS = 0
_BLAS_LIMIT: threadpool_limits | None = None


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Fits and predictions run BLAS on one thread. Their matrix products are small and many: on
    two cores, a second BLAS thread contending with anything else the machine does (the app's
    other work) was seen to make a refit five to ten times slower, never much faster. The limit is
    process-wide, so it is counted: the first fit to start sets it, the last one to end lifts it,
    whichever sessions of the app they belong to."""
    global _BLAS_USERS, _BLAS_LIMIT
    with _BLAS_LOCK:
        if _BLAS_USERS == 0:
            _BLAS_LIMIT = threadpool_limits(limits=1, user_api="blas")
        _BLAS_USERS += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS -= 1
            if _BLAS_USERS == 0 and _BLAS_LIMIT is not None:
                _BLAS_LIMIT.restore_original_limits()
                _BLAS_LIMIT = None


def text_fingerprint(texts: Sequence[str]) -> str:
    """Identity of a corpus's texts, in order: what is cached per corpus is keyed by it."""
    joined = "\0".join(texts).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(joined, digest_size=16).hexdigest()


def fingerprint(x: np.ndarray) -> tuple:
    """Identity of an array's content: shape, dtype and a hash of its bytes."""
    x = np.ascontiguousarray(x)
    digest = hashlib.sha1(memoryview(x).cast("B"), usedforsecurity=False).digest()
    return x.shape, x.dtype.str, digest
