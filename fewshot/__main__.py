"""Command line: `python -m fewshot classify INPUT --labels-file LABELS [--examples LABELED]
[--save-labeler LAB.zip]`, `python -m fewshot apply LAB.zip INPUT [--engine local|spark]` and
`python -m fewshot projects copy NAME --to URL`.

For scripts and batch jobs. It goes through the same Workspace as the app, so a file gets the same
labels here as on screen. Progress goes to stderr and the table to stdout (or --output), so the
output can be piped; every user mistake ends in one `error: ...` line and exit code 2.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fewshot import FewshotError
from fewshot.apply import apply_file, embedder_for
from fewshot.database import is_postgres, shown
from fewshot.encoders import print_progress
from fewshot.ingest import MAX_DOC_CHARS, TXT_MODES, read_path, read_path_rows
from fewshot.labeler import Labeler
from fewshot.labelspace import LabelSpace
from fewshot.store import copy_project
from fewshot.views import DEFAULT_VIEW, VIEWS, Embedder
from fewshot.workspace import Workspace


def read_labels(path: Path) -> LabelSpace:
    """LABELS: one label per line, optionally `name: description`."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise FewshotError(f"Labels file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FewshotError(f"Could not read labels file {path}: {exc}") from None
    try:
        return LabelSpace.parse(lines)
    except FewshotError as exc:
        raise FewshotError(f"{path}: {exc}") from None


def read_examples(path: Path, labels: LabelSpace) -> tuple[list[str], list[str]]:
    """LABELED: a table with text and label columns; labels must be among LABELS."""
    frame = read_path(path, text_column="text")
    if "label" not in frame.columns:
        raise FewshotError(f"{path} has no 'label' column; the examples need text and label")
    if frame["label"].isna().any():
        raise FewshotError(f"{path}: row {int(frame['label'].isna().argmax()) + 1} has no label")
    try:
        positions = labels.index(frame["label"].tolist())
    except FewshotError as exc:
        raise FewshotError(f"{path}: {exc}") from None
    return frame["text"].tolist(), [labels.names[i] for i in positions]


def classify(args: argparse.Namespace) -> None:
    """Zero-shot without examples; with them, few-shot on the examples plus the input as corpus.

    The examples join the corpus as labeled documents (they are documents like any other). Every
    input row is written out, in order: a repeated text is embedded once and gets its first
    prediction; an empty one gets empty cells.
    """
    for target in (args.output, args.save_labeler):
        if target and not target.parent.is_dir():
            raise FewshotError(f"Output folder not found: {target.parent}")
    labels = read_labels(args.labels_file)
    frame = read_path_rows(args.input, text_column=args.text_column, txt_mode=args.txt_mode)
    examples, example_labels = read_examples(args.examples, labels) if args.examples else ([], [])
    rows = [text.strip()[:MAX_DOC_CHARS] for text in frame["text"].tolist()]
    texts = list(dict.fromkeys(text for text in rows if text))
    if not texts:
        raise FewshotError(f"{args.input} has no text to classify")
    mode = f"few-shot on {len(examples)} examples" if examples else "zero-shot"
    print(
        f"{len(rows):,} rows ({len(texts):,} distinct texts), {len(labels)} labels, {mode}",
        file=sys.stderr,
    )
    embedder = Embedder.default(progress=print_progress("Zmap vocabulary (once)"))
    workspace = Workspace(texts + examples, embedder, progress=print_progress("embedding"))
    human = {len(texts) + i: label for i, label in enumerate(example_labels)}
    prediction = workspace.predict(labels, human, view=args.view, progress=print_progress("fits"))
    used = "transductive" if prediction.classifier.transductive_used_ else "inductive"
    lexical = prediction.lexical
    words = f"; word n-grams weight {lexical.scale_:.2f}" if lexical is not None else ""
    print(f"view {args.view}: {used} ({prediction.classifier.selection_}{words})", file=sys.stderr)
    accuracy, per_label = prediction.estimates()
    counts = ", ".join(
        f"{name} {e.value:,.0f} ({e.low:,.0f}-{e.high:,.0f})"
        for name, e in zip(labels.names, per_label)
    )
    print(
        f"estimated accuracy {accuracy.value:.1%} ({accuracy.low:.1%}-{accuracy.high:.1%}); "
        f"documents per label: {counts}; scores calibrated {prediction.calibration}",
        file=sys.stderr,
    )
    columns = ["predicted_label", "score", *(f"score_{name}" for name in labels.names)]
    scores = prediction.table(workspace.texts)[columns].iloc[: len(texts)].set_axis(texts)
    scores = scores.reindex(rows).set_axis(frame.index)  # empty rows: no text, no prediction
    # An input that is an earlier output gets fresh predictions, not duplicate columns.
    out = pd.concat([frame.drop(columns=columns, errors="ignore"), scores], axis=1)
    out.to_csv(args.output or sys.stdout, index=False)
    if args.output:
        print(f"wrote {len(out):,} rows to {args.output}", file=sys.stderr)
    if args.save_labeler:
        digest = hashlib.blake2b(args.labels_file.read_bytes(), digest_size=6).hexdigest()
        workspace.labeler(prediction, label_set=f"{args.labels_file.name}:{digest}").save(
            args.save_labeler
        )
        print(f"saved the labeler to {args.save_labeler}", file=sys.stderr)


def apply(args: argparse.Namespace) -> None:
    """A labeler file on new documents: CSV locally, Parquet through Spark."""
    labeler = Labeler.load(args.labeler)
    if args.engine == "spark":
        if not args.output:
            raise FewshotError("--engine spark writes Parquet: give --output FOLDER")
        from fewshot.spark import apply_path  # pyspark only where Spark is used

        rows = apply_path(args.labeler, args.input, args.output, args.text_column, args.master)
        print(f"wrote {rows:,} rows to {args.output}", file=sys.stderr)
        return
    if args.master:
        raise FewshotError("--master is for --engine spark")
    output = Path(args.output) if args.output else None
    if output and not output.parent.is_dir():
        raise FewshotError(f"Output folder not found: {output.parent}")
    embedder = embedder_for(labeler, progress=print_progress("Zmap vocabulary (once)"))
    names = ", ".join(labeler.labels.names)
    print(f"labeler: {len(labeler.labels)} labels ({names}), view {labeler.view}", file=sys.stderr)
    rows = apply_file(
        labeler, embedder, Path(args.input), output, args.text_column, args.txt_mode,
        progress=print_progress("labeling"),
    )  # fmt: skip
    print(f"wrote {rows:,} rows to {args.output or 'stdout'}", file=sys.stderr)


def projects(args: argparse.Namespace) -> None:
    """`projects copy`: one project with everything it holds into another store."""
    counts = copy_project(args.name, args.to)
    where = shown(args.to) if is_postgres(args.to) else args.to
    nouns = {
        "document": ("document", "documents"), "label": ("label", "labels"),
        "batch": ("batch", "batches"), "annotation": ("annotation event", "annotation events"),
        "label_change": ("label change", "label changes"), "setting": ("setting", "settings"),
        "review": ("resolution", "resolutions"),
    }  # fmt: skip
    copied = ", ".join(f"{n:,} {nouns[table][n != 1]}" for table, n in counts.items())
    print(f"copied project '{args.name}' to {where}: {copied}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fewshot", description="Few-shot text labeling."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser(
        "classify",
        help="label every document of a file",
        description="Label every document of INPUT with one of LABELS; the table goes to stdout "
        "or --output, with predicted_label, score and a score_<label> column per label.",
    )
    sub.add_argument("input", type=Path, metavar="INPUT", help=".txt, .csv, .tsv, .jsonl or .json")
    sub.add_argument(
        "--labels-file",
        type=Path,
        required=True,
        metavar="LABELS",
        help="one label per line, optionally 'name: description'",
    )
    sub.add_argument("--text-column", help="column holding the text (default: guessed)")
    sub.add_argument(
        "--txt-mode", choices=TXT_MODES, default="lines", help=".txt: a document per line or file"
    )
    sub.add_argument(
        "--examples",
        type=Path,
        metavar="LABELED",
        help="labeled examples (columns text,label) for few-shot; default: zero-shot",
    )
    sub.add_argument("--view", choices=list(VIEWS), default=DEFAULT_VIEW)
    sub.add_argument("--output", type=Path, metavar="OUT.csv", help="default: stdout")
    sub.add_argument(
        "--save-labeler",
        type=Path,
        metavar="LAB.zip",
        help="also save the fitted labeler, to label new files with `apply`",
    )
    sub = commands.add_parser(
        "apply",
        help="label new documents with a saved labeler",
        description="Label every row of INPUT with a labeler file (from the Export page or "
        "classify --save-labeler), batch by batch; the input's columns, then predicted_label, "
        "score and a score_<label> column per label.",
    )
    sub.add_argument("labeler", type=Path, metavar="LAB.zip")
    # Strings, not Paths: Spark reads URLs (s3a://bucket/...), which a Path would fold.
    sub.add_argument("input", metavar="INPUT", help=".txt, .csv, .tsv, .jsonl, .json or Parquet")
    sub.add_argument("--text-column", help="column holding the text (default: guessed)")
    sub.add_argument(
        "--txt-mode", choices=TXT_MODES, default="lines", help=".txt: a document per line or file"
    )
    sub.add_argument(
        "--output", metavar="OUT", help="CSV (default: stdout); a Parquet folder or URL for Spark"
    )
    sub.add_argument("--engine", choices=("local", "spark"), default="local")
    sub.add_argument("--master", metavar="URL", help="Spark master (default: a local session)")
    sub = commands.add_parser("projects", help="move projects between stores")
    actions = sub.add_subparsers(dest="action", required=True)
    sub = actions.add_parser(
        "copy",
        help="copy a project to another store",
        description="Copy the project NAME from this store (FEWSHOT_DATABASE_URL, else the data "
        "directory) to another, with its documents, labels, batches, annotations, label changes "
        "and settings; a project of that name there is refused, never overwritten.",
    )
    sub.add_argument("name", metavar="NAME")
    sub.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="postgresql://user:password@host/database, sqlite:///path/NAME.sqlite, a .sqlite "
        "file, or a folder of projects",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        {"classify": classify, "apply": apply, "projects": projects}[args.command](args)
    except (FewshotError, OSError) as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
