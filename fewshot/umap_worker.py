"""UMAP fits in a process of their own: `python -m fewshot.umap_worker`, started and fed by
`fewshot.projection`.

numba compiles (20-75 s, once per process) and runs here, so the app's threads never wait on the
interpreter lock for it. One request per line on stdin, as JSON: the input and output `.npy`
files, the UMAP parameters and a file for the progress ("epochs-done epochs"); one reply per line,
"ok" or the error, on the original stdout. The process ends when its stdin does (the app exits)
and, mid-fit, within a second of the app's end, however it ended.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

from fewshot.numeric import lower_priority


class _Epochs:
    """A file for umap's tqdm bar (drawn as "done total"): writes each update to path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, text: str) -> None:
        parts = text.split()
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            self.path.write_text(" ".join(parts))

    def flush(self) -> None:
        pass


def fit_umap(
    x: np.ndarray, n_neighbors: int, min_dist: float, random_state: int, report: Path
) -> np.ndarray:
    """(n, 2) coordinates; report gets the optimisation's epochs, after the neighbour search."""
    import umap  # imported here: the import alone compiles numba code for seconds

    bar = {"file": _Epochs(report), "bar_format": "{n} {total}", "mininterval": 0.5}
    model = umap.UMAP(
        tqdm_kwds={**bar, "disable": False},  # umap would disable the bar unless verbose
        n_neighbors=min(n_neighbors, len(x) - 1),
        min_dist=min_dist,
        metric="cosine",
        random_state=random_state,
        n_jobs=1,  # random_state forces one job anyway; saying so avoids umap's warning
        low_memory=True,
        # Below 4,096 points umap would switch to exact neighbours, a second code path for
        # numba to compile (as long again); one path means a warm-up compiles all a fit needs.
        force_approximation_algorithm=True,
    )
    return np.asarray(model.fit_transform(x), dtype=np.float32)


def _end_with(parent: int) -> None:
    """Exit once the app that started this process is gone (killed, it closes no pipe)."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def main() -> None:
    threading.Thread(target=_end_with, args=(os.getppid(),), daemon=True).start()
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # what umap or numba print goes to stderr, not among the replies
    lower_priority()  # the app's pages come first
    for line in sys.stdin:
        request = json.loads(line)
        try:
            x = np.load(request["x"], allow_pickle=False)
            embedding = fit_umap(x, *request["params"], Path(request["report"]))
            np.save(request["out"], embedding)
            reply = "ok"
        except Exception as exc:  # noqa: BLE001 - reported to the app, which shows it
            reply = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        replies.write(reply + "\n")


if __name__ == "__main__":
    main()
