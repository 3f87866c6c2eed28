"""The Map and Export pages, run headless through the real app (AppTest) on a 20-document project.

Real models throughout. The Map page draws PCA at once and fits UMAP in the background; the map
test waits for that fit (the first in a process pays numba's compilation, 30-60 s) and checks the
page then draws UMAP.
"""

import base64
import io
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import expect, sync_playwright
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from fewshot import config
from fewshot.export import map_from_bytes, map_to_bytes
from fewshot.labeler import Labeler
from fewshot.maps import Wmap, Zmap
from fewshot.store import open_project
from tests.browser_server import CHROMIUM_FLAGS, running_app, sign_in

ROOT = Path(__file__).resolve().parents[1]

TOPICS = {
    "Sports": [
        "The striker scored twice as the home team won the cup final.",
        "The tennis champion lost in straight sets at Wimbledon.",
        "The quarterback threw three touchdowns in the fourth quarter.",
        "Olympic sprinters set a new relay world record.",
        "The coach was fired after the team's tenth straight defeat.",
    ],
    "Business": [
        "Shares of the retailer fell after weak quarterly earnings.",
        "The central bank raised interest rates to curb inflation.",
        "The carmaker agreed to buy its rival for four billion dollars.",
        "Oil prices climbed as supply fears gripped markets.",
        "=SUM(A1:A9) the airline reported record profit",
    ],
    "Sci/Tech": [
        "The new smartphone chip doubles battery life.",
        "Astronomers discovered a planet orbiting a distant star.",
        "A software update fixes a security flaw in the browser.",
        "Researchers trained a neural network to read handwriting.",
        "The space agency launched a probe to study the sun.",
    ],
    "World": [
        "Leaders met in Geneva to discuss the ceasefire.",
        "Floods forced thousands to flee their homes in the south.",
        "The president dissolved parliament and called elections.",
        "Protesters marched on the capital demanding reforms.",
        "The United Nations condemned the attack on the embassy.",
    ],
}
TEXTS = [text for texts in TOPICS.values() for text in texts]


@pytest.fixture
def app_data(monkeypatch, tmp_path, embedder):
    """A fresh data directory holding one project with labels and three human labels.

    The Zmap fitted for the session (by the embedder fixture) is copied in, as a user who has
    started the app before would have it, so the app does not embed its vocabulary again.
    """
    shutil.copytree(config.data_dir() / "maps", tmp_path / "maps")
    monkeypatch.setenv("FEWSHOT_DATA_DIR", str(tmp_path))
    project = open_project("news")
    project.set_documents(pd.DataFrame({"text": TEXTS, "source": "news.csv"}))
    project.set_labels([(name, "") for name in TOPICS])
    project.annotate([0, 1], "Sports", user="ann")
    project.annotate(5, "Business", user="ann")
    return project


def array(value) -> np.ndarray:
    """A plotly JSON array: a plain list, or numpy's bytes in base64 ({"dtype", "bdata"})."""
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return flat.reshape([int(n) for n in str(shape).split(",")]) if shape else flat
    return np.asarray(value)


def open_page(page: str) -> AppTest:
    """The page run on its own, with the project app.py's sidebar would have made current.

    Not through app.py: beside a folder named pages/, AppTest resets Streamlit's multipage-v1
    flag on every run, so each rerun after switch_page runs the page without app.py anyway.
    """
    at = AppTest.from_file(str(ROOT / page), default_timeout=120)
    at.session_state["project"] = "news"
    at.session_state["annotator"] = "local"
    at.run()
    assert not at.exception, at.exception
    return at


def test_map_page_draws_the_corpus_and_labels_at_once(app_data):
    at = open_page("pages/map.py")
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    spec = json.loads(charts[0].proto.spec)
    documents = [t for t in spec["data"] if t.get("name") != "Labels"]
    assert sum(len(array(t["x"])) for t in documents) == len(TEXTS)
    ids = np.concatenate([array(t["customdata"]) for t in documents])
    assert sorted(ids.tolist()) == list(range(len(TEXTS)))
    labels = next(t for t in spec["data"] if t.get("name") == "Labels")
    assert [s.replace("<b>", "").replace("</b>", "") for s in labels["text"]] == list(TOPICS)
    assert np.isfinite(array(labels["x"])).all() and np.isfinite(array(labels["y"])).all()
    hover = " ".join(h for t in documents for h in t["hovertext"])
    assert "Predicted:" in hover and "=SUM(A1:A9)" in hover
    assert "Quick PCA layout" in " ".join(c.value for c in at.caption)

    # The UMAP fit started in the background; once stored, the next run draws it.
    layouts = config.data_dir() / "layouts"
    deadline = time.monotonic() + 600
    while not list(layouts.glob("umap-*.npz")) and time.monotonic() < deadline:
        time.sleep(1)
    at.run()
    assert not at.exception
    assert "UMAP layout" in " ".join(c.value for c in at.caption)

    at.radio(key="map_colour").set_value("human_label").run()
    assert not at.exception
    names = [t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert "Sports (2)" in names and "(no human label) (17)" in names


@pytest.fixture
def downloads(monkeypatch):
    """The media file managers AppTest creates, so a test can read what a download serves."""
    managers: list[MediaFileManager] = []

    class Recording(MediaFileManager):
        def __init__(self, storage) -> None:
            super().__init__(storage)
            managers.append(self)

    monkeypatch.setattr("streamlit.testing.v1.app_test.MediaFileManager", Recording)

    def read(button) -> bytes:
        manager = managers[-1]
        proto = button.proto
        url = (
            manager.execute_deferred(proto.deferred_file_id)
            if proto.deferred_file_id
            else proto.url
        )
        return manager.read_file(url.rsplit("/", 1)[-1]).content

    return read


def test_export_page_downloads_parse_back(app_data, downloads):
    at = open_page("pages/export.py")
    buttons = {b.proto.label: b for b in at.get("download_button")}

    csv = pd.read_csv(io.BytesIO(downloads(buttons["Download CSV"])))
    assert csv["id"].tolist() == list(range(len(TEXTS)))
    assert csv.loc[9, "text"] == "'" + TEXTS[9]  # the formula is neutralised
    assert csv.loc[0, "text"] == TEXTS[0]
    assert csv["human_label"].fillna("").tolist()[:6] == [
        "Sports",
        "Sports",
        "",
        "",
        "",
        "Business",
    ]
    assert csv.loc[0, "annotated_by"] == "ann"
    assert set(csv["predicted_label"]) <= set(TOPICS)
    assert [c for c in csv.columns if c.startswith("score_")] == [f"score_{t}" for t in TOPICS]
    assert np.allclose(csv[[f"score_{t}" for t in TOPICS]].sum(axis=1), 1, atol=1e-4)

    jsonl = pd.read_json(io.BytesIO(downloads(buttons["Download JSONL"])), lines=True)
    assert jsonl["text"].tolist() == TEXTS
    assert jsonl["predicted_label"].tolist() == csv["predicted_label"].tolist()

    wmap_label = next(label for label in buttons if label.startswith("Download Wmap"))
    wmap = map_from_bytes(downloads(buttons[wmap_label]))
    assert isinstance(wmap, Wmap) and wmap.coef_.shape == (384, 384)
    zmap_label = next(label for label in buttons if label.startswith("Download Zmap"))
    assert isinstance(map_from_bytes(downloads(buttons[zmap_label])), Zmap)

    summary = at.dataframe[0].value
    assert summary.loc["Sports", "human"] == 2 and summary["predicted"].sum() == len(TEXTS)


def test_export_page_gives_the_labeler_and_labels_new_documents(app_data, downloads):
    at = open_page("pages/export.py")
    buttons = {b.proto.label: b for b in at.get("download_button")}
    labeler = Labeler.load(downloads(buttons["Download the labeler"]))
    assert labeler.labels.names == tuple(TOPICS) and labeler.about["human_labels"] == 3
    assert labeler.about["label_set"].startswith(f"{app_data.name}:")

    new = pd.DataFrame(
        {
            "ticket": [1, 2, 3, 4],
            "body": [
                "The goalkeeper saved a penalty in the last minute of the derby.",
                "The bank raised interest rates and its shares climbed.",
                "",
                "The midfielder signed a four-year contract with the club.",
            ],
        }
    )
    at.file_uploader(key="apply_upload").upload("tickets.csv", new.to_csv(index=False).encode())
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="apply_column").value == "body"
    assert "4 rows labeled — Sports 2, Business 1" in at.success[0].value
    buttons = {b.proto.label: b for b in at.get("download_button")}
    labeled = pd.read_csv(io.BytesIO(downloads(buttons["Download tickets-labeled.csv"])))
    assert labeled.columns.tolist()[:4] == ["ticket", "body", "predicted_label", "score"]
    assert labeled["predicted_label"].fillna("").tolist() == ["Sports", "Business", "", "Sports"]
    assert len(open_project(app_data.name).documents()) == len(TEXTS)  # not added to the project

    at.file_uploader(key="apply_upload").upload("photo.csv", bytes(range(256)) * 4).run()
    assert not at.exception
    assert len(at.error) == 1 and "looks like a binary file" in at.error[0].value


def test_export_page_checks_uploaded_map_files(app_data, embedder):
    at = open_page("pages/export.py")
    at.file_uploader(key="map_upload").upload("junk.npz", b"this is not a map").run()
    assert not at.exception
    assert len(at.error) == 1 and "Not a map file" in at.error[0].value

    zmap = map_to_bytes(embedder.zmap)
    at.file_uploader(key="map_upload").upload("zmap.npz", zmap).run()
    assert not at.exception and not at.error
    assert "Zmap, 384×50" in at.success[0].value
    assert "Relative difference" in " ".join(c.value for c in at.caption)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (make test)")
def test_lasso_labels_the_selection_in_one_batch(app_data):
    """The one thing AppTest cannot do: draw a lasso. In chromium, around the whole map."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.set_default_timeout(300_000)  # the server loads the models on the first page
        with running_app(config.data_dir()) as url:
            page.goto(url)
            sign_in(page)
            page.get_by_role("link", name="Map").click()
            area = page.locator(".js-plotly-plot .nsewdrag").first
            area.wait_for()
            box = area.bounding_box()
            corners = [(0.01, 0.01), (0.99, 0.01), (0.99, 0.99), (0.01, 0.99), (0.01, 0.02)]
            page.mouse.move(box["x"] + box["width"] * 0.01, box["y"] + box["height"] * 0.01)
            page.mouse.down()
            for fx, fy in corners[1:]:
                page.mouse.move(
                    box["x"] + box["width"] * fx, box["y"] + box["height"] * fy, steps=10
                )
            page.mouse.up()
            expect(page.get_by_text(f"{len(TEXTS)} documents selected")).to_be_visible()
            page.get_by_text("Overwrite other human labels").click()
            expect(page.get_by_text("they are overwritten")).to_be_visible()
            # A click that lands while the toggle's rerun is still drawing can be dropped: wait
            # for the run to finish first.
            page.wait_for_timeout(300)
            expect(page.get_by_test_id("stStatusWidget")).to_be_hidden()
            button = page.get_by_role("button", name=re.compile(r"^Label \d+ documents as "))
            count, label = re.fullmatch(
                r"Label (\d+) documents as (.+)", button.inner_text()
            ).groups()
            button.click()
            expect(page.get_by_text(f"Labeled {count} documents as {label}.")).to_be_visible()
        browser.close()
    annotations = app_data.annotations()
    assert annotations["doc_id"].tolist() == list(range(len(TEXTS)))
    assert set(annotations["label"]) == {label}
    assert app_data.history()["batch"].nunique() == 3  # the two set-up batches and the lasso
