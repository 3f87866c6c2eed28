"""Large corpora: the scale measurement on a tiny corpus, and the pages paging their tables and
sampling the map once the corpus outgrows them (sizes lowered through the environment, so the
pages are tested on 20 documents rather than 50,000). Real models throughout."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from fewshot.projection import Layout, drawn, plot_sample
from fewshot.scale import SEARCHES, human_labels, synthetic_corpus
from fewshot.store import open_project
from tests.test_app_map_export import TEXTS, app_data, array, open_page  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[1]
PAGES = {"Data", "Labels", "Teach", "Export", "Map"}


def test_synthetic_corpus_is_distinct_mixed_and_reproducible():
    corpus = synthetic_corpus(13_000, seed=1)
    assert len(corpus) == 13_000 and corpus["text"].is_unique
    assert set(corpus["source"]) == {"ag_news", "banking77", "sst2"}
    assert corpus.equals(synthetic_corpus(13_000, seed=1))
    copies = corpus["text"].iloc[12_501:]  # past the 12,501 texts of the three sets: variations
    assert copies.str.startswith("Re: ").all()
    human = human_labels(corpus, 8)
    assert len(human) == 32 and set(human.values()) == {"World", "Sports", "Business", "Sci/Tech"}


def run_scale(out: Path, env: dict) -> dict:
    """`python -m fewshot.scale` on 300 documents (no UMAP, no key presses), its JSON report."""
    result = subprocess.run(
        [
            *(sys.executable, "-m", "fewshot.scale", "--docs", "300", "--no-umap"),
            *("--presses", "0", "--out", out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "scale.json").read_text())


def test_scale_command_reports_every_figure(tmp_path, embedder):
    """`embedder` is requested so the data directory already holds the word vectors and Zmap."""
    env = {**os.environ, "FEWSHOT_TABLE_ROWS": "100", "FEWSHOT_PLOT_POINTS": "150"}
    report = run_scale(tmp_path, env)
    assert report["docs"] == 300 and report["human_labels"] == 32
    assert report["store"]["file_mb"] > 0  # the project's SQLite file
    embedding = report["embedding"]
    assert embedding["embedded"] + embedding["from_cache"] == 300
    assert embedding["wall_s"] > 0 and embedding["progress_reports"] >= 2
    memory = report["memory_mb"]
    assert 0 < memory["after_store"] <= memory["after_embedding"] <= memory["overall"]
    assert memory["app_process"] > 0
    assert all(report["classifier"][k] > 0 for k in ("first_fit_s", "refit_predict_s"))
    assert set(report["pages"]) == PAGES
    assert all(p["first_s"] > 0 and p["rerun_s"] > 0 for p in report["pages"].values())
    assert max(p["table_rows"] or 0 for p in report["pages"].values()) == 100  # paged
    assert 150 <= report["pages"]["Map"]["points"] <= 150 + 32  # sample plus human labels
    search = report["search"]["queries"]
    assert set(search) == {*SEARCHES, "meaning, new query"}
    assert all(q["s"] > 0 and q["first_s"] > 0 for q in search.values())
    assert search["keyword"]["found"] > 0 and search["like"]["found"] == 50  # its `top`
    assert report["keypress"] == {"skipped": "skipped: --presses 0"}  # timed below, quicker
    text = (tmp_path / "scale.md").read_text()
    assert "| Labels |" in text and "| regex |" in text and "Key press to next document" in text

    # The key press benchmark on the project just built: one press, without waiting for the
    # server's background UMAP warm-up (a minute or two) to finish first.
    result = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks.keypress_timing", "--project", "scale-300"),
            *("--presses", "1", "--idle-limit", "0"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    keys = json.loads(result.stdout)
    if shutil.which("chromium") is None:
        assert keys["skipped"].startswith("skipped: chromium is not installed")
        return
    assert keys["labels_written"] == 1 and len(keys["next_document_s"]) == 1, keys
    assert 0 < keys["next_document_median_s"] == keys["next_document_max_s"]
    [(before, after)] = keys["documents"]
    assert before != after
    project = open_project("scale-300", create=False)
    assert len(project.annotations()) == 32  # its label undone


def test_scale_command_runs_on_a_postgresql_store(tmp_path, embedder, postgres_url):
    """The same measurement with the project in PostgreSQL, which has no file to size."""
    env = {**os.environ, "FEWSHOT_DATABASE_URL": postgres_url}
    report = run_scale(tmp_path, env)
    assert report["store"]["file_mb"] is None and report["store"]["write_s"] > 0
    assert report["docs"] == 300 and set(report["pages"]) == PAGES
    assert len(open_project("scale-300", postgres_url, create=False).annotations()) == 32


def captions(at) -> str:
    return " ".join(c.value for c in at.caption)


def test_labels_and_export_tables_are_paged(app_data, monkeypatch):  # noqa: F811
    monkeypatch.setenv("FEWSHOT_TABLE_ROWS", "8")
    at = open_page("pages/labels.py")
    assert at.dataframe[0].value["id"].tolist() == list(range(8))
    assert "Showing rows 1-8 of 20, 8 per page." in captions(at)
    at.number_input(key="assignments_page").set_value(3).run()
    assert not at.exception, at.exception
    assert at.dataframe[0].value["id"].tolist() == list(range(16, 20))
    assert "Document 16;" in captions(at)  # the score chart follows the page

    at = open_page("pages/export.py")
    assert len(at.dataframe[1].value) == 8 and "of 20" in captions(at)


def test_teach_table_is_paged_and_edits_land_on_the_right_document(app_data, monkeypatch):  # noqa: F811
    monkeypatch.setenv("FEWSHOT_TABLE_ROWS", "8")
    at = open_page("pages/teach.py")
    assert len(at.data_editor[0].value) == 8
    at.number_input(key="predictions_page").set_value(2).run()
    page = at.data_editor[0].value
    assert len(page) == 8 and "Showing rows 9-16 of 20" in captions(at)
    at.session_state["predictions_0"] = {
        "edited_rows": {0: {"human_label": "World"}},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()
    assert not at.exception, at.exception
    labels = dict(zip(app_data.annotations()["doc_id"], app_data.annotations()["label"]))
    assert labels[int(page.iloc[0]["id"])] == "World"


def test_map_draws_a_sample_and_every_labeled_document(app_data, monkeypatch):  # noqa: F811
    monkeypatch.setenv("FEWSHOT_PLOT_POINTS", "10")
    at = open_page("pages/map.py")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    ids = np.concatenate([array(t["customdata"]) for t in spec["data"] if t["name"] != "Labels"])
    sample = plot_sample(len(TEXTS), limit=10)
    assert set(ids) == set(sample) | {0, 1, 5}  # the three human-labeled documents
    assert f"Showing {len(ids)} of the 20 documents: a random sample of 10" in captions(at)


def test_drawn_adds_the_labeled_rows_outside_the_sample():
    x = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    sample = plot_sample(50, limit=20)
    outside = np.setdiff1d(np.arange(50), sample)[:3]
    for layout in (
        Layout("pca").fit(x[sample]),
        Layout("umap").with_embedding(x[sample], x[sample, :2]),
    ):
        rows, xy = drawn(layout, x, sample, np.concatenate([outside, sample[:2]]))
        assert rows.tolist() == [*sample, *outside] and xy.shape == (23, 2)
        assert np.allclose(xy[:20], layout.embedding_) and np.isfinite(xy).all()
