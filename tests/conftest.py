"""Shared fixtures: the real packaged models, loaded once per test session, on small inputs."""

import itertools
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd
import psycopg
import pytest

# Before any fewshot import: a fresh data directory per run, and a small Zmap vocabulary.
os.environ["FEWSHOT_DATA_DIR"] = tempfile.mkdtemp(prefix="fewshot-test-")
os.environ.setdefault("FEWSHOT_ZMAP_WORDS", "2000")
os.environ.pop("FEWSHOT_DATABASE_URL", None)  # tests choose their store: SQLite unless they ask

from fewshot import config  # noqa: E402
from fewshot.encoders import EmbeddingCache, SentenceEncoder, load_word_vectors  # noqa: E402
from fewshot.views import Embedder, fit_zmap  # noqa: E402
from tests.postgres_server import PostgresServer, binaries  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def encoder() -> SentenceEncoder:
    return SentenceEncoder(cache=EmbeddingCache())


@pytest.fixture(scope="session")
def word_vectors():
    return load_word_vectors()


@pytest.fixture(scope="session")
def embedder(encoder, word_vectors) -> Embedder:
    return Embedder(encoder, word_vectors, fit_zmap(encoder, word_vectors))


@pytest.fixture(scope="session")
def ag_sample() -> pd.DataFrame:
    """40 AG News test rows, 10 per class, from the shared data (never shipped in the repo)."""
    frame = pd.read_csv(config.shared_data_dir() / "ag_news" / "normalized_test.csv")
    # groupby().sample, not apply: pandas 3's apply drops the grouping column.
    sample = frame.groupby("label").sample(10, random_state=0)
    return sample.reset_index(drop=True)[["text", "label"]]


@pytest.fixture
def app_data_dir(monkeypatch, tmp_path, embedder):
    """A fresh data directory for a test of the app, with the session's Zmap copied in (as after
    a first start), so the app's own embedder does not embed the Zmap vocabulary again; no
    password asked."""
    shutil.copytree(config.data_dir() / "maps", tmp_path / "maps")
    monkeypatch.setenv("FEWSHOT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FEWSHOT_PASSWORD", raising=False)
    return tmp_path


@pytest.fixture(autouse=True)
def no_background_work_left():
    """After a test that ran the app, wait for the cross-validation it started in the background
    (`pages.common`), so no fit of one test runs on into the next."""
    yield
    common = sys.modules.get("pages.common")
    if common is not None:
        common._background().submit(lambda: None).result(timeout=300)


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server for the session (about a second to start). Missing binaries
    fail the tests that need it in CI, where `make test` installs them, and skip them elsewhere."""
    bin_dir = binaries()
    if bin_dir is None:
        message = "PostgreSQL not found under /usr/lib/postgresql/*/bin: run `make postgres`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(bin_dir).start()
    yield server
    server.stop()


_databases = itertools.count()


@pytest.fixture
def postgres_url(postgres_server):
    """An empty database of its own for one test, dropped afterwards (with its connections)."""
    name = f"test_{next(_databases)}"
    with psycopg.connect(postgres_server.url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield postgres_server.url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(postgres_server.url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """Where a test's projects live: a folder of SQLite files, or an empty PostgreSQL database."""
    return tmp_path if request.param == "sqlite" else request.getfixturevalue("postgres_url")
