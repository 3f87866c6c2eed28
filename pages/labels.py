"""Labels: type the candidate labels, then see at once how each view of meaning assigns them."""

from collections.abc import Callable

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from fewshot import FewshotError
from fewshot.labelspace import MAX_NAME_CHARS, LabelSpace
from fewshot.views import DEFAULT_VIEW, VIEWS
from fewshot.workspace import Workspace
from pages import common, finder

st.title("Labels")
project = common.require_project()

key = f"labels_text_{project.name}"  # the text area's value
shown = f"labels_shown_{project.name}"  # the stored labels it was last filled with
done = f"label_change_{project.name}"  # (batch, message) of the user's last change here
NOTICE, ERROR = "labels_notice", "labels_action_error"  # one-shot messages of the callbacks
md = common.escape_markdown
COMPARE_UP_TO = 20_000  # documents: beyond, the other two views are fitted only when asked for


def labels_text(pairs: list[tuple[str, str]]) -> str:
    return "\n".join(f"{name}: {note}" if note else name for name, note in pairs)


def sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else f"{text}."


def show_stored_labels() -> None:
    """The text area shows the labels as stored: after every change, and at a first visit."""
    text = labels_text(project.labels())
    st.session_state[key] = text
    st.session_state[shown] = text


def changed(before: tuple[int, str] | None, message: str) -> None:
    """After a label change: refresh the text area and offer to undo the change, if it made one
    (a rename to the same name, or saving the same list, writes nothing)."""
    show_stored_labels()
    after = project.last_action(common.annotator())
    if after is None or after == before:
        st.session_state.pop(done, None)
        st.session_state[NOTICE] = ("info", "Nothing changed.")
    else:
        st.session_state[done] = (after[0], message)


def save_labels() -> None:
    """Form callback: validate the typed labels and save them, or keep the error to show."""
    try:
        space = LabelSpace.parse(st.session_state[key].splitlines())
        before = project.last_action(common.annotator())
        project.set_labels(list(zip(space.names, space.descriptions)), user=common.annotator())
    except FewshotError as exc:
        st.session_state["labels_error"] = sentence(str(exc))
    else:
        history = project.label_history()
        mine = history[history["user"] == common.annotator()]
        detail = mine["detail"].iloc[-1] if len(mine) else ""
        changed(before, f"Labels saved: {md(detail)}." if detail else "Labels saved.")


def check_name(name: str) -> str:
    """A new label name as the text area will read it back, or FewshotError."""
    name = name.strip()
    if ":" in name or name.startswith("#"):
        raise FewshotError(
            "A label name cannot contain ':' or start with '#': in the list above ':' starts "
            "the description and '#' a comment."
        )
    if len(name) > MAX_NAME_CHARS:
        raise FewshotError(f"Keep label names to {MAX_NAME_CHARS} characters.")
    return name


def act(change: Callable[[], None], message: str) -> bool:
    """Run one label change (a call into the store), then say what it did; False on an error."""
    before = project.last_action(common.annotator())
    try:
        change()
    except FewshotError as exc:
        st.session_state[ERROR] = sentence(str(exc))
        return False
    changed(before, message)
    return True


def rename() -> None:
    old, counts = st.session_state["rename_label"], project.label_counts()
    try:
        new = check_name(st.session_state["rename_to"])
    except FewshotError as exc:
        st.session_state[ERROR] = str(exc)
        return
    n = counts.get(old.casefold(), 0)
    if act(
        lambda: project.rename_label(old, new, user=common.annotator()),
        f"Renamed {md(old)} to {md(new)}; {common.plural(n, 'human label')} followed.",
    ):
        st.session_state["rename_to"] = ""


def merge() -> None:
    sources, target = st.session_state["merge_sources"], st.session_state["merge_target"]
    counts = project.label_counts()
    n = sum(counts.get(s.casefold(), 0) for s in sources)
    act(
        lambda: project.merge_labels(sources, target, user=common.annotator()),
        f"Merged {md(', '.join(sources))} into {md(target)}; "
        f"{common.plural(n, 'human label')} moved to it.",
    )


def delete() -> None:
    name = st.session_state["delete_label"]
    n = project.label_counts().get(name.casefold(), 0)
    act(
        lambda: project.delete_label(name, user=common.annotator()),
        f"Deleted {md(name)}; {common.plural(n, 'document')} lost it as human label.",
    )


def undo(batch: int, what: str) -> None:
    """Undo exactly batch, so a second press of the same button undoes nothing more."""
    st.session_state.pop(done, None)
    try:
        undone = project.undo(common.annotator(), batch)
    except FewshotError as exc:
        st.session_state[ERROR] = sentence(str(exc))
        return
    show_stored_labels()
    st.session_state[NOTICE] = (
        ("success", f"Undone: {md(what)}.")
        if undone
        else ("info", "Nothing was undone: that change was undone already, or is not your latest.")
    )


stored = labels_text(project.labels())
if key not in st.session_state or (
    st.session_state[key] == st.session_state.get(shown) != stored
):  # no draft that failed to save: show the labels as stored, even if changed elsewhere
    show_stored_labels()

with st.form("labels_form"):
    st.text_area(
        "One label per line, optionally with a short description: `name: description`",
        key=key,
        height=160,
        placeholder="Sports: games, athletes, teams\nBusiness: companies, markets, economy",
        help="The description is embedded along with the name, so a few telling words help. "
        "Ctrl+Enter saves. A label that documents carry cannot be removed here: rename, merge "
        "or delete it below.",
    )
    st.form_submit_button("Save labels", type="primary", on_click=save_labels)
    if error := st.session_state.pop("labels_error", None):
        st.error(f"{md(error)} Nothing was saved.")

if error := st.session_state.pop(ERROR, None):
    st.error(md(error))
if notice := st.session_state.pop(NOTICE, None):
    getattr(st, notice[0])(notice[1])
if last := st.session_state.get(done):
    latest = project.last_action(common.annotator())
    if latest is not None and latest[0] == last[0]:  # still the user's latest change
        message_column, undo_column = st.columns([5, 1], vertical_alignment="center")
        message_column.success(last[1])
        undo_column.button("Undo", key="undo_label_change", on_click=undo, args=latest)
    else:  # undone or followed by another change (a label on the Teach page, say)
        del st.session_state[done]

names = [name for name, _ in project.labels()]
if names:
    st.subheader("Rename, merge or delete")
    carried = project.label_counts()

    def with_count(name: str, carried: dict[str, int] = carried) -> str:
        """An option with its count; bound to this run's counts, as Streamlit calls it later."""
        return f"{name} ({common.plural(carried.get(name.casefold(), 0), 'human label')})"

    rename_tab, merge_tab, delete_tab = st.tabs(["Rename", "Merge", "Delete"])
    with rename_tab, st.form("rename_form", border=False):
        st.caption("Rename a label; the documents that carry it follow it to the new name.")
        old_column, new_column = st.columns(2)
        old_column.selectbox("Label", names, format_func=with_count, key="rename_label")
        new_column.text_input("New name", key="rename_to", max_chars=MAX_NAME_CHARS)
        st.form_submit_button("Rename", on_click=rename)
    with merge_tab:
        st.caption("Fold labels into another one: they leave the list, their documents take it.")
        sources_column, target_column = st.columns(2)
        sources = sources_column.multiselect(
            "Labels to fold in", names, format_func=with_count, key="merge_sources"
        )
        targets = [name for name in names if name not in sources]
        target = target_column.selectbox(
            "Label to keep",
            targets,
            key="merge_target",  # no count: it showed stale ones
        )
        moving = sum(carried.get(name.casefold(), 0) for name in sources)
        if sources and target is not None:
            st.caption(
                f"{common.plural(moving, 'human label')} will move to {md(target)}; "
                "undo brings them back."
            )
        st.button("Merge", on_click=merge, disabled=not sources or target is None)
    with delete_tab:
        st.caption("Remove a label from the list and from the documents that carry it.")
        doomed = st.selectbox("Label", names, format_func=with_count, key="delete_label")
        losing = carried.get(doomed.casefold(), 0)
        st.caption(
            f"{common.plural(losing, 'human label')} will lose it; undo brings them back."
            if losing
            else "No document carries it as its human label."
        )
        st.button("Delete label", on_click=delete)

history = project.label_history()
if not history.empty:
    with st.expander("Label history"):
        # A static table, not a dataframe: label changes are few, and the page's first dataframe
        # stays the assignments table.
        history["at"] = history["at"].str.slice(0, 19).str.replace("T", " ")
        history["undone"] = history["undone"].map({True: "yes", False: ""})
        st.table(history.iloc[::-1].rename(columns={"at": "when (UTC)"}), hide_index=True)
        st.caption("Every change of the label list, newest first; undo appends, never erases.")

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

prediction = state.predict(DEFAULT_VIEW)
st.subheader(
    f"Few-shot, with {common.plural(len(state.human), 'human label')}"
    if state.human
    else "Zero-shot assignments"
)
st.caption(common.describe_fit(prediction))
common.refresh_when_calibrated(state, prediction)
# Each view is a fit of its own: on a large corpus the other two wait until they are asked for.
compare = st.toggle(
    "Compare the three views",
    value=len(workspace.texts) <= COMPARE_UP_TO,
    key="compare_views",
    help="Sentence-BERT, word vectors and Sentence-BERT mapped into word-vector space (Zmap), "
    "side by side. Each view is fitted when it is first shown, once per change of labels.",
)
predictions = {view: state.predict(view) for view in (VIEWS if compare else [DEFAULT_VIEW])}
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
    finder.history(project, doc)
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
        title=f"Label scores of document {doc}" + (" in each view" if compare else ""),
    )
    figure.update_yaxes(autorange="reversed")  # labels top to bottom in their own order
    st.plotly_chart(common.compact(figure, 340))

if not compare:
    st.caption(
        f"Showing the {VIEWS[DEFAULT_VIEW]} view only; turn on **Compare the three views** to fit "
        "and see the other two."
    )
    st.stop()
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
