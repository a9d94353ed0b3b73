"""Distributed training: same global batch, same training as one device.

The device layouts (2 logical CPUs for TensorFlow, 2 XLA host devices for JAX,
2 worker processes on localhost) must exist before TensorFlow or JAX start, so
those runs are subprocesses (`distributed_fit.py`, `distributed_cli.py`,
`keras-scan`); the checks of bad input run in-process.
"""

import contextlib
import csv
import importlib.util
import json
import os
import pathlib
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_scan
from keras_scan import cli, data, distribute, training

HERE = pathlib.Path(__file__).parent
HAS_JAX = importlib.util.find_spec("jax") is not None
needs_jax = pytest.mark.skipif(not HAS_JAX, reason="jax is not installed")
TF = keras.backend.backend() == "tensorflow"
needs_tf = pytest.mark.skipif(not TF, reason="runs on the TensorFlow backend")

# Quiet logs; TensorFlow's oneDNN CPU kernels crash with several replicas on
# CPU (see keras_scan/cli.py), and the subprocesses import TensorFlow first.
ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}
JAX_2_DEVICES = {
    "KERAS_BACKEND": "jax",
    "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
}
# A tiny run on real data: 180 training images = 6 global batches of 30, two
# epochs (12 steps), the paper's recipe. The TensorFlow CLI runs are compared in
# float64 (`float64_home`): there one device, 2 replicas and 2 workers agree to
# ~1e-15 in every logged number and ~4e-14 of |w| (measured), so any real
# difference (a batch, a loss scale, a BatchNorm statistic) shows. In float32
# they agree only up to rounding, which starts at the first step and grows with
# a size that depends on the data order: worst relative gap of a logged loss,
# one device against data-parallel, seeds 0/1/2: 4.0e-5 / 1.5e-3 / 1.7e-2 with
# the data order before per-epoch seeding, 4.0e-3 / 9.1e-4 / 1.1e-4 with it
# (the replicas' batches are bit-identical to the one-device ones either way).
# No float32 bound is both tight and safe there; float32 is compared on the
# engines above (JAX) and on the JAX CLI below.
TRAIN = (
    "train --backbone cifar_resnet18 --width 4 --image-size 16 --limit 200 "
    "--batch-size 30 --lr 0.01 --recipe paper --head scan --attention scan "
    "--verbose 0"
).split()


# keras.json as Keras reads it from $KERAS_HOME: float64 is the default float
# type (layers, weights, the losses' arithmetic) of a process started with it.
KERAS_JSON_FLOAT64 = {
    "floatx": "float64",
    "epsilon": 1e-07,
    "backend": "tensorflow",
    "image_data_format": "channels_last",
}


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERAS_DIST")}
    env.pop("TF_CONFIG", None)
    env.pop("XLA_FLAGS", None)
    env.update(ENV)
    env.update(extra)
    return env


def _check(proc, what):
    assert proc.returncode == 0, (
        f"{what} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
        f"{proc.stderr[-3000:]}"
    )
    return proc


def _run(args, what, timeout=600, **env):
    proc = subprocess.run(
        [sys.executable, *map(str, args)],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return _check(proc, what)


def _start(args, **env):
    return subprocess.Popen(
        [sys.executable, *map(str, args)],
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait(procs, what, timeout=600):
    for i, p in enumerate(procs):
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise AssertionError(f"{what}: process {i} hung") from None
        p.stdout, p.stderr = out, err
        _check(p, f"{what} (process {i})")


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _cli(*args):
    return [HERE / "distributed_cli.py", *TRAIN, *args]


def _keras_scan(*args):
    return ["-m", "keras_scan.cli", *TRAIN, *args]


def _history(run):
    with open(pathlib.Path(run) / "history.csv") as f:
        return list(csv.DictReader(f))


@contextlib.contextmanager
def _float64():
    """Keras' default float type is float64 inside (this process only)."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


def _weights(run, name="last.keras"):
    model = keras.saving.load_model(pathlib.Path(run) / name, compile=False)
    return {
        w.path: np.asarray(keras.ops.convert_to_numpy(w.value)) for w in model.weights
    }, [w.path for w in model.trainable_weights]


def _float64_weights(run):
    """The weights of a float64 run, as float64, and the names of all of them.

    The backbone's layers save their dtype; the exit heads are built by
    `ScanModel` from the default float type, so they load as float64 only
    where that is float64.
    """
    with _float64():
        weights, trainable = _weights(run)
    # The run trained in float64: a float32 run's backbone would load float32.
    assert {weights[p].dtype for p in trainable} == {np.dtype("float64")}
    return weights, [p for p, w in weights.items() if w.dtype == np.float64]


def _relative_weight_gap(a, b, trainable, initial=None):
    """max over trainable weights of |a - b| / |a - initial| (|a| without one)."""
    gaps = []
    for path in trainable:
        step = a[path] - (initial[path] if initial is not None else 0)
        gaps.append(
            np.linalg.norm(a[path] - b[path]) / max(np.linalg.norm(step), 1e-12)
        )
    return max(gaps)


# ---------------------------------------------------------------------------
# The engines against one device (model.fit on noise images)
# ---------------------------------------------------------------------------


def _fits(tmp_path, single_env, dist_env):
    """`distributed_fit.py` on one device and data-parallel, side by side."""
    modes = {"single": single_env, "data-parallel": dist_env}
    procs = [
        _start([HERE / "distributed_fit.py", mode, tmp_path / mode], **env)
        for mode, env in modes.items()
    ]
    _wait(procs, "distributed_fit")
    results = []
    for mode in modes:
        with open(tmp_path / f"{mode}.json") as f:
            results.append((json.load(f), np.load(tmp_path / f"{mode}.npz")))
    return results


def _compare_fits(single, dist, log_rtol, weight_rtol, loose=()):
    (a, wa), (b, wb) = single, dist
    assert a["logs"].keys() == b["logs"].keys()
    for key in a["logs"]:
        # Keras weights the padded validation batch by its padded size: an
        # aggregation artifact of the total, not of training (measured 1.7e-3
        # with the default exits; every per-exit metric stays exact).
        rtol = 5e-3 if key in loose else log_rtol
        np.testing.assert_allclose(
            b["logs"][key], a["logs"][key], rtol=rtol, err_msg=key
        )
    initial = {p: wa[f"initial/{p}"] for p in a["trainable"]}
    final_a = {p: wa[f"final/{p}"] for p in a["trainable"]}
    final_b = {p: wb[f"final/{p}"] for p in a["trainable"]}
    for p in a["trainable"]:  # the same start
        np.testing.assert_array_equal(wb[f"initial/{p}"], initial[p])
    gap = _relative_weight_gap(final_a, final_b, a["trainable"], initial)
    assert gap < weight_rtol, gap
    # The updates are real: a wrong loss scale (x2) would give a gap near 1.
    assert all(np.linalg.norm(final_a[p] - initial[p]) > 0 for p in a["trainable"])


def test_tensorflow_mirrored_matches_one_device(tmp_path):
    """tf.distribute.MirroredStrategy over 2 logical CPUs, float64."""
    env = {"KERAS_BACKEND": "tensorflow"}
    single, dist = _fits(tmp_path, env, env)
    assert dist[0]["num_replicas"] == 2
    # Every step: loss, per-exit losses and accuracies, validation metrics.
    _compare_fits(single, dist, log_rtol=1e-5, weight_rtol=1e-6)
    assert all(dist[0]["bn_synchronized"]), "global-batch BatchNorm under replication"
    assert not dist[0]["saved_config_synchronized"]  # a portable saved model
    assert dist[0]["saved_model_loads"]


@needs_jax
def test_jax_data_parallel_matches_one_device(tmp_path):
    """keras.distribution.DataParallel over 2 XLA host devices, float32.

    The validation split (21 images) ends in an odd batch that is padded with
    zero-weight rows: metrics are exact; Keras' total `val_loss` weights that
    batch by its padded size (6 instead of 5 rows), hence the looser check.
    """
    single, dist = _fits(tmp_path, {"KERAS_BACKEND": "jax"}, JAX_2_DEVICES)
    assert dist[0]["num_replicas"] == 2
    _compare_fits(single, dist, log_rtol=1e-5, weight_rtol=1e-4, loose=("val_loss",))
    assert not any(dist[0]["bn_synchronized"])  # JAX needs no flag: global batch
    assert dist[0]["saved_model_loads"]


# ---------------------------------------------------------------------------
# keras-scan train --distribute, on real Fashion-MNIST
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def float64_home(tmp_path_factory):
    """KERAS_HOME for the subprocesses: a keras.json with floatx float64."""
    home = tmp_path_factory.mktemp("keras_home")
    (home / "keras.json").write_text(json.dumps(KERAS_JSON_FLOAT64))
    return {"KERAS_HOME": str(home)}


@pytest.fixture(scope="module")
def one_device_run(tmp_path_factory, float64_home):
    """The reference: the same tiny CLI run on one device (TensorFlow, float64)."""
    run = tmp_path_factory.mktemp("one") / "run"
    _run(_cli("--epochs", 2, "--out", run), "one-device train", **float64_home)
    return run


def _assert_same_float64_training(reference, run):
    """Every logged number and every weight of two float64 runs agree.

    Measured: 1.1e-15 relative in the logs (every loss and accuracy, training
    and validation), 3.6e-14 of |w| in the weights (TensorFlow: one device
    against 2 replicas and against 2 workers).
    """
    ha, hb = _history(reference), _history(run)
    assert ha and len(ha) == len(hb) and ha[0].keys() == hb[0].keys()
    for ra, rb in zip(ha, hb):
        assert ra["epoch"] == rb["epoch"]
        for key in ra.keys() - {"epoch"}:
            np.testing.assert_allclose(
                float(rb[key]), float(ra[key]), rtol=1e-9, err_msg=key
            )
        # The losses were computed in float64: no float32 could log them.
        loss = float(rb["loss"])
        assert float(np.float32(loss)) != loss, "trained in float32"
    wa, paths = _float64_weights(reference)
    wb, _ = _float64_weights(run)
    assert wa.keys() == wb.keys()
    # Relative to the weights themselves: the updates of 12 small steps are
    # small next to |w|, and still ~1e6 times this bound.
    gap = _relative_weight_gap(wa, wb, paths)
    assert gap < 1e-9, gap


def _assert_same_training(reference, run, loss_rtol=1e-3, weight_rtol=1e-2):
    """Per-epoch losses and final weights of two float32 runs agree to rounding.

    Used for the JAX CLI, which cannot run in float64 without JAX's own
    `jax_enable_x64` (Keras does not set it). Measured (JAX, one process
    against two): losses within 2.1e-6 relative, weights within 5.7e-4 of |w|
    (a BatchNorm beta, which starts at 0, so |w| is its update). TensorFlow's
    float32 runs drift by up to 1.7e-2 on some data orders (see TRAIN): these
    bounds hold what was measured, not every seed.
    """
    ha, hb = _history(reference), _history(run)
    assert len(ha) == len(hb)
    for ra, rb in zip(ha, hb):
        for key in ("loss", "final_loss", "exit_0_loss", "val_final_loss"):
            np.testing.assert_allclose(float(rb[key]), float(ra[key]), rtol=loss_rtol)
    wa, trainable = _weights(reference)
    wb, _ = _weights(run)
    # Relative to the weights themselves: the updates of 12 small steps are
    # tiny next to rounding, so compare against |w|.
    assert _relative_weight_gap(wa, wb, trainable) < weight_rtol


def test_cli_data_parallel_tensorflow(one_device_run, float64_home, tmp_path):
    """2 logical CPUs (MirroredStrategy), float64: the one-device training."""
    run, bad = tmp_path / "dp", tmp_path / "bad"
    # Side by side: a good run, and a global batch 2 replicas cannot split.
    bad_proc = _start(
        _cli(
            "--epochs",
            1,
            "--batch-size",
            31,
            "--distribute",
            "data-parallel",
            "--out",
            bad,
        )
    )
    _run(
        _cli("--epochs", 2, "--distribute", "data-parallel", "--out", run),
        "dp",
        **float64_home,
    )
    _assert_same_float64_training(one_device_run, run)
    config = json.loads((run / "config.json").read_text())
    assert config["num_replicas"] == 2 and config["distribute"] == "data-parallel"
    assert (run / "eval.json").is_file()
    saved = json.dumps(keras.saving.load_model(run / "model.keras").get_config())
    assert '"synchronized": true' not in saved

    # The bad batch: a clear error naming the argument, nothing written.
    out, err = bad_proc.communicate(timeout=600)
    assert bad_proc.returncode == 2, err[-2000:]
    assert (
        "`batch_size` is the global batch and must be divisible by the 2 replicas"
        in err
    )
    assert "Received: batch_size=31" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dp"]


def test_cli_data_parallel_resume(tmp_path):
    """Checkpoint/resume under replication: 1 epoch, then --resume to 2."""
    run = tmp_path / "resumed"
    _run(
        _cli("--epochs", 1, "--no-eval", "--distribute", "data-parallel", "--out", run),
        "first epoch",
    )
    first = _history(run)
    _run(
        _cli("--epochs", 2, "--resume", "--distribute", "data-parallel", "--out", run),
        "resume",
    )
    history = _history(run)
    assert len(history) == 2 and history[0] == first[0]
    assert float(history[1]["loss"]) < float(history[0]["loss"]) * 1.5
    assert not (tmp_path / ".resumed.incomplete").exists()


def test_cli_multi_worker_tensorflow(one_device_run, float64_home, tmp_path):
    """Two worker processes on localhost (TF_CONFIG), one CPU each, float64."""
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    run = tmp_path / "mw"
    procs = [
        _start(
            _keras_scan("--epochs", 2, "--distribute", "multi-worker", "--out", run),
            KERAS_BACKEND="tensorflow",
            TF_CONFIG=json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": i}}
            ),
            **float64_home,
        )
        for i in range(2)
    ]
    _wait(procs, "multi-worker train")
    _assert_same_float64_training(one_device_run, run)
    assert json.loads((run / "config.json").read_text())["num_workers"] == 2
    # Only the chief wrote the run; the other worker's scratch folder is gone.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mw"]


@needs_jax
def test_cli_multi_worker_jax(tmp_path):
    """Two JAX processes on localhost (KERAS_DISTRIBUTION_*), one CPU each."""
    single = tmp_path / "single"
    run = tmp_path / "mw"
    (port,) = _free_ports(1)
    env = {
        "KERAS_BACKEND": "jax",
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"localhost:{port}",
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
    }
    procs = [
        _start(
            _keras_scan(
                "--epochs", 2, "--no-eval", "--distribute", "multi-worker", "--out", run
            ),
            KERAS_DISTRIBUTION_PROCESS_ID=str(i),
            **env,
        )
        for i in range(2)
    ]
    procs.append(
        _start(
            _keras_scan("--epochs", 2, "--no-eval", "--out", single),
            KERAS_BACKEND="jax",
        )
    )
    _wait(procs, "JAX multi-worker train")
    _assert_same_training(single, run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mw", "single"]


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


def test_unknown_mode():
    with pytest.raises(
        ValueError,
        match="`mode` must be one of 'data-parallel', 'multi-worker'. Received: mode='model-parallel'",
    ):
        keras_scan.distribution("model-parallel")
    with pytest.raises(
        ValueError,
        match="`distribute` must be one of .*Received: distribute='mirrored'",
    ):
        training.resolve_config({"distribute": "mirrored"})


def test_cli_unknown_mode_writes_nothing(tmp_path, capsys):
    code = cli.main([*TRAIN, "--distribute", "ddp", "--out", str(tmp_path / "r")])
    assert code == 2
    assert "`distribute` must be one of" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_tf_config_errors():
    with pytest.raises(
        ValueError, match="needs the TF_CONFIG environment variable \\(missing\\)"
    ):
        distribute.check_tf_config({})
    with pytest.raises(ValueError, match="TF_CONFIG must be JSON"):
        distribute.check_tf_config({"TF_CONFIG": "{cluster"})
    with pytest.raises(ValueError, match="non-empty 'worker'"):
        distribute.check_tf_config({"TF_CONFIG": '{"cluster": {}}'})
    cluster = '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}'
    with pytest.raises(ValueError, match="'index' into that list"):
        distribute.check_tf_config({"TF_CONFIG": cluster})
    ok = cluster.replace('"index": 2', '"index": 1')
    assert distribute.check_tf_config({"TF_CONFIG": ok})["task"]["index"] == 1


def test_jax_env_errors():
    with pytest.raises(ValueError) as e:
        distribute.check_jax_env({})
    assert all(name in str(e.value) for name in distribute.JAX_ENV)
    env = {
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": "host1:1234,host2:1234",
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
    }
    with pytest.raises(
        ValueError, match="variable KERAS_DISTRIBUTION_PROCESS_ID \\(missing\\)"
    ):
        distribute.check_jax_env(env)
    with pytest.raises(ValueError, match="PROCESS_ID must be an integer in \\[0, 2\\)"):
        distribute.check_jax_env({**env, "KERAS_DISTRIBUTION_PROCESS_ID": "2"})
    with pytest.raises(ValueError, match="NUM_PROCESSES must be a positive integer"):
        distribute.check_jax_env(
            {
                **env,
                "KERAS_DISTRIBUTION_NUM_PROCESSES": "two",
                "KERAS_DISTRIBUTION_PROCESS_ID": "0",
            }
        )
    with pytest.raises(ValueError, match="host:port"):
        distribute.check_jax_env(
            {
                **env,
                "KERAS_DISTRIBUTION_JOB_ADDRESSES": "host1",
                "KERAS_DISTRIBUTION_PROCESS_ID": "0",
            }
        )
    good = distribute.check_jax_env({**env, "KERAS_DISTRIBUTION_PROCESS_ID": "1"})
    assert good["KERAS_DISTRIBUTION_PROCESS_ID"] == "1"


@needs_tf
def test_multi_worker_without_tf_config_fails_before_writing(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(
        ValueError, match="TF_CONFIG environment variable \\(missing\\)"
    ):
        training.train(
            tmp_path / "r",
            distribute="multi-worker",
            epochs=1,
            limit=50,
            width=4,
            image_size=16,
            verbose=0,
        )
    assert list(tmp_path.iterdir()) == []


def test_devices_argument_checked():
    with pytest.raises(ValueError, match="`devices` applies to 'data-parallel' only"):
        keras_scan.distribution("multi-worker", devices=["/cpu:0"])
    with pytest.raises(
        ValueError, match="non-empty list of device names. Received: devices='gpu:0'"
    ):
        keras_scan.distribution("data-parallel", devices="gpu:0")


def test_unsupported_backend_refused():
    proc = subprocess.run(
        [sys.executable, "-c", "import keras_scan; keras_scan.distribution()"],
        env=_env(KERAS_BACKEND="numpy"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "jax or tensorflow backend" in proc.stderr
    assert "KERAS_BACKEND='numpy'" in proc.stderr


# ---------------------------------------------------------------------------
# The pieces
# ---------------------------------------------------------------------------


def test_single_device_distribution_changes_nothing(tmp_path):
    """One replica (this process' one CPU): a plain scope, no flags set."""
    with keras_scan.distribution("data-parallel") as dist:
        assert distribute.current() is dist and dist.num_replicas == 1
        assert dist.is_chief and dist.process_shard == (0, 1)
        backbone = keras_scan.backbones.cifar_resnet(
            18, input_shape=(16, 16, 3), width=4
        )
        model = keras_scan.build(backbone, 10)
    assert distribute.current() is None
    assert not any(layer.synchronized for layer in distribute.batch_norm_layers(model))
    assert dist.check_batch_size(7) == 7


@needs_tf
def test_saved_models_never_keep_synchronized_batchnorm(tmp_path):
    backbone = keras_scan.backbones.cifar_resnet(18, input_shape=(16, 16, 3), width=4)
    model = keras_scan.build(backbone, 10)
    layers = distribute.batch_norm_layers(model)
    assert len(layers) > 20  # the backbone's and the exit heads' ones
    for layer in layers:
        layer.synchronized = True
    assert '"synchronized": true' not in json.dumps(model.get_config())
    baseline = training.baseline_model(
        keras_scan.backbones.cifar_resnet(18, input_shape=(16, 16, 3), width=4), 10
    )
    for layer in distribute.batch_norm_layers(baseline):
        layer.synchronized = True
    training._save_atomic(baseline, tmp_path / "baseline.keras")
    assert all(layer.synchronized for layer in distribute.batch_norm_layers(baseline))
    loaded = keras.saving.load_model(tmp_path / "baseline.keras")
    assert not any(layer.synchronized for layer in distribute.batch_norm_layers(loaded))


def _keras_own_trainer():
    """Whether Keras' TensorFlow trainer runs its own code (no fix installed)."""
    from keras.src.backend.tensorflow import trainer as tf_trainer

    build = tf_trainer.TensorFlowTrainer.__dict__["_maybe_symbolic_build"]
    reduce = tf_trainer.reduce_per_replica
    return build.__module__ == reduce.__module__ == tf_trainer.__name__


@needs_tf
def test_trainer_fixes_only_inside_the_distribution():
    """Keras' trainer is replaced only while `keras_scan.distribution` is
    entered (Keras 3.15), and restored on exit: a plain model trained in the
    same process before or after runs Keras' own trainer."""
    applies, reason = distribute.trainer_fix_status()
    assert applies == (distribute.keras_version() == (3, 15)), reason
    inputs = keras.Input((4,))
    plain = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    plain.compile(optimizer="sgd", loss="mse")
    xy = (np.ones((8, 4), "float32"), np.zeros((8, 2), "float32"))
    assert _keras_own_trainer()
    dist = keras_scan.distribution("data-parallel")  # creating it changes nothing
    assert _keras_own_trainer()
    with dist:
        assert _keras_own_trainer() is not applies
        with dist:  # re-entered: the outer entry keeps the fixes
            pass
        assert _keras_own_trainer() is not applies
    assert _keras_own_trainer()
    plain.fit(*xy, epochs=1, verbose=0)
    assert plain._maybe_symbolic_build.__func__.__module__.startswith("keras.")
    # A failed entry leaves nothing installed.
    broken = keras_scan.distribution("data-parallel")
    broken.engine = None
    with pytest.raises(AttributeError):
        broken.__enter__()
    assert _keras_own_trainer() and distribute.current() is None


@needs_tf
def test_trainer_fixes_are_not_applied_to_another_keras(monkeypatch):
    monkeypatch.setattr(keras, "version", lambda: "3.99.0")
    applies, reason = distribute.trainer_fix_status()
    assert not applies and "Keras 3.99.0" in reason and "3.15" in reason
    monkeypatch.setitem(distribute._trainer_fix, "warned", False)
    with pytest.warns(UserWarning, match="keras/issues/20585"):
        with keras_scan.distribution("data-parallel"):
            assert _keras_own_trainer()
    assert _keras_own_trainer()


def test_scale_loss_is_identity_without_replicas():
    assert float(distribute.scale_loss(keras.ops.convert_to_tensor(3.0))) == 3.0


def test_numpy_dataset_pads_and_shards():
    x = np.arange(21 * 2 * 2 * 1, dtype=np.float32).reshape(21, 2, 2, 1)
    y = np.arange(21)
    padded = data.NumpyDataset(x, y, 16, training=False, multiple_of=4)
    assert len(padded) == 2
    xb, yb, wb = padded[1]
    assert len(yb) == 8 and list(yb[:5]) == [16, 17, 18, 19, 20]
    assert list(wb) == [1, 1, 1, 1, 1, 0, 0, 0]
    assert list(padded[0][2]) == [1] * 16  # every batch carries weights
    # Process 1 of 2 feeds the second half of every global batch.
    half = data.NumpyDataset(
        x, y, 16, training=False, multiple_of=4, process_shard=(1, 2)
    )
    assert list(half[0][1]) == list(range(8, 16))
    assert list(half[1][1]) == [20, 20, 20, 20] and list(half[1][2]) == [1, 0, 0, 0]
    dropped = data.NumpyDataset(x, y, 8, training=True, drop_remainder=True)
    assert len(dropped) == 2 and all(len(dropped[i][1]) == 8 for i in range(2))
    with pytest.raises(ValueError, match="`process_shard` must be"):
        data.NumpyDataset(x, y, 15, training=False, process_shard=(0, 2))
    with pytest.raises(
        ValueError, match="`batch_size` must not exceed the 21 examples"
    ):
        data.NumpyDataset(x, y, 32, training=True, drop_remainder=True)
