"""Key press to next document on screen, in real Chromium, on the Teach page of one project.

Run by `python -m fewshot.scale` after the page timing (kept out of fewshot/, which never imports
streamlit or playwright): `python -m benchmarks.keypress_timing --project NAME [--presses 10]`
from the repository root prints JSON. It starts the real app server on the data directory
(FEWSHOT_DATA_DIR), opens the project in headless Chromium, goes to Teach, waits until the page
has settled (every element drawn, the server idle: models loaded, the background UMAP warm-up
and the cross-validation done), then presses the first label's key N times. Each time it measures,
inside the browser, from the keydown to the caption naming another document (a MutationObserver
on the page; the paint follows within a frame), and, coarser, from the press until the run that
the press started has finished (the cross-validation is drawn last). Before each press the page
settles again and the document is on screen for a moment (the page ignores a press on a document
shown for less than 0.3 s). The labels it wrote are undone afterwards, so the project is left as
it was. Without chromium it prints a note saying so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from fewshot import config
from fewshot.store import open_project
from tests.browser_server import CHROMIUM_FLAGS, app_server, sign_in, wait_until_idle

SUGGESTED = re.compile(r"^Document (\d+), suggested")  # the Teach page's caption
TIMEOUT_MS = 1_800_000  # the first visit of a new server loads the models and the corpus
PRESS_TIMEOUT_MS = 300_000  # a press that shows no other document by then is an error
IDLE_LIMIT_S = 600  # waiting for the server to go idle stops after this long
READ_MS = 500  # on screen this long before each press (the page needs 0.3 s)
USER = "timing"  # the name signed in with: whose labels the presses write, whose undo reverts them

# In the page: the time of the next keydown, and of the first DOM change after it that makes the
# caption name another document.
WATCH = """doc => {
    const watch = {press: null, shown: null, doc: null};
    const caption = () => {
        for (const el of document.querySelectorAll('[data-testid="stCaptionContainer"]')) {
            const m = /^Document (\\d+), suggested/.exec(el.innerText);
            if (m) return Number(m[1]);
        }
        return null;
    };
    window.addEventListener('keydown', () => {
        if (watch.press === null) watch.press = performance.now();
    }, {capture: true, once: true});
    const observer = new MutationObserver(() => {
        if (watch.press === null) return;
        const now = caption();
        if (now !== null && now !== doc) {
            watch.shown = performance.now();
            watch.doc = now;
            observer.disconnect();
        }
    });
    observer.observe(document.body, {childList: true, subtree: true, characterData: true});
    window.__keypress = watch;
}"""


def _shown(page: Page) -> int:
    caption = page.get_by_text(SUGGESTED)
    caption.wait_for()
    return int(SUGGESTED.match(caption.inner_text()).group(1))


def _settle(page: Page, server_pid: int, idle_limit: float) -> None:
    """Wait until the page's last run has finished and the server is idle."""
    page.wait_for_timeout(300)
    expect(page.get_by_test_id("stStatusWidget")).to_be_hidden(timeout=TIMEOUT_MS)
    if idle_limit and wait_until_idle(server_pid, limit_s=idle_limit) >= idle_limit:
        print(f"the server was still busy after {idle_limit:.0f} s; pressing", file=sys.stderr)


def _open_teach(page: Page, url: str, project: str) -> None:
    """The app in the browser, the project picked in the sidebar as a user would, then Teach."""
    page.goto(url)
    sign_in(page, USER)
    sidebar = page.get_by_test_id("stSidebar")
    picker = sidebar.get_by_test_id("stSelectbox")
    if project not in picker.inner_text().splitlines():
        picker.click()
        page.get_by_role("option", name=project, exact=True).click()
        page.get_by_role("heading", name="Data").wait_for()
    n = open_project(project, create=False).n_documents()
    sidebar.get_by_text(f"{n:,} document").wait_for()
    page.get_by_role("link", name="Teach").click()
    page.get_by_role("heading", name="Teach").wait_for()


def _press(
    page: Page, server_pid: int, doc: int, key: str, idle_limit: float
) -> tuple[float, float, int]:
    """Press key on document doc: seconds to another document on screen (in the browser), seconds
    until the run the press started has finished (coarser, from here), and the new document."""
    page.locator(f".st-key-label_{doc}_0 button").wait_for()
    page.wait_for_timeout(READ_MS)
    page.evaluate(WATCH, doc)
    pressed = time.perf_counter()
    page.keyboard.press(key)
    try:
        page.wait_for_function("window.__keypress.shown !== null", timeout=PRESS_TIMEOUT_MS)
    except PlaywrightTimeoutError:
        raise RuntimeError(f"a press on document {doc} showed no other document") from None
    watch = page.evaluate("window.__keypress")
    page.wait_for_timeout(300)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=TIMEOUT_MS)
    done = time.perf_counter() - pressed
    wait_until_idle(server_pid, limit_s=idle_limit)
    return (watch["shown"] - watch["press"]) / 1000, done, int(watch["doc"])


def _session(project: str, presses: int, key: str, chromium: str, idle_limit: float) -> dict:
    """A new server, a browser on its Teach page, the presses timed."""
    next_s, done_s, docs = [], [], []
    with (
        tempfile.TemporaryDirectory(prefix="keypress-") as scratch,
        app_server(config.data_dir(), log=Path(scratch) / "server.log") as (url, server),
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        start = time.perf_counter()
        _open_teach(page, url, project)
        doc = _shown(page)
        first_visit = time.perf_counter() - start
        _settle(page, server.pid, idle_limit)
        settled = time.perf_counter() - start
        for i in range(presses):
            shown_s, run_s, after = _press(page, server.pid, doc, key, idle_limit)
            next_s.append(round(shown_s, 3))
            done_s.append(round(run_s, 2))
            docs.append([doc, after])
            print(f"press {i + 1}: {shown_s:.3f} s, run done {run_s:.1f} s", file=sys.stderr)
            doc = after
        browser.close()
    return {
        "first_visit_s": round(first_visit, 1),  # app opened (new server) to the first document
        "settled_s": round(settled, 1),  # ... to every element drawn and the server idle
        "next_document_s": next_s,
        "next_document_median_s": round(statistics.median(next_s), 3) if next_s else None,
        "next_document_max_s": max(next_s, default=None),
        "run_done_s": done_s,
        "run_done_median_s": round(statistics.median(done_s), 2) if done_s else None,
        "documents": docs,  # [shown when pressed, shown next] per press
    }


def measure(
    project: str, presses: int, key: str, chromium: str, idle_limit: float = IDLE_LIMIT_S
) -> dict:
    """The timed session; afterwards the labels it wrote are undone and the app's last project
    is restored (picking a project in the sidebar makes it the last one used)."""
    store = open_project(project, create=False)
    before = len(store.history())
    settings = config.data_dir() / "app.json"
    saved = settings.read_text() if settings.exists() else None
    try:
        timings = _session(project, presses, key, chromium, idle_limit)
    finally:
        written = len(store.history()) - before
        for _ in range(written):
            store.undo(USER)
        if saved is not None:
            settings.write_text(saved)
        elif settings.exists():
            settings.unlink()
    version = subprocess.run([chromium, "--version"], capture_output=True, text=True, check=False)
    return {
        "project": project,
        "docs": store.n_documents(),
        "key": key,
        "presses": presses,
        "labels_written": written,
        **timings,
        "chromium": version.stdout.strip(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.keypress_timing", description=__doc__
    )
    parser.add_argument("--project", required=True)
    parser.add_argument("--presses", type=int, default=10, help="key presses timed (default 10)")
    parser.add_argument("--key", default="1", help="the key pressed (default 1: the first label)")
    parser.add_argument(
        "--idle-limit",
        type=float,
        default=IDLE_LIMIT_S,
        help="seconds to wait at most for the server to go idle before a press (default 600; "
        "0 presses as soon as the page's run has finished, e.g. in a quick test)",
    )
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None:
        note = "skipped: chromium is not installed (`make browser` installs Debian's chromium)"
        print(note, file=sys.stderr)
        print(json.dumps({"skipped": note}))
        return 0
    found = measure(args.project, args.presses, args.key, chromium, args.idle_limit)
    print(json.dumps({**found, "idle_limit_s": args.idle_limit}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
