"""The project store's tables, their schema version, and the databases that hold them.

One set of tables and queries (SQLAlchemy Core) runs on SQLite and on PostgreSQL. SQLite keeps one
project per file, as it always has. PostgreSQL keeps many projects in one database, each in a
schema of its own (`fewshot_<id>`, the id from the table `fewshot_project`, which names them), so
the tables and every query are the same on both: only the schema they run in differs
(`schema_translate_map`). Each project records its schema version, and opening an older one
brings it up to date in place; a file from before versions were kept is version 1.

Writers queue: on SQLite a write transaction begins IMMEDIATE (it takes the file's write lock
first, waiting on the busy timeout), on PostgreSQL it first locks the project's row in
`fewshot_project`. So a read-then-write (undo, a double click) never interleaves with another
writer, and two people labeling one document both append an event.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    URL,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateSchema, DropSchema

from fewshot import FewshotError, config

PROJECT = "project"  # the schema a project's tables are declared in, mapped to the real one
BUSY_MS = 30_000  # how long a SQLite writer waits for the file's lock
_REGISTRY_LOCK = 0x66657773  # "fews": PostgreSQL advisory lock held while creating the registry

_tables = MetaData(schema=PROJECT)
document = Table(
    "document", _tables,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("text", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("meta", Text, nullable=False),
)  # fmt: skip
label = Table(
    "label", _tables,
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False, unique=True),
    Column("description", Text, nullable=False),
)  # fmt: skip
batch = Table(
    "batch", _tables,
    Column("id", Integer, primary_key=True),
    Column("user", Text, nullable=False),
    Column("at", Text, nullable=False),
    Column("undoes", Integer, ForeignKey(f"{PROJECT}.batch.id")),
    sqlite_autoincrement=True,
)  # fmt: skip
annotation = Table(
    "annotation", _tables,
    Column("seq", Integer, primary_key=True),
    Column("doc_id", Integer, nullable=False),
    Column("label", Text),
    Column("user", Text, nullable=False),
    Column("at", Text, nullable=False),
    Column("batch", Integer, ForeignKey(batch.c.id), nullable=False),
    Index("annotation_doc", "doc_id", "seq"),
    Index("annotation_batch", "batch"),
    sqlite_autoincrement=True,
)  # fmt: skip
setting = Table(
    "setting", _tables,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)  # fmt: skip
label_change = Table(
    "label_change", _tables,
    Column("batch", Integer, ForeignKey(batch.c.id), primary_key=True, autoincrement=False),
    Column("action", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("before", Text, nullable=False),
    Column("after", Text, nullable=False),
)  # fmt: skip
# Version 3: the batches that are a reviewer's resolution of a disagreement, not one more vote.
review = Table(
    "review", _tables,
    Column("batch", Integer, ForeignKey(batch.c.id), primary_key=True, autoincrement=False),
)  # fmt: skip
schema_version = Table("schema_version", _tables, Column("version", Integer, nullable=False))
# Version 2: undo and the label history look batches up by the batch they undo.
_BATCH_UNDOES = Index("batch_undoes", batch.c.undoes)
# What a project holds, parents before the rows that point at them (copy_rows inserts in order).
CONTENT = (document, label, batch, annotation, setting, label_change, review)

_registry = MetaData()
registry = Table(
    "fewshot_project", _registry,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
)  # fmt: skip

# Step n brings a project from version n - 1 to n; version 1 is the schema of the files made
# before versions were kept, which is the tables above without batch_undoes and review.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _BATCH_UNDOES.create, 3: review.create}
VERSION = max(MIGRATIONS)

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def is_postgres(location: str | Path) -> bool:
    """Whether location is a PostgreSQL URL (else a SQLite file or folder, or a sqlite: URL)."""
    return str(location).startswith(config.POSTGRES_URLS)


def shown(url: str) -> str:
    """A database URL fit for a message: its password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    """WAL (readers go on while one writes) and the busy timeout, on every connection; pysqlite's
    own BEGIN is switched off, as _sqlite_begin says BEGIN itself."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
    if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    """A write takes the lock up front (IMMEDIATE), so writers queue rather than deadlock."""
    write = connection.get_execution_options().get("fewshot_write")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _sqlite_engine(path: Path) -> Engine:
    """A fresh connection per operation (NullPool), as cheap as a file open, safe in any thread."""
    engine = create_engine(URL.create("sqlite", database=str(path)), poolclass=NullPool)
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _postgres_engine(url: str) -> Engine:
    """A pooled engine through psycopg 3, with the registry of projects created if missing."""
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"), pool_pre_ping=True)
    with engine.begin() as connection:
        connection.execute(select(func.pg_advisory_xact_lock(_REGISTRY_LOCK)))
        registry.create(connection, checkfirst=True)
    return engine


def _engine(key: str, make: Callable[[], Engine]) -> Engine:
    """One engine per database and process (its pool is shared by every thread)."""
    with _engines_lock:
        if key not in _engines:
            _engines[key] = make()
        return _engines[key]


@dataclass(frozen=True)
class Database:
    """Where one project's tables are: an engine, and on PostgreSQL the project's id and schema."""

    engine: Engine
    project_id: int | None = None

    @property
    def schema(self) -> str | None:
        return None if self.project_id is None else f"fewshot_{self.project_id}"

    @contextmanager
    def connect(self, write: bool = False) -> Iterator[Connection]:
        """One transaction, committed on exit; write=True queues behind the other writers."""
        with self.engine.connect() as connection:
            connection.execution_options(
                schema_translate_map={PROJECT: self.schema}, fewshot_write=write
            )
            with connection.begin():
                if write and self.project_id is not None:
                    lock = select(registry.c.id).where(registry.c.id == self.project_id)
                    connection.execute(lock.with_for_update())
                yield connection

    def upgrade(self) -> None:
        """Create the tables of a new project, or migrate an older one to VERSION."""
        with self.connect() as connection:
            if _version(connection, self.schema) == VERSION:
                return
        with self.connect(write=True) as connection:
            _migrate(connection, self.schema)


def _version(connection: Connection, schema: str | None) -> int:
    """The project's schema version: 0 when it has no tables, 1 when it predates versions."""
    names = inspect(connection).get_table_names(schema=schema)
    if "schema_version" in names:
        return connection.execute(select(schema_version.c.version)).scalar_one()
    return 1 if "document" in names else 0


def _migrate(connection: Connection, schema: str | None) -> None:
    found = _version(connection, schema)  # again, now that this writer holds the lock
    if found > VERSION:
        raise FewshotError(
            f"The project has schema version {found}, newer than this version of the app "
            f"knows ({VERSION}): update the app"
        )
    if found == 0:
        if schema is not None:
            connection.execute(CreateSchema(schema, if_not_exists=True))
        _tables.create_all(connection)
    else:
        for step in range(found + 1, VERSION + 1):
            MIGRATIONS[step](connection)
    schema_version.create(connection, checkfirst=True)
    connection.execute(delete(schema_version))
    connection.execute(insert(schema_version).values(version=VERSION))


def sqlite_database(path: Path, name: str, mode: str = "create") -> Database:
    """The project in the SQLite file path; mode "open" needs it to exist, "new" needs it not to."""
    if mode == "open" and not path.exists():
        raise FewshotError(f"No project named '{name}'")
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "new":
        try:
            path.touch(exist_ok=False)  # an empty file is an empty SQLite database
        except FileExistsError:
            raise FewshotError(f"Project '{name}' exists already in {path}") from None
    database = Database(_engine(str(path), lambda: _sqlite_engine(path)))
    database.upgrade()
    return database


def postgres_engine(url: str) -> Engine:
    return _engine(url, lambda: _postgres_engine(url))


def postgres_database(url: str, name: str, mode: str = "create") -> Database:
    """The project called name in the PostgreSQL database at url; modes as sqlite_database's."""
    engine = postgres_engine(url)
    with engine.begin() as connection:
        if mode != "open":
            add = pg_insert(registry).values(name=name).on_conflict_do_nothing()
            added = connection.execute(add.returning(registry.c.id)).first()
            if mode == "new" and added is None:
                raise FewshotError(f"Project '{name}' exists already in {shown(url)}")
        found = connection.execute(select(registry.c.id).where(registry.c.name == name))
        project_id = found.scalar()
    if project_id is None:
        raise FewshotError(f"No project named '{name}'")
    database = Database(engine, project_id)
    database.upgrade()
    return database


def postgres_names(url: str) -> list[str]:
    with postgres_engine(url).connect() as connection:
        return list(connection.execute(select(registry.c.name)).scalars())


def copy_rows(source: Database, target: Database) -> dict[str, int]:
    """Every row of every table from source into the (empty) target, ids kept, in one
    transaction; rows per table."""
    counts = {}
    with source.connect() as reading, target.connect(write=True) as writing:
        for table in CONTENT:
            rows = reading.execute(select(table).order_by(*table.primary_key.columns))
            rows = [row._asdict() for row in rows]
            if rows:
                writing.execute(insert(table), rows)
            counts[table.name] = len(rows)
        if writing.dialect.name == "postgresql":
            _advance_sequences(writing, target.schema)
    return counts


def discard(database: Database, path: Path | None = None) -> None:
    """Remove a project this process has just created (the target of a copy that failed), so
    the store is as it was: on PostgreSQL its schema and its name, on SQLite its file (path)."""
    if path is None:
        with database.engine.begin() as connection:
            connection.execute(DropSchema(database.schema, cascade=True, if_exists=True))
            connection.execute(delete(registry).where(registry.c.id == database.project_id))
        return
    with _engines_lock:
        _engines.pop(str(path), None)
    database.engine.dispose()
    for file in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
        file.unlink(missing_ok=True)


def _advance_sequences(connection: Connection, schema: str) -> None:
    """Rows inserted with their ids leave PostgreSQL's id sequences behind: move them past."""
    for column in (batch.c.id, annotation.c.seq):
        sequence = func.pg_get_serial_sequence(f"{schema}.{column.table.name}", column.name)
        after = func.coalesce(func.max(column), 0) + 1
        connection.execute(select(func.setval(sequence, after, False)).select_from(column.table))
