"""End to end in a real browser: Debian's chromium drives the real app on a local port.

Create a project, upload a CSV, name labels (one of them hostile HTML and Markdown), label two
documents, download the CSV export and read it back; then kill the server, start a new one and check
the labels are still there.
"""

import shutil

import pandas as pd
import pytest
from playwright.sync_api import Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.browser_server import CHROMIUM_FLAGS, running_app

CHROMIUM = shutil.which("chromium")
TIMEOUT = 300_000  # ms; the first run loads the models and fits the Zmap in the server
expect.set_options(timeout=TIMEOUT)
HOSTILE = "<img src=x onerror=alert(1)> *Sci/Tech*"  # must be shown as typed, never rendered

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
    page.get_by_role("heading", name="Data").wait_for(timeout=TIMEOUT)
    if nav:
        page.get_by_role("link", name=nav).click()
        page.get_by_role("heading", name=nav).wait_for(timeout=TIMEOUT)


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
            page.get_by_label("Name").fill("browser test")
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
            expect(page.get_by_role("button", name=HOSTILE, exact=True)).to_be_visible()
            for expected in ("1", "2"):
                _settle(page)
                page.get_by_role("button", name="Sports", exact=True).click()
                expect(page.locator("[data-testid=stSidebar]")).to_contain_text(
                    f"{expected} human label"
                )

            page.get_by_role("link", name="Export").click()
            page.get_by_text("Documents, labels and scores").wait_for()
            exported = pd.read_csv(_download(page, "Download CSV"))
            page.screenshot(path=str(tmp_path / "export.png"), full_page=True)

        assert len(exported) == 12
        assert set(exported["text"]) == set(ag_sample.head(12)["text"])
        assert (exported["human_label"] == "Sports").sum() == 2
        assert exported["predicted_label"].isin(["World", "Sports", "Business", HOSTILE]).all()
        assert not dialogs  # the label's script never ran: it was shown as text

        with running_app(data_dir) as url:  # the old server was killed; a new one finds every label
            _open(page, url)
            expect(page.locator("[data-testid=stSidebar]")).to_contain_text("2 human labels")
        browser.close()
