"""The SetFit peer is bench-only: refused with the way to get it, and compared on its own draws."""

import importlib.util

import pytest

from fewshot import FewshotError, bench, peers, report
from fewshot.evaluate import summary


@pytest.fixture
def no_setfit(monkeypatch):
    """As in the app's environment, whether or not this one has setfit; and no model may load."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        peers.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "setfit" else find_spec(name, *a),
    )

    def fail(*args, **kwargs):
        raise AssertionError("the bench must refuse before loading any model")

    monkeypatch.setattr(bench.Embedder, "default", fail)


def test_check_installed_names_the_way_to_setfit(no_setfit):
    with pytest.raises(FewshotError, match="make bench-setfit"):
        peers.check_installed(["setfit"])
    with pytest.raises(FewshotError, match="Unknown peer"):
        peers.check_installed(["gpt"])
    peers.check_installed([])  # no peers, nothing to check


def test_bench_refuses_setfit_cleanly(no_setfit, capsys, tmp_path):
    assert bench.main(["--peers", "setfit", "--datasets", "sst2", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --peers setfit needs the setfit package")
    assert "make bench-setfit" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # no report written


def test_peer_table_compares_on_the_peer_draws():
    few = {
        "ours": {"8": {"runs": [0.9, 0.1, 0.8]}},
        "logreg": {"8": {"runs": [0.7, 0.0, 0.5]}},
    }
    cell = {**summary([0.6, 0.4]), "draws": [0, 2], "fit_s": 12.0, "predict_s": 3.0}
    data = {"n_docs": 100, "few_shot": few, "peers": {"setfit": {"8": cell}}}
    row = report._peer_table(data)[4]  # title, blank, header, rule, then the row
    assert row == (
        f"| 8 | {peers.PEERS['setfit']} | 2 | 50.0 ± 10.0 | 85.0 ± 5.0 | 60.0 ± 10.0 | 12 s | 3 s |"
    )


@pytest.mark.parametrize("sizes", ["eight", "0", ""])
def test_bad_peer_sizes_are_refused(sizes, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--peer-sizes", sizes, "--datasets", "sst2"])
    assert exit_info.value.code == 2
    assert "--peer-sizes must" in capsys.readouterr().err
