"""Data: bring documents (upload files or open the demo sample), check what was read, store, embed."""

import pandas as pd
import streamlit as st

from fewshot import FewshotError, ingest
from fewshot.store import Project
from pages import common

TXT_MODES = {"lines": "One document per line", "file": "One document per file"}


def _stored(notice: str) -> None:
    st.session_state["data_notice"] = notice
    st.session_state["upload_round"] += 1  # a new key empties the uploader


def replace_corpus(project: Project, frame: pd.DataFrame) -> None:
    """Button callback: the upload becomes the corpus; labels of the old documents go with them."""
    project.set_documents(frame)
    common.skipped(project).clear()
    _stored(f"The corpus now holds {common.plural(len(frame), 'document')}.")


def add_to_corpus(project: Project, frame: pd.DataFrame) -> None:
    """Button callback: append the uploaded documents the corpus does not hold yet."""
    new = frame[~frame["text"].isin(set(project.texts()))]
    project.add_documents(new)
    _stored(
        f"Added {common.plural(len(new), 'document')}; left out "
        f"{common.plural(len(frame) - len(new), 'document')} already in the corpus."
    )


st.title("Data")
project = common.current_project()

if project is None or project.n_documents() == 0:
    st.markdown(
        "**Welcome to Few-Shot Labeler.** Bring documents, type the labels you want, and see "
        "zero-shot predictions at once from three views of meaning. Then label a handful of the "
        "documents the classifier is least sure about, and watch it learn."
    )
    st.markdown(
        "New here? The demo sample has 200 news stories and four topic labels; zero-shot results "
        "are then one click away, on the Labels page."
    )
    st.button("Open the demo sample", type="primary", on_click=common.open_demo)
    if project is None:
        st.info("To use your own files, first create a project in the sidebar.")
        st.stop()

if notice := st.session_state.pop("data_notice", None):
    st.success(notice)

documents = project.documents()
if len(documents):
    st.subheader(f"Corpus: {common.plural(len(documents), 'document')}")
    common.workspace(project)  # embeds a new corpus now, with a progress bar, not on the next page
    st.dataframe(
        documents.sample(min(10, len(documents)), random_state=0).sort_index(),
        hide_index=True,
        column_config={"text": st.column_config.TextColumn(width="large")},
    )
    st.page_link(
        common.LABELS_PAGE,
        label="Next: name your labels and see zero-shot results",
        icon=":material/arrow_forward:",
    )

st.subheader("Add documents")
round_ = st.session_state.setdefault("upload_round", 0)
files = st.file_uploader(
    "Upload .txt, .csv, .tsv, .jsonl or .json files (several at once is fine)",
    type=[extension.lstrip(".") for extension in ingest.SUPPORTED],
    accept_multiple_files=True,
    key=f"upload_{round_}",
)
if files:
    uploads = [(file.name, file.getvalue()) for file in files]
    try:
        tables = [ingest.read_table(name, data) for name, data in uploads]
        txt_mode = "lines"
        if any(table.columns.empty for table in tables):
            txt_mode = st.radio(
                ".txt files hold", list(TXT_MODES), format_func=TXT_MODES.get, horizontal=True
            )
        columns = list(dict.fromkeys(c for table in tables for c in table.columns))
        text_column = None
        if columns:
            guess = ingest.guess_text_column(next(t for t in tables if not t.columns.empty))
            text_column = st.selectbox(
                "Text column",
                columns,
                index=columns.index(guess),
                help="The other columns are kept as metadata.",
            )
        result = ingest.read_uploads(uploads, text_column=text_column, txt_mode=txt_mode)
    except FewshotError as exc:
        st.error(common.escape_markdown(str(exc)))
    else:
        report = result.report
        read, empty, duplicates, kept = st.columns(4)
        read.metric("Rows read", f"{report.rows_read:,}")
        empty.metric("Empty dropped", f"{report.empty_dropped:,}")
        duplicates.metric("Duplicates dropped", f"{report.duplicates_dropped:,}")
        kept.metric("Documents", f"{report.documents:,}")
        for note in report.notes:
            st.warning(common.escape_markdown(note))
        st.dataframe(result.frame.head(100), hide_index=True)

        n_human = len(project.annotations())
        confirmed = not n_human or st.checkbox(
            f"Replacing the corpus deletes its {common.plural(n_human, 'human label')}. Replace anyway."
        )
        buttons = st.container(horizontal=True)
        buttons.button(
            "Replace corpus",
            type="primary",
            disabled=not confirmed,
            on_click=replace_corpus,
            args=(project, result.frame),
        )
        buttons.button("Add to corpus", on_click=add_to_corpus, args=(project, result.frame))

if len(documents):
    st.divider()
    st.caption("The demo sample: 200 news stories and four topic labels, in a project of its own.")
    st.button("Open the demo sample", on_click=common.open_demo)
