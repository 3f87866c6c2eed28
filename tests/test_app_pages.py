"""The Data, Labels and Teach pages and the app's sidebar, run headless through the real app.

Real models, no mocks, the 200-document demo sample; uploads go through st.file_uploader itself.
"""

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from fewshot.bench import sample_per_class
from fewshot.datasets import load_dataset
from fewshot.demo import DEMO_LABELS, open_demo
from fewshot.labelspace import LabelSpace
from fewshot.store import list_projects, open_project

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("app_data_dir")  # a fresh data directory per test


def start(project: str | None = None, page: str | None = None) -> AppTest:
    """The app with the project current, signed in as "local" through the name box."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    if project:
        at.session_state["project"] = project
    at.run()
    at.text_input(key="your_name").input("  local ")
    at.button[0].click().run()
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
    assert "Zero-shot assignments" in [s.value for s in at.subheader]
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
    assert [s.value for s in at.subheader][:2] == [
        "Rename, merge or delete",  # below the form, then the results
        "Zero-shot assignments",
    ]
    assert any("Sentence-BERT" in c.value for c in at.caption)
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


def test_labels_page_fits_the_other_views_only_when_compared():
    # Off is the default beyond 20,000 documents; the demo's 200 start with it on.
    open_demo()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["project"] = "demo"
    at.session_state["annotator"] = "local"
    at.session_state["compare_views"] = False
    at.run()
    at.switch_page("pages/labels.py").run()
    assert not at.exception, at.exception
    assert set(at.session_state["fitted"]) == {"sbert"}
    assert "Three views side by side" not in [s.value for s in at.subheader]
    assert any("Compare the three views" in c.value for c in at.caption)
    at.toggle(key="compare_views").set_value(True).run()
    assert set(at.session_state["fitted"]) == {"sbert", "words", "zmap"}
    assert "Three views side by side" in [s.value for s in at.subheader]


def test_labels_page_shows_a_fit_at_once_and_calibrates_it_in_the_background():
    project = open_demo()
    names = [name for name, _ in project.labels()]
    for doc in range(24):  # enough human labels for the calibration to cross-validate them
        project.annotate(doc, names[doc % len(names)])
    at = start("demo", "pages/labels.py")
    first = at.session_state["fitted"]["sbert"][1]
    assert first.pending and first.held_out is None  # not held up by five more fits
    at.session_state["cross_validation"]["sbert"][1].result(timeout=120)
    at.run()  # what the page's polling fragment starts once the job is done
    assert not at.exception, at.exception
    calibrated = at.session_state["fitted"]["sbert"][1]
    assert not calibrated.pending and "on 24 cross-validated" in calibrated.calibration
    assert not any("Calibrating the scores" in c.value for c in at.caption)


def test_teach_page_labels_undo_skip_and_table_edits():
    project = open_demo()
    at = start("demo", "pages/teach.py")
    estimate, cross_validated = at.metric
    assert estimate.label == "Estimated accuracy on the corpus" and estimate.value.endswith("%")
    assert "from the corpus (estimated accuracy" in estimate.proto.help
    assert (
        cross_validated.label == "Cross-validated accuracy" and cross_validated.value == "not yet"
    )

    press(at, "label_", 1)  # "Sports"
    press(at, "label_", 1)
    assert not at.exception, at.exception
    current = project.annotations()
    assert current["label"].tolist() == ["Sports", "Sports"] and current["doc_id"].nunique() == 2

    undo = at.button(key="undo_Backspace")
    assert undo.proto.help.replace("\\", "") == "Undo: label 1 document as Sports"
    undo.click().run()
    assert len(project.annotations()) == 1

    shown = at.caption[0].value
    press(at, "skip_")
    assert at.caption[0].value != shown

    doc = int(at.caption[0].value.split()[1].rstrip(","))
    at.selectbox(key=f"choice_{doc}").set_value("Business")
    time.sleep(0.35)  # the document has been read
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

    press(at, "label_", 2)  # a fourth label: cross-validation has enough, in the background
    assert at.metric[1].value in ("...", *(f"{p}%" for p in range(101)))
    at.session_state["cross_validation"]["sbert"][1].result(timeout=120)
    at.run()  # what the page's polling fragment shows once the job is done
    assert at.metric[1].value.endswith("%")


def press(at: AppTest, prefix: str, index: int | None = None) -> None:
    """Click the Teach button for the shown document (its key names the document), after the
    moment a document must be on screen before a press counts."""
    suffix = "" if index is None else f"_{index}"
    key = next(b.key for b in at.button if b.key and b.key.startswith(prefix)
               and b.key.endswith(suffix))  # fmt: skip
    time.sleep(0.35)
    at.button(key=key).click().run()


def plain(elements) -> list[str]:
    """Messages as the user reads them (the page escapes Markdown in user text)."""
    return [e.value.replace("\\", "") for e in elements]


def test_labels_page_renames_merges_deletes_and_undoes_each():
    project = open_demo()  # labels set by user "demo": the page's user "local" cannot undo them
    project.annotate([0, 1], "Sports", user="ann")
    project.annotate(2, "World", user="ann")
    project.annotate(3, "Business", user="ann")
    project.annotate(4, "Sci/Tech", user="ann")
    demo_text = "\n".join(f"{name}: {note}" for name, note in DEMO_LABELS)

    def human() -> dict[int, str]:
        frame = project.annotations()
        return dict(zip(frame["doc_id"], frame["label"], strict=True))

    def names() -> list[str]:
        return [name for name, _ in project.labels()]

    def undo_and_check(what: str) -> None:
        button(at, "Undo").click().run()
        assert not at.exception, at.exception
        assert plain(at.success) == [f"Undone: {what}."]
        assert project.labels() == list(DEMO_LABELS)
        assert human() == {0: "Sports", 1: "Sports", 2: "World", 3: "Business", 4: "Sci/Tech"}
        assert at.text_area[0].value == demo_text  # the text area shows the stored labels
        assert not any(b.label == "Undo" for b in at.button)  # one change, one undo

    at = start("demo", "pages/labels.py")
    assert at.subheader[0].value == "Rename, merge or delete"
    assert at.text_area[0].value == demo_text
    assert "Sports (2 human labels)" in at.selectbox(key="rename_label").options
    assert not any(b.label == "Undo" for b in at.button)  # the demo's labels are not ours

    # Rename: the human labels follow the label.
    at.selectbox(key="rename_label").set_value("Sports")
    at.text_input(key="rename_to").input("Athletics")
    button(at, "Rename").click().run()
    assert not at.exception, at.exception
    assert plain(at.success) == ["Renamed Sports to Athletics; 2 human labels followed."]
    assert names() == ["World", "Athletics", "Business", "Sci/Tech"]
    assert human() == {0: "Athletics", 1: "Athletics", 2: "World", 3: "Business", 4: "Sci/Tech"}
    assert at.text_area[0].value.splitlines()[1] == "Athletics: games, athletes, teams"
    assert at.text_input(key="rename_to").value == ""
    assert "Athletics (2 human labels)" in at.selectbox(key="delete_label").options
    assert set(at.dataframe[0].value["predicted_label"]) <= set(names())
    undo_and_check("rename Sports → Athletics")

    at.selectbox(key="rename_label").set_value("Sports")
    at.text_input(key="rename_to").input("world")  # a name in use: merge instead
    button(at, "Rename").click().run()
    assert plain(at.error) == ["Label 'world' exists already: merge 'Sports' into it instead."]
    at.selectbox(key="rename_label").set_value("Business")
    at.text_input(key="rename_to").input("Money: cash")  # would read back as a description
    button(at, "Rename").click().run()
    assert "cannot contain ':'" in plain(at.error)[0]
    assert project.labels() == list(DEMO_LABELS)

    # Merge: Business folds into Sci/Tech and takes its document along.
    at.multiselect(key="merge_sources").set_value(["Business"]).run()
    assert "Business" not in at.selectbox(key="merge_target").options  # not into itself
    at.selectbox(key="merge_target").set_value("Sci/Tech").run()
    assert "1 human label will move to Sci/Tech; undo brings them back." in plain(at.caption)
    button(at, "Merge").click().run()
    assert not at.exception, at.exception
    assert plain(at.success) == ["Merged Business into Sci/Tech; 1 human label moved to it."]
    assert names() == ["World", "Sports", "Sci/Tech"]
    assert human()[3] == "Sci/Tech" and human()[4] == "Sci/Tech"
    assert "Business" not in at.text_area[0].value
    undo_and_check("merge Business into Sci/Tech")

    # Delete: World leaves the list and its document loses the label.
    at.selectbox(key="delete_label").set_value("World").run()
    assert "1 human label will lose it; undo brings them back." in plain(at.caption)
    button(at, "Delete label").click().run()
    assert not at.exception, at.exception
    assert plain(at.success) == ["Deleted World; 1 document lost it as human label."]
    assert names() == ["Sports", "Business", "Sci/Tech"]
    assert 2 not in human() and len(human()) == 4
    undo_and_check("delete World")

    # The text area cannot drop a label that documents carry; an unused one it can.
    at.text_area[0].input("World\nSports\nBusiness")
    at.button(key="FormSubmitter:labels_form-Save labels").click().run()
    assert plain(at.error) == [
        "Label 'Sci/Tech' is the human label of 1 document: rename, merge or delete it "
        "instead of removing its line. Nothing was saved."
    ]
    assert project.labels() == list(DEMO_LABELS)
    assert at.text_area[0].value == "World\nSports\nBusiness"  # the draft stays, to fix
    at.text_area[0].input(demo_text + "\nHealth: medicine, doctors")
    at.button(key="FormSubmitter:labels_form-Save labels").click().run()
    assert plain(at.success) == ["Labels saved: added Health."]
    assert names()[-1] == "Health"
    button(at, "Undo").click().run()
    assert project.labels() == list(DEMO_LABELS)
    assert project.last_action("local") is None  # every change of ours undone; demo's stay

    history = next(e for e in at.expander if e.label == "Label history").table[0].value
    assert list(history.columns) == ["when (UTC)", "user", "action", "detail", "undone"]
    assert history["action"].tolist() == [  # newest first
        "undo", "edit", "undo", "delete", "undo", "merge", "undo", "rename", "edit",
    ]  # fmt: skip
    assert history["user"].tolist() == ["local"] * 8 + ["demo"]
    assert history["undone"].tolist() == ["", "yes", "", "yes", "", "yes", "", "yes", ""]


def test_teach_page_says_when_held_out_labels_drop_the_corpus_refinement():
    # banking77 texts labeled by their form, 8 labels per class: the background cross-validation
    # finds the corpus refinement worse than the Wmap alone (tests/test_vouch.py), and the page,
    # rerun once it is done, predicts with the Wmap alone and says why.
    texts, gold = load_dataset("banking77_form")
    texts, gold = texts[:600], gold[:600]
    project = open_project("forms")
    project.set_documents(pd.DataFrame({"text": texts}))
    project.set_labels([(name, "") for name in sorted(set(gold))])
    space = LabelSpace(tuple(sorted(set(gold))))
    for doc in sample_per_class(space.index(gold), 8, np.random.default_rng(2)):
        project.annotate(int(doc), gold[doc])
    at = start("forms", "pages/teach.py")
    assert not any("so it is dropped" in c.value for c in at.caption)  # refined, until it is known
    at.session_state["cross_validation"]["sbert"][1].result(timeout=120)
    at.run()
    assert not at.exception, at.exception
    said = [c.value for c in at.caption if "so it is dropped" in c.value]
    assert said and "clustering the corpus was not trusted" in said[0]
    assert not at.session_state["fitted"]["sbert"][1].classifier.transductive_used_
