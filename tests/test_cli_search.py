"""`keras-scan search RUN` end to end on a small run folder (real Fashion-MNIST)."""

import shutil

import numpy as np
import pytest

from keras_scan import cli, inference, runs, thresholds

LIMIT = 2000  # 1800 train / 200 validation / 2000 test images


@pytest.fixture(scope="module")
def run_dir(trained, tmp_path_factory):
    """A RUN folder holding the session's trained model and a small config."""
    run = tmp_path_factory.mktemp("run") / "fm"
    run.mkdir()
    shutil.copy(trained[2], run / runs.MODEL)
    runs.write_json(
        run / runs.CONFIG,
        {
            "dataset": "fashion_mnist",
            "image_size": 32,
            "channels": 3,
            "val_fraction": 0.1,
            "seed": 0,
            "limit": LIMIT,
        },
    )
    return run


def _search(run, *flags):
    return cli.main(
        ["search", str(run), "--population", "24", "--generations", "15", *flags]
    )


@pytest.mark.slow
def test_search_writes_thresholds_and_plot_from_validation(run_dir, capsys):
    assert _search(run_dir, "--max-accuracy-drop", "0.5", "--seed", "3") == 0
    out = capsys.readouterr().out
    th = thresholds.Thresholds.load(run_dir / runs.THRESHOLDS)
    m = th.metrics
    assert len(th.values) == 3 and all(0 <= v <= 1 for v in th.values)
    assert th.measure == "max_prob" and th.fallback == "final"
    assert m["target"]["max_accuracy_drop"] == 0.5 and m["search"]["seed"] == 3
    # Chosen on the validation split (200 images), never the test split (2000).
    splits = runs.load_splits(run_dir)
    x_val, y_val = splits.val
    assert m["num_samples"] == len(y_val) == 200 != len(splits.test[1])
    probs, labels = inference.collect_probs(runs.load_model(run_dir), splits.val)
    assert m["final_exit_accuracy"] == np.mean(probs[-1].argmax(axis=1) == y_val)
    again = thresholds.evaluate_thresholds(probs, labels, th, m["exit_macs"])
    assert again["accuracy"] == m["accuracy"]
    assert again["exit_counts"] == m["exit_counts"]
    # Costs from exit_info; the baseline is the plain backbone.
    info = runs.load_model(run_dir).exit_info
    assert m["exit_macs"] == [i["macs"] for i in info]
    assert m["full_macs"] == info[-1]["standalone_macs"]
    assert m["constraint_met"]
    assert m["accuracy"] >= m["final_exit_accuracy"] - 0.005 - 1e-12
    assert m["mean_macs"] <= m["global_threshold"]["mean_macs"]
    png = (run_dir / runs.TRADEOFF).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    for text in (
        "thresholds: exit_0=",
        "validation accuracy",
        "speedup",
        "global-threshold baseline",
        "thresholds.json",
        "tradeoff.png",
    ):
        assert text in out, text
    assert f"{th.values[0]:.6g}" in out


@pytest.mark.slow
def test_search_budget_and_options(run_dir, capsys):
    info = runs.load_model(run_dir).exit_info
    budget = (info[0]["macs"] + info[1]["macs"]) / 2
    flags = ["--budget-macs", f"{budget:.6g}", "--measure", "margin"]
    assert _search(run_dir, *flags, "--fallback", "ensemble") == 0
    th = thresholds.Thresholds.load(run_dir / runs.THRESHOLDS)
    assert th.measure == "margin" and th.fallback == "ensemble"
    assert th.metrics["mean_macs"] <= float(f"{budget:.6g}")
    assert th.metrics["target"]["budget_macs"] == pytest.approx(budget, rel=1e-5)
    assert "most accurate within" in capsys.readouterr().out


@pytest.mark.slow
def test_search_errors(run_dir, tmp_path, capsys):
    # A budget below the first exit's cost names the minimum.
    assert _search(run_dir, "--budget-macs", "1000") == 2
    err = capsys.readouterr().err
    first = runs.load_model(run_dir).exit_info[0]["macs"]
    assert f"costs {first} MACs, the minimum budget" in err
    assert "budget_macs=1000.0" in err
    # A negative accuracy drop.
    assert _search(run_dir, "--max-accuracy-drop", "-1") == 2
    assert "max_accuracy_drop=-1" in capsys.readouterr().err
    # A run folder without a trained model.
    empty = tmp_path / "untrained"
    empty.mkdir()
    shutil.copy(run_dir / runs.CONFIG, empty / runs.CONFIG)
    assert _search(empty) == 2
    assert "no trained model" in capsys.readouterr().err
    # Not a run folder at all.
    assert _search(tmp_path / "nowhere") == 2
    assert "run folder" in capsys.readouterr().err
    # Both targets at once: argparse refuses.
    with pytest.raises(SystemExit) as e:
        _search(run_dir, "--max-accuracy-drop", "1", "--budget-macs", "1e9")
    assert e.value.code == 2
    assert "not allowed with" in capsys.readouterr().err
