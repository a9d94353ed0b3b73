"""Tests for keras_scan.inference: real early exit equals the simulated cascade."""

import keras
import numpy as np
import pytest

import keras_scan
from keras_scan import data, exit_rule, forward, inference, thresholds, training
from keras_scan.thresholds import Thresholds


@pytest.fixture(scope="module")
def test_probs(trained, fm_small):
    """Every exit's probabilities on the real test images (one forward pass)."""
    model = trained[0]
    x, y = fm_small["test"]
    probs, labels = inference.collect_probs(model, (x, y))
    return probs, labels


def _quantile_thresholds(probs, measure, quantiles=(0.6, 0.5, 0.4)):
    """Thresholds at which every shallow exit answers some but not all rows."""
    return [
        float(np.quantile(thresholds.confidence(p, measure), q))
        for p, q in zip(probs[:-1], quantiles)
    ]


def test_collect_probs_shapes_and_labels(trained, fm_small, test_probs):
    model = trained[0]
    probs, labels = test_probs
    x, y = fm_small["test"]
    assert len(probs) == len(model.exit_names) == 4
    for p in probs:
        assert p.shape == (len(x), 10) and p.dtype == np.float32
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(labels, y)
    # The probabilities are the model's own outputs, softmaxed.
    out = model.predict(x[:64], verbose=0)
    for name, p in zip(model.exit_names, probs):
        np.testing.assert_allclose(
            p[:64], keras.ops.convert_to_numpy(keras.ops.softmax(out[name])), atol=1e-6
        )
    # A trained model: the final exit is well above chance on real test images.
    assert np.mean(probs[-1].argmax(axis=1) == labels) > 0.6


def test_collect_probs_accepts_tf_data_and_py_dataset(trained, fm_small, test_probs):
    import tensorflow as tf

    model = trained[0]
    x, y = fm_small["test"]
    x, y = x[:300], y[:300]
    want = [p[:300] for p in test_probs[0]]
    sources = {
        "unbatched tf.data": tf.data.Dataset.from_tensor_slices((x, y)),
        "batched tf.data": data.make_tf_dataset((x, y), 128, training=False),
        "PyDataset": data.NumpyDataset(x, y, 100, training=False),
        "array + y": x,
    }
    for name, source in sources.items():
        probs, labels = inference.collect_probs(
            model, source, y=y if name == "array + y" else None, batch_size=64
        )
        np.testing.assert_array_equal(labels, y, err_msg=name)
        for a, b in zip(probs, want):
            np.testing.assert_allclose(a, b, atol=1e-6, err_msg=name)
    probs, labels = inference.collect_probs(model, x[:10])
    assert labels is None and probs[0].shape == (10, 10)


def test_one_pass_for_probabilities_and_evaluation(trained, fm_small, test_probs):
    """`collect_probs` is the shared softmax of `collect_logits`, and the per-exit
    evaluation (`training.predict_exits`, `evaluate_model`) reads the same logits."""
    model = trained[0]
    x, y = fm_small["test"]
    logits, labels = inference.collect_logits(model, (x, y))
    np.testing.assert_array_equal(labels, test_probs[1])
    for z, p in zip(logits, test_probs[0]):
        assert z.dtype == np.float32
        np.testing.assert_array_equal(exit_rule.softmax(z), p)
    by_name, labels = training.predict_exits(model, (x, y), batch_size=256)
    assert list(by_name) == model.exit_names
    np.testing.assert_array_equal(labels, y)
    for name, z in zip(model.exit_names, logits):
        np.testing.assert_array_equal(by_name[name], z)
    result = training.evaluate_model(model, (x, y), batch_size=256)
    for e, z in zip(result["exits"], logits):
        assert e["accuracy"] == float(np.mean(z.argmax(axis=1) == y))
    # A plain single-output model is one "final" exit.
    plain = model.exit_model("final")
    assert inference.exit_names(plain) == ["final"]
    (final,), labels = inference.collect_logits(plain, x[:100], y=y[:100])
    np.testing.assert_array_equal(labels, y[:100])
    np.testing.assert_allclose(final, logits[-1][:100], atol=1e-5)
    with pytest.raises(ValueError, match="`split` has no labels"):
        training.predict_exits(model, x[:8])
    # Per-exit accuracy (grow, cut_at_exit, compress) reads the same pass.
    accuracies = inference.exit_accuracies(model, (x, y))
    assert accuracies == {e["name"]: e["accuracy"] for e in result["exits"]}
    plain_accuracy = inference.exit_accuracies(plain, x[:100], y=y[:100])
    assert plain_accuracy == {"final": float(np.mean(final.argmax(axis=1) == y[:100]))}
    with pytest.raises(ValueError, match="`val_data` has no labels"):
        inference.exit_accuracies(model, x[:8], arg="val_data")


@pytest.mark.slow
@pytest.mark.parametrize("fallback", thresholds.FALLBACKS)
@pytest.mark.parametrize("measure", thresholds.MEASURES)
def test_engine_equals_simulated_cascade(
    trained, fm_small, test_probs, measure, fallback
):
    model = trained[0]
    x, _ = fm_small["test"]
    probs, _ = test_probs
    values = _quantile_thresholds(probs, measure)
    engine = keras_scan.ScalableInference(
        model, values, measure=measure, fallback=fallback
    )
    preds, exits, answer_probs = engine.predict(
        x, batch_size=300, return_probabilities=True
    )
    sim_preds, sim_exits = thresholds.simulate_cascade(probs, values, measure, fallback)
    np.testing.assert_array_equal(exits, sim_exits)
    np.testing.assert_array_equal(preds, sim_preds)
    # Every exit answers some rows, so the gathering path is exercised.
    counts = np.bincount(exits, minlength=4)
    assert np.all(counts > 0), counts
    # The returned probabilities are those of the answering exit.
    for i in range(3):
        np.testing.assert_allclose(
            answer_probs[exits == i], probs[i][exits == i], atol=1e-6
        )
    last = probs[-1] if fallback == "final" else np.mean(probs, axis=0)
    np.testing.assert_allclose(answer_probs[exits == 3], last[exits == 3], atol=1e-6)
    report = engine.last_report
    assert report["exit_counts"] == counts.tolist()
    assert report["num_images"] == len(x)
    macs = [i["macs"] for i in model.exit_info]
    assert report["mean_macs"] == pytest.approx(np.dot(counts, macs) / len(x))
    assert report["mac_speedup"] == pytest.approx(
        model.exit_info[-1]["standalone_macs"] / report["mean_macs"]
    )


@pytest.mark.slow
def test_extreme_thresholds_match_single_exits(trained, fm_small, test_probs):
    model = trained[0]
    x, _ = fm_small["test"]
    probs, _ = test_probs
    # All 1.0: no early exit, the final exit answers everything.
    preds, exits = keras_scan.ScalableInference(model, [1.0] * 3).predict(x[:200])
    assert np.all(exits == 3)
    np.testing.assert_array_equal(preds, probs[-1][:200].argmax(axis=1))
    # All 0.0: the first exit answers everything; later stages never run.
    engine = keras_scan.ScalableInference(model, Thresholds([0.0, 0.0, 0.0]))
    preds, exits = engine.predict(x[:200])
    assert np.all(exits == 0)
    np.testing.assert_array_equal(preds, probs[0][:200].argmax(axis=1))
    assert engine.last_report["stage_rows"] == [200, 0, 0, 0]
    assert engine.last_report["mean_macs"] == model.exit_info[0]["macs"]


class _CountingRunner:
    """Wraps a stage runner and records how many rows each call receives."""

    def __init__(self, runner):
        self.runner = runner
        self.rows = []

    def __call__(self, x):
        self.rows.append(int(x.shape[0]))
        return self.runner(x)

    def native(self, x):
        self.rows.append(int(x.shape[0]))
        return self.runner.native(x)


@pytest.mark.slow
def test_engine_runs_fewer_rows_in_later_stages(trained, fm_small, test_probs):
    model = trained[0]
    x, _ = fm_small["test"]
    probs, _ = test_probs
    values = _quantile_thresholds(probs, "max_prob", (0.5, 0.5, 0.5))
    engine = keras_scan.ScalableInference(model, values)
    engine._runners = [_CountingRunner(r) for r in engine._runners]
    _, exits = engine.predict(x, batch_size=250)
    counts = np.bincount(exits, minlength=4)
    rows = [sum(r.rows) for r in engine._runners]
    # Stage i runs exactly on the rows no earlier exit answered.
    expected = [len(x) - int(counts[:i].sum()) for i in range(4)]
    assert rows == expected == engine.last_report["stage_rows"]
    assert rows[0] == len(x) and rows[1] < rows[0] and rows[3] < rows[1]
    # The test images make one pool: each stage runs its rows in full slices
    # of the batch size (the last one shorter), not in the few rows each batch
    # would leave it.
    for runner, n in zip(engine._runners, rows):
        want = [250] * (n // 250) + ([n % 250] if n % 250 else [])
        assert runner.rows == want


@pytest.mark.slow
def test_warm_up_runs_every_stage_at_full_batches_and_records_nothing(
    trained, fm_small, monkeypatch
):
    model = trained[0]
    x, _ = fm_small["test"]
    engine = keras_scan.ScalableInference(model, [1.0, 1.0, 1.0])  # no early exit
    calls = []
    native = forward._Runner.native

    def counted(self, h):
        calls.append((self.model.name, int(h.shape[0])))
        return native(self, h)

    monkeypatch.setattr(forward._Runner, "native", counted)
    engine.warm_up(x[:300], batch_size=100)
    assert engine.last_report is None
    for stage in model.stage_models():
        rows = [n for name, n in calls if name == stage.name]
        # At least two full batches alone (until two calls take a steady
        # time, at most six), then the cascade over the 300 images: every
        # stage sees them all, as no exit answers.
        assert 2 + 3 <= len(rows) <= 6 + 3
        assert rows[:-3] == [100] * (len(rows) - 3) and rows[-3:] == [100] * 3


def test_runner_warm_up_stops_once_calls_take_a_steady_time(monkeypatch):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    run = forward.runner(model)
    # perf_counter at the start and the end of each call: 5 s, 1 s, 1.05 s.
    clock = iter([0.0, 5.0, 5.0, 6.0, 6.0, 7.05, 7.05, 99.0])
    calls = []
    monkeypatch.setattr(forward.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(
        forward._Runner, "native", lambda self, h: calls.append(len(h)) or h
    )
    run.warm_up(np.zeros((3, 4), "float32"))
    assert calls == [3, 3, 3]  # 5.0 s, then 1.0 s, then 1.05 s: steady
    clock = iter(np.arange(0.0, 100.0, 1.0) ** 2)  # every call slower
    calls.clear()
    run.warm_up(np.zeros((3, 4), "float32"), max_calls=4)
    assert calls == [3, 3, 3, 3]


@pytest.mark.slow
def test_evaluate_scalable_reports_measured_figures(trained, fm_small, test_probs):
    model = trained[0]
    x, y = fm_small["test"]
    x, y = x[:500], y[:500]
    probs, labels = [p[:500] for p in test_probs[0]], test_probs[1][:500]
    th = Thresholds(_quantile_thresholds(probs, "max_prob", (0.3, 0.3, 0.3)))
    report = inference.evaluate_scalable(model, x, y, thresholds=th, batch_size=200)
    info = model.exit_info
    want = thresholds.evaluate_thresholds(
        probs,
        labels,
        th,
        [i["macs"] for i in info],
        info[-1]["standalone_macs"],
    )
    assert report["accuracy"] == want["accuracy"]
    assert report["exit_counts"] == want["exit_counts"]
    assert report["mean_macs"] == pytest.approx(want["mean_macs"])
    assert report["mac_speedup"] == pytest.approx(want["speedup"])
    assert report["mac_speedup"] > 1.0
    assert report["full_accuracy"] == want["final_exit_accuracy"]
    assert report["accuracy_drop"] == pytest.approx(
        100 * (want["final_exit_accuracy"] - want["accuracy"])
    )
    assert sum(report["exit_shares"]) == pytest.approx(1.0)
    assert report["wall_time_s"] > 0 and report["full_wall_time_s"] > 0
    assert report["wall_speedup"] == pytest.approx(
        report["full_wall_time_s"] / report["wall_time_s"]
    )
    assert report["num_samples"] == len(x)
    # Same result from a batched tf.data pipeline of (image, label).
    ds = data.make_tf_dataset((x, y), 200, training=False)
    again = inference.evaluate_scalable(model, ds, thresholds=th)
    assert again["accuracy"] == report["accuracy"]
    assert again["exit_counts"] == report["exit_counts"]


def test_thresholds_from_json_file(trained, fm_small, tmp_path):
    model = trained[0]
    x, _ = fm_small["test"]
    path = Thresholds([0.9, 0.8, 0.7], measure="margin").save(tmp_path / "th.json")
    engine = keras_scan.ScalableInference(model, path)
    assert engine.thresholds == [0.9, 0.8, 0.7] and engine.measure == "margin"
    preds, exits = engine.predict(x[:8])
    assert preds.shape == exits.shape == (8,)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"thresholds": [0.5, 1.2, 0.5]}, ValueError, r"thresholds.*1\.2"),
        ({"thresholds": [-0.1, 0.5, 0.5]}, ValueError, r"thresholds.*-0\.1"),
        ({"thresholds": [0.5, 0.5]}, ValueError, r"K=3.*\[0\.5, 0\.5\]"),
        ({"thresholds": [0.5] * 4}, ValueError, r"K=3"),
        ({"thresholds": None}, ValueError, "thresholds=None"),
        ({"thresholds": "missing.json"}, FileNotFoundError, "missing.json"),
        (
            {"thresholds": Thresholds([0.5] * 3), "measure": "margin"},
            ValueError,
            "measure",
        ),
        ({"thresholds": [0.5] * 3, "fallback": "vote"}, ValueError, "fallback='vote'"),
    ],
)
def test_bad_thresholds(trained, kwargs, error, match):
    with pytest.raises(error, match=match):
        keras_scan.ScalableInference(trained[0], **kwargs)


def test_bad_inputs(trained, fm_small):
    model = trained[0]
    x, y = fm_small["test"]
    engine = keras_scan.ScalableInference(model, [0.9] * 3)
    with pytest.raises(ValueError, match=r"images.*\(0, 32, 32, 3\)"):
        engine.predict(x[:0])
    with pytest.raises(ValueError, match=r"images.*32, 32, 3.*\(4, 28, 28, 3\)"):
        engine.predict(np.zeros((4, 28, 28, 3), "float32"))
    with pytest.raises(ValueError, match="batch_size=0"):
        engine.predict(x[:4], batch_size=0)
    # warm_up checks its images and batch size the same way.
    with pytest.raises(ValueError, match=r"images.*\(0, 32, 32, 3\)"):
        engine.warm_up(x[:0])
    with pytest.raises(ValueError, match=r"images.*32, 32, 3.*\(4, 28, 28, 3\)"):
        engine.warm_up(np.zeros((4, 28, 28, 3), "float32"))
    with pytest.raises(ValueError, match="batch_size=0"):
        engine.warm_up(x[:4], batch_size=0)
    assert engine.last_report is None
    with pytest.raises(ValueError, match="ScanModel"):
        keras_scan.ScalableInference(keras.Sequential([keras.Input((3,))]), [0.5])
    with pytest.raises(ValueError, match="no samples"):
        inference.collect_probs(model, (x[:0], y[:0]))
    with pytest.raises(ValueError, match="no labels"):
        inference.evaluate_scalable(model, x[:8], thresholds=[0.9] * 3)
    with pytest.raises(ValueError, match=r"`y` must hold one label per image"):
        inference.collect_probs(model, x[:8], y=y[:4])
