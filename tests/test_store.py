import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
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


# Several annotators: votes, resolutions and the rules for which label counts


def votes(project: Project) -> dict[tuple[int, str], str]:
    frame = project.votes()
    assert list(frame.columns) == ["doc_id", "user", "label", "at", "resolution"]
    return {(d, u): label for d, u, label in frame[["doc_id", "user", "label"]].values.tolist()}


def counted(project: Project, rule: str) -> dict[int, str]:
    frame = project.annotations(rule)
    assert list(frame.columns) == ["doc_id", "label", "user", "at"]
    assert frame["doc_id"].is_monotonic_increasing
    return dict(zip(frame["doc_id"], frame["label"], strict=True))


def test_votes_are_each_annotators_own_latest_label(store):
    project = open_project("p", store)
    project.set_documents(corpus())
    assert project.votes().empty
    project.annotate([0, 1, 2], "A", user="ann")
    assert project.annotate([0, 1], "A", user="bob") == 2  # the label it carries: bob's vote
    assert project.annotate([0, 1], "A", user="bob") == 0  # bob's double click writes nothing
    project.annotate(1, "B", user="bob")
    project.annotate(2, None, user="ann")  # a removal: no vote
    assert votes(project) == {(0, "ann"): "A", (0, "bob"): "A", (1, "ann"): "A", (1, "bob"): "B"}
    assert not project.votes()["resolution"].any()

    project.annotate(3, "A", user="ann")
    project.annotate(3, "B", user="bob")
    assert project.undo("bob")  # reverts document 3 to ann's A, but bob's vote is taken back
    assert current(project)[3] == "A" and (3, "bob") not in votes(project)
    assert project.undo("bob")  # his B on 1: his earlier A counts again
    assert votes(project)[(1, "bob")] == "A"
    project.annotate(4, "A", user="ann")
    project.annotate(4, "B", user="bob")
    assert project.undo("ann")  # bob labeled 4 since: it stays B, but ann's vote is gone
    assert current(project)[4] == "B" and (4, "ann") not in votes(project)
    project.annotate(0, None, user="bob")  # bob's removal takes only his own vote
    assert votes(project)[(0, "ann")] == "A" and (0, "bob") not in votes(project)
    project.annotate(0, None, user="ann")
    assert (0, "ann") not in votes(project)


def test_votes_follow_their_label_through_rename_merge_and_delete(store):
    project = labeled(store)  # ann: 0, 1 A and 2 B
    project.annotate([0, 2], "C", user="bob")
    project.rename_label("A", "Alpha", user="carol")
    assert votes(project) == {(0, "ann"): "Alpha", (1, "ann"): "Alpha", (2, "ann"): "B",
                              (0, "bob"): "C", (2, "bob"): "C"}  # fmt: skip
    project.annotate(3, "Alpha", user="bob")
    assert project.undo("carol")  # the rename: every Alpha back to A, bob's later one too
    assert votes(project)[(0, "ann")] == "A" and votes(project)[(3, "bob")] == "A"
    assert "carol" not in set(project.votes()["user"])  # a label change casts no vote
    project.merge_labels(["C"], "B", user="carol")
    assert votes(project)[(0, "bob")] == "B" and votes(project)[(2, "bob")] == "B"
    project.delete_label("A", user="carol")
    assert votes(project) == {(0, "bob"): "B", (2, "ann"): "B", (2, "bob"): "B"}
    assert project.undo("carol")  # the delete: the A votes are back
    assert votes(project)[(0, "ann")] == "A" and votes(project)[(3, "bob")] == "A"


def test_resolve_is_a_batch_of_its_own_that_undo_reverts(store):
    project = labeled(store)
    project.annotate([0, 2], "C", user="bob")
    assert project.resolve([0, 2, 2], "A", user="rev") == 2
    assert project.resolve(0, "a", user="rev") == 0  # a double click resolves once
    assert project.last_action("rev")[1] == "resolve 2 documents as A"
    history = project.history()
    assert history["action"].tolist()[-2:] == ["resolve", "resolve"]
    assert set(history["action"]) == {"label", "resolve"}
    frame = project.votes()
    assert frame.loc[frame["user"] == "rev", ["doc_id", "label", "resolution"]].values.tolist() == [
        [0, "A", True], [2, "A", True],
    ]  # fmt: skip
    assert not frame.loc[frame["user"] != "rev", "resolution"].any()
    assert counted(project, "reviewer") == {0: "A", 1: "A", 2: "A"}
    project.annotate(2, "B", user="bob")  # labeled after the resolution: the resolution stands
    assert counted(project, "latest")[2] == "B" and counted(project, "reviewer")[2] == "A"

    assert project.undo("rev")
    assert project.history()["action"].iloc[-1] == "undo"
    assert counted(project, "reviewer") == counted(project, "latest") == {0: "C", 1: "A", 2: "B"}
    assert not project.votes()["resolution"].any()
    with pytest.raises(FewshotError, match="needs a label"):
        project.resolve(0, None, user="rev")
    with pytest.raises(FewshotError, match="No document with id 9"):
        project.resolve([0, 9], "A", user="rev")
    assert project.resolve([], "A", user="rev") == 0


def test_an_annotator_who_resolves_keeps_their_own_vote(store):
    project = labeled(store)  # ann: 0 and 1 as A, 2 as B
    project.annotate([0, 2], "C", user="bob")
    before = project.votes()
    assert project.resolve(0, "C", user="ann") == 1  # ann, reviewing, settles for bob's C
    after = project.votes()
    assert after[~after["resolution"]].reset_index(drop=True).equals(before)  # her vote stays
    assert after[after["resolution"]][["doc_id", "user", "label"]].values.tolist() == [
        [0, "ann", "C"]
    ]
    assert counted(project, "reviewer")[0] == "C"
    assert counted(project, "majority")[0] == "C"  # her resolution stands in for her vote


def test_counting_rules(store):
    project = open_project("p", store)
    project.set_documents(corpus())
    project.annotate([0, 1, 2], "A", user="ann")
    project.annotate([0, 1], "B", user="bob")
    project.annotate(0, "A", user="carol")
    project.annotate(1, "b", user="carol")  # the same label as bob's, ignoring case
    project.annotate(3, "B", user="bob")
    project.annotate(3, "A", user="ann")
    assert counted(project, "latest") == {0: "A", 1: "b", 2: "A", 3: "A"}
    assert counted(project, "majority") == {0: "A", 1: "b", 2: "A", 3: "A"}
    project.annotate(3, "C", user="carol")
    project.annotate(3, "B", user="dan")
    assert counted(project, "latest")[3] == "B"  # dan's, the latest
    majority = project.annotations("majority").set_index("doc_id")
    assert majority.loc[3, "label"] == "B" and majority.loc[3, "user"] == "dan"  # two of four
    project.annotate(3, "A", user="carol")  # 2 A (ann, carol), 2 B (bob, dan): carol's is later
    assert counted(project, "majority")[3] == "A" and counted(project, "latest")[3] == "A"
    project.annotate(3, None, user="dan")  # the latest event removes the label; votes remain
    assert 3 not in counted(project, "latest") and counted(project, "majority")[3] == "A"
    project.annotate(3, "B", user="dan")  # 2 and 2 again, dan's B now the later
    assert counted(project, "majority")[3] == "B"

    project.resolve(0, "B", user="bob")  # a resolution counts as its reviewer's vote
    assert counted(project, "majority")[0] == "A"  # ann and carol's A against bob's resolution
    assert counted(project, "reviewer") == {**counted(project, "latest"), 0: "B"}
    project.resolve(0, "C", user="rev")  # the latest resolution wins
    assert counted(project, "reviewer")[0] == "C"
    project.annotate(2, None, user="ann")  # removed: no rule counts a label
    assert 2 not in counted(project, "latest") and 2 not in counted(project, "majority")
    with pytest.raises(FewshotError, match="Unknown counting rule 'oldest': use one of latest, "):
        project.annotations("oldest")


def test_votes_and_rules_on_100000_annotations(store):
    project = open_project("big", store)
    n = 50_000
    project.set_documents(pd.DataFrame({"text": [f"document {i}" for i in range(n)]}))
    project.annotate(range(n), "A", user="ann")
    project.annotate(range(0, n, 2), "B", user="bob")
    project.annotate(range(1, n, 2), "A", user="bob")
    project.resolve(range(0, n, 10), "C", user="rev")
    started = time.perf_counter()
    frame = project.votes()
    assert len(frame) == 2 * n + n // 10 and frame["resolution"].sum() == n // 10
    assert project.annotations("majority")["label"].value_counts().to_dict() == {
        "A": n // 2, "C": n // 10, "B": n // 2 - n // 10  # a tie of A and B: bob's B is later
    }  # fmt: skip
    reviewer = project.annotations("reviewer")["label"].value_counts().to_dict()
    assert reviewer == {"A": n // 2, "B": n // 2 - n // 10, "C": n // 10}
    assert time.perf_counter() - started < 30


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


def test_a_version_2_project_opens_unchanged_and_is_migrated(tmp_path):
    old_project(tmp_path / "two.sqlite")
    with sqlite3.connect(tmp_path / "two.sqlite") as db:  # as version 2 left it
        db.execute("CREATE INDEX batch_undoes ON batch (undoes)")
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (2)")
    project = open_project("two", tmp_path, create=False)
    assert current(project) == {0: "A", 1: "B"}
    assert votes(project) == {(0, "ann"): "A", (1, "ann"): "A", (1, "bob"): "B"}
    assert set(project.history()["action"]) == {"label"}
    with sqlite3.connect(project.path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(3,)]
        assert db.execute("SELECT * FROM review").fetchall() == []  # version 3's step
    assert project.resolve(1, "A", user="rev") == 1
    assert counted(project, "reviewer") == {0: "A", 1: "A"}
    assert open_project("two", tmp_path, create=False).history()["action"].iloc[-1] == "resolve"


def test_a_version_2_project_in_postgresql_is_migrated(postgres_url):
    project = labeled(postgres_url)
    schema = project._db.schema
    with psycopg.connect(postgres_url, autocommit=True) as db:  # back to version 2
        db.execute(f"DROP TABLE {schema}.review")
        db.execute(f"UPDATE {schema}.schema_version SET version = 2")
    again = open_project("p", postgres_url, create=False)
    assert again.resolve(0, "B", user="rev") == 1
    assert counted(again, "reviewer") == {0: "B", 1: "A", 2: "B"}
    with psycopg.connect(postgres_url) as db:
        assert db.execute(f"SELECT version FROM {schema}.schema_version").fetchall() == [(3,)]


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
    project.resolve([0, 4], "B", user="rev")
    project.set_setting("theme", "dark")
    project.set_setting("fit", {"alpha": 0.5, "views": ["sbert"]})
    return project


def assert_same(copy: Project, original: Project) -> None:
    for read in ("documents", "annotations", "votes", "history", "label_history"):
        pd.testing.assert_frame_equal(getattr(copy, read)(), getattr(original, read)())
    for rule in ("majority", "reviewer"):
        pd.testing.assert_frame_equal(copy.annotations(rule), original.annotations(rule))
    assert copy.labels() == original.labels()
    for key in ("theme", "fit"):
        assert copy.get_setting(key) == original.get_setting(key)
    for user in ("admin", "ann", "bob", "carol", "rev"):
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
    assert copy.votes()["resolution"].sum() == 2 and "resolve" in set(copy.history()["action"])
    assert counted(copy, "reviewer")[0] == "B"  # the resolutions came along

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


def test_a_copy_that_fails_leaves_no_project_behind(tmp_path, postgres_url, monkeypatch, capsys):
    monkeypatch.setenv("FEWSHOT_DATA_DIR", str(tmp_path / "damaged"))
    full_project(None)
    with sqlite3.connect(tmp_path / "damaged" / "projects" / "p.sqlite") as damaged:
        damaged.execute("DROP TABLE review")  # its last table gone: the copy fails half-way
    elsewhere = tmp_path / "elsewhere"
    for target in (str(elsewhere), postgres_url):
        assert main(["projects", "copy", "p", "--to", target]) == 2
        error = capsys.readouterr().err
        assert error == "error: Project 'p' could not be copied: no such table: main.review\n"
    assert list(elsewhere.iterdir()) == []  # no file, no -wal or -shm
    assert "p" not in list_projects(postgres_url)
    monkeypatch.setenv("FEWSHOT_DATA_DIR", str(tmp_path / "sound"))
    original = full_project(None)
    for target in (str(elsewhere), postgres_url):  # the name is free again in both stores
        assert main(["projects", "copy", "p", "--to", target]) == 0
        assert_same(open_project("p", target, create=False), original)
