"""What every page shares: the current project, the models and the fitted workspace.

Pages read state through these helpers and write it back through the store, so all pages show the
same numbers and a reload loses nothing. Slow things are cached per process with st.cache_resource;
anything that depends on labels is refit on every run, since that takes well under a second.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit.runtime.pages_manager import PagesManager

from fewshot import FewshotError, config, demo
from fewshot.encoders import Pace, Progress
from fewshot.labelspace import LabelSpace
from fewshot.numeric import lower_priority, text_fingerprint
from fewshot.store import Project, list_projects, open_project
from fewshot.views import DEFAULT_VIEW, VIEWS, Embedder
from fewshot.workspace import Prediction, Workspace

DATA_PAGE = "pages/data.py"
LABELS_PAGE = "pages/labels.py"
TEACH_PAGE = "pages/teach.py"
WAIT_S = 0.05  # between the checks for a newer press while a fit runs
COUNTING_RULE = "counting_rule"  # the project setting: which label counts when annotators differ
_APP_SETTINGS = "app.json"  # in the data directory: settings of the app rather than of a project
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:])")


# Who is labeling


def _login_configured() -> bool:
    """Whether Streamlit's built-in login (OIDC) is set up in .streamlit/secrets.toml."""
    return bool(st.secrets.load_if_toml_exists() and "auth" in st.secrets)


def annotator() -> str:
    """This session's name, for every annotation it writes: the logged-in user's e-mail with
    Streamlit's login, else the name typed once. Call it after sign_in (which stops without)."""
    if _login_configured():
        return str(st.user.get("email") or st.user.get("sub"))
    return st.session_state["annotator"]


def _take_name() -> None:
    """Form callback: the typed name becomes the session's, unless it is blank."""
    name = " ".join(st.session_state.get("your_name", "").split())
    if name:
        st.session_state["annotator"] = name
    else:
        st.session_state["sign_in_error"] = "Type your name: it goes with every label you make."


def _check_password(expected: str) -> None:
    """Form callback: a constant-time comparison, so the time taken says nothing of the password."""
    given = st.session_state.get("password", "").encode()
    if hmac.compare_digest(given, expected.encode()):
        st.session_state["password_ok"] = True
    else:
        st.session_state["sign_in_error"] = "That password is not right."
    st.session_state["password"] = ""


def signed_in() -> bool:
    """Whether the session may label and has a name (sign_in asks for what is missing)."""
    expected = config.password()
    if expected is not None and not st.session_state.get("password_ok"):
        return False
    if _login_configured():
        return bool(st.user.get("is_logged_in"))
    return bool(st.session_state.get("annotator"))


def sign_in() -> None:
    """Stop the run until signed_in: FEWSHOT_PASSWORD when set, then Streamlit's login or a name
    typed once (kept for the session)."""
    if signed_in():
        return
    expected = config.password()
    st.title("Few-Shot Labeler")
    if expected is not None and not st.session_state.get("password_ok"):
        with st.form("password_form"):
            st.text_input("Password", type="password", key="password")
            st.form_submit_button("Enter", on_click=_check_password, args=(expected,))
    elif _login_configured():
        st.button("Log in", icon=":material/login:", on_click=st.login)
    else:
        with st.form("name_form"):
            st.text_input(
                "Your name", key="your_name", placeholder="e.g. Alex Kim",
                help="Every label you make records it, so the team sees who labeled what.",
            )  # fmt: skip
            st.form_submit_button("Start labeling", on_click=_take_name)
    if error := st.session_state.pop("sign_in_error", None):
        st.error(error)
    st.stop()


def who() -> None:
    """The sidebar's line saying who labels here, with the way to change it."""
    st.caption(f":material/person: {escape_markdown(annotator())}")
    if _login_configured():
        st.button("Log out", on_click=st.logout, key="log_out")
    else:
        st.button("Not you?", key="not_you", on_click=st.session_state.pop, args=("annotator",))


# Projects


def _last_project() -> str | None:
    try:
        return json.loads((config.data_dir() / _APP_SETTINGS).read_text())["last_project"]
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or a damaged file: no default
        return None


def select_project(name: str) -> None:
    """Make the project (created if new) current, in this session and on the next visit.

    Call it from a widget callback: it sets the sidebar picker's state, which is only allowed
    before the picker is drawn.
    """
    open_project(name)
    st.session_state["project"] = name
    (config.data_dir() / _APP_SETTINGS).write_text(json.dumps({"last_project": name}))


def project_names() -> list[str]:
    """All projects, with st.session_state.project set to one of them (or None when there are none).

    The default is the project used last, so coming back tomorrow opens where the user left off.
    """
    names = list_projects()
    if st.session_state.get("project") not in names:
        last = _last_project()
        st.session_state["project"] = last if last in names else (names[0] if names else None)
    return names


def _through_navigation() -> None:
    """Rerun through app.py when Streamlit ran this page on its own.

    With a folder named pages/ beside app.py, Streamlit (1.67) runs a process's first request in
    its old multipage mode until some run calls st.navigation: a deep link such as /teach then runs
    that page alone, without app.py's sidebar and project choice, and keeps doing so. Leaving the
    mode and rerunning sends the request through st.navigation, which finds the same page.
    """
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def current_project() -> Project | None:
    """The session's project; every page asks for it first, so it also checks how the page runs."""
    _through_navigation()
    sign_in()
    name = st.session_state.get("project")
    return open_project(name, create=False) if name else None


def open_demo() -> None:
    """Button callback: the demo project with its sample and default labels becomes current."""
    select_project(demo.open_demo().name)


# Models and embeddings


def progress_bar(first: str, template: str) -> tuple[DeltaGenerator, Progress]:
    """A progress bar showing `first` and the callback that fills it; template is formatted with
    done and total, and the time left at the pace so far follows it."""
    bar = st.progress(0.0, text=first)
    pace = Pace()

    def progress(done: int, total: int) -> None:
        text = template.format(done=done, total=total) + pace(done, total)
        bar.progress(min(done / max(total, 1), 1.0), text)

    return bar, progress


@st.cache_resource(show_spinner=False)
def embedder() -> Embedder:
    """The configured models, once per process; the first Zmap fit ever embeds its vocabulary."""
    bar, progress = progress_bar(
        "Loading the sentence encoder and word vectors...",
        "Fitting the Zmap (once): embedding {done:,} / {total:,} words",
    )
    model = Embedder.default(progress=progress)
    bar.empty()
    return model


@st.cache_resource(show_spinner=False, max_entries=8)
def _workspace(project_key: str, fingerprint: str, _texts: tuple[str, ...]) -> Workspace:
    """One Workspace per (project, corpus), shared by all sessions; _texts is not hashed.

    Elements drawn in here are replayed on a cache hit; the bar is emptied, so nothing shows then.
    """
    model = embedder()
    bar, progress = progress_bar(
        "Loading the sentence encoder...", "Embedding {done:,} / {total:,} documents"
    )
    found = Workspace(list(_texts), model, progress=progress)
    bar.progress(1.0, "Indexing the corpus (once): its word n-grams and nearest neighbours...")
    found.prepare()
    bar.empty()
    return found


def _corpus(project: Project) -> tuple[str, Workspace] | None:
    """The corpus's fingerprint and its Workspace (None without documents): the texts are read
    and hashed once per run, and the fingerprint keys what else is cached per corpus."""
    texts = tuple(project.texts())
    if not texts:
        return None
    fingerprint = text_fingerprint(texts)
    return fingerprint, _workspace(project.key, fingerprint, texts)


def workspace(project: Project) -> Workspace | None:
    """The project's corpus embedded in every view (None without documents); the first call for a
    corpus shows a progress bar, and the embedding cache makes it quick after that."""
    found = _corpus(project)
    return None if found is None else found[1]


@st.cache_resource(show_spinner=False, max_entries=8)
def _metadata(project_key: str, fingerprint: str, _project: Project) -> pd.DataFrame:
    """id, source and the metadata columns, per (project, corpus): parsing them is slow at
    50,000 documents, and they change only with the corpus. Shared: never modify it."""
    return _project.documents().drop(columns="text")


def metadata(state: Current) -> pd.DataFrame:
    """The documents' id, source and metadata columns (row i is document i)."""
    return _metadata(state.project.key, state.corpus, state.project)


# Labels and predictions


def label_space(project: Project) -> LabelSpace | None:
    """The project's labels, or None when they cannot classify anything (fewer than two)."""
    pairs = project.labels()
    try:
        return LabelSpace(tuple(n for n, _ in pairs), tuple(d for _, d in pairs))
    except FewshotError:
        return None


def counted(project: Project) -> pd.DataFrame:
    """The human label that counts for each document, by the project's rule for when annotators
    differ (chosen on Review); the classifier and the export both read it."""
    return project.annotations(rule=project.get_setting(COUNTING_RULE, "latest"))


def human_labels(project: Project, labels: LabelSpace) -> dict[int, str]:
    """{document id: label name} for the documents whose current human label is in labels.

    A rename or merge moves its documents to the new name in the store; a label no longer in
    the list (an older project's, say) stays in the store but is left out here. Ids are the
    documents' positions, as the store numbers documents 0..n-1.
    """
    canonical = {name.casefold(): name for name in labels.names}
    frame = counted(project)
    return {
        int(doc): canonical[label.casefold()]
        for doc, label in zip(frame["doc_id"], frame["label"])
        if label.casefold() in canonical
    }


@dataclass
class Current:
    """Everything a page needs to show predictions, read fresh from the store on every run."""

    project: Project
    workspace: Workspace
    labels: LabelSpace
    human: dict[int, str]
    corpus: str  # the corpus's fingerprint

    def predict(self, view: str = DEFAULT_VIEW) -> Prediction:
        """Workspace.predict, kept for the session until the labels change: on a large corpus a
        refit takes seconds, and most reruns (a row selected, another page) change no label.
        The cross-validation its calibration needs runs in the background (`cross_validation`);
        until it is done the scores are tempered by what is at hand, then anew."""
        key = self._key()
        fitted = st.session_state.setdefault("fitted", {})
        done = fitted.get(view)
        if done is None or done[0] != key:
            done = fitted[view] = (key, self._wait_for_fit(view))
        if done[1].pending and self.cross_validation(view).done():
            done = fitted[view] = (key, self.workspace.calibrated(done[1]))
        return done[1]

    def latest(self, view: str = DEFAULT_VIEW) -> Prediction:
        """The newest fit at hand: predict's, or else the session's last one for this corpus and
        label set (fitted before the latest labels), or else a new fit. For what must be on
        screen at once, before a refit of a second or more on a large corpus."""
        done = st.session_state.get("fitted", {}).get(view)
        if done is not None and done[0][:2] == (self.workspace, self.labels):
            return done[1]
        return self.predict(view)

    def _key(self) -> tuple:
        return (self.workspace, self.labels, tuple(sorted(self.human.items())))

    def _wait_for_fit(self, view: str) -> Prediction:
        """The fit for these labels, run in the fitting thread and waited for here.

        The wait reads the session state every WAIT_S, so a key pressed during a refit of seconds
        stops this run at once and its callback runs while the press is fresh: handled only after
        the refit, a double press's second half would pass the Teach page's seen-guard on a
        document the user never saw. A fit so stopped goes on, and the next run takes it up if
        the labels are still the same.
        """
        job = self._in_background(
            "fit_jobs", view, partial(self.workspace.predict, wait=False), _fitting()
        )
        if not job.done():
            last = self.workspace.fit_seconds.get(view)
            about = f", about {last:.0f} s" if last is not None and last >= 1 else ""
            n = plural(len(self.workspace.texts), "document")
            with st.spinner(f"Fitting {VIEWS[view]} on {n}{about}...", show_time=True):
                while not wait([job], timeout=WAIT_S).done:
                    _ = "fitted" in st.session_state  # as every st call: where a run can stop
        return job.result()

    def cross_validation(self, view: str = DEFAULT_VIEW) -> Future:
        """Workspace.cross_validated_accuracy (None below 4 labels) as a future, run in the
        background: it refits several times (seconds on a large corpus) and must not hold up the
        next document. It calibrates the view's later fits too."""
        if len(self.human) < 4:
            job: Future = Future()
            job.set_result(None)
            return job
        return self._in_background(
            "cross_validation", view, self.workspace.cross_validated_accuracy
        )

    def likely_mistakes(self, view: str = DEFAULT_VIEW) -> Future:
        """Workspace.likely_mistakes as a future, run in the background: below 20 labels it
        cross-validates on its own (seconds on a large corpus)."""
        return self._in_background("likely_mistakes", view, self.workspace.likely_mistakes)

    def _in_background(
        self, slot: str, view: str, run: Callable, executor: ThreadPoolExecutor | None = None
    ) -> Future:
        """run(labels, human, view) as a job on executor (the low-priority background one by
        default), kept for the session until the labels change; one job at a time per executor,
        and a job queued for labels that have since changed is dropped."""
        key = self._key()
        jobs = st.session_state.setdefault(slot, {})
        memo = jobs.get(view)
        if memo is not None and memo[0] == key:
            return memo[1]
        if memo is not None:
            memo[1].cancel()  # no effect once running
        job = (executor or _background()).submit(run, self.labels, dict(self.human), view)
        jobs[view] = (key, job)
        return job

    def table(self, prediction: Prediction) -> pd.DataFrame:
        """The prediction table with the human labels in it (Prediction.table's columns)."""
        n = len(self.workspace.texts)
        human = pd.Series(self.human, dtype=object).reindex(range(n))
        return prediction.table(self.workspace.texts, human)


def refresh_when_calibrated(state: Current, prediction: Prediction) -> None:
    """While the prediction's scores wait for their cross-validation (in the background), say so
    and check once a second; rerun the page when it is done, so the scores on screen are the
    calibrated ones. (A job already done when the page runs cannot calibrate it: no rerun.)"""
    job = state.cross_validation(prediction.view)
    if not prediction.pending or job.done():
        return
    st.caption(
        ":material/hourglass_top: Calibrating the scores on the newest labels (cross-validation "
        "in the background); the page updates when it is done."
    )
    rerun_when_done(job)


def rerun_when_done(job: Future) -> None:
    """Check the background job once a second, and rerun the page when it is done."""

    @st.fragment(run_every=1)
    def poll() -> None:
        if job.done():
            st.rerun()

    poll()


@st.cache_resource(show_spinner=False)
def _fitting() -> ThreadPoolExecutor:
    """One fitting thread for the whole server: a fit left behind by a newer label finishes
    before the next starts rather than halving its cores."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="fewshot-fit")


@st.cache_resource(show_spinner=False)
def _background() -> ThreadPoolExecutor:
    """One worker for the whole server, at low priority: cross-validations queue rather than share
    two cores, and yield them to whatever a user waits for."""
    return ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="fewshot-cv", initializer=lower_priority
    )


def describe_fit(prediction: Prediction) -> str:
    """How the classifier reached its predictions, in a sentence (it chooses by itself)."""
    classifier = prediction.classifier
    if classifier.transductive_used_:
        how = "label embeddings, refined by soft clustering of the whole corpus"
    else:
        how = "label embeddings and human labels only; clustering the corpus was not trusted"
    if prediction.lexical is not None and prediction.lexical.scale_ > 0:
        how += f"; combined with the corpus's word n-grams (weight {prediction.lexical.scale_:.2f})"
    return f"{VIEWS[prediction.view]}: {how} (check: {classifier.selection_})."


def _stop_pointing_to(message: str, page: str, label: str, icon: str) -> None:
    """An empty state: say what is missing, link to the page that fixes it, stop this page."""
    st.info(message)
    st.page_link(page, label=label, icon=icon)
    st.stop()


def require_project() -> Project:
    """The current project, or a pointer to the Data page (and the page stops)."""
    project = current_project()
    if project is None:
        _stop_pointing_to(
            "There is no project yet: open the demo sample or bring your own documents.",
            DATA_PAGE, "Go to Data", ":material/upload_file:",
        )  # fmt: skip
    return project


def require_corpus(project: Project) -> tuple[str, Workspace]:
    """The corpus's fingerprint and its embedded Workspace, or a pointer to the Data page when
    there are no documents."""
    found = _corpus(project)
    if found is None:
        _stop_pointing_to(
            f"Project '{project.name}' has no documents yet. Add some on the Data page.",
            DATA_PAGE, "Go to Data", ":material/upload_file:",
        )  # fmt: skip
    return found


def require_labels(project: Project) -> LabelSpace:
    """The label space, or a pointer to the Labels page when there are fewer than two labels."""
    labels = label_space(project)
    if labels is None:
        _stop_pointing_to(
            "Define at least two distinct labels on the Labels page to see predictions.",
            LABELS_PAGE, "Go to Labels", ":material/label:",
        )  # fmt: skip
    return labels


def current() -> Current:
    """Project, corpus, labels and human labels, or a pointer to the page that provides them."""
    project = require_project()
    corpus, found = require_corpus(project)
    labels = require_labels(project)
    return Current(project, found, labels, human_labels(project, labels), corpus)


def compact(figure: go.Figure, height: int) -> go.Figure:
    """Plotly figure sized for a column: small margins, the legend below where it covers nothing."""
    figure.update_layout(
        height=height,
        margin={"t": 40, "b": 0, "l": 0, "r": 0},
        legend={"orientation": "h", "title_text": "", "y": -0.25},
    )
    return figure


def paginate(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """The rows of the page the user picked, when the frame is longer than config.table_rows().

    A large corpus is sent to the browser a page at a time, not whole on every rerun. Draws a
    page picker and says which rows are shown; key names the picker.
    """
    size = config.table_rows()
    if len(frame) <= size:
        return frame
    pages = -(-len(frame) // size)
    if st.session_state.get(key, 1) > pages:  # the frame shrank (a filter): stay in range
        st.session_state[key] = pages
    picker, note = st.columns([1, 4], vertical_alignment="bottom")
    page = picker.number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, key=key)
    start = (page - 1) * size
    stop = min(start + size, len(frame))
    note.caption(f"Showing rows {start + 1:,}-{stop:,} of {len(frame):,}, {size:,} per page.")
    return frame.iloc[start:stop]


def skipped(project: Project) -> set[int]:
    """Documents the user skipped on the Teach page, for this session (mutable; ids of the corpus)."""
    return st.session_state.setdefault("skipped", {}).setdefault(project.name, set())


def plural(n: int, noun: str) -> str:
    """ "1 document", "2 documents": counts read as sentences."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def escape_markdown(text: str) -> str:
    """User text made literal where Streamlit renders Markdown (button labels, metric labels)."""
    return _MARKDOWN.sub(r"\\\1", text)
