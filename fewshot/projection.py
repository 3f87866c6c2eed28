"""2-D layouts of embeddings for the corpus map: PCA at once, UMAP when its background fit is done.

UMAP's first fit in a process pays 20-75 s of numba compilation, so a page never waits for it: a
`LayoutCache` hands out the PCA layout (one SVD, a fraction of a second) and fits UMAP in the
background, keyed by a fingerprint of the embeddings, and keeps finished layouts as `.npz` in
data_dir()/layouts so a restart does not fit again. UMAP runs in a worker process of its own,
started by `warm_up()` at app start to pay the compilation early: in a thread, numba's compiling
held the interpreter lock, and the first page a user opened took twice as long (a Data page at
100,000 documents: 15 s instead of 8).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from fewshot import FewshotError, config
from fewshot.encoders import Progress, time_left
from fewshot.numeric import lower_priority, normalize, one_blas_thread
from fewshot.stored import write_atomic

METHODS = ("pca", "umap")
_BLOCK = 1024  # rows placed at once by a UMAP transform
MIN_UMAP_POINTS = 10  # below this UMAP has no neighbourhoods to keep: PCA is the layout
UMAP_PARAMS = {"n_neighbors": 15, "min_dist": 0.1, "random_state": 0}

_WARM_UP_LOCK = threading.Lock()
_warm_up: Future | None = None
_POLL_S = 0.5  # how often a waiting fit reads the worker's progress


def pca_layout(x: np.ndarray) -> np.ndarray:
    """(n, 2) coordinates on the two principal axes; instant, the placeholder while UMAP runs."""
    return Layout("pca").fit(x).embedding_


def plot_sample(n: int, limit: int | None = None, seed: int = 0) -> np.ndarray:
    """Sorted row positions to lay out: all of them up to limit (config.plot_points()), else a
    fixed random subset.

    Depends only on (n, limit, seed), so the same corpus always shows (and caches) the same points.
    """
    limit = limit or config.plot_points()
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def drawn(
    layout: Layout, x: np.ndarray, sample: np.ndarray, always: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions and (n, 2) coordinates to draw: the sample the layout was fitted on, plus the
    `always` rows outside it (human-labeled documents), placed by layout.transform. The layout
    stays that of the fixed sample, so a new label costs no new UMAP fit."""
    extra = np.setdiff1d(np.asarray(always, dtype=np.int64), sample)
    rows = np.concatenate([sample, extra])
    return rows, np.concatenate([layout.embedding_, layout.transform(x[extra])])


def fingerprint(x: np.ndarray, method: str = "umap", **params: object) -> str:
    """Content hash of the embeddings and the layout parameters: the cache key of a layout."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{method}:{sorted(params.items())}:{x.shape}".encode())
    digest.update(x.tobytes())
    return digest.hexdigest()


def _read_epochs(path: Path) -> tuple[int, int] | None:
    try:
        done, total = map(int, path.read_text().split())
        return done, total
    except (OSError, ValueError):  # not written yet, or caught mid-write
        return None


class UmapProcess:
    """The process UMAP fits run in (`fewshot.umap_worker`), one fit at a time (two cores, and
    numba compiles once), started on first use and again if it died. Threads may share it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None

    def fit(
        self, x: np.ndarray, params: tuple[int, float, int], progress: Progress | None = None
    ) -> np.ndarray:
        """UMAP coordinates of x, waited for; progress(done, total) as the worker reports."""
        with self._lock, tempfile.TemporaryDirectory(prefix="fewshot-umap-") as tmp:
            folder = Path(tmp)
            np.save(folder / "x.npy", np.asarray(x, dtype=np.float32))
            request = {
                "x": str(folder / "x.npy"),
                "out": str(folder / "out.npy"),
                "params": list(params),
                "report": str(folder / "epochs"),
            }
            process = self._started()
            try:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
            except BrokenPipeError:
                process.wait()
            reply = self._reply(process, folder / "epochs", progress)
            if reply != "ok":
                raise FewshotError(f"UMAP failed: {reply}")
            return np.load(folder / "out.npy", allow_pickle=False)

    def _started(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "fewshot.umap_worker"],
                cwd=Path(__file__).resolve().parents[1],  # where `fewshot` imports from
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
            atexit.register(self._process.kill)  # mid-fit, it would run on after the app ends
        return self._process

    @staticmethod
    def _reply(process: subprocess.Popen, epochs: Path, progress: Progress | None) -> str:
        while True:
            ready, _, _ = select.select([process.stdout], [], [], _POLL_S)
            if progress is not None and (seen := _read_epochs(epochs)) is not None:
                progress(*seen)
            if ready:
                line = process.stdout.readline()
                return line.strip() if line else f"the UMAP process ended ({process.wait()})"


_WORKER = UmapProcess()


class Layout:
    """A 2-D layout fitted on document embeddings, with `transform` to place other points (labels).

    PCA places new points by projection. UMAP places them at the similarity-weighted mean of their
    nearest fitted documents, which is where umap's own `transform` starts its optimisation: it
    needs only the fitted coordinates, so it works as well on a layout loaded from disk (a umap
    model cannot be saved without pickle) and costs no extra numba compilation.
    """

    def __init__(
        self,
        method: str = "pca",
        n_neighbors: int = UMAP_PARAMS["n_neighbors"],
        min_dist: float = UMAP_PARAMS["min_dist"],
        random_state: int = UMAP_PARAMS["random_state"],
    ) -> None:
        if method not in METHODS:
            raise FewshotError(f"Unknown layout '{method}'; choose one of {', '.join(METHODS)}.")
        self.method = method
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.random_state = random_state

    def fit(self, x: np.ndarray, progress: Progress | None = None) -> Layout:
        """progress(done, total): UMAP's optimisation epochs (PCA is instant)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or len(x) == 0:
            raise FewshotError("A layout needs a non-empty 2-D array of embeddings.")
        if self.method == "umap":
            if len(x) < MIN_UMAP_POINTS:
                raise FewshotError(f"UMAP needs at least {MIN_UMAP_POINTS} documents; use PCA.")
            params = (self.n_neighbors, self.min_dist, self.random_state)
            return self.with_embedding(x, _WORKER.fit(x, params, progress))
        self.n_features_in_ = x.shape[1]
        self.mean_ = x.mean(axis=0)
        # The principal axes from the (dim x dim) scatter matrix, on one BLAS thread: an SVD of
        # the (n x dim) points took 1-9 s for 5,000 points on two busy cores, this takes 0.1 s.
        with one_blas_thread():
            centred = x - self.mean_
            _, vectors = np.linalg.eigh((centred.T @ centred).astype(np.float64))
        components = vectors[:, ::-1][:, : min(2, len(x))].T.astype(np.float32)
        components = np.vstack(
            [components, np.zeros((2 - len(components), x.shape[1]), np.float32)]
        )
        # Sign of each axis fixed by its largest loading, so the picture does not flip.
        signs = np.sign(components[np.arange(2), np.abs(components).argmax(axis=1)])
        self.components_ = components * np.where(signs == 0, 1, signs)[:, None]
        self.embedding_ = self.transform(x)
        return self

    def with_embedding(self, x: np.ndarray, embedding: np.ndarray) -> Layout:
        """This UMAP layout, fitted: coordinates computed earlier for x (e.g. read from disk)."""
        x = np.asarray(x, dtype=np.float32)
        self.n_features_in_ = x.shape[1]
        self.x_ = normalize(x)
        self.embedding_ = np.asarray(embedding, dtype=np.float32)
        return self

    def transform(self, y: np.ndarray) -> np.ndarray:
        """(m, 2) positions of new embeddings (same dimension as the fitted ones) in this layout."""
        y = np.asarray(y, dtype=np.float32)
        if y.ndim != 2 or y.shape[1] != self.n_features_in_:
            raise FewshotError(
                f"Expected embeddings of dimension {self.n_features_in_}, got shape {y.shape}."
            )
        if self.method == "pca":
            return ((y - self.mean_) @ self.components_.T).astype(np.float32)
        k = min(self.n_neighbors, len(self.x_))
        out = np.empty((len(y), 2), dtype=np.float32)
        for start in range(0, len(y), _BLOCK):  # blocks: the distances to every fitted point
            distance = 1.0 - normalize(y[start : start + _BLOCK]) @ self.x_.T
            nearest = np.argpartition(distance, k - 1, axis=1)[:, :k]
            d = np.take_along_axis(distance, nearest, axis=1)
            gap = d - d.min(axis=1, keepdims=True)
            weights = np.exp(-gap / np.maximum(gap.mean(axis=1, keepdims=True), 1e-6))
            weights /= weights.sum(axis=1, keepdims=True)
            out[start : start + len(d)] = np.einsum("mk,mkc->mc", weights, self.embedding_[nearest])
        return out


def _in_background(task: Callable[[], object]) -> Future:
    """Run task in a daemon thread (an unfinished fit must not hold up interpreter exit)."""
    future: Future = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        lower_priority()
        try:
            future.set_result(task())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the result
            future.set_exception(exc)

    threading.Thread(target=run, name="fewshot-layout", daemon=True).start()
    return future


def warm_up(n: int = 50, seed: int = 0) -> Future:
    """Start (once per process) a UMAP fit on n random points to pay numba's compilation early.

    Call it at app start; real fits queue behind it in the same worker, so nothing compiles
    twice.
    """
    global _warm_up
    with _WARM_UP_LOCK:
        if _warm_up is None:
            x = np.random.default_rng(seed).normal(size=(n, 16)).astype(np.float32)
            _warm_up = _in_background(lambda: Layout("umap").fit(x))
        return _warm_up


class LayoutCache:
    """UMAP layouts by embedding fingerprint: in memory, on disk, or being fitted in the background.

    `layout(x)` never waits for a fit: it returns the UMAP layout when there is one and otherwise
    starts the fit and returns PCA. Safe to share between threads (one instance per app process).
    """

    def __init__(
        self, directory: str | Path | None = None, keep: int = 8, **params: object
    ) -> None:
        self.directory = Path(directory) if directory else config.data_dir() / "layouts"
        self.params = {**UMAP_PARAMS, **params}
        self.keep = keep  # finished layouts held in memory; older ones are re-read from disk
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, Future] = OrderedDict()
        self._epochs: dict[str, tuple[float, int, int]] = {}  # per fit: start, epochs done, total

    def path(self, x: np.ndarray) -> Path:
        return self.directory / f"umap-{fingerprint(x, 'umap', **self.params)}.npz"

    def _job(self, x: np.ndarray, start: bool) -> Future | None:
        """The fit of x: done (in memory or read from disk), running, or started now if start."""
        path = self.path(x)
        with self._lock:
            job = self._jobs.get(path.name)
            if job is None:
                stored = self._read(path, x)
                if stored is not None:
                    job = Future()
                    job.set_result(stored)
                elif start:
                    job = _in_background(lambda: self._fit(path, x))
            if job is not None:
                self._jobs[path.name] = job
                self._jobs.move_to_end(path.name)
                done = [k for k, j in self._jobs.items() if j.done() and j is not job]
                for k in done[: max(0, len(self._jobs) - self.keep)]:
                    del self._jobs[k]
            return job

    def _read(self, path: Path, x: np.ndarray) -> Layout | None:
        """The stored layout of x, or None; a damaged or foreign file is removed to be refitted."""
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                embedding = np.asarray(data["embedding"], dtype=np.float32)
        except (OSError, ValueError, KeyError, EOFError):
            embedding = None
        if embedding is None or embedding.shape != (len(x), 2) or not np.isfinite(embedding).all():
            path.unlink(missing_ok=True)
            return None
        return Layout("umap", **self.params).with_embedding(x, embedding)

    def _fit(self, path: Path, x: np.ndarray) -> Layout:
        self._epochs.pop(path.name, None)

        def progress(done: int, total: int) -> None:
            started = self._epochs.get(path.name, (time.monotonic(),))[0]
            self._epochs[path.name] = (started, done, total)

        layout = Layout("umap", **self.params).fit(x, progress)
        path.parent.mkdir(parents=True, exist_ok=True)

        def write(tmp: Path) -> None:
            with tmp.open("wb") as handle:  # the key (file name) holds data and params
                np.savez(handle, embedding=layout.embedding_)

        write_atomic(path, write)
        return layout

    def layout(self, x: np.ndarray) -> Layout:
        """UMAP if it is ready, else PCA now (starting the UMAP fit if need be).

        Corpora below MIN_UMAP_POINTS get PCA for good; a failed fit too (status() says why).
        """
        if len(x) >= MIN_UMAP_POINTS:
            job = self._job(x, start=True)
            if job.done() and job.exception() is None:
                return job.result()
        return Layout("pca").fit(x)

    def status(self, x: np.ndarray) -> str:
        """'ready', 'computing', 'not started', 'too few points', or 'failed: <reason>'."""
        if len(x) < MIN_UMAP_POINTS:
            return "too few points"
        job = self._job(x, start=False)
        if job is None:
            return "not started"
        if not job.done():
            return "computing"
        error = job.exception()
        return "ready" if error is None else f"failed: {error}"

    def progress(self, x: np.ndarray) -> str:
        """How far a running fit of x is, for people: its phase, and the time left once known."""
        epochs = self._epochs.get(self.path(x).name)
        if epochs is None:
            return "finding each document's nearest neighbours"
        started, done, total = epochs
        return f"arranging the points, step {done:,} of {total:,}{time_left(started, done, total)}"

    def wait(self, x: np.ndarray, timeout: float | None = None) -> Layout:
        """Block until the UMAP layout of x is fitted (for scripts and tests); errors propagate."""
        return self._job(x, start=True).result(timeout=timeout)
