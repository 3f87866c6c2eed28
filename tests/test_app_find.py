"""Find, then label, through the real app (AppTest, real models): search by words, pattern and
meaning with filters on the Teach and Map pages, label results in place and in bulk after a
preview, undo; label from the buttons that carry the keyboard shortcuts."""

import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from fewshot import config
from fewshot.store import open_project

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [
    "Oil prices climbed as supply fears gripped markets.",
    "The refinery fire pushed oil prices to a record.",
    "I want a refund: the airline cancelled my flight.",
    "The refunded fare never reached my card.",
    "The striker scored twice as the home team won the cup final.",
    "The tennis champion lost in straight sets at Wimbledon.",
    "A new smartphone chip doubles battery life.",
    "Astronomers discovered a planet orbiting a distant star.",
    "Leaders met in Geneva to discuss the ceasefire.",
    "Protesters marched on the capital demanding reforms.",
]
LABELS = ["World", "Sports", "Business", "Sci/Tech"]


@pytest.fixture
def project(monkeypatch, tmp_path, embedder):
    shutil.copytree(config.data_dir() / "maps", tmp_path / "maps")
    monkeypatch.setenv("FEWSHOT_DATA_DIR", str(tmp_path))
    found = open_project("find")
    sources = ["news.csv"] * 2 + ["tickets.csv"] * 2 + ["news.csv"] * 6
    found.set_documents(
        pd.DataFrame({"text": TEXTS, "source": sources, "desk": list("aabbcccddd")})
    )
    found.set_labels([(name, "") for name in LABELS], user="setup")
    found.annotate(1, "World", user="ann")
    return found


def start(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["project"] = "find"
    at.session_state["annotator"] = "local"
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def search(at: AppTest, key: str, text: str) -> AppTest:
    at.text_input(key=f"{key}_text").input(text).run()
    assert not at.exception, at.exception
    return at


def said(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown)


def shown_html(at: AppTest) -> list[str]:
    return [h.proto.body for h in at.get("html")]


def current(project) -> dict[int, str]:
    frame = project.annotations()
    return dict(zip(frame["doc_id"], frame["label"]))


def test_teach_search_words_pattern_meaning_and_filters(project):
    at = search(start("pages/teach.py"), "teach_search", "oil prices")
    assert "2 documents match" in said(at)
    assert any("<mark>Oil prices</mark>" in h or "<mark>Oil</mark>" in h for h in shown_html(at))

    search(at, "teach_search", '"oil prices" record')
    assert "1 document matches" in said(at)
    search(at, "teach_search", "/refund(ed)?/")
    assert "2 documents match" in said(at)
    search(at, "teach_search", "/refund(/")
    assert "Bad pattern /refund(/: missing )" in at.error[0].value.replace("\\", "")

    search(at, "teach_search", "")  # filters alone: the source file and a metadata column
    at.multiselect(key="teach_search_sources").set_value(["tickets.csv"]).run()
    assert "2 documents match" in said(at)
    at.multiselect(key="teach_search_sources").set_value([]).run()
    at.selectbox(key="teach_search_column").set_value("desk").run()
    at.multiselect(key="teach_search_values").set_value(["a"]).run()
    assert "2 documents match" in said(at)
    at.multiselect(key="teach_search_human").set_value(["(none)"]).run()
    assert "1 document matches" in said(at)  # document 1 carries a human label

    at.multiselect(key="teach_search_values").set_value([]).run()
    at.selectbox(key="teach_search_column").set_value(None).run()
    at.multiselect(key="teach_search_human").set_value([]).run()
    at.toggle(key="teach_search_meaning").set_value(True).run()
    search(at, "teach_search", "a football match")
    assert "closest in meaning" in said(at)
    first = shown_html(at)[0]
    assert "striker" in first or "tennis" in first  # sport, though no word is shared

    like = next(b for b in at.button if b.key and b.key.startswith("teach_search_like_"))
    doc = int(like.key.rsplit("_", 1)[1])
    like.click().run()
    assert not at.exception, at.exception
    assert f"most like document {doc}" in at.info[0].value


def test_bulk_labels_with_preview_overwrite_and_undo(project):
    at = search(start("pages/teach.py"), "teach_search", "oil")
    assert "2 documents match" in said(at)
    at.selectbox(key="teach_search_bulk").set_value("Business").run()
    preview = said(at)
    assert "**1** would get the label Business" in preview  # document 1 is World already
    assert "**1** already carries a different human label: left as they are" in preview
    button = at.button(key="teach_search_bulk_write")
    assert button.label == "Label 1 document as Business"
    button.click().run()
    assert current(project) == {0: "Business", 1: "World"}
    assert "Labeled 1 document as Business." in at.success[0].value.replace("\\", "")

    at.checkbox(key="teach_search_overwrite").check().run()
    assert "they are overwritten" in said(at)
    at.button(key="teach_search_bulk_write").click().run()
    assert current(project) == {0: "Business", 1: "Business"}
    at.button(key="teach_search_undo").click().run()  # one undo takes the batch back
    assert current(project) == {0: "Business", 1: "World"}
    assert "Undone" in at.success[0].value.replace("\\", "")


def test_results_are_labeled_in_place_and_show_their_history(project):
    at = search(start("pages/teach.py"), "teach_search", "refund")
    pills = next(p for p in at.get("button_group") if p.key.startswith("teach_search_row_2_"))
    pills.set_value("Business").run()
    assert not at.exception, at.exception
    assert current(project)[2] == "Business"
    popover_text = " ".join(str(d.value) for d in at.dataframe)
    assert "label" in popover_text or at.dataframe  # the history table of a labeled result


def test_teach_buttons_carry_the_keys_and_label_the_document_shown(project):
    at = start("pages/teach.py")
    keys = [b for b in at.button if b.key and b.key.startswith("label_")]
    assert [b.label for b in keys] == LABELS  # whole names, each with its key
    doc = int(keys[0].key.split("_")[1])
    assert [b.proto.shortcut for b in keys] == ["1", "2", "3", "4"]
    time.sleep(0.35)  # a document must have been on screen a moment before a press counts
    at.button(key=f"label_{doc}_2").click().run()
    assert current(project)[doc] == "Business"
    assert not [b for b in at.button if b.key == f"label_{doc}_2"]  # the next document's keys
    assert len(project.history()) == 2  # the set-up label and this one


def test_map_search_outlines_matches_and_labels_them(project):
    at = search(start("pages/map.py"), "map_search", "refund")
    assert "2 documents found, outlined on the map." in " ".join(c.value for c in at.caption)
    assert "2 documents match" in said(at)
    at.selectbox(key="map_search_bulk").set_value("Business").run()
    at.button(key="map_search_bulk_write").click().run()
    assert not at.exception, at.exception
    assert {2: "Business", 3: "Business"}.items() <= current(project).items()
