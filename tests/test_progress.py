"""Progress bars of `keras-scan search` and `keras-scan export` (int8 calibration).

Drawn on stderr when asked (`progress=True`, `--progress`) or when stderr is a
terminal; never otherwise, so captured or piped output stays clean. A tiny
untrained model keeps this fast: the bars, not the thresholds, are under test.
"""

import keras
import numpy as np
import pytest
from helpers import tiny_backbone, write_run

import keras_scan
from keras_scan import cli, progress, thresholds

N = 40


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(2)
    return keras_scan.build(tiny_backbone(), num_classes=10, exits=1)


@pytest.fixture(scope="module")
def val_data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (N, 32, 32, 3)).astype(np.float32)
    return x, rng.integers(0, 10, N)


@pytest.fixture(scope="module")
def tiny_run(tiny_model, tmp_path_factory):
    """A RUN folder with the tiny model (Fashion-MNIST, 600 images: 60 validation)."""
    run = tmp_path_factory.mktemp("progress_run") / "run"
    return write_run(run, tiny_model)


def _search(model, data, **kwargs):
    return thresholds.search_thresholds(
        model, data, population=8, generations=3, batch_size=16, **kwargs
    )


# ------------------------------------------------------------------ library


def test_search_bars_when_asked_and_same_result(tiny_model, val_data, capsys):
    quiet = _search(tiny_model, val_data)
    assert capsys.readouterr().err == ""  # off by default

    shown = _search(tiny_model, val_data, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err
    assert "forward pass" in err and f"{N}/{N}" in err
    assert "NSGA-II" in err and "3/3" in err
    assert err.count("100%") == 2
    # The same forward pass under the bar: the same probabilities and choice.
    assert shown.values == quiet.values
    assert shown.metrics["front"] == quiet.metrics["front"]


def test_forward_pass_bar_on_a_dataset(tiny_model, val_data, capsys):
    import tensorflow as tf

    x, y = val_data
    ds = tf.data.Dataset.from_tensor_slices((x, y))  # unbatched: size known
    probs, labels = keras_scan.inference.collect_probs(
        tiny_model, ds, 16, progress=True
    )
    assert f"{N}/{N}" in capsys.readouterr().err
    reference, ref_labels = keras_scan.inference.collect_probs(tiny_model, (x, y))
    np.testing.assert_array_equal(labels, ref_labels)
    for a, b in zip(probs, reference):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # Batched: the image count is unknown up front, the bar still counts them.
    keras_scan.inference.collect_probs(tiny_model, ds.batch(16), 16, progress=True)
    assert f"{N} images [" in capsys.readouterr().err


def test_progress_must_be_a_bool(tiny_model, val_data):
    with pytest.raises(ValueError, match="`progress` must be a bool"):
        _search(tiny_model, val_data, progress="yes")


@pytest.mark.slow
def test_export_calibration_bar_per_int8_file(tiny_model, val_data, tmp_path, capfd):
    out = tmp_path / "exp"
    keras_scan.export(
        tiny_model,
        out,
        thresholds=[0.9],
        quantize=["int8", "float32"],
        representative_data=val_data,
        calibration_samples=8,
        progress=True,
    )
    # capfd: the bar is written on a copy of descriptor 2 taken before the
    # converter's own output is captured (keras_scan.native_logs), and lands.
    err = capfd.readouterr().err
    for stem in ("cascade", "stage_0", "stage_1", "exit_0", "full"):
        line = [s for s in err.split("\n") if f"calibrating {stem}.int8.tflite" in s]
        assert line and "8/8" in line[-1] and "100%" in line[-1], err
    assert "float32.tflite" not in err  # float32 is not calibrated
    assert "fully_quantize" not in err  # the converter's lines are still dropped

    keras_scan.export(
        tiny_model,
        out,
        thresholds=[0.9],
        representative_data=val_data,
        calibration_samples=8,
        overwrite=True,
    )
    assert "calibrating" not in capfd.readouterr().err


# --------------------------------------------------------------------- CLI


def test_terminal_decides_unless_a_flag_is_given(monkeypatch):
    assert progress.wanted() is False  # pytest's stderr is no terminal
    assert progress.wanted(True) is True
    monkeypatch.setattr(progress, "stderr_is_terminal", lambda: True)
    assert progress.wanted() is True
    assert progress.wanted(False) is False


@pytest.mark.slow
def test_search_cli_bars(tiny_run, monkeypatch, capsys):
    argv = ["search", str(tiny_run), "--population", "8", "--generations", "3"]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "validation accuracy" in captured.out
    assert "NSGA-II" not in captured.err and "forward pass" not in captured.err

    assert cli.main([*argv, "--progress"]) == 0
    captured = capsys.readouterr()
    assert "forward pass" in captured.err and "60/60" in captured.err
    assert "NSGA-II" in captured.err and "3/3" in captured.err
    assert "NSGA-II" not in captured.out

    monkeypatch.setattr(progress, "stderr_is_terminal", lambda: True)
    assert cli.main(argv) == 0
    assert "NSGA-II" in capsys.readouterr().err
    assert cli.main([*argv, "--no-progress"]) == 0
    assert "NSGA-II" not in capsys.readouterr().err


@pytest.mark.slow
def test_export_cli_bar(tiny_run, tmp_path, capsys):
    out = tmp_path / "exp"
    argv = ["export", str(tiny_run), "--out", str(out), "--eval-limit", "0"]
    argv += ["--calibration-samples", "4"]
    assert cli.main(argv) == 0
    assert "calibrating" not in capsys.readouterr().err
    assert cli.main([*argv, "--overwrite", "--progress"]) == 0
    captured = capsys.readouterr()
    assert "calibrating cascade.int8.tflite" in captured.err and "4/4" in captured.err
    assert "calibrating" not in captured.out and "wrote" in captured.out
