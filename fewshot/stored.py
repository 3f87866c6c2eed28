"""What costs a corpus seconds to compute and depends on nothing else (its neighbour graph, its
n-gram matrix), kept on disk under data_dir()/corpora: a restarted app, another worker or the next
command reads it in a fraction of a second instead of computing it again (at 100,000 documents, a
neighbour graph is some 20 s and the n-gram matrix 30 s). Plain `.npz` files, written atomically;
a damaged one is computed again. The least recently read files beyond KEPT are removed.
"""

from __future__ import annotations

import hashlib
import os
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fewshot import config

KEPT = 64  # files; a graph at 100,000 documents is 4 MB, an n-gram matrix 100-200 MB
Arrays = dict[str, np.ndarray]


def write_atomic(target: Path, write: Callable[[Path], None]) -> None:
    """write() a temporary file beside target, then rename it: a killed write leaves nothing.

    The name is this process's and thread's own, so two processes writing at once do not write
    into one file; whichever renames last wins, and both wrote the same content.
    """
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def path_for(key: tuple, what: str) -> Path:
    digest = hashlib.blake2b(repr((key, what)).encode(), digest_size=12).hexdigest()
    return config.data_dir() / "corpora" / f"{what}-{digest}.npz"


def stored(key: tuple, what: str, compute: Callable[[], Arrays]) -> Arrays:
    """compute()'s arrays for (key, what), read from disk when an earlier call wrote them."""
    path = path_for(key, what)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        os.utime(path)  # recently read: kept by the pruning
        return arrays
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        pass  # not written yet, or damaged: computed (again)
    arrays = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: _save(tmp, arrays))
    _prune(path.parent)
    return arrays


def _save(path: Path, arrays: Arrays) -> None:
    with open(path, "wb") as fh:  # a file object: np.savez would append ".npz" to a path
        np.savez(fh, **arrays)


def _prune(folder: Path) -> None:
    def last_read(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except FileNotFoundError:  # another process pruned it just now
            return 0.0

    for old in sorted(folder.glob("*.npz"), key=last_read, reverse=True)[KEPT:]:
        old.unlink(missing_ok=True)
