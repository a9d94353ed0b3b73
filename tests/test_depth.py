"""keras_scan.depth and `keras-scan grow`: optimally deep networks (ODN)."""

import json

import keras
import numpy as np
import pytest

import keras_scan
from keras_scan import cli, cost, depth, plots, runs
from keras_scan.backbones import registry
from keras_scan.commands import grow as grow_command


def _backbone(width=8):
    return depth.make_backbone("cifar_resnet18", (32, 32, 3), width=width)


def _subset(split, n):
    return split[0][:n], split[1][:n]


def _compile_and_fit(model, split, steps=3):
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    x, y = split
    model.fit(x[: 64 * steps], y[: 64 * steps], batch_size=64, epochs=1, verbose=0)


def _block_weights(model, names):
    return {
        w.path: np.array(w.numpy())
        for layer in model.layers
        if layer.name in names
        for w in layer.weights
    }


# --------------------------------------------------------------- expansion


def test_blocks_and_warm_start_are_found_from_the_graph():
    net = depth.GrowingNetwork(_backbone(), num_classes=10)
    assert net.num_blocks == 8
    assert net.block_names == [
        f"stage{s}_block{b}_out" for s in (1, 2, 3, 4) for b in (1, 2)
    ]
    assert [net.stage_of(d) for d in range(1, 9)] == [0, 0, 1, 1, 2, 2, 3, 3]
    # The generic detector zeroes the same gammas as cifar_resnet's own
    # zero_init_residual, and starts each projection shortcut as an identity.
    assert [w["zero_gamma"] for w in net.warm_started] == [
        f"stage{s}_block{b}_2_bn" for s in (1, 2, 3, 4) for b in (1, 2)
    ]
    assert [w.get("identity_shortcut") for w in net.warm_started] == [
        None,
        None,
        "stage2_block1_0_conv",
        None,
        "stage3_block1_0_conv",
        None,
        "stage4_block1_0_conv",
        None,
    ]
    assert [layer.name for layer in net.block_layers(0)][-1] == "stem_relu"
    assert [layer.name for layer in net.block_layers(3)][-1] == "stage2_block1_out"
    # Freezing converged blocks: the stem and blocks 1..2, not block 3.
    net.set_frozen(2)
    frozen = {layer.name for layer in net.backbone.layers if not layer.trainable}
    assert {layer.name for d in (0, 1, 2) for layer in net.block_layers(d)} == frozen
    net.set_frozen(0)
    assert all(layer.trainable for layer in net.backbone.layers)


@pytest.mark.parametrize("head", ["dense", "scan"])
def test_expansion_adds_blocks_keeps_weights_and_outputs(fm_small, head):
    keras.utils.set_random_seed(1)
    net = depth.GrowingNetwork(_backbone(), num_classes=10, head=head)
    x = fm_small["val"][0][:256]

    # Within a stage: the new block starts at zero gamma, so right after the
    # expansion the outputs are exactly those of the shallower network.
    one = net.model(1)
    _compile_and_fit(one, fm_small["train"])  # weights move away from init
    before = np.asarray(one(x, training=False))
    two = net.model(2)
    np.testing.assert_array_equal(before, np.asarray(two(x, training=False)))

    # Across a stage boundary: block 3 is added, blocks 1-2 are carried over
    # exactly, and the shared weights then train in place.
    _compile_and_fit(two, fm_small["train"])
    before_layers = {layer.name for layer in two.layers}
    before = _block_weights(two, before_layers)
    p2 = np.asarray(two(x, training=False)).argmax(-1)
    three = net.model(3)
    after_layers = {layer.name for layer in three.layers}
    assert {layer.name for layer in net.block_layers(3)} <= after_layers - before_layers
    assert "stage2_block1_out" in after_layers
    assert "stage2_block2_out" not in after_layers
    backbone_names = {layer.name for layer in net.backbone.layers}
    assert len(after_layers & backbone_names) == len(
        before_layers & backbone_names
    ) + len(net.block_layers(3))
    carried = _block_weights(three, before_layers)
    shared = [p for p in before if p.split("/")[0] in backbone_names]
    assert shared and all(np.array_equal(before[p], carried[p]) for p in shared)
    # The width doubles and the resolution halves, so the outputs cannot stay
    # exact; the identity shortcut and the transferred classifier keep most
    # predictions.
    p3 = np.asarray(three(x, training=False)).argmax(-1)
    assert np.mean(p2 == p3) > 0.5
    _compile_and_fit(three, fm_small["train"], steps=2)
    moved = _block_weights(three, before_layers)
    assert any(not np.array_equal(before[p], moved[p]) for p in shared)


def test_depth_names_stay_where_callers_find_them():
    # Costs live in keras_scan.cost, the plot in keras_scan.plots, the CIFAR
    # ResNets in the backbone registry; keras_scan.depth still offers them.
    assert depth.peak_activation_bytes is cost.peak_activation_bytes
    assert depth.model_costs is cost.model_costs
    assert depth.model_file_bytes is cost.model_file_bytes
    assert depth.plot_accuracy_vs_depth is plots.plot_accuracy_vs_depth
    assert depth.BACKBONES is registry.CIFAR_RESNETS
    assert keras_scan.grow is depth.grow
    assert keras_scan.cut_at_exit is depth.cut_at_exit
    assert all(hasattr(depth, name) for name in depth.__all__)
    # `keras-scan grow` takes grow's defaults from grow itself.
    assert grow_command.GROW_DEFAULTS["lr"] == depth.GROW_DEFAULTS["learning_rate"]
    for flag, arg in grow_command.GROW_FLAGS.items():
        assert grow_command.GROW_DEFAULTS[flag] == depth.GROW_DEFAULTS[arg]


# -------------------------------------------------------------------- grow


@pytest.mark.slow
def test_grow_stops_at_the_target_on_real_data(fm_small):
    train = _subset(fm_small["train"], 1200)
    val = _subset(fm_small["val"], 300)
    test = _subset(fm_small["test"], 300)
    lines = []
    model, report = keras_scan.grow(
        "cifar_resnet18",
        train,
        val,
        target_accuracy=0.4,
        width=8,
        epochs_per_step=3,
        patience=2,
        batch_size=64,
        test_data=test,
        log=lines.append,
    )
    assert report["reached"] and report["stopped_because"] == "target"
    assert report["depth"] < report["num_blocks"] == 8
    assert report["val_accuracy"] >= 0.4
    assert report["steps"][-1]["depth"] == report["depth"]
    assert report["train_images"] == report["epochs"] * len(train[0])
    for key in ("params", "macs", "file_bytes"):
        assert report["chosen"][key] < report["full"][key]
        assert 0 < report["reduction"][key] < 1
    assert report["chosen"]["peak_activation_bytes"] > 0
    # A plain image -> logits model, independent of the training graph.
    assert isinstance(model, keras.Model) and not isinstance(
        model, keras_scan.ScanModel
    )
    logits = np.asarray(model(test[0], training=False))
    assert logits.shape == (300, 10)
    assert report["test_accuracy"] == pytest.approx(
        float(np.mean(logits.argmax(-1) == test[1])), abs=1e-6
    )
    assert any("target 0.4000 reached at depth" in line for line in lines)
    assert any("plateau" in line for line in lines)


# ---------------------------------------------------------------- from run


def _scan_run(tmp_path, eval_payload=None, limit=600):
    model = keras_scan.build(
        keras_scan.backbones.cifar_resnet(18, width=8), num_classes=10
    )
    run = tmp_path / "scan_run"
    run.mkdir()
    model.save(run / runs.MODEL)
    runs.write_json(
        run / runs.CONFIG,
        {
            "backbone": "cifar_resnet18",
            "dataset": "fashion_mnist",
            "image_size": 32,
            "channels": 3,
            "val_fraction": 0.1,
            "seed": 0,
            "limit": limit,
        },
    )
    if eval_payload is not None:
        runs.write_json(run / runs.EVAL, eval_payload)
    return model, run


def test_select_exit_and_eval_json_layouts():
    acc = {"exit_0": 0.5, "exit_1": 0.8, "exit_2": 0.9, "final": 0.95}
    names = list(acc)
    assert depth.select_exit(acc, 0.75) == ("exit_1", True)
    assert depth.select_exit(acc, 0.5) == ("exit_0", True)
    assert depth.select_exit(acc, 0.99) == ("final", False)
    exits = [{"name": n, "accuracy": a} for n, a in acc.items()]
    for payload in (
        {"split": "val", "exits": exits},
        {"split": "validation", "exits": {n: {"accuracy": a} for n, a in acc.items()}},
        {"split": "test", "val": {"accuracy": acc}},
    ):
        assert depth.validation_accuracies(payload, names) == acc
    # Test-split numbers never choose the exit.
    assert depth.validation_accuracies({"split": "test", "exits": exits}, names) is None
    assert depth.validation_accuracies({"exits": exits}, names) is None


def test_from_run_picks_the_exit_from_eval_numbers_and_cuts_there(
    tmp_path, fm_small, capsys
):
    acc = {"exit_0": 0.5, "exit_1": 0.8, "exit_2": 0.9, "final": 0.95}
    payload = {
        "split": "val",
        "exits": [{"name": n, "accuracy": a} for n, a in acc.items()],
    }
    model, run = _scan_run(tmp_path, payload)
    out = tmp_path / "cut"
    rc = cli.main(
        ["grow", "--from-run", str(run), "--target-accuracy", "0.75", "--out", str(out)]
    )
    assert rc == 0
    config = runs.load_config(out)
    report = json.loads((out / "grow_report.json").read_text())
    assert config["grown"]["exit"] == report["exit"] == "exit_1"
    assert report["block"] == "stage2_block2_out" and report["depth"] == 4
    assert report["val_accuracies"] == acc
    assert report["val_accuracies_source"] == "eval.json"
    assert config["no_exits"] is True and config["dataset"] == "fashion_mnist"
    assert (out / "grow_accuracy.png").stat().st_size > 0

    # The saved cut model is a plain model whose logits are the exit's logits.
    cut = runs.load_model(out)
    assert not isinstance(cut, keras_scan.ScanModel)
    assert "stage3_block1_out" not in {layer.name for layer in cut.layers}
    x = fm_small["val"][0][:32]
    expected = np.asarray(model.exit_model("exit_1")(x, training=False))
    np.testing.assert_allclose(np.asarray(cut(x, training=False)), expected, atol=1e-5)
    for name in ("exit_0", "final"):
        direct = keras_scan.cut_at_exit(model, name)
        np.testing.assert_allclose(
            np.asarray(direct(x, training=False)),
            np.asarray(model(x, training=False)[name]),
            atol=1e-5,
        )
    # Cost report: the cut is smaller than the full-depth network.
    assert report["chosen"]["macs"] < report["full"]["macs"]
    assert report["chosen"]["params"] < report["full"]["params"]
    assert "exit exit_1" in capsys.readouterr().out
    # A run written by grow is itself a run: its splits load.
    assert runs.load_splits(out).val[0].shape[1:] == (32, 32, 3)


def test_from_run_measures_validation_accuracy_without_val_numbers(tmp_path):
    model, run = _scan_run(
        tmp_path, {"split": "test", "exits": [{"name": "exit_0", "accuracy": 1.0}]}
    )
    cut, report = depth.from_scan_model(
        model, 1.0, val_data=runs.load_splits(run).val, log=None
    )
    assert report["val_accuracies_source"] == "measured"
    # An untrained model never reaches 100%: the full depth is kept, said so.
    assert report["exit"] == "final" and not report["reached"]
    assert report["stopped_because"] == "full_depth"
    assert all(0 <= a <= 1 for a in report["val_accuracies"].values())


# --------------------------------------------------------------- bad input


@pytest.mark.parametrize("target", [0, -0.1, 1.5, True, "0.9", float("nan")])
def test_target_accuracy_must_be_in_0_1(target, fm_small):
    with pytest.raises(ValueError, match="target_accuracy"):
        keras_scan.grow("cifar_resnet18", fm_small["train"], fm_small["val"], target)


def test_bad_api_inputs(fm_small):
    with pytest.raises(
        ValueError, match=r"cifar_resnet18.*Received: backbone='resnet9'"
    ):
        keras_scan.grow("resnet9", fm_small["train"], fm_small["val"], 0.9)
    with pytest.raises(ValueError, match="head"):
        keras_scan.grow(
            "cifar_resnet18", fm_small["train"], fm_small["val"], 0.9, head="x"
        )
    with pytest.raises(TypeError, match="scan_model"):
        keras_scan.cut_at_exit(_backbone(), "exit_0")
    scan = keras_scan.build(_backbone(), num_classes=10)
    with pytest.raises(ValueError, match="exit_name.*exit_7"):
        keras_scan.cut_at_exit(scan, "exit_7")
    net = depth.GrowingNetwork(_backbone(), 10)
    with pytest.raises(ValueError, match=r"depth.*\[1, 8\]"):
        net.model(9)


def _cli_error(capsys, argv):
    rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    return err


def test_cli_bad_inputs_leave_nothing_behind(tmp_path, capsys):
    out = tmp_path / "out"
    err = _cli_error(capsys, ["grow", "--target-accuracy", "1.2", "--out", str(out)])
    assert "--target-accuracy" in err and "1.2" in err
    err = _cli_error(
        capsys,
        ["grow", "--backbone", "vgg", "--target-accuracy", "0.9", "--out", str(out)],
    )
    assert "--backbone" in err and "'vgg'" in err and "cifar_resnet34" in err
    err = _cli_error(
        capsys,
        ["grow", "--from-run", str(tmp_path / "nope"), "--target-accuracy", "0.9"]
        + ["--out", str(out)],
    )
    assert "--from-run" in err and "nope" in err
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    runs.write_json(untrained / runs.CONFIG, {"dataset": "fashion_mnist"})
    err = _cli_error(
        capsys,
        ["grow", "--from-run", str(untrained), "--target-accuracy", "0.9"]
        + ["--out", str(out)],
    )
    assert "--from-run" in err and "no trained model" in err
    err = _cli_error(
        capsys,
        ["grow", "--from-run", str(untrained), "--width", "8"]
        + ["--target-accuracy", "0.9", "--out", str(out)],
    )
    assert "--width" in err and "--from-run" in err
    err = _cli_error(
        capsys,
        ["grow", "--dataset", "tfds:", "--target-accuracy", "0.9", "--out", str(out)],
    )
    assert "spec" in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["untrained"]

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    err = _cli_error(
        capsys, ["grow", "--target-accuracy", "0.9", "--out", str(existing)]
    )
    assert "--out" in err and "--overwrite" in err
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


# --------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_grow_end_to_end_and_strict(tmp_path, capsys):
    out = tmp_path / "grown"
    common = ["--width", "8", "--limit", "700", "--batch-size", "64"]
    rc = cli.main(
        ["grow", *common, "--epochs-per-step", "2", "--patience", "1"]
        + ["--target-accuracy", "0.3", "--out", str(out)]
    )
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "target 0.3000 reached at depth" in printed
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        ["model.keras", "config.json", "grow_report.json", "grow_accuracy.png"]
        + ["history.csv"]
    )
    config = runs.load_config(out)
    report = json.loads((out / "grow_report.json").read_text())
    assert config["width"] == 8 and config["limit"] == 700 and config["head"] == "scan"
    assert config["grown"]["depth"] == report["depth"] < 8
    assert config["no_exits"] is True
    model = runs.load_model(out)
    splits = runs.load_splits(out)
    logits = np.asarray(model(splits.test[0], training=False))
    assert logits.shape == (len(splits.test[1]), 10)
    assert report["test_accuracy"] == pytest.approx(
        float(np.mean(logits.argmax(-1) == splits.test[1])), abs=1e-6
    )
    assert report["chosen"]["saved_file_bytes"] == (out / "model.keras").stat().st_size
    history = (out / "history.csv").read_text().splitlines()
    assert history[0] == "depth,block,epoch_at_depth,val_accuracy"
    assert len(history) == 1 + report["epochs"]

    # A target the full depth cannot reach: finish at full depth, say so;
    # exit code 1 only with --strict.
    strict = tmp_path / "strict"
    rc = cli.main(
        ["grow", *common, "--start-depth", "8", "--epochs-per-step", "1", "--strict"]
        + ["--target-accuracy", "1.0", "--out", str(strict)]
    )
    printed = capsys.readouterr().out
    assert rc == 1
    assert "NOT reached, even at full depth" in printed and "--strict" in printed
    grown = runs.load_config(strict)["grown"]
    assert grown["depth"] == 8 and grown["reached"] is False
    assert grown["stopped_because"] == "full_depth"
