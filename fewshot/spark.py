"""A labeler over a Spark DataFrame: `label_dataframe` for Spark code, `apply_path` for
`python -m fewshot apply --engine spark` (Parquet or CSV in, Parquet out).

The labeler file travels with the job (`SparkSession.addArtifacts(file=True)`, which is
`SparkContext.addFile` on classic Spark and works over Spark Connect too); each Python worker
loads it and the models once, then labels its rows with the same `label_frame` as the local
engine, a few hundred rows at a time, so both engines give the same labels.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pandas as pd
from pyspark import SparkFiles
from pyspark.errors import AnalysisException, PySparkRuntimeError, PythonException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

from fewshot import FewshotError
from fewshot.apply import BATCH_ROWS, embedder_for, label_frame
from fewshot.ingest import guess_text_column, pick_text_column
from fewshot.labeler import Labeler
from fewshot.views import Embedder

# pyspark 4.3 warns on every conversion under pandas 3; what this module converts works
# (tests/test_spark.py checks Spark's labels against the local engine's).
warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)

APP_NAME = "fewshot apply"
_SAMPLE_ROWS = 1000  # rows the text column is guessed from, as the local engine's first batch
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")  # hdfs://, s3a://, file:/; not a drive's C:
_ANALYSIS_ERRORS = {  # Spark's refusals a user can cause, said as the local engine says them
    "PATH_NOT_FOUND": "File not found: {input}",
    "PATH_ALREADY_EXISTS": "{output} already exists; give a new output folder",
}


def label_dataframe(
    df: DataFrame,
    labeler_path: str | Path,
    text_column: str | None = None,
    batch_rows: int = BATCH_ROWS,
) -> DataFrame:
    """df's columns (earlier label columns dropped), then predicted_label, score and a
    score_<label> column per label; lazy, like any transformation."""
    labeler = Labeler.load(labeler_path)
    spark = df.sparkSession
    column = _text_column(df, text_column, "The DataFrame")
    name = _ship(spark, Path(labeler_path))
    cpus = int(spark.conf.get("spark.task.cpus", "1") or 1)
    kept = [f for f in df.schema.fields if f.name not in labeler.output_columns]
    scores = [StructField(c, DoubleType()) for c in labeler.output_columns[1:]]
    schema = StructType([*kept, StructField("predicted_label", StringType()), *scores])
    return df.mapInPandas(functools.partial(_label_batches, name, column, cpus, batch_rows), schema)


def apply_path(
    labeler_path: str | Path,
    input_path: str | Path,
    output: str | Path,
    text_column: str | None,
    master: str | None,
) -> int:
    """Label a Parquet file or folder, or a CSV, into a Parquet folder; rows written. Input and
    output are local paths or URLs Spark reads (hdfs://, s3a://); the labeler is a local file.

    An active session is used as it is; otherwise one is started (local[*] unless master is
    given, or spark-submit or SPARK_REMOTE names one) and stopped at the end.
    """
    source, target = _location(input_path), _location(output)
    if not _URL.match(source) and not Path(source).exists():
        raise FewshotError(f"File not found: {source}")
    if not _URL.match(target):
        folder = Path(target)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # made for the output: Spark refuses any existing path
        elif folder.exists():
            raise FewshotError(
                f"{target} already exists; give a new output folder (nothing is overwritten)"
            )
    # Checked once here: a labeler for other models is one clear error, not one per task.
    embedder_for(Labeler.load(labeler_path))
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run this environment
    spark, owned = get_session(master)
    try:
        df = _read(spark, source)
        column = _text_column(df, text_column, PurePosixPath(source).name)
        labeled = label_dataframe(_spread(spark, df), labeler_path, column)
        labeled.write.mode("errorifexists").parquet(target)
        return spark.read.parquet(target).count()
    except AnalysisException as exc:
        message = _ANALYSIS_ERRORS.get(exc.getCondition() or "")
        if message is None:
            raise
        raise FewshotError(message.format(input=source, output=target)) from None
    except PythonException as exc:
        found = re.search(r"FewshotError: (.*)", str(exc))
        if found is None:
            raise
        raise FewshotError(found.group(1)) from None
    finally:
        if owned:
            spark.stop()


def get_session(master: str | None) -> tuple[SparkSession, bool]:
    """The active session (not ours to stop: False), or a new one (True)."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    builder = SparkSession.builder.appName(APP_NAME)
    if master and master.startswith("sc://"):
        builder = builder.remote(master)
    elif master:
        builder = builder.master(master)
    elif "PYSPARK_GATEWAY_PORT" not in os.environ and "SPARK_REMOTE" not in os.environ:
        builder = builder.master("local[*]")  # spark-submit and Spark Connect bring their own
    try:
        return builder.getOrCreate(), True
    except PySparkRuntimeError as exc:
        if exc.getCondition() != "JAVA_GATEWAY_EXITED":
            raise
        raise FewshotError(
            "Spark's Java process did not start: Spark needs Java 17 (`make java` installs it; "
            "or set JAVA_HOME)"
        ) from None


def _location(path: str | Path) -> str:
    """A URL as given (a Path would fold s3a://bucket into s3a:/bucket), a local path with ~."""
    text = str(path)
    return text if _URL.match(text) else str(Path(text).expanduser())


def _read(spark: SparkSession, source: str) -> DataFrame:
    """CSV by its suffix, anything else as Parquet: a folder of parts has no suffix, and a
    remote one cannot be looked at from here."""
    suffix = PurePosixPath(source).suffix.lower()
    if suffix == ".csv":
        return spark.read.csv(source, header=True, multiLine=True, escape='"')
    if suffix != ".parquet" and Path(source).is_file():
        raise FewshotError(
            f"{Path(source).name}: Spark reads Parquet (a file or a folder) or CSV; use "
            "--engine local for this file"
        )
    return spark.read.parquet(source)


def _text_column(df: DataFrame, text_column: str | None, name: str) -> str:
    """The given column (matched as the local engine does), or one guessed from a sample."""
    if text_column is not None:
        return pick_text_column(name, pd.DataFrame(columns=df.columns), text_column)
    sample = df.limit(_SAMPLE_ROWS).toPandas()
    if sample.empty:
        raise FewshotError(f"{name} has no rows to label")
    return guess_text_column(sample)


def _ship(spark: SparkSession, path: Path) -> str:
    """The labeler as a file named by its content, added to the session: two labelers both
    called lab.zip do not collide, and the workers' cache is keyed by what they load."""
    data = path.read_bytes()
    name = f"fewshot-labeler-{hashlib.blake2b(data, digest_size=8).hexdigest()}.zip"
    copy = Path(tempfile.gettempdir()) / "fewshot-spark" / name
    if not copy.exists():
        copy.parent.mkdir(parents=True, exist_ok=True)
        partial = copy.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(path, partial)
        partial.replace(copy)
    spark.addArtifacts(str(copy), file=True)
    return name


def _spread(spark: SparkSession, df: DataFrame) -> DataFrame:
    """At least a partition per core: a CSV read with multiLine is one partition, so one task
    would embed everything. Rows then lose their order (keep an id column). Spark Connect has
    no RDDs to count partitions: its input is left as it is."""
    if type(spark).__module__.startswith("pyspark.sql.connect"):
        return df
    cores = spark.sparkContext.defaultParallelism
    return df.repartition(cores) if df.rdd.getNumPartitions() < cores else df


@functools.cache
def _model(file_name: str, cpus: int) -> tuple[Labeler, Embedder]:
    """Per Python worker, once per labeler file: Spark reuses workers between tasks."""
    labeler = Labeler.load(SparkFiles.get(file_name))
    return labeler, embedder_for(labeler, threads=cpus)


def _label_batches(
    file_name: str, column: str, cpus: int, rows: int, batches: Iterator[pd.DataFrame]
) -> Iterator[pd.DataFrame]:
    """mapInPandas' function: Arrow batches (10,000 rows by default) re-cut to `rows`, the
    encoder (torch or OpenVINO) on the task's cores only, so tasks side by side do not fight
    over threads."""
    labeler, embedder = _model(file_name, cpus)
    for batch in batches:
        for start in range(0, len(batch), rows):
            yield label_frame(labeler, embedder, batch.iloc[start : start + rows], column)
