"""Export: every document with its human label and scores (CSV / JSONL), the labeler to take
elsewhere and new documents labeled with it, the fitted maps (.npz), and a check for map files
brought from elsewhere."""

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from fewshot import FewshotError, ingest
from fewshot.apply import label_batches, read_batches
from fewshot.export import (
    export_table,
    label_summary,
    map_from_bytes,
    map_to_bytes,
    to_csv_bytes,
    to_jsonl_bytes,
)
from fewshot.views import DEFAULT_VIEW, VIEWS
from pages import common

PREVIEW_ROWS = 200


def with_upload(upload, action):  # noqa: ANN001, ANN201 - an UploadedFile; whatever action returns
    """action(path) on the upload written to a temporary file under its own name (the readers
    stream from disk and tell the type by the suffix); the file is gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="fewshot-apply-") as folder:
        path = Path(folder) / Path(upload.name).name
        path.write_bytes(upload.getvalue())
        return action(path)


def columns_of(path: Path) -> tuple[str, list[str]]:
    """The guessed text column and every column, from the file's first batch."""
    guessed, batches = read_batches(path)
    return guessed, list(next(batches).columns)


st.title("Export")
project = common.require_project()
corpus, workspace = common.require_corpus(project)
labels = common.label_space(project)

prediction = None
if labels is None:
    st.info("With at least two labels the export also holds predicted labels and scores.")
    st.page_link(common.LABELS_PAGE, label="Go to Labels", icon=":material/label:")
else:
    view = st.radio(
        "Predictions from", list(VIEWS), format_func=VIEWS.get, horizontal=True,
        key="export_view", index=list(VIEWS).index(DEFAULT_VIEW),
    )  # fmt: skip
    human = common.human_labels(project, labels)
    state = common.Current(project, workspace, labels, human, corpus)
    prediction = state.predict(view)
    common.refresh_when_calibrated(state, prediction)

table = export_table(project.documents(), common.counted(project), prediction)

st.subheader("Summary")
documents, labeled = st.columns(2)
documents.metric("Documents", f"{len(table):,}")
labeled.metric("With a human label", f"{table['human_label'].notna().sum():,}")
st.dataframe(label_summary(table), width="content")

st.subheader("Documents, labels and scores")
st.caption(
    "One row per document: id, text, source and metadata, the human label with who set it and "
    "when, the predicted label and its score, and a score column per label. In the CSV, cells "
    "that a spreadsheet would run as a formula (starting with = + - @) get a leading apostrophe."
)
stem = f"{project.name}-labels"
csv_button, jsonl_button = st.columns(2)
csv_button.download_button(
    "Download CSV", lambda: to_csv_bytes(table), f"{stem}.csv", "text/csv",
    icon=":material/table:", key="download_csv",
)  # fmt: skip
jsonl_button.download_button(
    "Download JSONL", lambda: to_jsonl_bytes(table), f"{stem}.jsonl", "application/jsonl",
    icon=":material/data_object:", key="download_jsonl",
)  # fmt: skip
st.dataframe(common.paginate(table, "export_page"), hide_index=True, height=300)

st.subheader("The labeler")
if prediction is None:
    st.info("With at least two labels there is a labeler to download and apply to new documents.")
else:
    labeler = workspace.labeler(
        prediction, label_set=f"{project.name}:{len(project.label_history())}"
    )
    st.caption(
        f"Everything needed to label new text the way this project does ({VIEWS[prediction.view]}"
        f", {len(labels)} labels, {len(prediction.fitted_on)} human labels), without the corpus: "
        "one .zip of JSON and NumPy arrays. On any machine with Few-Shot Labeler: "
        "`python -m fewshot apply labeler.zip new.csv --output labeled.csv`, or "
        "`--engine spark` for a Parquet folder."
    )
    st.download_button(
        "Download the labeler", labeler.to_bytes, f"{project.name}-labeler-{prediction.view}.zip",
        "application/zip", icon=":material/deployed_code:", key="download_labeler",
    )  # fmt: skip
    new = st.file_uploader(
        "Label new documents",
        type=[e.lstrip(".") for e in ingest.SUPPORTED] + ["parquet"],
        key="apply_upload",
        help="The file comes back with a predicted label and scores per row; it is not added to "
        "the project.",
    )
    if new is not None:
        # Kept for the session per file, text column and fit: a rerun (a download click, another
        # widget) must not read and label the file again.
        memo = st.session_state.get("applied")
        if memo is None or memo["file"] != new.file_id:
            memo = st.session_state["applied"] = {"file": new.file_id, "columns": None, "done": {}}
        try:
            if memo["columns"] is None:
                memo["columns"] = with_upload(new, columns_of)
            guessed, columns = memo["columns"]
            column = st.selectbox(
                "Text column", columns, index=columns.index(guessed), key="apply_column",
            ) if len(columns) > 1 else guessed  # fmt: skip
            fit = (column, view, labels, tuple(sorted(human.items())))
            if fit not in memo["done"]:
                bar, progress = common.progress_bar(
                    "Labeling...", "Labeling {done:,} of about {total:,} rows"
                )
                memo["done"] = {
                    fit: with_upload(new, lambda path: pd.concat(
                        list(label_batches(labeler, workspace.embedder, path, column,
                                           progress=progress)), ignore_index=True,
                    ))
                }  # fmt: skip
                bar.empty()
            done = memo["done"][fit]
        except FewshotError as exc:
            st.error(common.escape_markdown(str(exc)))
        else:
            counts = done["predicted_label"].value_counts()
            st.success(
                f"{common.escape_markdown(new.name)}: {len(done):,} rows labeled — "
                + ", ".join(f"{common.escape_markdown(k)} {v:,}" for k, v in counts.items())
            )
            st.download_button(
                f"Download {Path(new.name).stem}-labeled.csv", lambda: to_csv_bytes(done),
                f"{Path(new.name).stem}-labeled.csv", "text/csv", icon=":material/table:",
                key="download_applied",
            )  # fmt: skip
            st.dataframe(done.head(PREVIEW_ROWS), hide_index=True, height=250)
            if len(done) > PREVIEW_ROWS:
                st.caption(f"The first {PREVIEW_ROWS} of {len(done):,} rows; the CSV has them all.")

st.subheader("Fitted maps")
st.caption(
    "Plain NumPy arrays (.npz, no pickle). The Wmap bends document space toward the human labels "
    "of the chosen view; the Zmap takes Sentence-BERT embeddings into word-vector space."
)
wmap_button, zmap_button = st.columns(2)
if prediction is not None:
    wmap = prediction.classifier.wmap_
    wmap_button.download_button(
        f"Download Wmap ({VIEWS[prediction.view]}, {wmap.coef_.shape[0]}×{wmap.coef_.shape[1]})",
        map_to_bytes(wmap), f"{project.name}-wmap-{prediction.view}.npz",
        "application/octet-stream", icon=":material/download:", key="download_wmap",
    )  # fmt: skip
zmap = workspace.embedder.zmap
zmap_button.download_button(
    f"Download Zmap ({zmap.coef_.shape[0]}×{zmap.coef_.shape[1]})",
    map_to_bytes(zmap), f"{project.name}-zmap.npz", "application/octet-stream",
    icon=":material/download:", key="download_zmap",
)  # fmt: skip

upload = st.file_uploader("Check a map file", type=["npz"], key="map_upload")
if upload is not None:
    try:
        loaded = map_from_bytes(upload.getvalue(), upload.name)
    except FewshotError as exc:
        st.error(common.escape_markdown(str(exc)))
    else:
        rows, cols = loaded.coef_.shape
        fits = [
            VIEWS[v]
            for v, docs in workspace.views.items()
            if rows == docs.shape[1] and (loaded.kind == "zmap" or cols == rows)
        ]
        fit_note = f"It fits the {', '.join(fits)} view." if fits else "It fits no view here."
        name = common.escape_markdown(upload.name)
        st.success(f"{name}: a {loaded.kind.capitalize()}, {rows}×{cols}. {fit_note}")
        ours = {"zmap": zmap, "wmap": prediction.classifier.wmap_ if prediction else None}
        reference = ours[loaded.kind]
        if reference is not None and reference.coef_.shape == loaded.coef_.shape:
            gap = np.linalg.norm(loaded.coef_ - reference.coef_) / np.linalg.norm(reference.coef_)
            st.caption(f"Relative difference from this project's {loaded.kind}: {gap:.1%}.")
