"""keras_scan against tflite/testdata/conformance/, the vectors every runtime replays.

scan_lite (tflite/tests/test_scan_lite_conformance.py) and the Java core
(ConformanceTest) replay the same files. Here: the training side's exit rule
(what the threshold search assumes), its image fitting (numpy for IDX / numpy
data, TensorFlow for image folders and tfds), the export's manifest check, and
that the committed vectors are what the generator writes today.
"""

import importlib
import importlib.util
import json
import pathlib

import numpy as np
import pytest

from keras_scan import exit_rule
from keras_scan.data import resize

TESTDATA = pathlib.Path(__file__).resolve().parents[1] / "tflite" / "testdata"
VECTORS = TESTDATA / "conformance"


def _vectors(name):
    return json.loads((VECTORS / name).read_text())


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location(
        "make_conformance", TESTDATA / "make_conformance.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_exit_rule():
    doc = _vectors("exit_rule.json")
    probs = [np.asarray(p, np.float32) for p in doc["probs"]]
    for measure, per_exit in doc["confidence"].items():
        for p, want in zip(probs, per_exit):
            np.testing.assert_allclose(
                exit_rule.confidence(p, measure),
                want,
                atol=doc["confidence_tolerance"],
            )
    for case in doc["cases"]:
        preds, exits = exit_rule.simulate_cascade(
            probs,
            case["thresholds"],
            measure=case["measure"],
            fallback=case["fallback"],
        )
        assert exits.tolist() == case["exit_index"], case["thresholds"]
        assert preds.tolist() == case["predictions"], case["thresholds"]


def test_image_fitting_numpy():
    doc = _vectors("image_fitting.json")
    for case in doc["cases"]:
        if case["source"].endswith(".png"):
            pixels = doc["png"][case["source"]]["pixels"]
        else:
            pixels = case["image"]
        image = np.asarray(pixels, np.uint8).reshape(case["shape"])
        h, w, c = case["target"]
        fitted = resize.resize_images(image[None], (h, w), channels=c)[0]
        np.testing.assert_allclose(
            fitted.reshape(-1),
            case["fitted"],
            atol=doc["tolerance"],
            err_msg=f"{case['source']} -> {case['target']}",
        )


def test_image_fitting_tensorflow_from_png_files():
    """The image-folder pipeline: the PNG files decoded and fitted by TensorFlow."""
    tf = pytest.importorskip("tensorflow")
    doc = _vectors("image_fitting.json")
    checked = 0
    for case in doc["cases"]:
        if not case["source"].endswith(".png"):
            continue
        h, w, c = case["target"]
        contents = (VECTORS / "png" / case["source"]).read_bytes()
        if c == case["shape"][-1]:  # decoded pixels, before any conversion
            decoded = resize.tf_decode_image(tf, contents, c).numpy()
            recorded = doc["png"][case["source"]]["pixels"]
            assert decoded.reshape(-1).tolist() == recorded, case["source"]
        image = resize.tf_decode_image(tf, contents, c)
        fitted = resize.tf_fit(tf, image, (h, w)).numpy()
        np.testing.assert_allclose(
            fitted.reshape(-1),
            case["fitted"],
            atol=doc["tolerance"],
            err_msg=f"{case['source']} -> {case['target']}",
        )
        checked += 1
    assert checked >= 9


def test_export_refuses_every_invalid_manifest(generator):
    export_lib = importlib.import_module("keras_scan.export")
    doc = _vectors("invalid_manifests.json")
    base = json.loads((TESTDATA / doc["base"]).read_text())
    export_lib.validate_manifest(json.loads(json.dumps(base)))
    for case in doc["cases"]:
        text = generator.invalid_manifest_text(base, case)
        with pytest.raises(ValueError) as info:
            export_lib.validate_manifest(json.loads(text))
        assert case["where"] in str(info.value), (case["name"], str(info.value))


def test_committed_vectors_are_what_the_generator_writes(generator):
    """Fails when a rule changed and `make_conformance.py` was not rerun."""
    assert generator.stale_files() == [], (
        "tflite/testdata/conformance/ is stale: run "
        ".venv/bin/python tflite/testdata/make_conformance.py and commit the files"
    )


def _same_tensors(fresh, committed, where):
    assert fresh.keys() == committed.keys(), where
    for name, tensor in committed.items():
        got = fresh[name]
        assert {k: v for k, v in got.items() if k != "scale"} == {
            k: v for k, v in tensor.items() if k != "scale"
        }, f"{where}/{name}"
        assert got["scale"] == pytest.approx(tensor["scale"], rel=1e-4), where


def _same_model_file(fresh, committed, where):
    assert fresh["file"] == committed["file"], where
    assert fresh["signatures"].keys() == committed["signatures"].keys(), where
    for key, sig in committed["signatures"].items():
        for side in ("inputs", "outputs"):
            _same_tensors(fresh["signatures"][key][side], sig[side], f"{where}/{key}")


def test_golden_export_is_what_the_exporter_writes_today(tmp_path):
    """Exports tflite/testdata/model.keras again with regenerate.py's settings.

    The committed export (what scan_lite's and the Java tests run) and
    expected.json must be what today's exporter writes; else rerun
    `python tflite/testdata/regenerate.py`.
    """
    pytest.importorskip("tensorflow")
    scan_lite = pytest.importorskip("scan_lite")
    import keras

    spec = importlib.util.spec_from_file_location(
        "regenerate", TESTDATA / "regenerate.py"
    )
    regen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(regen)
    committed = json.loads((regen.EXPORT / "manifest.json").read_text())
    rule = committed["thresholds"]
    model = keras.saving.load_model(regen.MODEL)
    fresh = regen.export(
        model,
        regen.load_splits(),
        exit_rule.Thresholds(
            rule["values"], measure=rule["measure"], fallback=rule["fallback"]
        ),
        tmp_path / "export",
    )
    stale = "stale golden export: rerun python tflite/testdata/regenerate.py"
    for key in (
        "format_version",
        "model",
        "input",
        "preprocessing",
        "labels",
        "thresholds",
        "exits",
        "stages",
        "default_variant",
    ):
        assert fresh[key] == committed[key], f"{stale} ({key} differs)"
    assert fresh["variants"].keys() == committed["variants"].keys(), stale
    for mode, variant in committed["variants"].items():
        new = fresh["variants"][mode]
        where = f"variants/{mode}"
        _same_model_file(new["cascade"], variant["cascade"], f"{where}/cascade")
        for group in ("exits", "stages"):
            assert len(new[group]) == len(variant[group]), f"{where}/{group}"
            for i, (a, b) in enumerate(zip(new[group], variant[group])):
                _same_model_file(a, b, f"{where}/{group}/{i}")
        for a, b in zip(
            new["evaluation"]["exits"], variant["evaluation"]["exits"], strict=True
        ):
            assert a["accuracy"] == pytest.approx(b["accuracy"], abs=0.01), where

    # expected.json, which the runtimes replay, is what the fresh export answers.
    expected = json.loads((TESTDATA / "expected.json").read_text())
    images = np.load(TESTDATA / expected["images"])
    for mode, recorded in expected["variants"].items():
        cascade = scan_lite.Cascade(tmp_path / "export", variant=mode)
        for image, case in zip(images, recorded["cases"], strict=True):
            result = cascade.run_all(image)
            assert result.label == case["label"], (mode, case)
            assert result.exit_index == case["exit_index"], (mode, case)
            for got, want in zip(result.stage_probs, case["stage_probs"], strict=True):
                # int8: at most one step of the probabilities' scale (1/256).
                tolerance = 1 / 256 + 1e-6 if mode == "int8" else 1e-4
                np.testing.assert_allclose(got, want, atol=tolerance, err_msg=mode)
