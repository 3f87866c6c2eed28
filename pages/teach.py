"""Teach: label the documents the classifier is least sure about; it is refit on every label."""

import time

import pandas as pd
import plotly.express as px
import streamlit as st

from fewshot import FewshotError
from pages import common, finder, keys

FILTERS = ("All", "Not labeled", "Labeled", "Human and model disagree")
KEYS = "123456789"  # the first nine labels' keys; 0 skips, Backspace or U undoes
QUIET_S = 1.0  # no whole-page rerun of the page's own accord sooner after a new document

st.title("Teach")
state = common.current()
project, labels, workspace = state.project, state.labels, state.workspace
quick = state.latest()  # the last fit, maybe a label behind: the next document shows at once
skipped = common.skipped(project)


def undo(batch: int) -> None:
    """Revert that batch, if it is still the latest: a double press undoes one thing. A single
    label undone brings its document back on screen, to be labeled again."""
    events = project.history()
    docs = events.loc[events["batch"] == batch, "doc_id"].unique()
    try:
        done = project.undo(common.annotator(), batch)
    except FewshotError as exc:
        st.toast(common.escape_markdown(str(exc)))
        return
    if done and len(docs) == 1:
        st.session_state["teach_shown"] = ((project.name, int(docs[0])), time.monotonic())


def next_document() -> int | None:
    """The document on screen while it still wants a label (so it never changes under the
    user's eyes on a rerun), else the next suggestion."""
    done = set(state.human) | skipped
    shown = st.session_state.get("teach_shown")
    if shown is not None and shown[0][0] == project.name and shown[0][1] not in done:
        if shown[0][1] < len(workspace.texts):
            return shown[0][1]
    newer = set(state.human) - set(quick.fitted_on.tolist())
    suggestions = workspace.suggest(quick, done, n=1, settled=newer)
    return suggestions[0] if suggestions else None


doc = next_document()
if doc is None:
    st.success("Every document is labeled or skipped.")
    if skipped:
        st.button("Bring back the skipped documents", on_click=skipped.clear)
else:
    proba = quick.proba[doc]
    predicted = int(quick.predicted[doc])
    scores = px.bar(
        x=proba,
        y=list(labels.names),
        orientation="h",
        range_x=[0, 1],
        title=f"Predicted: {labels.names[predicted]} ({proba[predicted]:.2f})",
    )
    scores.update_layout(xaxis_title="score", yaxis_title="")
    scores.update_yaxes(autorange="reversed")  # labels top to bottom in their own order
    scores = common.compact(scores, 300)  # built before the document shows: no slow step after
    shown = st.session_state.get("teach_shown")
    if shown is None or shown[0] != (project.name, doc):
        st.session_state["teach_shown"] = ((project.name, doc), time.monotonic())
    text_column, score_column = st.columns([3, 2])
    with text_column:
        top2 = sorted(proba)[-2:]
        st.caption(
            f"Document {doc}, suggested because the classifier is least sure about it "
            f"(margin {top2[1] - top2[0]:.2f} between its top two labels)."
        )
        with st.container(border=True):
            st.text(workspace.texts[doc])
        with st.container(horizontal=True):
            for i, name in enumerate(labels.names[: len(KEYS)]):
                st.button(
                    common.escape_markdown(name),
                    key=f"label_{doc}_{i}",
                    shortcut=KEYS[i],
                    on_click=keys.press,
                    args=(doc, name),
                    type="primary" if i == predicted else "secondary",
                )
        with st.form("label_form", border=False):
            choice, submit = st.columns([3, 1], vertical_alignment="bottom")
            choice.selectbox(
                "Any label: type to filter, Enter to pick, Tab and Enter to save",
                labels.names,
                index=predicted,
                key=f"choice_{doc}",
            )
            submit.form_submit_button(
                "Save label", on_click=lambda: keys.press(doc, st.session_state[f"choice_{doc}"])
            )
        last = project.last_action(common.annotator())
        with st.container(horizontal=True, vertical_alignment="center"):
            st.button(
                "Skip", key=f"skip_{doc}", shortcut="0", on_click=keys.press, args=(doc, None)
            )
            for shortcut in ("Backspace", "U"):
                st.button(
                    "Undo",
                    key=f"undo_{shortcut}",
                    shortcut=shortcut,
                    on_click=undo,
                    args=(last[0] if last else -1,),
                    disabled=last is None,
                    help=f"Undo: {common.escape_markdown(last[1])}" if last else "Nothing to undo",
                )
            finder.history(project, doc)
        st.caption(
            f"Keys: 1-{min(len(labels), len(KEYS))} label, 0 skips, Backspace or U undoes."
            + (" Labels after the ninth: the list above." if len(labels) > len(KEYS) else "")
        )
    with score_column:
        st.plotly_chart(scores)

prediction = state.predict()  # refit on the latest labels, after the document is on screen
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
    corpus_accuracy, per_label = prediction.estimates()
    estimate_column, accuracy_slot = st.columns(2)
    estimate_column.metric(
        "Estimated accuracy on the corpus",
        f"{corpus_accuracy.value:.0%}",
        help=f"From the calibrated scores ({prediction.calibration}); 95% interval "
        f"{corpus_accuracy.low:.0%} to {corpus_accuracy.high:.0%}, if the scores are calibrated.",
    )
    accuracy_slot = accuracy_slot.empty()  # filled last: cross-validation is the slowest part
    st.caption(
        f"Estimated accuracy ({corpus_accuracy.low:.0%} to {corpus_accuracy.high:.0%}, 95% "
        "interval): what the scores, calibrated on your labels and the corpus, say about every "
        "document. Cross-validated: each of your labels predicted by a classifier fitted "
        "without it (5-fold); the suggested documents are the hard ones, so it tends to "
        "understate accuracy on the corpus."
    )
    st.caption(common.describe_fit(prediction))
figure = px.bar(
    x=list(labels.names),
    y=[e.value for e in per_label],
    error_y=[e.high - e.value for e in per_label],
    error_y_minus=[e.value - e.low for e in per_label],
    title="Documents per label in the corpus (estimated, 95% interval)",
)
figure.update_layout(xaxis_title="", yaxis_title="documents")
st.plotly_chart(common.compact(figure, 280))

st.subheader("Find documents")
query = finder.search_box("teach_search", state)
finder.notice("teach_search", project)
found = finder.search(state, prediction, query)
found = [] if found is None else finder.results("teach_search", state, found, query)
if found:
    with st.expander(f"Label all {common.plural(len(found), 'document')} found", expanded=False):
        finder.bulk_label("teach_search", state, prediction, found)

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
        project.annotate(docs.tolist(), name or None, user=common.annotator())
    st.session_state["editor_round"] = round_ + 1
    st.rerun()

cross_validation = state.cross_validation()  # in the background: the next label need not wait
polling = prediction.pending or not cross_validation.done()


@st.fragment(run_every=1 if polling else None)
def show_cross_validation() -> None:
    """The metric, polled once a second while the background job runs or the scores wait for it
    (this part only).

    Once the job is done the whole page runs again: it shows the scores calibrated on it, and it
    stops the polling (a fragment keeps the run_every it was drawn with; polling a settled page
    cost the server a fifth of a core at 100,000 documents). Not within QUIET_S of a new
    document, though: a press queued behind that run would be handled late enough to pass the
    seen-guard, and a fast double press would label a document the user never saw.
    """
    if not cross_validation.done():
        st.metric("Cross-validated accuracy", "...", help="Cross-validating in the background.")
        return
    if polling and keys.shown_for() >= QUIET_S:
        st.rerun()
    accuracy = cross_validation.result()
    st.metric(
        "Cross-validated accuracy",
        "not yet" if accuracy is None else f"{accuracy:.0%}",
        help="Needs at least 4 human labels.",
    )


with accuracy_slot.container():
    show_cross_validation()
