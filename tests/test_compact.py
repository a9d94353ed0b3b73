"""`keras_scan.compress` and `keras-scan compress` on real Fashion-MNIST subsets.

One `keras-scan compress` run of the session's trained SCAN model (width-16
CIFAR ResNet18) with a scratch baseline is shared by the tests that need a
trained student; the budget and error checks use a tiny untrained width-8
ResNet (costs are counted, not learned).
"""

import json
import shutil

import keras
import numpy as np
import pytest
from helpers import small_backbone

import keras_scan
from keras_scan import cli, compact, cost, runs

LIMIT = 2000  # teacher run: 1800 train / 200 validation / 2000 test images
COMPRESS_LIMIT = 500  # compress on 500 train / 200 validation / 500 test images


def _tiny(**kwargs):
    """An untrained width-8 CIFAR ResNet18 with a 10-class classifier."""
    return small_backbone(width=8, num_classes=10, **kwargs)


def _data(fm_small, n_train=200, n_val=100):
    x, y = fm_small["train"]
    xv, yv = fm_small["val"]
    return (x[:n_train], y[:n_train]), (xv[:n_val], yv[:n_val])


def _write_teacher_run(run, model_path):
    run.mkdir()
    shutil.copy(model_path, run / runs.MODEL)
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


@pytest.fixture(scope="module")
def compressed(trained, tmp_path_factory):
    """`keras-scan compress` of the trained SCAN run to half its backbone MACs.

    Candidates are limited to 0.5x width and dropping blocks to keep the probe
    small on CPU. With `--scratch-baseline` the student's architecture is also
    trained from random weights for the same 2 epochs (same optimizer and
    batches, SCAN's own loss, no teacher). Returns (teacher RUN, RUN2, report,
    teacher model, student model).
    """
    root = tmp_path_factory.mktemp("compress")
    teacher_run = _write_teacher_run(root / "teacher", trained[2])
    out = root / "student"
    code = cli.main(
        [
            "compress",
            str(teacher_run),
            "--budget-flops",
            "0.5",
            "--out",
            str(out),
            "--epochs-blockwise",
            "1",
            "--epochs-finetune",
            "1",
            "--probe-batches",
            "2",
            "--limit",
            str(COMPRESS_LIMIT),
            "--exclude",
            "width_0.25,sepconv",
            "--scratch-baseline",
        ]
    )
    assert code == 0
    report = runs.read_json(out / "compress_report.json")
    return teacher_run, out, report, runs.load_model(teacher_run), runs.load_model(out)


# === Budget and allocation ===


@pytest.mark.slow
def test_flops_budget_is_met_as_counted(compressed):
    _, _, report, teacher, student = compressed
    t_macs = cost.count_macs(teacher.backbone)
    s_macs = cost.count_macs(student.backbone)
    assert s_macs <= 0.5 * t_macs
    assert report["budget"]["teacher"] == report["teacher"]["macs"] == t_macs
    assert report["budget"]["student"] == report["student"]["macs"] == s_macs
    # Per-block costs add up to the counted whole.
    saved = sum(b["macs"]["teacher"] - b["macs"]["student"] for b in report["blocks"])
    assert t_macs - saved == s_macs
    # Leftover budget is spent: no single block can go back to the teacher's.
    for b in report["blocks"]:
        if b["choice"] != "keep":
            upgrade = b["macs"]["teacher"] - b["macs"]["student"]
            assert s_macs + upgrade > 0.5 * t_macs


def test_params_budget_keep_and_exclude_are_honoured(fm_small):
    teacher = _tiny()
    student, report = compact.compress_with_report(
        teacher,
        *_data(fm_small, 128, 64),
        budget_params=0.3,
        keep=["stage1_block1", "stage3_block1_out"],
        exclude=["sepconv", "stage4_block2:drop"],
        blockwise_epochs=0,
        finetune_epochs=0,
        probe_batches=1,
        probe_images=64,
    )
    assert cost.count_params(student) <= 0.3 * cost.count_params(teacher)
    choices = {b["name"]: b["choice"] for b in report["blocks"]}
    assert choices["stage1_block1"] == choices["stage3_block1"] == "keep"
    assert "sepconv" not in choices.values()
    assert choices["stage4_block2"] != "drop"
    assert report["budget"]["metric"] == "params"
    # Kept parts carry the teacher's weights; block outputs keep their names.
    for name in ("stem_conv", "stage1_block1_1_conv", "predictions"):
        for a, b in zip(
            teacher.get_layer(name).get_weights(), student.get_layer(name).get_weights()
        ):
            np.testing.assert_array_equal(a, b)
    for block in report["blocks"]:
        student.get_layer(block["output_layer"])
    assert student.output_shape == teacher.output_shape
    json.dumps(report)


def test_blocks_of_cifar_resnet():
    blocks = compact.find_blocks(_tiny())
    assert [b.name for b in blocks] == [
        f"stage{s}_block{b}" for s in range(1, 5) for b in (1, 2)
    ]
    assert blocks[2].stride == 2 and blocks[2].input_shape == (32, 32, 8)
    assert "drop" not in blocks[2].allowed() and "drop" in blocks[3].allowed()


# === Distillation ===


@pytest.mark.slow
def test_blockwise_stage_reduces_feature_loss(compressed):
    report = compressed[2]
    trained_blocks = [b for b in report["blocks"] if b["choice"] == "width_0.5"]
    assert trained_blocks, report["blocks"]
    for b in trained_blocks:
        err = b["feature_error"]
        assert err["after_blockwise"] < err["initial"], b


@pytest.mark.slow
def test_kd_student_beats_same_architecture_from_scratch(compressed):
    # Same architecture, same 2 epochs over the same 500 images: the scratch
    # model starts from random weights and learns from labels only. Measured
    # on 500 test images.
    report = compressed[2]
    assert report["settings"]["train_images"] == COMPRESS_LIMIT
    student = report["student"]["accuracy"]["test"]
    scratch = report["scratch"]["accuracy"]["test"]
    assert student["final"] > scratch["final"] + 0.05, (student, scratch)
    assert np.mean(list(student.values())) > np.mean(list(scratch.values()))


@pytest.mark.slow
def test_scan_student_keeps_its_exits(compressed, fm_small):
    _, _, report, teacher, student = compressed
    assert isinstance(student, keras_scan.ScanModel)
    assert student.exits == teacher.exits
    assert student.exit_names == teacher.exit_names
    assert student.head == teacher.head and student.attention == teacher.attention
    assert set(report["student"]["accuracy"]["test"]) == set(teacher.exit_names)
    assert [e["name"] for e in report["student"]["exits"]] == teacher.exit_names
    out = student.predict(fm_small["test"][0][:8], verbose=0)
    for name in teacher.exit_names:
        assert out[name].shape == (8, 10)


def test_scan_student_takes_every_setting_of_the_teacher():
    """Not only exits/head/attention: the distillation loss settings too."""
    from keras_scan.compact import student as student_lib

    teacher = keras_scan.build(
        small_backbone(width=4),
        num_classes=10,
        head="linear",
        attention="none",
        alpha=0.3,
        temperature=2.0,
        kd_loss="reverse_kl",
        kd_mix="convex",
        teacher="ensemble",
    )
    student = student_lib.scan_student(teacher, small_backbone(width=2))
    want = {
        k: v for k, v in teacher.get_config().items() if k not in ("backbone", "name")
    }
    got = {
        k: v for k, v in student.get_config().items() if k not in ("backbone", "name")
    }
    assert got == want
    assert student.backbone.count_params() < teacher.backbone.count_params()


# === Bad input ===


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"budget_flops": 0}, "budget_flops"),
        ({"budget_flops": 1.0}, "budget_flops"),
        ({"budget_params": 1.5}, "budget_params"),
        ({"budget_params": -0.2}, "budget_params"),
        ({"budget_flops": True}, "budget_flops"),
        ({"budget_flops": float("nan")}, "budget_flops"),
        ({}, "Exactly one of `budget_flops` and `budget_params`"),
        ({"budget_flops": 0.5, "budget_params": 0.5}, "Exactly one"),
    ],
)
def test_bad_budgets(kwargs, arg, fm_small):
    with pytest.raises(ValueError, match=arg):
        compact.compress(_tiny(), *_data(fm_small, 8, 8), **kwargs)


def test_unreachable_budget_says_smallest_reachable(fm_small):
    with pytest.raises(ValueError, match=r"smallest reachable student has 0\.\d+") as e:
        compact.compress(
            _tiny(),
            *_data(fm_small, 8, 8),
            budget_flops=0.05,
            keep=["stage2_block1"],
            exclude=["drop"],
        )
    assert "budget_flops=0.05" in str(e.value) and "stage2_block1" in str(e.value)


def test_bad_blocks_candidates_and_models(fm_small):
    data = _data(fm_small, 8, 8)
    with pytest.raises(ValueError, match=r"`keep` must name blocks.*stage9_block1"):
        compact.compress(_tiny(), *data, budget_flops=0.5, keep=["stage9_block1"])
    with pytest.raises(ValueError, match=r"`exclude` entries.*'prune'"):
        compact.compress(_tiny(), *data, budget_flops=0.5, exclude=["prune"])
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    plain = keras.Model(inputs, keras.layers.Dense(10)(x), name="no_blocks")
    with pytest.raises(ValueError, match="no residual blocks.*cifar_resnet"):
        compact.compress(plain, *data, budget_flops=0.5)
    with pytest.raises(TypeError, match="`teacher` must be a functional"):
        compact.compress(keras.Sequential([inputs, keras.layers.Dense(2)]), *data, 0.5)
    with pytest.raises(ValueError, match="`val_data` images must have"):
        compact.compress(_tiny(), data[0], (data[1][0][:, :28], data[1][1]), 0.5)
    with pytest.raises(ValueError, match="`blockwise_epochs` must be an int >= 0"):
        compact.compress(_tiny(), *data, 0.5, blockwise_epochs=-1)


# === CLI ===


@pytest.mark.slow
def test_cli_output_is_a_valid_run(compressed, capsys):
    teacher_run, out, report, _, _ = compressed
    assert sorted(p.name for p in out.iterdir()) == [
        "compress_report.json",
        "config.json",
        "model.keras",
    ]
    assert sorted(p.name for p in out.parent.iterdir()) == ["student", "teacher"]
    config = runs.load_config(out)
    assert config["compressed_from"] == str(teacher_run.resolve())
    assert config["dataset"] == "fashion_mnist" and config["limit"] == LIMIT
    assert config["compress"]["budget_flops"] == 0.5
    assert config["compress"]["exclude"] == ["width_0.25", "sepconv"]
    assert report["compressed_from"] == config["compressed_from"]
    assert [b["choice"] for b in report["blocks"]].count("keep") < 8
    # Later commands read RUN2 like any run.
    search = ["search", str(out), "--population", "8", "--generations", "2"]
    assert cli.main(search) == 0
    assert (out / runs.THRESHOLDS).is_file()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--budget-flops", "1.5"], "argument --budget-flops: must be a fraction"),
        (["--budget-params", "0"], "argument --budget-params: must be a fraction"),
        (["--budget-flops", "x"], "argument --budget-flops: not a number"),
        (["--budget-flops", "0.5", "--budget-params", "0.5"], "not allowed with"),
        ([], "one of the arguments --budget-flops --budget-params is required"),
    ],
)
def test_cli_rejects_bad_budgets(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["compress", str(tmp_path), "--out", str(tmp_path / "o"), *flags])
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_errors_leave_nothing_written(trained, tmp_path, capsys):
    teacher_run = _write_teacher_run(tmp_path / "teacher", trained[2])
    out = tmp_path / "student"
    flags = ["--budget-flops", "0.5", "--out", str(out)]
    # A teacher run without a trained model.
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    shutil.copy(teacher_run / runs.CONFIG, untrained / runs.CONFIG)
    assert cli.main(["compress", str(untrained), *flags]) == 2
    assert "has no trained model" in capsys.readouterr().err
    # Not a run folder at all.
    assert cli.main(["compress", str(tmp_path / "nothing"), *flags]) == 2
    assert "must be a run folder" in capsys.readouterr().err
    # A budget no candidate set can meet: fails after loading, before writing.
    tight = ["--budget-flops", "0.01", "--limit", "100", "--out", str(out)]
    assert cli.main(["compress", str(teacher_run), *tight]) == 2
    err = capsys.readouterr().err
    assert "smallest reachable" in err and "budget_flops=0.01" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teacher", "untrained"]
    # An existing output folder is never replaced without --overwrite.
    out.mkdir()
    assert cli.main(["compress", str(teacher_run), *flags]) == 2
    assert "already exists" in capsys.readouterr().err
