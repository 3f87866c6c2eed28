"""One-key labeling on the Teach page: a press labels the document the user saw, once.

The label and Skip buttons only note a press (`press`); `act` carries it out at the start of the
next run, before the sidebar counts the labels (app.py calls it).
"""

import time

import streamlit as st

from pages import common

MIN_SEEN_S = 0.3  # a document must be on screen this long before a press labels it


def shown_for() -> float:
    """Seconds the document on screen has been there (infinity when there is none)."""
    shown = st.session_state.get("teach_shown")
    return time.monotonic() - shown[1] if shown is not None else float("inf")


def seen(project: str, doc: int) -> bool:
    """Whether doc is the document on screen, and has been long enough to be read.

    A second press 80 ms after the first would otherwise land on the next document, which the
    user never saw; the buttons' keys name their document too, so a press on a document no
    longer shown does nothing.
    """
    shown = st.session_state.get("teach_shown")
    return shown is not None and shown[0] == (project, doc) and shown_for() >= MIN_SEEN_S


def press(doc: int, name: str | None) -> None:
    """A label's key or button (name), or Skip (None): done when the page runs (`act`)."""
    st.session_state.setdefault("teach_presses", []).append((doc, name))


def act() -> None:
    """Label or skip the document the run's presses were for, if the user saw it.

    A press that comes while the page is changing reaches two documents: Streamlit keeps the
    old document's buttons, hidden, until the run that replaced them ends, and a key clicks every
    button it belongs to. Such a press was made before the new document had been read (the
    browser can hand it over half a second late, after drawing the page), so it does nothing.
    """
    presses = st.session_state.pop("teach_presses", None)
    if not presses or (project := common.current_project()) is None:
        return  # most runs: no press, and no project opened for nothing
    if len({doc for doc, _ in presses}) > 1:
        st.toast("That key came while the next document was being drawn: nothing labeled.")
        return
    doc, name = presses[-1]
    if not seen(project.name, doc):
        return
    if name is None:
        common.skipped(project).add(doc)
    elif project.annotate(doc, name, user=common.annotator()):
        st.toast(f"Document {doc}: {common.escape_markdown(name)}")
