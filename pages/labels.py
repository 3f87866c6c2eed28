"""Labels: type the candidate labels, then see at once how each view of meaning assigns them."""

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from fewshot import FewshotError
from fewshot.classify import LabelSpace
from fewshot.views import DEFAULT_VIEW, VIEWS
from fewshot.workspace import Workspace
from pages import common

st.title("Labels")
project = common.require_project()

key = f"labels_text_{project.name}"


def save_labels() -> None:
    """Form callback: validate the typed labels and save them, or keep the error to show."""
    try:
        space = LabelSpace.parse(st.session_state[key].splitlines())
    except FewshotError as exc:
        st.session_state["labels_error"] = str(exc)
    else:
        project.set_labels(list(zip(space.names, space.descriptions)))


with st.form("labels_form"):
    st.text_area(
        "One label per line, optionally with a short description: `name: description`",
        value="\n".join(f"{name}: {note}" if note else name for name, note in project.labels()),
        key=key,
        height=160,
        placeholder="Sports: games, athletes, teams\nBusiness: companies, markets, economy",
        help="The description is embedded along with the name, so a few telling words help. "
        "Ctrl+Enter saves.",
    )
    st.form_submit_button("Save labels", type="primary", on_click=save_labels)
    if error := st.session_state.pop("labels_error", None):
        st.error(f"{common.escape_markdown(error)} Nothing was saved.")

if common.label_space(project) is None:
    st.info("Type at least two labels above and save them to see zero-shot results.")
    st.stop()
state = common.current()
labels, workspace = state.labels, state.workspace

unknown = workspace.embedder.unknown_label_words(labels)
if unknown:
    listed = "; ".join(f"{name}: {', '.join(words)}" for name, words in unknown.items())
    st.warning(
        f"The word vectors do not know these label words, so the word-vector view ignores "
        f"them: {common.escape_markdown(listed)}. More common synonyms in the description help."
    )
orphans = len(project.annotations()) - len(state.human)
if orphans:
    st.warning(
        f"Human labels naming a label that is no longer in the list: {orphans:,}. They are kept "
        "and count again if the label comes back."
    )

predictions = {view: state.predict(view) for view in VIEWS}
prediction = predictions[DEFAULT_VIEW]
st.subheader(
    f"Few-shot, with {common.plural(len(state.human), 'human label')}"
    if state.human
    else "Zero-shot assignments"
)
st.caption(common.describe_fit(prediction))
rows = common.paginate(state.table(prediction), "assignments_page")
event = st.dataframe(
    rows,
    hide_index=True,
    height=320,
    on_select="rerun",
    selection_mode="single-row",
    key=f"assignments_{rows['id'].iloc[0]}",  # a new page starts with no row selected
    column_order=["text", "predicted_label", "score", "margin"]
    + (["human_label"] if state.human else []),
    column_config={
        "text": st.column_config.TextColumn("text", width="large"),
        "predicted_label": "top label",
        "score": st.column_config.ProgressColumn(
            "score", min_value=0.0, max_value=1.0, format="%.2f"
        ),
        "margin": st.column_config.NumberColumn("margin", format="%.2f"),
        "human_label": "human label",
    },
)
doc = int(rows["id"].iloc[event.selection.rows[0] if event.selection.rows else 0])
text_column, chart_column = st.columns(2)
with text_column:
    st.caption(f"Document {doc}; select a row in the table to see another.")
    with st.container(border=True):
        st.text(workspace.texts[doc])
with chart_column:
    scores = pd.DataFrame(
        [
            {"view": VIEWS[view], "label": name, "score": float(p.proba[doc, i])}
            for view, p in predictions.items()
            for i, name in enumerate(labels.names)
        ]
    )
    figure = px.bar(
        scores,
        x="score",
        y="label",
        color="view",
        barmode="group",
        orientation="h",
        range_x=[0, 1],
        title=f"Label scores of document {doc} in each view",
    )
    figure.update_yaxes(autorange="reversed")  # labels top to bottom in their own order
    st.plotly_chart(common.compact(figure, 340))

st.subheader("Three views side by side")
distribution_column, agreement_column = st.columns(2)
with distribution_column:
    counts = pd.DataFrame(
        [
            {"view": VIEWS[view], "label": name, "documents": int(count)}
            for view, p in predictions.items()
            for name, count in zip(labels.names, np.bincount(p.predicted, minlength=len(labels)))
        ]
    )
    figure = px.bar(
        counts,
        x="label",
        y="documents",
        color="view",
        barmode="group",
        title="Documents per predicted label",
    )
    st.plotly_chart(common.compact(figure, 340))
with agreement_column:
    st.dataframe(
        Workspace.agreement(predictions),
        hide_index=True,
        column_config={
            "agree": st.column_config.NumberColumn("agree", format="percent"),
            "kappa": st.column_config.NumberColumn("kappa", format="%.2f"),
        },
    )
    st.caption(
        "How often two views pick the same label, and Cohen's kappa: agreement beyond chance "
        "(1 is perfect, 0 is what chance alone gives). Views that disagree a lot suggest labels "
        "that are ambiguous or far from how the documents talk."
    )
    for p in predictions.values():
        st.caption(common.describe_fit(p))
