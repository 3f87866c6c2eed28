"""Few-Shot Labeler: bring text, name labels, see zero-shot results, then teach with a few examples.

Run with `streamlit run app.py`. This file only sets up navigation and the shared sidebar (pick or
create a project, its numbers); each step of the user's path is a file in pages/.
"""

import streamlit as st

from fewshot import FewshotError, projection
from pages import common, keys

st.set_page_config(page_title="Few-Shot Labeler", layout="wide")
projection.warm_up()  # once per process, in the background: UMAP's numba compile takes 20-75 s

navigation = st.navigation(
    [
        st.Page(common.DATA_PAGE, title="Data", icon=":material/upload_file:", default=True),
        st.Page(common.LABELS_PAGE, title="Labels", icon=":material/label:"),
        st.Page(common.TEACH_PAGE, title="Teach", icon=":material/school:"),
        st.Page("pages/map.py", title="Map", icon=":material/scatter_plot:"),
        st.Page("pages/review.py", title="Review", icon=":material/rate_review:"),
        st.Page("pages/export.py", title="Export", icon=":material/download:"),
    ],
    position="sidebar" if common.signed_in() else "hidden",
)
common.sign_in()
keys.act()  # the Teach page's key presses, before the sidebar counts the labels


def _create_project() -> None:
    """Form callback: open the named project (new or not), or keep the error to show below."""
    try:
        common.select_project(st.session_state["new_project"].strip())
    except FewshotError as exc:
        st.session_state["project_error"] = str(exc)
    else:
        st.session_state["new_project"] = ""


with st.sidebar:
    names = common.project_names()
    if names:
        st.selectbox(
            "Project",
            names,
            key="project",
            on_change=lambda: common.select_project(st.session_state["project"]),
        )
    with st.expander("New project", expanded=not names):
        with st.form("new_project_form", border=False):
            st.text_input("Name", key="new_project", placeholder="e.g. support tickets")
            st.form_submit_button("Create", on_click=_create_project)
    if error := st.session_state.pop("project_error", None):
        st.error(common.escape_markdown(error))
    common.who()
    if (project := common.current_project()) is not None:
        st.markdown(
            f"{common.plural(project.n_documents(), 'document')}  \n"
            f"{common.plural(len(project.labels()), 'label')}  \n"
            f"{common.plural(len(project.annotations()), 'human label')}"
        )

navigation.run()
