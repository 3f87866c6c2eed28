"""End to end in a real browser: Debian's chromium drives the real app on a local port.

Create a project, upload a CSV, name labels (one of them hostile HTML and Markdown), label two
documents, download the CSV export and read it back; then kill the server, start a new one and check
the labels are still there. On the demo, label with the number keys alone, press a key twice 80 ms
apart (one label, on the document that was on screen) and undo with Backspace.
"""

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from fewshot import config
from fewshot.demo import DEMO_LABELS, open_demo
from fewshot.store import open_project
from tests.browser_server import (
    CHROMIUM_FLAGS,
    app_server,
    cpu_seconds,
    running_app,
    sign_in,
)

CHROMIUM = shutil.which("chromium")
TIMEOUT = 300_000  # ms; the first run loads the models and fits the Zmap in the server
expect.set_options(timeout=TIMEOUT)
HOSTILE = "<img src=x onerror=alert(1)> *Sci/Tech*"  # must be shown as typed, never rendered
SUGGESTED = re.compile(r"^Document (\d+), suggested")  # the Teach page's caption
READ_MS = 600  # a user reads before pressing; the page ignores presses in the first 0.3 s

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is missing: run the tests through `make test`"
)


def _settle(page: Page) -> None:
    """Wait until the script run that the last action started has finished."""
    page.wait_for_timeout(300)
    expect(page.get_by_test_id("stStatusWidget")).to_be_hidden()


def _download(page: Page, button: str, attempts: int = 3) -> str:
    """Click a download button and return the file; a click that lands while the page is still
    rerunning can be dropped by Streamlit, so it is tried again."""
    for attempt in range(attempts):
        _settle(page)
        try:
            with page.expect_download(timeout=60_000) as download:
                page.get_by_role("button", name=button).click()
            return download.value.path()
        except PlaywrightTimeoutError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _open(page: Page, url: str, nav: str | None = None) -> None:
    page.goto(url)
    sign_in(page, timeout=TIMEOUT)
    if nav:
        page.get_by_role("link", name=nav).click()
        page.get_by_role("heading", name=nav).wait_for(timeout=TIMEOUT)


def _shown(page: Page) -> int:
    """The document the Teach page shows, once its buttons are drawn and it has been read."""
    caption = page.get_by_text(SUGGESTED)
    doc = int(SUGGESTED.match(caption.inner_text()).group(1))
    expect(page.locator(f".st-key-label_{doc}_0 button")).to_be_visible()
    page.wait_for_timeout(READ_MS)
    return doc


def _next(page: Page, doc: int) -> int:
    """Wait until the Teach page shows a document other than doc; return it, read."""
    expect(page.get_by_text(SUGGESTED)).not_to_have_text(re.compile(rf"^Document {doc},"))
    return _shown(page)


def test_upload_label_export_restart(tmp_path, ag_sample):
    upload = tmp_path / "news.csv"
    ag_sample.head(12)[["text"]].assign(id=range(12)).to_csv(upload, index=False)
    data_dir = tmp_path / "data"
    data_dir.mkdir()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT)
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        with running_app(data_dir) as url:
            _open(page, url)
            page.get_by_label("Name", exact=True).fill("browser test")
            page.get_by_role("button", name="Create").click()
            expect(page.get_by_text("Add documents")).to_be_visible()

            page.locator("input[type=file]").set_input_files(str(upload))
            expect(page.get_by_text("Rows read")).to_be_visible()
            page.get_by_role("button", name="Replace corpus").click()
            expect(page.get_by_text("The corpus now holds 12 documents.")).to_be_visible()

            page.get_by_role("link", name="Labels").click()
            _settle(page)
            labels = page.get_by_role("textbox", name="One label per line")
            labels.fill(f"World\nSports\nBusiness\n{HOSTILE}")
            labels.press("Tab")
            page.get_by_role("button", name="Save labels").click()
            expect(page.get_by_text("Zero-shot assignments")).to_be_visible()

            page.get_by_role("link", name="Teach").click()
            _settle(page)
            # Buttons are found by the shown document's key: a rerun that is still drawing can
            # show the previous document's buttons beside the new ones.
            doc = _shown(page)
            hostile = page.locator(f".st-key-label_{doc}_3 button")
            expect(hostile).to_have_accessible_name(f"{HOSTILE} Shortcut 4")  # with its key
            for expected in ("1", "2"):
                sports = page.locator(f".st-key-label_{doc}_1 button")
                expect(sports).to_have_accessible_name("Sports Shortcut 2")
                sports.click()
                expect(page.locator("[data-testid=stSidebar]")).to_contain_text(
                    f"{expected} human label"
                )
                doc = _next(page, doc)

            page.get_by_role("link", name="Export").click()
            page.get_by_text("Documents, labels and scores").wait_for()
            exported = pd.read_csv(_download(page, "Download CSV"))
            # The labeler goes home with the user, and labels new rows on the page.
            labeler = shutil.copy(_download(page, "Download the labeler"), tmp_path / "lab.zip")
            new = tmp_path / "new.csv"
            ag_sample.iloc[12:20][["text"]].to_csv(new, index=False)
            page.locator(".st-key-apply_upload input[type=file]").set_input_files(str(new))
            expect(page.get_by_text("8 rows labeled")).to_be_visible()
            on_page = pd.read_csv(_download(page, "Download new-labeled.csv"))
            page.screenshot(path=str(tmp_path / "export.png"), full_page=True)

        assert len(exported) == 12
        assert set(exported["text"]) == set(ag_sample.head(12)["text"])
        assert (exported["human_label"] == "Sports").sum() == 2
        assert exported["predicted_label"].isin(["World", "Sports", "Business", HOSTILE]).all()
        assert not dialogs  # the label's script never ran: it was shown as text
        # The downloaded labeler, applied from the command line, labels them as the page did.
        applied = subprocess.run(
            [sys.executable, "-m", "fewshot", "apply", labeler, new],
            cwd=Path(__file__).resolve().parents[1],
            env={**os.environ, "FEWSHOT_DATA_DIR": str(data_dir)},
            capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
        by_cli = pd.read_csv(io.StringIO(applied.stdout))
        assert by_cli["predicted_label"].tolist() == on_page["predicted_label"].tolist()
        assert len(on_page) == 8 and on_page["predicted_label"].notna().all()

        with running_app(data_dir) as url:  # the old server was killed; a new one finds every label
            _open(page, url)
            expect(page.locator("[data-testid=stSidebar]")).to_contain_text("2 human labels")
        browser.close()


def test_number_keys_label_double_press_once_backspace_undoes(tmp_path, embedder):
    """`embedder` is requested for its Zmap: copied to the server's data directory, it is not
    fitted again there."""
    data_dir = tmp_path / "data"
    projects = data_dir / "projects"
    projects.mkdir(parents=True)
    shutil.copytree(config.data_dir() / "maps", data_dir / "maps")
    open_demo(projects)  # the only project, so the server opens it
    names = [name for name, _ in DEMO_LABELS]

    def current() -> dict[int, str]:
        frame = open_project("demo", root=projects, create=False).annotations()
        return dict(zip(frame["doc_id"].tolist(), frame["label"].tolist()))

    with sync_playwright() as playwright, app_server(data_dir) as (url, server):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT)
        _open(page, url, "Teach")
        doc = _shown(page)
        # the scores, the human labels per class, the estimated documents per label
        charts = page.get_by_test_id("stPlotlyChart")
        expect(charts).to_have_count(3)
        for chart in charts.all():
            expect(chart.locator(".main-svg").first).to_be_visible()
        # the estimated accuracy, and cross-validation: drawn last
        expect(page.get_by_test_id("stMetric")).to_have_count(2)
        _settle(page)
        page.screenshot(path=str(tmp_path / "teach.png"))
        for key, name in enumerate(names, start=1):  # each label's key is shown on its button
            expect(
                page.get_by_role("button", name=f"{name} Shortcut {key}", exact=True)
            ).to_be_visible()

        expected: dict[int, str] = {}
        for key in "12341":
            expected[doc] = names[int(key) - 1]
            page.keyboard.press(key)
            doc = _next(page, doc)
        assert current() == expected  # five labels, each on the document that was on screen

        page.keyboard.press("2")  # a double press: one label, on the document the user saw
        page.wait_for_timeout(80)
        page.keyboard.press("2")
        twice, doc = doc, _next(page, doc)
        _settle(page)  # the second press's run has finished too
        assert current() == {**expected, twice: names[1]}
        history = open_project("demo", root=projects, create=False).history()
        assert len(history) == 6  # no second event on the same document either

        page.keyboard.press("Backspace")  # undoes that one label, and it is suggested again
        expect(page.get_by_text(SUGGESTED)).to_have_text(re.compile(rf"^Document {twice},"))
        _settle(page)
        assert current() == expected
        expect(page.locator("[data-testid=stSidebar]")).to_contain_text("5 human labels")
        # Settled, the page leaves the server idle: nothing polls a background job that is done.
        expect(page.get_by_test_id("stMetric").last).not_to_contain_text("...")
        page.wait_for_timeout(3_000)
        used = cpu_seconds(server.pid)
        page.wait_for_timeout(5_000)
        assert cpu_seconds(server.pid) - used < 0.2
        browser.close()
