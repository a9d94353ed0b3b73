"""`keras-scan train` / `keras-scan evaluate` through the entry point, on
Fashion-MNIST subsets, an image folder written from Fashion-MNIST, and tfds
(`tfds.testing.mock_data`, no network); bad input leaves no run folder."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from keras_scan import cli, data, runs, training
from keras_scan.thresholds import Thresholds

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
TINY = ["--backbone", "cifar_resnet18", "--width", "8", "--batch-size", "64"]


def keras_scan_cli(*args, timeout=600):
    """Runs the installed `keras-scan` entry point; returns the CompletedProcess."""
    exe = shutil.which("keras-scan", path=os.path.dirname(sys.executable))
    command = [exe] if exe else [sys.executable, "-m", "keras_scan.cli"]
    return subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
    )


def _assert_ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _no_run(out):
    return not out.exists() and not training.work_folder(out).exists()


# ------------------------------------------------------------------- help


def test_help_explains_every_flag_with_examples(capsys):
    for command in ("train", "evaluate"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert f"keras-scan {command} " in text and "examples:" in text
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = capsys.readouterr().out
    for flag in (
        "--backbone",
        "--dataset",
        "--out",
        "--epochs",
        "--batch-size",
        "--image-size",
        "--lr",
        "--limit",
        "--seed",
        "--no-attention",
        "--attention",
        "--no-distill",
        "--head",
        "--no-exits",
        "--config",
        "--resume",
        "--overwrite",
        "--weights",
        "--download",
        "--val-fraction",
        "--recipe",
        "--warmup",
        "--kd-loss",
        "--distill-warmup",
        "--bn-momentum",
        "--bn-recalibration",
        "--teacher",
        "--clipnorm",
        "--variable-clipnorm",
        "--adaptive-clip",
        "--augment",
        "--no-augment",
    ):
        assert flag in text, flag
    assert "mobilenet_v2" in text and "cifar_resnet18" in text


def test_train_augment_flags_override_the_default_and_the_recipe():
    """Crop + flip: off by default, on with --augment or in the paper's
    recipe, off again with --no-augment after it."""
    from keras_scan import cli

    def resolved(*flags):
        args = cli.build_parser().parse_args(["train", "--out", "R", *flags])
        given = {k: getattr(args, k) for k in training.DEFAULTS}
        return training.resolve_config(
            {k: v for k, v in given.items() if v is not None}
        )["augment"]

    assert resolved() is False
    assert resolved("--augment") is True
    assert resolved("--recipe", "paper") is True
    assert resolved("--recipe", "paper", "--no-augment") is False


# -------------------------------------------------------------- training


@pytest.mark.slow
def test_train_then_evaluate_fashion_mnist(tmp_path):
    out = tmp_path / "fm"
    proc = keras_scan_cli("train", *TINY, "--limit", 500, "--epochs", 1, "--out", out)
    _assert_ok(proc)
    # Keras prints one progress line per epoch when not on a terminal.
    assert "- val_final_accuracy:" in proc.stdout and "ensemble" in proc.stdout
    for name in (runs.MODEL, runs.LAST, runs.CONFIG, runs.HISTORY, runs.EVAL):
        assert (out / name).is_file(), name
    assert not training.work_folder(out).exists()
    config = runs.load_config(out)
    assert config["width"] == 8 and config["epochs"] == 1 and config["limit"] == 500
    assert config["lr"] == 0.1 and config["scaled_lr"] == 0.05  # batch 64
    if importlib.util.find_spec("tensorboard"):
        assert list((out / "logs" / "train").glob("events.out.tfevents.*"))
    else:  # TensorFlow 2.21 does not install it: say so instead of failing.
        assert "pip install tensorboard" in proc.stdout

    (out / runs.EVAL).unlink()
    proc = keras_scan_cli("evaluate", out)
    _assert_ok(proc)
    result = json.loads((out / runs.EVAL).read_text())
    names = [e["name"] for e in result["exits"]]
    assert names == ["exit_0", "exit_1", "exit_2", "final"]
    for name in [*names, "ensemble"]:
        assert name in proc.stdout
    assert all(e["macs"] > 0 and e["params"] > 0 for e in result["exits"])

    # The numbers are model.evaluate's on the same test split.
    model = runs.load_model(out)
    x, y = runs.load_splits(out).test
    expected = model.evaluate(x, y, batch_size=250, verbose=0, return_dict=True)
    for e in result["exits"]:
        assert e["accuracy"] == pytest.approx(
            expected[f"{e['name']}_accuracy"], abs=1e-6
        )
    assert result["num_examples"] == 500 and result["split"] == "test"

    # --scalable: real early exit with the thresholds `keras-scan search` writes.
    Thresholds([0.9, 0.9, 0.9]).save(out / runs.THRESHOLDS)
    assert cli.main(["evaluate", str(out), "--scalable"]) == 0
    scalable = json.loads((out / runs.EVAL).read_text())["scalable"]
    final = result["exits"][-1]["accuracy"]
    assert scalable["full_accuracy"] == pytest.approx(final, abs=1e-6)
    assert scalable["num_samples"] == 500
    # Each image costs between the first exit and all exits (cumulative MACs).
    macs = [e["macs"] for e in result["exits"]]
    assert macs[0] <= scalable["mean_macs"] <= macs[-1]


def _write_image_folder(root, fashion_mnist, classes=(0, 1, 7), per_class=40):
    from PIL import Image

    x, y = fashion_mnist["train"]
    for label in classes:
        folder = root / data.FASHION_MNIST_LABELS[label].replace("/", "-")
        folder.mkdir(parents=True)
        for i in np.flatnonzero(y == label)[:per_class]:
            Image.fromarray(x[i]).save(folder / f"{i}.png")


@pytest.mark.slow
def test_no_exits_baseline_on_an_image_folder(tmp_path, fashion_mnist):
    images = tmp_path / "photos"
    _write_image_folder(images, fashion_mnist, per_class=100)
    out = tmp_path / "plain"
    proc = keras_scan_cli(
        "train", *TINY, "--dataset", f"folder:{images}", "--no-exits",
        "--epochs", 3, "--batch-size", 32, "--out", out,
    )  # fmt: skip
    _assert_ok(proc)
    config = runs.load_config(out)
    assert config["no_exits"] and config["num_classes"] == 3
    assert config["class_names"] == ["Sneaker", "T-shirt-top", "Trouser"]
    model = runs.load_model(out)
    assert not hasattr(model, "exit_names")  # a plain keras.Model
    result = json.loads((out / runs.EVAL).read_text())
    assert [e["name"] for e in result["exits"]] == ["final"]
    assert result["ensemble"] is None
    assert result["exits"][0]["accuracy"] > 0.5  # 3 easy classes; chance is 1/3
    history = training.read_history(out / runs.HISTORY)
    assert [r["epoch"] for r in history] == ["0", "1", "2"]


@pytest.mark.slow
def test_train_on_tfds_with_mock_data(tmp_path):
    out = tmp_path / "c10"
    script = textwrap.dedent(
        """
        import sys
        import tensorflow_datasets as tfds
        from keras_scan import cli
        with tfds.testing.mock_data(num_examples=40):
            sys.exit(cli.main(sys.argv[1:]))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, "train", *TINY, "--dataset", "tfds:cifar10",
         "--epochs", "1", "--batch-size", "16", "--out", str(out)],
        capture_output=True, text=True, env=ENV, timeout=600,
    )  # fmt: skip
    _assert_ok(proc)
    config = runs.load_config(out)
    assert config["dataset"] == "tfds:cifar10" and config["num_classes"] == 10
    assert config["sizes"] == {"train": 36, "val": 4, "test": 40}
    result = json.loads((out / runs.EVAL).read_text())
    assert result["num_examples"] == 40 and len(result["exits"]) == 4


# -------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backbone", "resnet_18"], "Unknown backbone.*cifar_resnet18.*mobilenet_v2"),
        (["--dataset", "cifar10"], "Unknown dataset spec.*tfds:NAME.*folder:PATH"),
        (["--backbone", "mobilenet_v2", "--image-size", "16"], "at least 32"),
        (["--image-size", "4"], "`image_size` must be at least 8"),
        (["--backbone", "mobilenet_v2", "--width", "8"], "`width` must be unset"),
        (["--epochs", "0"], "`epochs` must be an int >= 1"),
        (["--dataset", "folder:/no/such/folder"], "does not exist"),
        (["--exits", "stage1_block1_1_conv"], "Cannot hang exits.*must be cut points"),
        (["--warmup", "1"], "`warmup` must be a fraction.*Received: warmup=1.0"),
        (["--warmup", "-0.1"], "`warmup` must be a fraction.*warmup=-0.1"),
        (["--warmup", "nan"], "`warmup` must be a fraction.*warmup=nan"),
        (["--distill-warmup", "1.5"], "`distill_warmup` must be.*=1.5"),
        (["--alpha", "nan"], "`alpha` must be.*alpha=nan"),
        (["--alpha", "-0.5"], "`alpha` must be.*alpha=-0.5"),
        (["--beta", "nan"], "`beta` must be.*beta=nan"),
        (["--beta", "-1"], "`beta` must be.*beta=-1.0"),
        (["--temperature", "nan"], "`temperature` must be.*temperature=nan"),
        (["--bn-momentum", "1"], "`bn_momentum` must be.*bn_momentum=1.0"),
        (["--bn-recalibration", "-1"], "`bn_recalibration` must be.*=-1"),
        (["--recipe", "fast"], "invalid choice: 'fast'"),
        (["--schedule", "linear"], "invalid choice: 'linear'"),
        (["--kd-loss", "js"], "invalid choice: 'js'"),
        (["--teacher", "self"], "invalid choice: 'self'"),
        (["--clipnorm", "0"], "`clipnorm` must be.*clipnorm=0.0"),
        (["--variable-clipnorm", "-1"], "`variable_clipnorm` must be.*=-1.0"),
        (["--adaptive-clip", "nan"], "`adaptive_clip` must be.*adaptive_clip=nan"),
        (
            ["--clipnorm", "1", "--variable-clipnorm", "1"],
            "`clipnorm`.*`variable_clipnorm`.*cannot both be set",
        ),
    ],
)
def test_bad_train_arguments_leave_no_run(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    try:
        code = cli.main(["train", *args, "--limit", "100", "--out", str(out)])
    except SystemExit as e:  # argparse's own checks (choices, types)
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert "keras-scan train: error:" in err
    assert re.search(message, err), err
    assert _no_run(out)


def test_folder_with_one_class_is_refused(tmp_path, capsys, fashion_mnist):
    images = tmp_path / "one"
    _write_image_folder(images, fashion_mnist, classes=(3,), per_class=5)
    out = tmp_path / "run"
    assert cli.main(["train", "--dataset", f"folder:{images}", "--out", str(out)]) == 2
    assert "at least 2 class" in capsys.readouterr().err
    assert _no_run(out)


def _finished_run(folder, **settings):
    """A run folder as `train` leaves it (config.json only; enough to compare)."""
    config = training.resolve_config(settings)
    runs.write_json(folder / runs.CONFIG, dict(config, num_classes=10))
    return config


def test_existing_run_with_another_configuration_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    _finished_run(out, limit=100, epochs=3)
    before = sorted(p.name for p in out.iterdir())
    config_before = (out / runs.CONFIG).read_text()

    code = cli.main(["train", "--limit", "100", "--epochs", "5", "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "different configuration (epochs: 3 -> 5)" in err
    assert "--resume" in err and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == before
    assert (out / runs.CONFIG).read_text() == config_before

    # The same configuration: nothing to do, exit 0.
    assert (
        cli.main(["train", "--limit", "100", "--epochs", "3", "--out", str(out)]) == 0
    )
    assert "nothing to do" in capsys.readouterr().out

    # A non-empty folder that is not a run.
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert cli.main(["train", "--limit", "100", "--out", str(other)]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


def test_config_file_errors_name_the_file(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("epochs: 3\nlearning_rate: 0.1\n")
    out = tmp_path / "run"
    assert cli.main(["train", "--config", str(recipe), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Unknown setting 'learning_rate'" in err and str(recipe) in err
    assert _no_run(out)
    assert (
        cli.main(["train", "--config", str(tmp_path / "no.yaml"), "--out", str(out)])
        == 2
    )
    assert "no such file" in capsys.readouterr().err


def test_evaluate_bad_input(tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path / "missing")]) == 2
    assert "run folder written by `keras-scan train`" in capsys.readouterr().err

    run = tmp_path / "run"
    _finished_run(run, limit=100)
    # --scalable before `keras-scan search`: says what to run.
    assert cli.main(["evaluate", str(run), "--scalable"]) == 2
    assert "run `keras-scan search" in capsys.readouterr().err
    # No model yet (training never finished an epoch).
    assert cli.main(["evaluate", str(run)]) == 2
    assert "has no trained model" in capsys.readouterr().err
    assert not (run / runs.EVAL).exists()
    # A model file that exists but is damaged: said so, not "file not found".
    model = run / runs.MODEL
    with zipfile.ZipFile(model, "w") as z:
        z.writestr("config.json", "{not json")
        z.writestr("model.weights.h5", b"\0" * 4096)
    whole = model.read_bytes()
    for content, match in [
        (whole[: len(whole) // 2], "is not a Keras archive"),  # truncated
        (whole, "cannot be loaded"),  # a valid archive, damaged inside
    ]:
        model.write_bytes(content)
        assert cli.main(["evaluate", str(run)]) == 2
        err = capsys.readouterr().err
        assert "corrupt model file" in err and match in err and str(model) in err
        assert "File not found" not in err
        assert not (run / runs.EVAL).exists()


def test_evaluate_refuses_a_dataset_with_other_classes(tmp_path, capsys, fashion_mnist):
    images = tmp_path / "three"
    _write_image_folder(images, fashion_mnist, per_class=3)
    run = tmp_path / "run"
    _finished_run(run, limit=100, width=8)
    config = runs.load_config(run)
    training.make_model(config, 10).save(run / runs.MODEL)
    code = cli.main(["evaluate", str(run), "--dataset", f"folder:{images}"])
    assert code == 2
    assert "has 3 classes but the run was trained on 10" in capsys.readouterr().err
    assert not (run / runs.EVAL).exists()
