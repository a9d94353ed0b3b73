"""scan_lite against tflite/testdata/conformance/, the vectors every runtime replays.

keras_scan (tests/test_conformance.py) and the Java core (ConformanceTest) replay
the same files; tflite/testdata/make_conformance.py writes them.
"""

import importlib.util
import json
import pathlib
import sys

import numpy as np
import pytest
from scan_lite import cascade, images, manifest, quant

TESTDATA = pathlib.Path(__file__).resolve().parents[1] / "testdata"
VECTORS = TESTDATA / "conformance"


def _vectors(name):
    return json.loads((VECTORS / name).read_text())


def _generator():
    spec = importlib.util.spec_from_file_location(
        "make_conformance", TESTDATA / "make_conformance.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ exit rule


def _answer(stage_probs, thresholds, measure, fallback):
    """The exit index and class scan_lite's Cascade gives for one image."""
    for i, probs in enumerate(stage_probs[:-1]):
        if cascade.should_exit(cascade.confidence(probs, measure), thresholds[i]):
            return i, int(np.argmax(probs))
    final = stage_probs[-1]
    if fallback == "ensemble":
        final = np.mean(np.stack(stage_probs), axis=0).astype(np.float32)
    return len(stage_probs) - 1, int(np.argmax(final))


def test_exit_rule():
    doc = _vectors("exit_rule.json")
    probs = [np.asarray(p, np.float32) for p in doc["probs"]]
    for measure, per_exit in doc["confidence"].items():
        for p, want in zip(probs, per_exit):
            got = [cascade.confidence(row, measure) for row in p]
            np.testing.assert_allclose(got, want, atol=doc["confidence_tolerance"])
    early = 0
    for case in doc["cases"]:
        for i in range(doc["num_samples"]):
            exit_index, label = _answer(
                [p[i] for p in probs],
                case["thresholds"],
                case["measure"],
                case["fallback"],
            )
            assert exit_index == case["exit_index"][i], (case["thresholds"], i)
            assert label == case["predictions"][i], (case["thresholds"], i)
            early += exit_index < len(probs) - 1
    assert len(doc["cases"]) == 30 and early > 100


# --------------------------------------------------------------- quantization


def test_quantize():
    for case in _vectors("quantization.json")["quantize"]:
        t = case["tensor"]
        real = np.asarray(case["real"], np.float32)
        assert quant.quantize(real, t).tolist() == case["q"], case["name"]
        assert quant.Codec(t).quantize(real).tolist() == case["q"], case["name"]


def test_dequantize():
    for case in _vectors("quantization.json")["dequantize"]:
        t = case["tensor"]
        q = np.asarray(case["q"], np.dtype(t["dtype"]))
        want = np.asarray(case["real"], np.float32)
        np.testing.assert_array_equal(quant.dequantize(q, t), want, case["name"])
        np.testing.assert_array_equal(quant.Codec(t).dequantize(q), want, case["name"])


def test_requantize():
    doc = _vectors("quantization.json")
    assert quant.SCALE_RTOL == doc["scale_rtol"]
    for case in doc["requantize"]:
        src, dst = case["src"], case["dst"]
        q = np.asarray(case["q"], np.dtype(src["dtype"]))
        out = quant.requantize(q, src, dst)
        assert out.dtype == np.dtype(dst["dtype"]), case["name"]
        assert out.tolist() == case["expected"], case["name"]
        # What Cascade does on a link whose quantization differs.
        linked = q
        if not quant.same_quantization(src, dst):
            linked = quant.Codec(dst).quantize(quant.Codec(src).dequantize(q))
        assert linked.tolist() == case["expected"], case["name"]


# -------------------------------------------------------------- image fitting


def test_image_fitting():
    doc = _vectors("image_fitting.json")
    sources = {"random": 0, "fashion_mnist": 0, "png": 0}
    for case in doc["cases"]:
        source = case["source"]
        if source.endswith(".png"):
            pytest.importorskip("PIL")
            image = images.read_image(VECTORS / "png" / source)
            recorded = doc["png"][source]
            assert list(image.shape) == recorded["shape"] == case["shape"]
            assert image.reshape(-1).tolist() == recorded["pixels"], source
            sources["png"] += 1
        else:
            image = np.asarray(case["image"], np.uint8).reshape(case["shape"])
            sources[source.split()[0]] += 1
        h, w, c = case["target"]
        fitted = images.fit_images(image[None], h, w, c)[0]
        np.testing.assert_allclose(
            fitted.reshape(-1),
            case["fitted"],
            atol=doc["tolerance"],
            err_msg=f"{source} -> {case['target']}",
        )
    assert all(count >= 3 for count in sources.values()), sources


# ---------------------------------------------------------- invalid manifests


@pytest.fixture(params=["jsonschema", "built-in"])
def validator(request, monkeypatch):
    """Both of scan_lite's validators: JSON Schema when installed, else its own."""
    if request.param == "built-in":
        monkeypatch.setitem(sys.modules, "jsonschema", None)
    else:
        pytest.importorskip("jsonschema")
    return manifest.validate


def test_invalid_manifests(validator):
    doc = _vectors("invalid_manifests.json")
    make = _generator()
    base = json.loads((TESTDATA / doc["base"]).read_text())
    validator(json.loads(json.dumps(base)))  # the base itself is valid
    assert len(doc["cases"]) >= 10
    for case in doc["cases"]:
        text = make.invalid_manifest_text(base, case)
        with pytest.raises(manifest.ManifestError) as info:
            validator(json.loads(text))
        assert case["where"] in str(info.value), (case["name"], str(info.value))
