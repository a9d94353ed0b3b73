"""`keras_scan.export` and `keras-scan export`: LiteRT files, manifest, parity.

One export of the session's trained model (width-16 CIFAR ResNet18, float32 +
int8, 200 test images) is shared by most tests; conversion is the slow part.
"""

import json
import pathlib
import shutil
import sys

import jsonschema
import keras
import numpy as np
import pytest
from helpers import tiny_backbone, write_run

import keras_scan
from keras_scan import cli, cost, runs
from keras_scan import thresholds as thresholds_lib

export_lib = sys.modules["keras_scan.export"]

TFLITE = pathlib.Path(__file__).resolve().parents[1] / "tflite"
if str(TFLITE) not in sys.path:
    sys.path.insert(0, str(TFLITE))
import scan_lite  # noqa: E402

EVAL_N = 200


def _softmax(logits):
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _keras_probs(model, x):
    out = model.predict(x, batch_size=200, verbose=0)
    return [_softmax(out[name]) for name in model.exit_names]


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(1)
    # One shallow exit: 5 files per mode (the shared export has 3 exits).
    return keras_scan.build(tiny_backbone(), num_classes=10, exits=1)


@pytest.fixture(scope="session")
def exported(trained, fm_small, tmp_path_factory):
    """The trained model exported (float32 + int8) through the Python API."""
    model = trained[0]
    x_val, _ = fm_small["val"]
    val_probs = _keras_probs(model, x_val)
    # Each shallow exit answers ~40% of what reaches it (chosen on validation).
    values = [float(np.quantile(p.max(axis=1), 0.6)) for p in val_probs[:-1]]
    th = thresholds_lib.Thresholds(values)
    x_test, y_test = fm_small["test"]
    out = tmp_path_factory.mktemp("export") / "fm"
    manifest = keras_scan.export(
        model,
        out,
        thresholds=th,
        quantize=["float32", "int8"],
        representative_data=fm_small["train"],
        labels=[f"class {i}" for i in range(10)],
        test_data=(x_test, y_test),
        eval_limit=EVAL_N,
        calibration_samples=200,
    )
    x, y = x_test[:EVAL_N], y_test[:EVAL_N]
    return {
        "path": out,
        "manifest": manifest,
        "model": model,
        "thresholds": th,
        "x": x,
        "y": y,
        "keras_probs": _keras_probs(model, x),
    }


def _litert_probs(path, x):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    ((key, _),) = interpreter.get_signature_list().items()
    runner = interpreter.get_signature_runner(key)
    ((name, detail),) = runner.get_input_details().items()
    out_detail = runner.get_output_details()["probs"]
    probs = []
    for image in x:
        value = image[None]
        scale, zero = detail["quantization"]
        if scale:
            value = np.clip(np.round(value / scale) + zero, -128, 127)
        q = runner(**{name: value.astype(detail["dtype"])})["probs"][0]
        scale, zero = out_detail["quantization"]
        probs.append((q.astype(np.float64) - zero) * scale if scale else q)
    return np.stack(probs)


# ---------------------------------------------------------------------------
# The shared export
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_layout_manifest_schema_and_hashes(exported):
    path, manifest, model = exported["path"], exported["manifest"], exported["model"]
    stems = ["cascade", "stage_0", "stage_1", "stage_2", "stage_3"]
    stems += ["exit_0", "exit_1", "exit_2", "full"]
    expected = {f"{s}.{m}.tflite" for s in stems for m in ("float32", "int8")}
    assert {p.name for p in path.iterdir()} == expected | {"manifest.json"}
    assert not list(path.parent.glob(".fm*"))  # no temporary folder left
    assert json.loads((path / "manifest.json").read_text()) == manifest

    schema = json.loads((TFLITE / "manifest.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(manifest)
    assert set(manifest["files"]) == expected
    for name, entry in manifest["files"].items():
        assert entry["bytes"] == (path / name).stat().st_size
        assert entry["sha256"] == scan_lite.manifest.sha256(path / name)

    assert manifest["default_variant"] == "float32"
    assert manifest["thresholds"] == {
        "values": exported["thresholds"].values,
        "measure": "max_prob",
        "fallback": "final",
        "source": "given",
    }
    assert manifest["input"] == {
        "height": 32,
        "width": 32,
        "channels": 3,
        "layout": "NHWC",
        "batch": 1,
        "pixel_range": [0, 255],
    }
    assert manifest["preprocessing"]["in_model"][0]["scale"] == pytest.approx(1 / 255)
    assert manifest["labels"][3] == "class 3"
    info = model.exit_info
    assert [e["macs"] for e in manifest["exits"]] == [i["macs"] for i in info]
    assert [e["params"] for e in manifest["exits"]] == [i["params"] for i in info]
    stages = model.stage_models()
    assert [s["macs"] for s in manifest["stages"]] == [
        cost.count_macs(s) for s in stages
    ]
    assert sum(s["macs"] for s in manifest["stages"]) == info[-1]["macs"]
    assert manifest["exporter"]["keras"] == keras.__version__


@pytest.mark.slow
def test_quantization_parameters_recorded(exported):
    manifest = exported["manifest"]
    for mode, variant in manifest["variants"].items():
        entries = variant["exits"] + variant["stages"] + [variant["cascade"]]
        for entry in entries:
            for sig in entry["signatures"].values():
                for t in list(sig["inputs"].values()) + list(sig["outputs"].values()):
                    assert t["shape"][0] == 1  # batch 1
                    if mode == "int8":
                        assert t["dtype"] == "int8" and t["scale"] > 0
                    else:
                        assert t["dtype"] == "float32" and t["scale"] == 0
    cascade = manifest["variants"]["int8"]["cascade"]["signatures"]
    image = cascade["stage_0"]["inputs"]["image"]
    # Raw pixels 0..255 quantize exactly: scale 1, zero point -128.
    assert image["scale"] == pytest.approx(1.0, rel=1e-3)
    assert image["zero_point"] == -128
    assert set(cascade) == {"stage_0", "stage_1", "stage_2", "stage_3"}
    assert set(cascade["stage_3"]["outputs"]) == {"probs"}
    for k in range(1, 4):
        out = cascade[f"stage_{k - 1}"]["outputs"]["features"]
        inp = cascade[f"stage_{k}"]["inputs"]["features"]
        assert out["shape"] == inp["shape"]
        assert inp["scale"] == pytest.approx(out["scale"], rel=1e-5)
    assert manifest["variants"]["int8"]["calibration"]["samples"] == 200


@pytest.mark.slow
def test_float32_parity_with_keras(exported):
    path, variant = exported["path"], exported["manifest"]["variants"]["float32"]
    x, keras_probs = exported["x"], exported["keras_probs"]
    for k, entry in enumerate(variant["exits"]):
        probs = _litert_probs(path / entry["file"], x)
        assert np.max(np.abs(probs - keras_probs[k])) <= 1e-4, entry["file"]
    for stage_files in (False, True):
        cascade = scan_lite.Cascade(path, variant="float32", stage_files=stage_files)
        stage_probs = [np.stack(cascade.run_all(im).stage_probs) for im in x]
        stage_probs = np.stack(stage_probs, axis=1)
        assert np.max(np.abs(stage_probs - np.stack(keras_probs))) <= 1e-4
    evaluation = variant["evaluation"]
    assert evaluation["num_samples"] == EVAL_N
    for e, probs in zip(evaluation["exits"], keras_probs):
        assert e["max_abs_diff"] <= 1e-4 and e["argmax_agreement"] == 1.0
        assert e["keras_accuracy"] == np.mean(probs.argmax(1) == exported["y"])


@pytest.mark.slow
def test_int8_agreement_and_accuracy(exported):
    path, variant = exported["path"], exported["manifest"]["variants"]["int8"]
    x, y, keras_probs = exported["x"], exported["y"], exported["keras_probs"]
    for k, entry in enumerate(variant["exits"]):
        probs = _litert_probs(path / entry["file"], x)
        agreement = np.mean(probs.argmax(1) == keras_probs[k].argmax(1))
        drop = np.mean(keras_probs[k].argmax(1) == y) - np.mean(probs.argmax(1) == y)
        # The fixture is trained for seconds: near-tie logits flip under int8.
        # Measured 0.945 at exit_1 with the default loss (labels + 0.1 T^2 KL),
        # >= 0.95 with the former one; the accuracy drop below is what matters.
        assert agreement >= 0.93, (entry["file"], agreement)
        assert drop <= 0.03, (entry["file"], drop)
        recorded = variant["evaluation"]["exits"][k]
        assert recorded["argmax_agreement"] == pytest.approx(agreement)


@pytest.mark.slow
def test_int8_files_much_smaller(exported):
    files, manifest = exported["manifest"]["files"], exported["manifest"]
    total = {m: 0 for m in ("float32", "int8")}
    for name, entry in files.items():
        total[name.split(".")[1]] += entry["bytes"]
    assert total["float32"] / total["int8"] >= 3.5
    for stem in ("cascade", "full"):
        ratio = (
            files[f"{stem}.float32.tflite"]["bytes"]
            / files[f"{stem}.int8.tflite"]["bytes"]
        )
        assert ratio >= 3.5, (stem, ratio)
    assert manifest["variants"]["int8"]["input_dtype"] == "int8"


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["float32", "int8"])
def test_runtime_cascade_matches_keras_rule(exported, variant):
    """scan_lite's early exit == keras_scan.thresholds.simulate_cascade."""
    th, x = exported["thresholds"], exported["x"]
    cascade = scan_lite.Cascade(exported["path"], variant=variant)
    results = [cascade.run(image) for image in x]
    exits = np.array([r.exit_index for r in results])
    labels = np.array([r.label for r in results])
    assert all(len(r.stage_latency_ms) == r.exit_index + 1 for r in results)
    assert len(set(exits.tolist())) >= 3  # the thresholds spread the answers
    # Exact: the rule applied to the runtime's own probabilities.
    own = [np.stack(p) for p in zip(*(cascade.run_all(im).stage_probs for im in x))]
    preds, idx = thresholds_lib.simulate_cascade(own, th)
    assert np.array_equal(labels, preds) and np.array_equal(exits, idx)
    # Against Keras: same decisions except where a confidence lies within the
    # numeric difference of a threshold.
    keras_probs = exported["keras_probs"]
    k_preds, k_idx = thresholds_lib.simulate_cascade(keras_probs, th)
    agree = (labels == k_preds) & (exits == k_idx)
    if variant == "float32":
        conf = np.stack([p.max(1) for p in keras_probs[:-1]])
        near = np.any(np.abs(conf - np.asarray(th.values)[:, None]) < 1e-4, axis=0)
        assert np.all(agree | near)
    else:
        assert np.mean(agree) >= 0.9
    evaluation = exported["manifest"]["variants"][variant]["evaluation"]["cascade"]
    assert evaluation["exit_shares"] == pytest.approx(
        np.bincount(exits, minlength=4) / len(x)
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "measure, fallback",
    [("margin", "final"), ("entropy", "ensemble"), ("max_prob", "ensemble")],
)
def test_runtime_rule_for_every_measure_and_fallback(
    exported, measure, fallback, tmp_path
):
    copy = tmp_path / "export"
    shutil.copytree(exported["path"], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    x = exported["x"][:80]
    probs = _keras_probs(exported["model"], x)
    conf = [thresholds_lib.confidence(p, measure) for p in probs[:-1]]
    values = [float(np.quantile(c, 0.6)) for c in conf]
    manifest["thresholds"].update(values=values, measure=measure, fallback=fallback)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    cascade = scan_lite.Cascade(copy, variant="float32")
    runs_ = [cascade.run_all(image) for image in x]
    own = [np.stack(p) for p in zip(*(r.stage_probs for r in runs_))]
    preds, idx = thresholds_lib.simulate_cascade(own, values, measure, fallback)
    assert [r.label for r in runs_] == preds.tolist()
    assert [r.exit_index for r in runs_] == idx.tolist()
    assert [cascade.run(image).exit_index for image in x] == idx.tolist()


# ---------------------------------------------------------------------------
# The CLI, atomicity and bad input (tiny model: fast to convert)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tiny_model, tmp_path_factory):
    """A RUN folder without thresholds.json holding the tiny (untrained) model."""
    run = tmp_path_factory.mktemp("tiny_run") / "run"
    return write_run(run, tiny_model)


@pytest.mark.slow
def test_cli_without_thresholds_uint8_float16_dynamic(tiny_run, tmp_path, capsys):
    out = tmp_path / "exp"
    argv = ["export", str(tiny_run), "--out", str(out), "--uint8-input"]
    argv += ["--quantize", "int8", "float16", "dynamic", "--eval-limit", "20"]
    argv += ["--calibration-samples", "100"]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "thresholds.json" in captured.err and "never exits early" in captured.err
    assert "wrote" in captured.out and "int8: input uint8" in captured.out
    manifest = scan_lite.load_manifest(out)
    assert manifest["thresholds"]["values"] == [1.0]
    assert manifest["thresholds"]["source"] == "none"
    assert manifest["default_variant"] == "int8"
    assert manifest["labels"][0] == "T-shirt/top"
    assert manifest["preprocessing"]["dataset"] == "fashion_mnist"
    int8 = manifest["variants"]["int8"]
    assert int8["input_dtype"] == "uint8"
    image = int8["cascade"]["signatures"]["stage_0"]["inputs"]["image"]
    assert image["dtype"] == "uint8" and image["zero_point"] == 0
    assert manifest["variants"]["float16"]["input_dtype"] == "float32"
    assert int8["evaluation"]["num_samples"] == 20
    assert len(int8["exits"]) == len(int8["stages"]) == 2
    sizes = {
        m: manifest["files"][f"full.{m}.tflite"]["bytes"] for m in manifest["variants"]
    }
    assert sizes["int8"] < sizes["float16"]

    splits = runs.load_splits(tiny_run)
    x = splits.test[0][:20]
    reference = _keras_probs(runs.load_model(tiny_run), x)[-1]
    for mode, atol in (("int8", 0.05), ("float16", 1e-2), ("dynamic", 0.05)):
        cascade = scan_lite.Cascade(out, variant=mode)
        results = [cascade.run(image) for image in x]
        assert all(r.exit_index == 1 for r in results)  # never exits early
        probs = np.stack([r.probs for r in results])
        assert np.max(np.abs(probs - reference)) <= atol, mode


@pytest.mark.slow
def test_failure_mid_export_leaves_nothing(tiny_model, tmp_path, monkeypatch):
    written = []

    def failing_describe(path):
        written.append(pathlib.Path(path))
        raise RuntimeError("injected failure")

    monkeypatch.setattr(export_lib.litert, "describe_model", failing_describe)
    parent = tmp_path / "exports"
    old = parent / "old"
    old.mkdir(parents=True)
    (old / "keep.txt").write_text("previous export")
    with pytest.raises(RuntimeError, match="injected"):
        keras_scan.export(
            tiny_model, old, thresholds=[0.9], quantize="float32", overwrite=True
        )
    # A converted file had been written (into the temporary folder) when it failed.
    assert written and written[0].name == "cascade.float32.tflite"
    assert written[0].parent.name.startswith(".old.tmp-")
    assert not written[0].parent.exists()
    assert [p.name for p in parent.iterdir()] == ["old"]
    assert [p.name for p in old.iterdir()] == ["keep.txt"]


def test_accuracy_drops_name_the_variant_exit_and_points():
    evaluation = export_lib.evaluation
    manifest = {
        "model": {"exit_names": ["exit_0", "exit_1", "final"]},
        "variants": {
            "int8": {
                "evaluation": {
                    "num_samples": 1000,
                    "exits": [
                        {"accuracy": 0.650, "keras_accuracy": 0.775},
                        {"accuracy": 0.780, "keras_accuracy": 0.800},  # 2.0: kept
                        {"accuracy": 0.830, "keras_accuracy": 0.819},
                    ],
                }
            },
            "float32": {"evaluation": None},
        },
    }
    (message,) = evaluation.accuracy_drops(manifest)
    assert message.startswith("int8 exit_0 answers 65.00% of 1000 test images, ")
    assert "12.50 points below the Keras model on the same images (77.50%)" in message
    assert "`dynamic` variant" in message
    assert len(evaluation.accuracy_drops(manifest, points=1.0)) == 2
    manifest["variants"]["int8"]["evaluation"] = None
    assert evaluation.accuracy_drops(manifest) == []


@pytest.mark.slow
def test_export_warns_about_an_exit_below_keras(tiny_model, tmp_path, monkeypatch):
    # Every exit "drops" once the bar is below zero: the real evaluation,
    # wired to a warning that names the variant and the exit.
    monkeypatch.setattr(export_lib.evaluation, "DROP_WARNING_POINTS", -1.0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (6, 32, 32, 3)).astype("float32")
    with pytest.warns(UserWarning) as caught:
        keras_scan.export(
            tiny_model,
            tmp_path / "exp",
            thresholds=[0.9],
            quantize="float32",
            test_data=(x, rng.integers(0, 10, 6)),
        )
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("float32 exit_0 answers ") for m in messages)
    assert any(m.startswith("float32 final answers ") for m in messages)
    assert not any("`dynamic` variant" in m for m in messages)


def test_existing_folder_needs_overwrite(tiny_model, tiny_run, tmp_path, capsys):
    out = tmp_path / "exp"
    out.mkdir()
    with pytest.raises(FileExistsError, match="overwrite"):
        keras_scan.export(tiny_model, out, thresholds=[0.5], quantize="float32")
    assert cli.main(["export", str(tiny_run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "--overwrite" in err and str(out) in err


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(quantize="int4"), "quantize"),
        (dict(quantize=[]), "quantize"),
        (dict(quantize="int8"), "representative_data"),
        (dict(thresholds=[0.5, 0.5]), "one value per shallow exit"),
        (dict(thresholds=[1.5]), "thresholds"),
        (dict(labels=["a", "b"]), "labels"),
        (dict(calibration_samples=0), "calibration_samples"),
        (dict(eval_limit=-1), "eval_limit"),
        (dict(uint8_input="yes"), "uint8_input"),
        (
            dict(quantize="int8", representative_data=np.zeros((10, 28, 28, 1))),
            "representative_data",
        ),
        (dict(test_data=(np.zeros((4, 32, 32, 3)), [0, 1])), "test_data"),
    ],
)
def test_bad_arguments_write_nothing(tiny_model, tmp_path, kwargs, match):
    args = dict(thresholds=[0.5], quantize="float32")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        keras_scan.export(tiny_model, tmp_path / "exp", **args)
    assert not (tmp_path / "exp").exists()
    assert list(tmp_path.iterdir()) == []


def test_not_a_scan_model_and_schema_check(tmp_path):
    with pytest.raises(ValueError, match="ScanModel"):
        keras_scan.export(tiny_backbone(), tmp_path / "exp", quantize="float32")
    with pytest.raises(ValueError, match="required property"):
        export_lib.validate_manifest({"format_version": 1})
