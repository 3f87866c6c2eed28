"""Find, then label: the search box, its results labeled in place, bulk labels with a preview,
and a document's history. Shared by the Teach and Map pages (not a page itself).

The searching is `fewshot.search`, the counting `fewshot.bulk`, the writing `fewshot.store`; this
module only draws. Every widget key starts with the caller's key, so two pages never collide.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from fewshot import FewshotError
from fewshot.bulk import preview
from fewshot.search import NO_LABEL, Pattern, Query, find, highlight_html
from fewshot.store import Project
from fewshot.workspace import Prediction
from pages import common

PAGE_SIZE = 10  # results per page: each is a card with its own controls
PILLS_UP_TO = 12  # more labels than this are picked from a list instead of pills
TOP = (20, 50, 100, 200, 500, 1000)  # how many documents a search by meaning keeps


def _clear_like(key: str) -> None:
    st.session_state.pop(f"{key}_like", None)


def search_box(key: str, state: common.Current) -> Query:
    """The search box, its "by meaning" switch and the filters; returns the query they make."""
    meta = common.metadata(state)
    box, switch = st.columns([5, 1], vertical_alignment="bottom")
    text = box.text_input(
        "Search documents",
        key=f"{key}_text",
        placeholder='refund   "late delivery"   /refund(ed)?/   or, by meaning: wants money back',
        help='Words match where a word starts, "quoted phrases" as written, several must all '
        "occur; text between slashes is a regular expression (RE2). Case is ignored.",
        on_change=_clear_like,
        args=(key,),
    )
    meaning = switch.toggle("by meaning", key=f"{key}_meaning", on_change=_clear_like, args=(key,))
    names = list(state.labels.names)
    with st.expander("Filters and order"):
        left, middle, right = st.columns(3)
        predicted = left.multiselect("Predicted label", names, key=f"{key}_predicted")
        human = middle.multiselect("Human label", [NO_LABEL, *names], key=f"{key}_human")
        score = right.slider("Score", 0.0, 1.0, (0.0, 1.0), step=0.05, key=f"{key}_score")
        left, middle, right = st.columns(3)
        sources = sorted(meta["source"].unique()) if "source" in meta else []
        chosen_sources = (
            left.multiselect("Source file", sources, key=f"{key}_sources")
            if len(sources) > 1
            else []
        )
        columns = [c for c in meta.columns if c not in ("id", "source")]
        column = middle.selectbox(
            "Metadata column", columns, index=None, key=f"{key}_column",
            placeholder="none kept at upload" if not columns else "choose a column",
            disabled=not columns,
        )  # fmt: skip
        values = []
        if column is not None:
            options = meta[column].astype(str).value_counts().index[:500].tolist()
            values = right.multiselect(f"{column} is one of", options, key=f"{key}_values")
        left, right = st.columns(2)
        sort = left.radio(
            "Order", ["relevance", "doubt"], horizontal=True, key=f"{key}_sort",
            format_func={"relevance": "Most relevant first", "doubt": "Least certain first"}.get,
        )  # fmt: skip
        top = right.select_slider("By meaning: keep the best", TOP, value=50, key=f"{key}_top")
    like = st.session_state.get(f"{key}_like")
    mode = "like" if like is not None else ("meaning" if meaning else "words")
    if like is not None:
        note, clear = st.columns([5, 1], vertical_alignment="center")
        note.info(f"Documents most like document {like}.")
        clear.button("Clear", key=f"{key}_clear_like", on_click=_clear_like, args=(key,))
    return Query(
        text=text, mode=mode, like=like, top=top, predicted=tuple(predicted), human=tuple(human),
        score=tuple(score), sources=tuple(chosen_sources),
        meta=((column, tuple(values)),) if column is not None else (), sort=sort,
    )  # fmt: skip


def search(state: common.Current, prediction: Prediction, query: Query) -> pd.DataFrame | None:
    """What the query finds (fewshot.search.find's table), or None when the query is empty or
    bad (the message is shown)."""
    if not query.active:
        return None
    table = pd.concat([state.table(prediction), common.metadata(state).drop(columns="id")], axis=1)
    workspace = state.workspace
    try:
        return find(
            table, query, workspace.search_texts, workspace.views["sbert"],
            lambda text: workspace.embedder.sentence.encode([text])[0],
        )  # fmt: skip
    except FewshotError as exc:
        st.error(common.escape_markdown(str(exc)))
        return None


def results(key: str, state: common.Current, found: pd.DataFrame, query: Query) -> list[int]:
    """Show what a search found, a page at a time; returns every found id, in order."""
    n = len(found)
    if query.mode == "words":
        st.markdown(f"**{common.plural(n, 'document')} match{'es' if n == 1 else ''}**")
    else:
        st.markdown(f"**The {common.plural(n, 'document')} closest in meaning**")
    if not n:
        st.caption("Try fewer words, another spelling, or the switch 'by meaning'.")
        return []
    pages = -(-n // PAGE_SIZE)
    page = st.pagination(pages, key=f"{key}_page_{hash(query)}") if pages > 1 else 1
    pattern = Pattern.parse(query.text) if query.mode == "words" else None
    for row in found.iloc[(page - 1) * PAGE_SIZE : page * PAGE_SIZE].itertuples():
        _result(key, state, row, pattern, query.mode)
    return found["id"].astype(int).tolist()


def _result(
    key: str, state: common.Current, row: object, pattern: Pattern | None, mode: str
) -> None:
    doc = int(row.id)
    with st.container(border=True):
        spans = pattern.spans(row.text) if pattern is not None else []
        st.html(f'<div style="white-space: pre-wrap">{highlight_html(row.text, spans)}</div>')
        how = f"similarity {row.relevance:.2f}" if mode != "words" else ""
        st.caption(
            " · ".join(
                part
                for part in (
                    f"Document {doc}",
                    f"predicted {common.escape_markdown(row.predicted_label)} ({row.score:.2f})",
                    how,
                )
                if part
            )
        )
        with st.container(horizontal=True, vertical_alignment="center"):
            label_in_place(
                f"{key}_row", state.project, doc, state.human.get(doc), state.labels.names
            )
            st.button(
                "More like this", key=f"{key}_like_{doc}", icon=":material/travel_explore:",
                on_click=st.session_state.__setitem__, args=(f"{key}_like", doc), type="tertiary",
            )  # fmt: skip
            history(state.project, doc)


def _set_label(project: Project, doc: int, widget: str) -> None:
    name = st.session_state.get(widget)
    project.annotate(doc, name, user=common.annotator())
    st.toast(f"Document {doc}: {common.escape_markdown(name) if name else 'label removed'}")


def label_in_place(
    key: str, project: Project, doc: int, human: str | None, names: tuple[str, ...]
) -> None:
    """The document's human label, changed with one click (pills) or from a list."""
    widget = f"{key}_{doc}_{human}"  # a new widget when the label changes elsewhere
    common_args = {
        "key": widget, "label_visibility": "collapsed", "on_change": _set_label,
        "args": (project, doc, widget),
    }  # fmt: skip
    if len(names) <= PILLS_UP_TO:
        st.pills("Human label", names, default=human, **common_args)
    else:
        index = names.index(human) if human in names else None
        st.selectbox("Human label", names, index=index, placeholder="Label...", **common_args)


def history(project: Project, doc: int) -> None:
    """A popover with who set which label on the document, and when."""
    with st.popover("History", icon=":material/history:"):
        events = project.history(doc)
        if events.empty:
            st.caption(f"Nobody has labeled document {doc} yet.")
            return
        st.dataframe(
            events.assign(label=events["label"].fillna("(removed)"))[
                ["at", "user", "label", "action"]
            ].iloc[::-1],
            hide_index=True,
            column_config={"at": "when", "user": "who", "action": "how"},
        )


def bulk_label(key: str, state: common.Current, prediction: Prediction, ids: list[int]) -> None:
    """Give the documents one label: what it would do first, then one click, one undo."""
    names = state.labels.names
    predicted = [names[i] for i in prediction.predicted]
    majority = pd.Series([predicted[i] for i in ids]).mode().iloc[0] if ids else names[0]
    left, right = st.columns([2, 3], vertical_alignment="bottom")
    label = left.selectbox(
        "Label them all as", names, index=names.index(majority), key=f"{key}_bulk"
    )
    overwrite = right.checkbox(
        "Overwrite other human labels", key=f"{key}_overwrite",
        help="Unticked, documents that already carry another human label keep it.",
    )  # fmt: skip
    counts = preview(ids, label, state.human, predicted)
    shown = common.escape_markdown(label)
    lines = [
        f"- **{counts.to_write(overwrite):,}** would get the label {shown}"
        + (f" ({counts.same:,} already have it)" if counts.same else ""),
        f"- **{counts.other:,}** already {'carries' if counts.other == 1 else 'carry'} a different "
        "human label: " + ("they are overwritten" if overwrite else "left as they are"),
        f"- **{counts.predicted:,}** of the {len(counts.ids):,} are predicted as {shown} now",
    ]
    st.markdown("\n".join(lines))
    n = counts.to_write(overwrite)
    st.button(
        f"Label {common.plural(n, 'document')} as {shown}", type="primary", disabled=not n,
        key=f"{key}_bulk_write", on_click=_write_bulk,
        args=(key, state.project, counts.ids, label, overwrite, n),
    )  # fmt: skip


def _write_bulk(
    key: str, project: Project, ids: tuple[int, ...], label: str, overwrite: bool, changes: int
) -> None:
    """Write the batch; documents that carried the label already (someone else's) also get this
    annotator's vote, which the message counts apart from the `changes` the preview promised."""
    written = project.annotate(ids, label, user=common.annotator(), overwrite=overwrite)
    batch = project.last_action(common.annotator())[0] if written else None
    text = f"Labeled {common.plural(min(written, changes), 'document')} as {label}."
    if written > changes:
        text += f" {written - changes:,} more had it already: your vote is added."
    st.session_state[f"{key}_notice"] = (text, batch)
    st.session_state[f"{key}_round"] = st.session_state.get(f"{key}_round", 0) + 1


def _undo(key: str, project: Project, batch: int) -> None:
    try:
        done = project.undo(common.annotator(), batch)
    except FewshotError as exc:
        st.session_state[f"{key}_notice"] = (str(exc), None)
        return
    text = "Undone: those documents have their previous labels back." if done else (
        "Nothing to undo: that change was undone already."
    )  # fmt: skip
    st.session_state[f"{key}_notice"] = (text, None)


def notice(key: str, project: Project) -> None:
    """What the last bulk action did, with its one-click undo (offered right after it)."""
    if found := st.session_state.pop(f"{key}_notice", None):
        text, batch = found
        message, undo = st.columns([4, 1], vertical_alignment="center")
        message.success(common.escape_markdown(text))
        if batch is not None:
            undo.button(
                "Undo", key=f"{key}_undo", icon=":material/undo:", on_click=_undo,
                args=(key, project, batch),
            )  # fmt: skip
