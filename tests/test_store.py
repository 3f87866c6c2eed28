import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fewshot import FewshotError
from fewshot.__main__ import main
from fewshot.database import VERSION
from fewshot.store import Project, list_projects, open_project

ROOT = Path(__file__).resolve().parents[1]


def corpus(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text": [f"document {i}" for i in range(n)],
            "source": "a.csv",
            "label": [f"gold {i}" if i % 2 else None for i in range(n)],
            "score": np.arange(n),
        }
    )


def current(project: Project) -> dict[int, str]:
    frame = project.annotations()
    return dict(zip(frame["doc_id"], frame["label"], strict=True))


# Projects


def test_list_and_open_projects(store):
    assert list_projects(store) == []
    open_project("beta", store)
    open_project("Alpha 2.0", store)
    assert list_projects(store) == ["Alpha 2.0", "beta"]
    with pytest.raises(FewshotError, match="No project named 'gamma'"):
        open_project("gamma", store, create=False)
    assert open_project("beta", store, create=False).name == "beta"
    assert list_projects(store) == ["Alpha 2.0", "beta"]  # create=False created nothing
    with pytest.raises(FewshotError, match="Invalid project name"):
        open_project("../x", store)


def test_sqlite_projects_are_files_in_a_folder(tmp_path):
    assert list_projects(tmp_path / "nowhere") == []
    open_project("beta", tmp_path)
    assert (tmp_path / "beta.sqlite").is_file()


@pytest.mark.parametrize(
    "name",
    ["../x", "a/b", "a\\b", ".hidden", "..", "", "x" * 65, " lead", "trail ", "a:b", "a\nb", None],
)
def test_bad_project_names(tmp_path, name):
    with pytest.raises(FewshotError, match="Invalid project name"):
        open_project(name, tmp_path / "projects")
    assert not (tmp_path / "x.sqlite").exists()


@pytest.mark.parametrize("name", ["x", "My project 1", "a.b-c_d", "x" * 64, "-dash"])
def test_good_project_names(store, name):
    project = open_project(name, store)
    assert project.name == name and list_projects(store) == [name]
    if project.path is not None:
        assert project.path.parent == store.resolve()


def test_a_file_that_is_not_a_project(tmp_path):
    (tmp_path / "junk.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(FewshotError, match="could not be opened"):
        open_project("junk", tmp_path)


# Documents, labels, settings


def test_documents_round_trip(store):
    project = open_project("p", store)
    assert project.n_documents() == 0
    assert list(project.documents().columns) == ["id", "text", "source"]
    project.set_documents(corpus())
    frame = project.documents()
    assert list(frame.columns) == ["id", "text", "source", "label", "score"]
    assert frame["id"].tolist() == [0, 1, 2, 3, 4]
    assert frame["text"].tolist() == corpus()["text"].tolist()
    assert frame["label"].tolist()[1] == "gold 1" and pd.isna(frame["label"].tolist()[0])
    assert frame["score"].tolist() == [0, 1, 2, 3, 4]

    project.add_documents(pd.DataFrame({"text": ["more", "again"]}))
    frame = project.documents()
    assert project.n_documents() == 7
    assert frame["id"].tolist() == list(range(7))
    assert frame["source"].tolist()[5:] == ["", ""]

    project.set_documents(frame.iloc[:2])  # an id column coming back in is not metadata
    assert list(project.documents().columns) == ["id", "text", "source", "label", "score"]
    assert project.n_documents() == 2


def test_documents_need_text(store):
    project = open_project("p", store)
    with pytest.raises(FewshotError, match="'text' column"):
        project.set_documents(pd.DataFrame({"body": ["x"]}))
    with pytest.raises(FewshotError, match="row 1 has none"):
        project.set_documents(pd.DataFrame({"text": ["x", None]}))


def test_labels(store):
    project = open_project("p", store)
    assert project.labels() == []
    project.set_labels([("Sports", "games, athletes"), (" World ", "")])
    assert project.labels() == [("Sports", "games, athletes"), ("World", "")]
    project.set_labels([("Business", "markets")])
    assert project.labels() == [("Business", "markets")]
    with pytest.raises(FewshotError, match="listed twice"):
        project.set_labels([("A", ""), ("A", "again")])
    with pytest.raises(FewshotError, match="needs a name"):
        project.set_labels([(" ", "blank")])
    assert project.labels() == [("Business", "markets")]  # a failed write changes nothing


def test_settings(store):
    project = open_project("p", store)
    assert project.get_setting("missing") is None
    assert project.get_setting("missing", 3) == 3
    value = {"alpha": 0.5, "views": ["sbert", "zmap"], "on": True, "none": None}
    project.set_setting("fit", value)
    project.set_setting("k", 1)
    project.set_setting("k", 2)
    assert project.get_setting("fit") == value
    assert project.get_setting("k") == 2
    with pytest.raises(TypeError):
        project.set_setting("bad", object())


def test_everything_persists_across_reopening(store):
    project = open_project("keep", store)
    project.set_documents(corpus())
    project.set_labels([("A", "first"), ("B", "")])
    project.annotate([0, 1], "A", user="ann")
    project.set_setting("theme", "dark")

    again = open_project("keep", store, create=False)
    assert again is not project
    pd.testing.assert_frame_equal(again.documents(), project.documents())
    assert again.labels() == [("A", "first"), ("B", "")]
    assert current(again) == {0: "A", 1: "A"}
    assert again.get_setting("theme") == "dark"
    assert again.undo("ann") and current(project) == {}


# Annotations


def test_annotate_history_and_removal(store):
    project = open_project("p", store)
    project.set_documents(corpus())
    project.annotate([0, 1, 1], "A")  # repeated ids count once
    project.annotate(np.int64(1), "B", user="bob")
    project.annotate(0, None)
    assert current(project) == {1: "B"}
    frame = project.annotations()
    assert list(frame.columns) == ["doc_id", "label", "user", "at"]
    assert frame["user"].tolist() == ["bob"]
    history = project.history()
    assert history["doc_id"].tolist() == [0, 1, 1, 0]
    assert history["seq"].is_monotonic_increasing
    assert history["batch"].tolist()[:2] == [history["batch"][0]] * 2
    assert pd.isna(history["label"].tolist()[3])  # a removal
    assert project.history(1)["label"].tolist() == ["A", "B"]
    assert history["at"].str.endswith("+00:00").all()


def test_annotate_rejects_bad_input(store):
    project = open_project("p", store)
    project.set_documents(corpus(3))
    with pytest.raises(FewshotError, match="No document with id 3"):
        project.annotate([0, 3], "A")
    with pytest.raises(FewshotError, match="No document with id -1"):
        project.annotate(-1, "A")
    with pytest.raises(FewshotError, match="non-empty"):
        project.annotate(0, "  ")
    project.annotate([], "A")
    assert project.history().empty  # nothing half-written


def test_undo_reverts_whole_batches_in_order(store):
    project = open_project("p", store)
    project.set_documents(corpus())
    assert project.undo() is False
    project.annotate([0, 1, 2], "A")
    project.annotate([1, 2], "B")
    project.annotate(2, None)
    assert current(project) == {0: "A", 1: "B"}
    assert project.undo()
    assert current(project) == {0: "A", 1: "B", 2: "B"}
    assert project.undo()
    assert current(project) == {0: "A", 1: "A", 2: "A"}
    assert project.undo()
    assert current(project) == {}
    assert project.undo() is False
    history = project.history()
    assert len(history) == 3 + 2 + 1 + 1 + 2 + 3  # undo appends, never deletes
    assert history["undoes"].notna().sum() == 6


def test_undo_is_per_user_and_keeps_later_labels_by_others(store):
    project = open_project("p", store)
    project.set_documents(corpus())
    project.annotate([0, 1], "A", user="ann")
    project.annotate(1, "B", user="bob")
    assert project.undo("carol") is False
    assert project.undo("ann")
    assert current(project) == {1: "B"}  # bob's later label stays
    assert project.undo("bob")
    assert current(project) == {1: "A"}  # as it was just before bob's label


def test_replacing_the_corpus_forgets_its_labels_at_once(store):
    project = open_project("p", store)
    project.set_documents(corpus())
    project.annotate([0, 1], "A")
    with pytest.raises(FewshotError):
        project.set_documents(pd.DataFrame({"text": ["x", None]}))
    assert current(project) == {0: "A", 1: "A"}  # a refused corpus changes nothing
    assert project.n_documents() == 5
    project.set_documents(corpus(2))
    assert project.history().empty and project.annotations().empty
    assert project.undo() is False


# Concurrency


def test_concurrent_threads_lose_no_event(store):
    open_project("shared", store).set_documents(corpus(20))
    workers, calls = 8, 25
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        # Half share one Project object, half open their own at the same moment.
        project = shared if worker % 2 else open_project("shared", store)
        try:
            for call in range(calls):
                ids = [call % 20] if call % 2 else [(call + k) % 20 for k in range(5)]
                project.annotate(ids, f"L{worker}.{call}", user=f"u{worker}")  # each call a change
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    shared = open_project("shared", store)
    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    history = shared.history()
    per_worker = sum(1 if call % 2 else 5 for call in range(calls))
    assert len(history) == workers * per_worker
    assert history["seq"].is_unique
    assert (history.groupby("user").size() == per_worker).all()
    assert history.groupby("batch")["user"].nunique().eq(1).all()  # batches do not interleave
    latest = history.sort_values("seq").groupby("doc_id")["label"].last().to_dict()
    assert current(shared) == latest


WORKER = """
import sys
from fewshot.store import open_project
project = open_project("shared", sys.argv[1])
for call in range(30):
    project.annotate([call % 10, (call + 1) % 10], f"{sys.argv[2]}.{call}", user=sys.argv[2])
"""


def test_concurrent_processes_lose_no_event(store):
    open_project("shared", store).set_documents(corpus(10))
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(store), user], cwd=ROOT)
        for user in ("p1", "p2")
    ]
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0]
    history = open_project("shared", store).history()
    assert len(history) == 2 * 30 * 2
    assert history.groupby("user").size().to_dict() == {"p1": 60, "p2": 60}


# Label-set changes: rename, merge, delete, each one undoable entry in the history

ABC = [("A", "first"), ("B", "second"), ("C", "")]


def labeled(store) -> Project:
    """Labels A, B, C (set by "admin"); documents 0, 1 labeled A and 2 labeled B by "ann"."""
    project = open_project("p", store)
    project.set_documents(corpus())
    project.set_labels(ABC, user="admin")
    project.annotate([0, 1], "A", user="ann")
    project.annotate(2, "B", user="ann")
    return project


def test_rename_label_moves_its_documents_and_undo_brings_both_back(store):
    project = labeled(store)
    project.rename_label("a", "Alpha", user="ann")  # found ignoring case
    assert project.labels() == [("Alpha", "first"), ("B", "second"), ("C", "")]
    assert current(project) == {0: "Alpha", 1: "Alpha", 2: "B"}
    assert project.annotations()["user"].tolist() == ["ann"] * 3
    assert project.last_action("ann")[1] == "rename A → Alpha"

    for old, new, message in [
        ("Alpha", "b", "'b' exists already: merge 'Alpha' into it"),
        ("Alpha", "  ", "needs a name"),
        ("Z", "Zed", "No label named 'Z'"),
    ]:
        with pytest.raises(FewshotError, match=message):
            project.rename_label(old, new, user="ann")
    entries = len(project.label_history())
    project.rename_label("Alpha", " Alpha ", user="ann")  # the same name: nothing to record
    assert len(project.label_history()) == entries

    assert project.undo("ann")
    assert project.labels() == ABC
    assert current(project) == {0: "A", 1: "A", 2: "B"}
    project.rename_label("C", "c", user="ann")  # a change of case is a rename too
    assert project.labels()[2] == ("c", "")


def test_merge_labels_folds_documents_into_the_kept_label_and_undo_splits_them(store):
    project = labeled(store)
    project.annotate(3, "C", user="ann")
    project.merge_labels(["A", "c", "A"], "B", user="bob")
    assert project.labels() == [("B", "second")]
    assert current(project) == {0: "B", 1: "B", 2: "B", 3: "B"}
    assert project.last_action("bob")[1] == "merge A, C into B"
    with pytest.raises(FewshotError, match="other than the one kept"):
        project.merge_labels(["b"], "B", user="bob")
    with pytest.raises(FewshotError, match="other than the one kept"):
        project.merge_labels([], "B", user="bob")
    with pytest.raises(FewshotError, match="No label named 'A'"):
        project.merge_labels(["A"], "B", user="bob")

    assert project.undo("bob")
    assert project.labels() == ABC  # order and descriptions too
    assert current(project) == {0: "A", 1: "A", 2: "B", 3: "C"}


def test_delete_label_takes_it_off_its_documents_and_undo_restores_both(store):
    project = labeled(store)
    project.delete_label("A", user="ann")
    assert project.labels() == [("B", "second"), ("C", "")]
    assert current(project) == {2: "B"}
    assert project.last_action("ann")[1] == "delete A"
    with pytest.raises(FewshotError, match="No label named 'A'"):
        project.delete_label("A", user="ann")
    project.delete_label("C", user="ann")  # carried by nobody: still one undoable entry
    assert project.labels() == [("B", "second")]

    assert project.undo("ann") and project.labels() == [("B", "second"), ("C", "")]
    assert project.undo("ann")
    assert project.labels() == ABC
    assert current(project) == {0: "A", 1: "A", 2: "B"}
    assert project.undo("ann")  # then ann's own annotations, latest first
    assert current(project) == {0: "A", 1: "A"}


def test_set_labels_refuses_to_drop_a_used_label_but_drops_an_unused_one(store):
    project = labeled(store)
    with pytest.raises(
        FewshotError,
        match="Label 'A' is the human label of 2 documents: rename, merge or delete it",
    ):
        project.set_labels([("B", ""), ("C", "")], user="ann")
    project.annotate(0, "B", user="ann")
    with pytest.raises(FewshotError, match="Label 'A' is the human label of 1 document:"):
        project.set_labels([("B", "")], user="ann")
    assert project.labels() == ABC  # a refused edit writes nothing
    assert len(project.label_history()) == 1

    project.set_labels([("b", "new words"), ("a", "first")], user="ann")  # C unused: dropped
    assert project.labels() == [("b", "new words"), ("a", "first")]
    assert current(project) == {0: "B", 1: "A", 2: "B"}  # names match ignoring case
    assert project.label_history()["detail"].iloc[-1] == (
        "added b, a; removed A, B, C"  # a change of case reads as a new name
    )
    assert project.undo("ann") and project.labels() == ABC


def test_label_history_records_who_what_and_what_was_undone(store):
    project = labeled(store)
    project.set_labels([*ABC, ("D", "fourth")], user="ann")
    project.set_labels([("B", "second, again"), ("A", "first"), ("C", ""), ("D", "")], user="ann")
    project.set_labels([("B", "second, again"), ("A", "first"), ("C", "")], user="ann")
    project.rename_label("A", "Alpha", user="bob")
    project.merge_labels(["C"], "B", user="bob")
    project.delete_label("Alpha", user="bob")
    project.annotate(3, "B", user="bob")  # an annotation is no label change
    assert project.undo("bob")  # the annotation
    assert project.undo("bob")  # the delete
    history = project.label_history()
    assert list(history.columns) == ["at", "user", "action", "detail", "undone"]
    assert history.drop(columns="at").to_dict("records") == [
        {"user": "admin", "action": "edit", "detail": "added A, B, C", "undone": False},
        {"user": "ann", "action": "edit", "detail": "added D", "undone": False},
        {"user": "ann", "action": "edit", "detail": "described B, D; reordered", "undone": False},
        {"user": "ann", "action": "edit", "detail": "removed D", "undone": False},
        {"user": "bob", "action": "rename", "detail": "A → Alpha", "undone": False},
        {"user": "bob", "action": "merge", "detail": "C into B", "undone": False},
        {"user": "bob", "action": "delete", "detail": "Alpha", "undone": True},
        {"user": "bob", "action": "undo", "detail": "delete Alpha", "undone": False},
    ]
    assert history["at"].is_monotonic_increasing and history["at"].str.endswith("+00:00").all()
    assert project.labels() == [("B", "second, again"), ("Alpha", "first")]


def test_undo_of_a_given_batch_refuses_when_it_is_no_longer_the_latest(store):
    project = labeled(store)
    batch, what = project.last_action("ann")
    assert what == "label 1 document as B"
    project.annotate([0, 1, 3], None, user="ann")
    assert project.last_action("ann")[1] == "remove the label of 2 documents"  # 3 had none
    assert project.undo("ann", batch) is False  # a stale button: nothing undone
    assert current(project) == {2: "B"}
    batch, _ = project.last_action("ann")
    assert project.undo("ann", batch)
    assert project.undo("ann", batch) is False  # pressed twice: one batch undone, not two
    assert current(project) == {0: "A", 1: "A", 2: "B"}
    project.rename_label("B", "Beta", user="ann")
    batch, what = project.last_action("ann")
    assert what == "rename B → Beta"
    assert project.undo("ann", batch) and project.undo("ann", batch) is False
    assert project.labels() == ABC and current(project) == {0: "A", 1: "A", 2: "B"}
    assert project.last_action("nobody") is None


def test_annotate_skips_documents_that_carry_the_label_and_can_keep_other_labels(store):
    project = open_project("p", store)
    project.set_documents(corpus())
    assert project.annotate([0, 1], "A") == 2
    assert project.annotate([0, 1, 2], "A") == 1  # 0 and 1 carry it already
    assert project.annotate(0, "a") == 0  # labels match ignoring case
    assert len(project.history()) == 3
    batch = project.last_action()[0]
    assert project.annotate([0, 1], "A") == 0
    assert project.last_action()[0] == batch  # nothing written, so no batch to undo
    assert project.annotate(4, None) == 0  # removing no label writes nothing either

    assert project.annotate([0, 1, 2, 3], "B", overwrite=False) == 1  # only 3 had no label
    assert current(project) == {0: "A", 1: "A", 2: "A", 3: "B"}
    assert project.annotate([2, 3], "B") == 1  # overwrite (the default) relabels 2
    assert current(project) == {0: "A", 1: "A", 2: "B", 3: "B"}
    assert project.undo() and current(project) == {0: "A", 1: "A", 2: "A", 3: "B"}


def test_undo_of_a_label_change_refuses_when_someone_changed_the_labels_since(store):
    project = labeled(store)
    project.rename_label("A", "Alpha", user="ann")
    project.set_labels([("Alpha", "first"), ("B", "second"), ("C", ""), ("D", "")], user="bob")
    project.annotate(4, "D", user="bob")
    with pytest.raises(FewshotError, match="changed again after 'rename A → Alpha'"):
        project.undo("ann")
    assert project.labels()[0] == ("Alpha", "first")  # nothing undone
    assert current(project) == {0: "Alpha", 1: "Alpha", 2: "B", 4: "D"}
    assert not project.label_history()["undone"].any()

    project.annotate(3, "B", user="carol")  # an annotation does not block it
    assert project.undo("bob") and project.undo("bob")  # bob's label, then his edit
    assert project.undo("ann")
    assert project.labels() == ABC
    assert current(project) == {0: "A", 1: "A", 2: "B", 3: "B"}


def test_history_says_which_action_wrote_each_event(store):
    project = labeled(store)
    project.rename_label("A", "Alpha", user="ann")
    project.merge_labels(["Alpha"], "B", user="ann")
    project.delete_label("B", user="ann")
    assert project.undo("ann")  # the delete
    history = project.history(0)
    assert history["action"].tolist() == ["label", "rename", "merge", "delete", "undo"]
    assert history["label"].tolist()[:3] == ["A", "Alpha", "B"]
    assert pd.isna(history["label"].iloc[3]) and history["label"].iloc[4] == "B"
    assert history["undoes"].iloc[4] == history["batch"].iloc[3]
    assert history["undoes"].iloc[:4].isna().all()
    assert set(project.history(3)["action"]) == set()  # never labeled
    assert set(project.history()["action"]) == {"label", "rename", "merge", "delete", "undo"}


def test_two_people_labeling_one_document_at_once_both_land_in_its_history(store):
    open_project("team", store).set_documents(corpus(3))
    rounds, together = 20, threading.Barrier(2)
    errors: list[BaseException] = []

    def label(user: str) -> None:
        project = open_project("team", store)
        try:
            for round in range(rounds):
                together.wait(timeout=60)  # both press at the same moment, every round
                assert project.annotate(0, f"{user} {round}", user=user) == 1
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=label, args=(user,)) for user in ("ann", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    project = open_project("team", store)
    history = project.history(0)
    assert history.groupby("user").size().to_dict() == {"ann": rounds, "bob": rounds}
    assert set(history["label"]) == {f"{u} {r}" for u in ("ann", "bob") for r in range(rounds)}
    assert current(project) == {0: history["label"].iloc[-1]}  # the latest event is the label


# Schema versions: a project file made before they were kept (this schema, verbatim) opens as it is

OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS document (
    id INTEGER PRIMARY KEY, text TEXT NOT NULL, source TEXT NOT NULL, meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS label (
    position INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batch (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL, at TEXT NOT NULL,
    undoes INTEGER REFERENCES batch (id));
CREATE TABLE IF NOT EXISTS annotation (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, doc_id INTEGER NOT NULL, label TEXT,
    user TEXT NOT NULL, at TEXT NOT NULL, batch INTEGER NOT NULL REFERENCES batch (id));
CREATE INDEX IF NOT EXISTS annotation_doc ON annotation (doc_id, seq);
CREATE INDEX IF NOT EXISTS annotation_batch ON annotation (batch);
CREATE TABLE IF NOT EXISTS setting (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS label_change (
    batch INTEGER PRIMARY KEY REFERENCES batch (id), action TEXT NOT NULL, detail TEXT NOT NULL,
    before TEXT NOT NULL, after TEXT NOT NULL);
"""
AT = "2026-01-0{}T10:00:00.000+00:00"


def old_project(path: Path) -> None:
    """A project as the store wrote it before schema versions: labels A and B set by admin,
    documents 0 and 1 labeled A by ann, then 1 relabeled B by bob; a setting."""
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
        db.executemany(
            "INSERT INTO document VALUES (?, ?, ?, ?)",
            [(i, f"text {i}", "a.csv", f'{{"score": {i}}}') for i in range(3)],
        )
        db.executemany("INSERT INTO label VALUES (?, ?, ?)", [(0, "A", "first"), (1, "B", "")])
        for user, day in (("admin", 1), ("ann", 2), ("bob", 3)):
            db.execute("INSERT INTO batch (user, at) VALUES (?, ?)", (user, AT.format(day)))
        db.execute(
            "INSERT INTO label_change VALUES (1, 'edit', 'added A, B', '[]', ?)",
            ('[["A", "first"], ["B", ""]]',),
        )
        db.executemany(
            "INSERT INTO annotation (doc_id, label, user, at, batch) VALUES (?, ?, ?, ?, ?)",
            [(0, "A", "ann", AT.format(2), 2), (1, "A", "ann", AT.format(2), 2),
             (1, "B", "bob", AT.format(3), 3)],
        )  # fmt: skip
        db.execute("INSERT INTO setting VALUES ('theme', '\"dark\"')")


def test_a_project_from_before_schema_versions_opens_unchanged_and_is_upgraded(tmp_path):
    old_project(tmp_path / "old.sqlite")
    project = open_project("old", tmp_path, create=False)
    assert project.documents().to_dict("list") == {
        "id": [0, 1, 2], "text": ["text 0", "text 1", "text 2"], "source": ["a.csv"] * 3,
        "score": [0, 1, 2],
    }  # fmt: skip
    assert project.labels() == [("A", "first"), ("B", "")]
    assert current(project) == {0: "A", 1: "B"}
    assert project.history()[["seq", "doc_id", "label", "user", "batch"]].values.tolist() == [
        [1, 0, "A", "ann", 2], [2, 1, "A", "ann", 2], [3, 1, "B", "bob", 3],
    ]  # fmt: skip
    assert project.history()["at"].tolist() == [AT.format(2), AT.format(2), AT.format(3)]
    assert project.label_history().drop(columns="at").to_dict("records") == [
        {"user": "admin", "action": "edit", "detail": "added A, B", "undone": False}
    ]
    assert project.get_setting("theme") == "dark"
    assert project.last_action("bob") == (3, "label 1 document as B")
    with sqlite3.connect(project.path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(VERSION,)]
        indexes = {row[1] for row in db.execute("PRAGMA index_list(batch)")}
        assert "batch_undoes" in indexes  # version 2's step
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    again = open_project("old", tmp_path, create=False)  # upgraded once: opens as it is now
    assert again.undo("bob") and current(again) == {0: "A", 1: "A"}
    again.annotate(2, "B", user="carol")
    assert again.history()["seq"].tolist() == [1, 2, 3, 4, 5]
    assert again.undo("ann") is True and current(again) == {2: "B"}


def test_a_project_from_a_newer_version_is_refused(tmp_path):
    open_project("new", tmp_path)
    with sqlite3.connect(tmp_path / "new.sqlite") as db:
        db.execute("UPDATE schema_version SET version = version + 1")
    with pytest.raises(FewshotError, match=f"schema version {VERSION + 1}, newer than"):
        open_project("new", tmp_path)


# Moving a project between stores: python -m fewshot projects copy NAME --to URL


def full_project(root: Path | str | None) -> Project:
    """labeled()'s project plus metadata, a rename, a merge undone, a removal and settings."""
    project = labeled(root)
    project.rename_label("A", "Alpha", user="ann")
    project.merge_labels(["C"], "B", user="bob")
    project.undo("bob")
    project.annotate([2, 3], None, user="bob")
    project.annotate(4, "C", user="carol")
    project.set_setting("theme", "dark")
    project.set_setting("fit", {"alpha": 0.5, "views": ["sbert"]})
    return project


def assert_same(copy: Project, original: Project) -> None:
    for read in ("documents", "annotations", "history", "label_history"):
        pd.testing.assert_frame_equal(getattr(copy, read)(), getattr(original, read)())
    assert copy.labels() == original.labels()
    for key in ("theme", "fit"):
        assert copy.get_setting(key) == original.get_setting(key)
    for user in ("admin", "ann", "bob", "carol"):
        assert copy.last_action(user) == original.last_action(user)


def test_projects_copy_to_postgresql_and_back_keeps_everything(
    tmp_path, postgres_url, monkeypatch, capsys
):
    monkeypatch.setenv("FEWSHOT_DATA_DIR", str(tmp_path / "data"))
    original = full_project(None)  # in the default store: the data directory
    assert main(["projects", "copy", "p", "--to", postgres_url]) == 0
    assert "copied project 'p'" in capsys.readouterr().err
    copy = open_project("p", postgres_url, create=False)
    assert_same(copy, original)

    assert main(["projects", "copy", "p", "--to", postgres_url]) == 2
    assert "error: Project 'p' exists already in postgresql://" in capsys.readouterr().err
    assert_same(copy, original)  # untouched

    monkeypatch.setenv("FEWSHOT_DATABASE_URL", postgres_url)  # now the default store
    back = tmp_path / "back"
    assert main(["projects", "copy", "p", "--to", str(back)]) == 0
    assert_same(open_project("p", back, create=False), original)
    assert main(["projects", "copy", "p", "--to", f"sqlite:///{back}/p.sqlite"]) == 2
    assert "exists already" in capsys.readouterr().err

    batches = copy.history()["batch"].max()
    copy.annotate([0, 4], "B", user="dan")  # the copy goes on where the original stopped
    assert copy.history()["batch"].max() == batches + 1 and copy.history()["seq"].is_unique
    assert copy.undo("dan") and current(copy) == current(original)


def test_projects_copy_of_a_missing_project_is_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FEWSHOT_DATA_DIR", str(tmp_path))
    assert main(["projects", "copy", "nothing", "--to", str(tmp_path / "x.sqlite")]) == 2
    assert capsys.readouterr().err == "error: No project named 'nothing'\n"
    assert not (tmp_path / "x.sqlite").exists()
