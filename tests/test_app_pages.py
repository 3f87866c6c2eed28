"""The Data, Labels and Teach pages and the app's sidebar, run headless through the real app.

Real models, no mocks, the 200-document demo sample; uploads go through st.file_uploader itself.
"""

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fewshot import config
from fewshot.demo import DEMO_LABELS, open_demo
from fewshot.store import list_projects, open_project

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def data_dir(monkeypatch, tmp_path, embedder):
    """A fresh data directory per test, with the session's Zmap copied in (as after a first
    start), so the app's own embedder does not embed the Zmap vocabulary again."""
    shutil.copytree(config.data_dir() / "maps", tmp_path / "maps")
    monkeypatch.setenv("FEWSHOT_DATA_DIR", str(tmp_path))
    return tmp_path


def start(project: str | None = None, page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    if project:
        at.session_state["project"] = project
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_first_run_welcome_demo_and_navigation():
    at = start()
    assert at.title[0].value == "Data"
    assert at.sidebar.expander[0].label == "New project"  # no projects: nothing to pick yet
    assert "Welcome" in at.markdown[0].value

    button(at, "Open the demo sample").click().run()
    assert not at.exception, at.exception
    assert at.session_state["project"] == "demo"
    project = open_project("demo", create=False)
    assert project.n_documents() == 200
    assert project.labels() == list(DEMO_LABELS)
    assert at.subheader[0].value == "Corpus: 200 documents"
    assert at.sidebar.selectbox(key="project").value == "demo"
    assert "200 documents  \n4 labels  \n0 human labels" == at.sidebar.markdown[0].value

    at.switch_page("pages/labels.py").run()  # the second click: zero-shot results
    assert not at.exception, at.exception
    assert at.subheader[0].value == "Zero-shot assignments"
    assert len(at.dataframe[0].value) == 200

    at.switch_page("pages/teach.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Teach"

    assert start().sidebar.selectbox(key="project").value == "demo"  # a new session: last used


def test_sidebar_creates_projects_and_rejects_bad_names():
    at = start()
    at.sidebar.text_input(key="new_project").input("../etc")
    button(at, "Create").click().run()
    assert "Invalid project name" in at.sidebar.error[0].value
    assert list_projects() == []

    at.sidebar.text_input(key="new_project").input("Support tickets")
    button(at, "Create").click().run()
    assert not at.exception, at.exception
    assert list_projects() == ["Support tickets"]
    assert at.sidebar.selectbox(key="project").value == "Support tickets"
    assert at.sidebar.text_input(key="new_project").value == "" and not at.sidebar.error
    assert not any("create a project" in i.value for i in at.info)
    assert at.file_uploader  # the new project takes uploads


def test_data_page_upload_errors_replace_and_add():
    open_project("tickets")
    at = start("tickets")

    at.file_uploader[0].set_value([("blob.csv", bytes(range(256)) * 8, "text/csv")]).run()
    assert len(at.error) == 1 and "looks like a binary file, not text" in at.error[0].value
    at.file_uploader[0].set_value([("empty.txt", b"", "text/plain")]).run()
    assert len(at.error) == 1 and "is empty" in at.error[0].value

    table = (
        b"id,body\n1,The striker scored twice\n2,Shares fell sharply\n3,\n4,Shares fell sharply\n"
    )
    notes = b"A new chip doubles battery life\n\nThe striker scored twice\n"
    at.file_uploader[0].set_value(
        [("tickets.csv", table, "text/csv"), ("notes.txt", notes, "text/plain")]
    ).run()
    assert not at.error
    assert at.selectbox[0].value == "body"  # guessed; "id" is a number column
    assert at.radio[0].value == "lines"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {
        "Rows read": "6",
        "Empty dropped": "1",
        "Duplicates dropped": "2",
        "Documents": "3",
    }
    button(at, "Replace corpus").click().run()
    assert not at.exception, at.exception
    project = open_project("tickets", create=False)
    assert project.documents()["text"].tolist() == [
        "The striker scored twice",
        "Shares fell sharply",
        "A new chip doubles battery life",
    ]
    assert at.success[0].value == "The corpus now holds 3 documents."
    assert not at.file_uploader[0].value  # emptied for the next upload

    project.annotate(0, "Sports")
    more = b"text\nShares fell sharply\nThe league expands to twelve teams\n"
    at.file_uploader[0].set_value([("more.csv", more, "text/csv")]).run()
    assert button(at, "Replace corpus").disabled  # would delete a human label: confirm first
    button(at, "Add to corpus").click().run()
    assert project.n_documents() == 4  # the duplicate of a stored document was left out
    assert at.success[0].value == "Added 1 document; left out 1 document already in the corpus."
    assert len(project.annotations()) == 1

    at.file_uploader[0].set_value([("more.csv", more, "text/csv")]).run()
    at.checkbox[0].check().run()
    button(at, "Replace corpus").click().run()
    assert project.n_documents() == 2
    assert project.annotations().empty


BAD_UPLOADS = [  # (file name, bytes, what the page says: an error, or a note beside the preview)
    ("latin.txt", b"caf\xe9 au lait\ncr\xe8me\n", "read as Windows-1252"),
    ("utf16.csv", "text\ncafé\n".encode("utf-16"), None),
    ("bom.csv", "\ufefftext,n\ncafé,1\n".encode(), None),
    ("huge.txt", b"word " * 1_000_000, "cut short"),
    (
        "ragged.csv",
        b"text,n\nok,1\ntoo,many,fields\n",
        "header (an unquoted delimiter?): 1, on lines 3",
    ),
    ("numbers.csv", b"id,score\n1,2\n3,4\n", "has no text in it"),
    ("quotes.csv", b'text,n\n"never closed,1\n', "quote is never closed"),
    ("blank.txt", b"\n  \n", "No documents found"),
]


@pytest.mark.parametrize(("name", "data", "says"), BAD_UPLOADS, ids=[b[0] for b in BAD_UPLOADS])
def test_data_page_reads_or_refuses_awkward_files_and_leaves_the_project_alone(name, data, says):
    open_demo()
    at = start("demo")
    at.file_uploader[0].set_value([(name, data, "application/octet-stream")]).run()
    assert not at.exception, at.exception
    shown = [m.value.replace("\\", "") for m in [*at.error, *at.warning]]  # Markdown-escaped
    if says is None:
        assert not shown and at.metric[-1].value == "1"  # decoded: one document, "café"
    else:
        assert any(says in message for message in shown), shown
    assert open_project("demo").n_documents() == 200  # nothing stored until a button says so


def test_labels_page_validates_saves_and_compares_views():
    open_demo()
    at = start("demo", "pages/labels.py")
    assert at.subheader[0].value == "Zero-shot assignments"
    assert "Sentence-BERT" in at.caption[0].value
    assert {"World", "Sports", "Business", "Sci/Tech"} >= set(
        at.dataframe[0].value["predicted_label"]
    )
    agreement = at.dataframe[1].value
    assert len(agreement) == 3 and agreement["kappa"].between(-1, 1).all()

    for bad, message in [
        ("Sports\nsports", "Duplicate label"),
        ("Sports", "At least two labels"),
        ("Sports\n: no name", "label name is empty"),
        ("Sports\n" + "x" * 200, "200 characters long"),
    ]:
        at.text_area[0].input(bad)
        at.button(key="FormSubmitter:labels_form-Save labels").click().run()
        assert message in at.error[0].value and "Nothing was saved" in at.error[0].value
        assert len(open_project("demo").labels()) == 4

    at.text_area[0].input("Sports: games, athletes\nMoney: markets, zzqxv")
    at.button(key="FormSubmitter:labels_form-Save labels").click().run()
    assert not at.exception, at.exception
    assert open_project("demo").labels() == [
        ("Sports", "games, athletes"),
        ("Money", "markets, zzqxv"),
    ]
    assert set(at.dataframe[0].value["predicted_label"]) <= {"Sports", "Money"}
    assert "zzqxv" in at.warning[0].value  # a word the word vectors do not know


def test_teach_page_labels_undo_skip_and_table_edits():
    project = open_demo()
    at = start("demo", "pages/teach.py")
    assert at.metric[0].value == "not yet"

    at.button(key="label_1").click().run()  # "Sports"
    at.button(key="label_1").click().run()
    assert not at.exception, at.exception
    current = project.annotations()
    assert current["label"].tolist() == ["Sports", "Sports"] and current["doc_id"].nunique() == 2

    button(at, "Undo last label").click().run()
    assert len(project.annotations()) == 1

    shown = at.caption[0].value
    button(at, "Skip").click().run()
    assert at.caption[0].value != shown

    doc = int(at.caption[0].value.split()[1].rstrip(","))
    at.selectbox(key=f"choice_{doc}").set_value("Business")
    button(at, "Save label").click().run()
    assert dict(zip(project.annotations()["doc_id"], project.annotations()["label"]))[doc] == (
        "Business"
    )

    # The predictions table: an edit in the human label column is saved to the store at once.
    row = at.data_editor[0].value.iloc[0]
    at.session_state["predictions_0"] = {
        "edited_rows": {0: {"human_label": "World"}},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()
    assert not at.exception, at.exception
    labels = dict(zip(project.annotations()["doc_id"], project.annotations()["label"]))
    assert labels[int(row["id"])] == "World" and len(labels) == 3

    at.button(key="label_2").click().run()  # a fourth label: cross-validation has enough
    assert at.metric[0].value.endswith("%")
