"""Teach: label the documents the classifier is least sure about; it is refit on every label."""

import pandas as pd
import plotly.express as px
import streamlit as st

from pages import common

BUTTONS_PER_ROW = 6
FILTERS = ("All", "Not labeled", "Labeled", "Human and model disagree")

st.title("Teach")
state = common.current()
project, labels, workspace = state.project, state.labels, state.workspace
prediction = state.predict()
skipped = common.skipped(project)


def label(doc: int, name: str) -> None:
    """Write one label to the store at once (the next run refits on it)."""
    project.annotate(doc, name, user=common.USER)
    st.toast(f"Document {doc}: {common.escape_markdown(name)}")


def undo() -> None:
    if not project.undo(common.USER):
        st.toast("Nothing to undo.")


suggestions = workspace.suggest(prediction, set(state.human) | skipped, n=1)
if not suggestions:
    st.success("Every document is labeled or skipped.")
    if skipped:
        st.button("Bring back the skipped documents", on_click=skipped.clear)
else:
    doc = suggestions[0]
    proba = prediction.proba[doc]
    predicted = int(prediction.predicted[doc])
    text_column, score_column = st.columns([3, 2])
    with text_column:
        top2 = sorted(proba)[-2:]
        st.caption(
            f"Document {doc}, suggested because the classifier is least sure about it "
            f"(margin {top2[1] - top2[0]:.2f} between its top two labels)."
        )
        with st.container(border=True):
            st.text(workspace.texts[doc])
        for start in range(0, len(labels), BUTTONS_PER_ROW):
            columns = st.columns(BUTTONS_PER_ROW)
            for i, name in enumerate(labels.names[start : start + BUTTONS_PER_ROW], start):
                columns[i - start].button(
                    common.escape_markdown(name),
                    key=f"label_{i}",
                    on_click=label,
                    args=(doc, name),
                    type="primary" if i == predicted else "secondary",
                    width="stretch",
                )
        with st.form("label_form", border=False):
            choice, submit = st.columns([3, 1], vertical_alignment="bottom")
            choice.selectbox(
                "Keyboard: type to filter, Enter to pick, Tab and Enter to save",
                labels.names,
                index=predicted,
                key=f"choice_{doc}",
            )
            submit.form_submit_button(
                "Save label", on_click=lambda: label(doc, st.session_state[f"choice_{doc}"])
            )
        skip, back = st.columns(2)
        skip.button("Skip", on_click=skipped.add, args=(doc,), width="stretch")
        back.button("Undo last label", on_click=undo, width="stretch")
    with score_column:
        figure = px.bar(
            x=proba,
            y=list(labels.names),
            orientation="h",
            range_x=[0, 1],
            title=f"Predicted: {labels.names[predicted]} ({proba[predicted]:.2f})",
        )
        figure.update_layout(xaxis_title="score", yaxis_title="")
        figure.update_yaxes(autorange="reversed")  # labels top to bottom in their own order
        st.plotly_chart(common.compact(figure, 300))

st.divider()
counts_column, accuracy_column = st.columns(2)
with counts_column:
    counts = pd.Series(state.human, dtype=object).value_counts().reindex(labels.names, fill_value=0)
    figure = px.bar(
        x=list(labels.names), y=counts.to_numpy(), text_auto=True, title="Human labels per class"
    )
    figure.update_layout(xaxis_title="")
    figure.update_yaxes(visible=False, range=[0, max(1, counts.max()) * 1.15])
    st.plotly_chart(common.compact(figure, 280))
with accuracy_column:
    accuracy_slot = st.empty()  # filled last: cross-validation is the slowest part of the page
    st.caption(
        "Each of your labels is predicted by a classifier fitted without it (5-fold "
        "cross-validation): an estimate of accuracy on documents like the ones you labeled. The "
        "suggested documents are the hard ones, so it tends to understate accuracy on the corpus."
    )
    st.caption(common.describe_fit(prediction))

st.subheader("All predictions")
st.caption("Least certain first. Set or change a human label in the table; it is saved at once.")
shown = st.segmented_control("Show", FILTERS, default=FILTERS[0], label_visibility="collapsed")
table = state.table(prediction).sort_values("margin", kind="stable")
labeled = table["human_label"].notna()
if shown == "Not labeled":
    table = table[~labeled]
elif shown == "Labeled":
    table = table[labeled]
elif shown == "Human and model disagree":
    table = table[labeled & (table["human_label"] != table["predicted_label"])]
table = common.paginate(table, "predictions_page")
round_ = st.session_state.setdefault("editor_round", 0)  # a new key starts the editor afresh
edited = st.data_editor(
    table,
    key=f"predictions_{round_}",
    hide_index=True,
    column_order=["id", "text", "human_label", "predicted_label", "score", "margin"],
    disabled=["id", "text", "predicted_label", "score", "margin"],
    column_config={
        "text": st.column_config.TextColumn("text", width="large"),
        "human_label": st.column_config.SelectboxColumn("human label", options=labels.names),
        "predicted_label": "predicted",
        "score": st.column_config.ProgressColumn(
            "score", min_value=0.0, max_value=1.0, format="%.2f"
        ),
        "margin": st.column_config.NumberColumn("margin", format="%.2f"),
    },
)
before, after = table["human_label"].fillna(""), edited["human_label"].fillna("")
changes = after[before != after]
if len(changes):
    for name, docs in table.loc[changes.index, "id"].groupby(changes):
        project.annotate(docs.tolist(), name or None, user=common.USER)
    st.session_state["editor_round"] = round_ + 1
    st.rerun()

with accuracy_slot.container():
    with st.spinner("Cross-validating your labels..."):
        accuracy = state.cross_validated_accuracy()
    st.metric(
        "Cross-validated accuracy",
        "not yet" if accuracy is None else f"{accuracy:.0%}",
        help="Needs at least 4 human labels.",
    )
