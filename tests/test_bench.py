"""The benchmark's core on a tiny slice: the report's structure, and every accuracy a fraction."""

import json

import pytest

from fewshot.bench import METHODS, bench_dataset
from fewshot.encoders import SentenceEncoder
from fewshot.report import render_markdown, targets
from fewshot.views import VIEWS


@pytest.fixture(scope="module")
def result(ag_sample, embedder):
    return bench_dataset(
        ag_sample["text"].tolist(),
        ag_sample["label"].tolist(),
        embedder,
        fresh=SentenceEncoder(embedder.sentence.model_path),
        sizes=(1, 2),
        draws=1,
        checkpoints=(4, 8),
        n_fresh=8,
        name="ag_sample",
    )


def fractions(result) -> list[float]:
    values = [v[mode] for v in result["zero_shot"].values() for mode in ("inductive", "auto")]
    values += [
        v[scores][metric]
        for v in result["zero_shot"].values()
        for scores in ("inductive_scores", "auto_scores")
        for metric in ("accuracy", "macro_f1", "ece")
    ]
    for by_size in result["few_shot"].values():
        for cell in by_size.values():
            values += [cell["mean"], cell["std"], *cell["runs"]]
            values += [*cell["macro_f1"]["runs"], *cell["ece"]["runs"]]
    values += result["session"]["suggest"].values()
    for key in ("applied", "own_corpus"):
        values += [*result["portable"][key]["runs"], *result["portable"][key]["macro_f1"]["runs"]]
    for cell in result["session"]["random"].values():
        values += [cell["mean"], cell["std"], *cell["runs"]]
    return values


def test_report_structure(result):
    assert result["n_docs"] == 40 and result["n_classes"] == 4
    assert set(result["zero_shot"]) == set(VIEWS)
    assert all(
        v["auto_mode"] in ("inductive", "transductive") for v in result["zero_shot"].values()
    )
    assert set(result["few_shot"]) == set(METHODS)
    assert all(list(by_size) == ["1", "2"] for by_size in result["few_shot"].values())
    assert list(result["session"]["suggest"]) == ["0", "4", "8"]
    assert list(result["session"]["random"]) == ["4", "8"]
    checks = result["zero_shot"]["sbert"]["checks"]
    assert set(checks) == {"clustering", "lexical"}
    assert all(isinstance(c["right"], bool) for c in checks.values())
    assert set(result["cost"]) == {
        "docs_per_s",
        "wmap_fit_ms",
        "inductive_fit_ms",
        "wmap_labels_per_class",
        "refit_predict_s",
        "refit_predict_inductive_s",
    }
    assert all(v > 0 for k, v in result["cost"].items())
    portable = result["portable"]
    assert portable["k"] >= 1 and portable["n_taught"] + portable["n_new"] == 40
    assert set(portable) >= {"applied", "own_corpus", "gap_points"}
    json.dumps(result)  # JSON-ready: plain numbers and strings only


def test_accuracies_are_fractions(result):
    values = fractions(result)
    assert len(values) > 30
    assert all(0.0 <= v <= 1.0 for v in values)


def test_targets_and_markdown(result):
    goals = targets({"ag_news": result})
    assert {g["issue"] for g in goals} == {"now", "issue 4", "issue 12", "issue 13"}
    assert all((g["met"] is None) == (g["value"] is None) for g in goals)
    measured = {g["what"] for g in goals if g["value"] is not None}
    assert measured == {
        "zero-shot accuracy % (best view)",
        "Wmap fit ms (8/class)",
        "refit + re-predict all docs, s",
        "worst zero-shot calibration error, all sets",
        "worst do-no-harm (macro-F1 points, 0-16/class)",
        "leaving the corpus costs (points, 8/class, halves)",
    }  # no 8 or 64 per class in this run
    report = {
        "command": "python -m fewshot.bench --test",
        "created": "today",
        "draws": 1,
        "environment": {
            "cpus": 2,
            "sentence_model": "m",
            "word_vectors": "w",
            "load_average_1min": [1.0, 1.0],
            "openblas_threads": "default",
        },
        "methods": METHODS,
        "datasets": {"ag_news": result},
        "cost": {"model_load_s": 1.0, "zmap_fit_s": 0.1, "zmap_words": 2000, "peak_rss_mb": 900},
        "targets": goals,
        "wall_s": 1.0,
    }
    text = render_markdown(report)
    assert "## ag_news: 40 documents, 4 classes" in text
    assert "| ag_news | 40 / 4 | 25.0 |" in text  # the results-by-set row
    assert "Checks (zero-shot, macro-F1 %): clustering" in text
    assert "| labeler file applied |" in text and "Cost of leaving the corpus" in text
    assert all(title in text for title in METHODS.values())
