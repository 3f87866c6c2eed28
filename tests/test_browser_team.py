"""Two people at once in a real browser, on a real PostgreSQL store: two Chromium contexts under two
names label the same document of one project at the same moment with different keys; both labels
land in its history, and the Review page shows the disagreement and Cohen's kappa."""

import re
import shutil

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sklearn.metrics import cohen_kappa_score

from fewshot import config
from fewshot.demo import DEMO_LABELS, open_demo
from fewshot.store import open_project
from tests.browser_server import CHROMIUM_FLAGS, running_app, sign_in

CHROMIUM = shutil.which("chromium")
TIMEOUT = 300_000
SUGGESTED = re.compile(r"^Document (\d+), suggested")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is missing: run the tests through `make test`"
)


def _teach(page: Page, url: str, name: str) -> int:
    """Sign in as name, open Teach and return the document it shows, once it may be labeled."""
    page.goto(url)
    sign_in(page, name, TIMEOUT)
    page.get_by_role("link", name="Teach").click()
    caption = page.get_by_text(SUGGESTED)
    caption.wait_for(timeout=TIMEOUT)
    doc = int(SUGGESTED.match(caption.inner_text()).group(1))
    expect(page.locator(f".st-key-label_{doc}_0 button")).to_be_visible(timeout=TIMEOUT)
    page.wait_for_timeout(600)  # read: presses in the first 0.3 s do not count
    return doc


def test_two_annotators_label_one_document_at_once_and_review_shows_it(
    tmp_path, embedder, postgres_url
):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copytree(config.data_dir() / "maps", data_dir / "maps")
    project = open_demo(postgres_url)
    names = [name for name, _ in DEMO_LABELS]
    # Some history to agree on: the same six documents, one of them labeled differently.
    for doc, (ada, bob) in enumerate([(0, 0), (1, 1), (2, 2), (3, 3), (0, 0), (1, 2)], start=100):
        project.annotate(doc, names[ada], user="ada")
        project.annotate(doc, names[bob], user="bob")

    env = {"FEWSHOT_DATABASE_URL": postgres_url}
    with sync_playwright() as playwright, running_app(data_dir, env=env) as url:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        ada = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        bob = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        doc = _teach(ada, url, "ada")
        assert _teach(bob, url, "bob") == doc  # the same suggestion for both
        ada.keyboard.press("1")
        bob.keyboard.press("2")
        for page in (ada, bob):
            expect(page.get_by_text(SUGGESTED)).not_to_have_text(
                re.compile(rf"^Document {doc},"), timeout=TIMEOUT
            )
        history = open_project("demo", root=postgres_url, create=False).history(doc)
        assert sorted(zip(history["user"], history["label"])) == [
            ("ada", names[0]), ("bob", names[1])
        ]  # fmt: skip

        ada.get_by_role("link", name="Review").click()
        ada.get_by_role("heading", name="Disagreements").wait_for(timeout=TIMEOUT)
        expect(ada.get_by_text("2 documents with different labels")).to_be_visible()
        kappa = cohen_kappa_score([0, 1, 2, 3, 0, 1, 0], [0, 1, 2, 3, 0, 2, 1])
        expect(ada.get_by_test_id("stMetric")).to_contain_text(f"{kappa:.2f}")
        table = ada.get_by_test_id("stDataFrame").first
        expect(table).to_be_visible()
        ada.wait_for_timeout(1000)
        ada.screenshot(path=str(tmp_path / "review.png"), full_page=True)

        # ada, reviewing, ticks the first disagreement (the grid is a canvas: by position) and
        # resolves it; the resolution is her annotation, marked as one
        box = table.bounding_box()
        ada.mouse.click(box["x"] + 15, box["y"] + 35 + 16)
        ada.get_by_role("button", name=f"Resolve as {names[2]}").click()
        expect(ada.get_by_text("1 not resolved yet")).to_be_visible(timeout=TIMEOUT)
        expect(ada.get_by_test_id("stMetric")).to_contain_text(f"{kappa:.2f}")  # unchanged
        ada.wait_for_timeout(300)
        expect(ada.get_by_test_id("stStatusWidget")).to_be_hidden(timeout=TIMEOUT)
        ada.screenshot(path=str(tmp_path / "resolved.png"), full_page=True)
        first = min(doc, 105)  # the table lists documents in order
        last = open_project("demo", root=postgres_url, create=False).history(first).iloc[-1]
        assert (last["user"], last["label"], last["action"]) == ("ada", names[2], "resolve")
        browser.close()
