"""Render time of every app page for one project, headless (AppTest), in this fresh process.

Run by `python -m fewshot.scale` (kept out of fewshot/, which never imports streamlit):
`python -m benchmarks.page_timing --project NAME [--no-umap]` from the repository root prints JSON.
One session walks through the app as a user would, Data first: per page the first visit (the Data
page's includes what a new server pays: models, the corpus from the embedding cache; Labels' the
neighbour graphs) and a rerun (what every click pays), the most rows any table sent to the browser
and the points the map drew; then the peak memory of the process.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from fewshot import config

ROOT = Path(__file__).resolve().parents[1]
PAGES = {
    "Data": "pages/data.py",
    "Labels": "pages/labels.py",
    "Teach": "pages/teach.py",
    "Export": "pages/export.py",
    "Map": "pages/map.py",  # last: its background UMAP fit would slow the pages after it
}
UMAP_TIMEOUT_S = 1800


def _length(value: object) -> int:
    """Points in a plotly JSON array: a plain list, or numpy bytes in base64 ({"dtype", "bdata"})."""
    if isinstance(value, dict):
        return len(np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]))
    return len(value)


def _table_rows(at: AppTest) -> int | None:
    return max((len(t.value) for t in [*at.dataframe, *at.data_editor]), default=None)


def _points(at: AppTest) -> int | None:
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    traces = [
        t for c in charts if c.get("layout", {}).get("dragmode") == "lasso" for t in c["data"]
    ]
    if not traces:
        return None
    return sum(_length(t["x"]) for t in traces if t.get("name") != "Labels")


def _umap_drawn(at: AppTest) -> bool:
    """Whether the map draws its UMAP layout: a caption starts so. (The PCA caption shown while
    UMAP is fitted mentions "The UMAP layout" too, so looking for the words anywhere is wrong.)"""
    return any(c.value.startswith("UMAP layout") for c in at.caption)


def _timed_run(at: AppTest, page: str | None = None) -> float:
    """One run of the session, after switching to page if given."""
    start = time.perf_counter()
    (at.switch_page(page) if page else at).run()
    seconds = time.perf_counter() - start
    if at.exception:
        raise RuntimeError(f"{at.exception[0].message}\n{at.exception[0].stack_trace}")
    return seconds


def time_page(at: AppTest, page: str) -> dict:
    """Open the page in the session (first run), then run it again as a click would (rerun)."""
    first = _timed_run(at, None if page == PAGES["Data"] else page)
    rerun = _timed_run(at)
    return {
        "first_s": round(first, 2),
        "rerun_s": round(rerun, 2),
        "table_rows": _table_rows(at),
        "points": _points(at),
        "layout": ("umap" if _umap_drawn(at) else "pca") if "map" in page else None,
    }


def wait_for_umap(at: AppTest, since: float) -> dict:
    """Wait until the map's background UMAP fit is stored (unless the page drew UMAP already),
    then time one more run: what a click on the finished map costs."""
    layouts = config.data_dir() / "layouts"
    deadline = time.monotonic() + UMAP_TIMEOUT_S
    start = time.perf_counter()
    while (
        not _umap_drawn(at)
        and time.monotonic() < deadline
        and not any(p.stat().st_mtime >= since for p in layouts.glob("umap-*.npz"))
    ):
        time.sleep(2)
    waited = time.perf_counter() - start
    seconds = _timed_run(at)
    return {
        "waited_s": round(waited, 1),
        "run_s": round(seconds, 2),
        "drawn": _umap_drawn(at),
    }


def peak_rss_mb() -> int:
    """This process's own peak memory: VmHWM, not ru_maxrss, which Linux carries over from the
    parent that forked this process (the scale command, holding the whole corpus)."""
    status = Path("/proc/self/status").read_text()
    return round(
        int(next(f.split()[1] for f in status.splitlines() if f.startswith("VmHWM:"))) / 1024
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.page_timing", description=__doc__)
    parser.add_argument("--project", required=True)
    parser.add_argument("--no-umap", action="store_true", help="do not wait for the UMAP map")
    args = parser.parse_args(argv)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=UMAP_TIMEOUT_S)
    at.session_state["project"] = args.project
    at.session_state["annotator"] = "timing"  # signed in, as a user would be
    pages = {}
    for name, page in PAGES.items():
        since = time.time()
        pages[name] = time_page(at, page)
        print(f"{name}: {pages[name]}", file=sys.stderr, flush=True)
        if name == "Map" and not args.no_umap:
            pages[name]["umap"] = wait_for_umap(at, since)
    print(json.dumps({"pages": pages, "peak_rss_mb": peak_rss_mb()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
