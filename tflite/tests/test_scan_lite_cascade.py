"""scan_lite.Cascade against the conformance vectors of tflite/testdata."""

import hashlib

import numpy as np
import pytest
import scan_lite
from conftest import EXPORT, edit_manifest
from scan_lite import quant


@pytest.mark.parametrize("stage_files", [False, True], ids=["cascade", "stage_files"])
@pytest.mark.parametrize("variant", ["float32", "int8"])
def test_matches_expected_vectors(variant, stage_files, expected, images):
    cascade = scan_lite.Cascade(EXPORT, variant=variant, stage_files=stage_files)
    spec = expected["variants"][variant]
    atol = max(spec["tolerance"], 1e-7)
    for image, case in zip(images, spec["cases"]):
        every = cascade.run_all(image)
        np.testing.assert_allclose(
            np.stack(every.stage_probs), case["stage_probs"], rtol=0, atol=atol
        )
        early = cascade.run(image)
        assert (early.label, early.exit_index) == (case["label"], case["exit_index"])
        assert (every.label, every.exit_index) == (case["label"], case["exit_index"])
        assert early.probability == pytest.approx(case["probability"], abs=atol)
        assert early.label_name == cascade.labels[case["label"]]
        # Real early exit: only the stages up to the answering exit ran.
        assert len(early.stage_latency_ms) == case["exit_index"] + 1
        assert len(every.stage_latency_ms) == cascade.num_exits
        if variant == "int8":
            probs_q = cascade.stages[0].outputs["probs"]
            q = [quant.quantize(p, probs_q) for p in every.stage_probs]
            assert np.array_equal(np.stack(q), np.asarray(case["stage_probs_q"]))


def test_float32_close_to_keras(expected, images):
    cascade = scan_lite.Cascade(EXPORT, variant="float32")
    for image, keras_probs in zip(images, expected["keras"]["stage_probs"]):
        probs = np.stack(cascade.run_all(image).stage_probs)
        assert np.max(np.abs(probs - np.asarray(keras_probs))) <= 1e-4


def test_default_variant_and_io_dtype(expected, images):
    cascade = scan_lite.Cascade(EXPORT)
    assert cascade.variant == cascade.manifest["default_variant"] == "int8"
    assert cascade.input_dtype == "int8"
    assert cascade.stages[0].input["dtype"] == "int8"
    # Chained int8 stages agree on the features' quantization here.
    assert cascade.requantized_links == []
    assert cascade.thresholds == expected["thresholds"]["values"]


def test_exit_models_match_cascade_stages(images):
    cascade = scan_lite.Cascade(EXPORT, variant="float32")
    x = cascade.prepare(images[0])
    every = cascade._run(x, early_exit=False)
    for k in range(cascade.num_exits):
        probs, latency = cascade.exit_model(k)(x)
        np.testing.assert_allclose(probs, every.stage_probs[k], atol=1e-5)
        assert latency > 0
    with pytest.raises(ValueError, match="index"):
        cascade.exit_model(cascade.num_exits)


def test_thresholds_of_one_never_exit_and_zero_always_exits(export_copy, images):
    edit_manifest(export_copy, lambda m: m["thresholds"].update(values=[1.0, 1.0]))
    never = scan_lite.Cascade(export_copy, variant="float32")
    edit_manifest(export_copy, lambda m: m["thresholds"].update(values=[0.0, 0.0]))
    always = scan_lite.Cascade(export_copy, variant="float32")
    for image in images:
        r = never.run(image)
        assert r.exit_index == 2 and len(r.stage_latency_ms) == 3
        assert r.label == int(np.argmax(r.stage_probs[-1]))
        assert always.run(image).exit_index == 0


def test_ensemble_fallback_averages_every_exit(export_copy, images):
    edit_manifest(
        export_copy,
        lambda m: m["thresholds"].update(values=[1.0, 1.0], fallback="ensemble"),
    )
    cascade = scan_lite.Cascade(export_copy, variant="float32")
    for image in images:
        r = cascade.run(image)
        mean = np.mean(np.stack(r.stage_probs), axis=0)
        assert r.label == int(np.argmax(mean))
        assert r.probability == pytest.approx(float(mean[r.label]), abs=1e-6)
    assert r.exit_index == 2


@pytest.mark.parametrize(
    "shape, match",
    [((28, 28, 1), "32x32x3"), ((32, 32, 1), "32x32x3"), ((32, 32, 4), "32x32x3")],
)
def test_wrong_image_size_or_channels(shape, match, images):
    cascade = scan_lite.Cascade(EXPORT, variant="float32")
    with pytest.raises(ValueError, match=match):
        cascade.run(np.zeros(shape, np.uint8))


def test_fit_pads_like_the_training_pipeline(images, expected):
    cascade = scan_lite.Cascade(EXPORT, variant="float32")
    # The test images are 28x28 grey padded to 32x32 and repeated to RGB:
    # undo that and let `fit` redo it.
    raw = images[:, 2:30, 2:30, 0]
    for image28, case in zip(raw, expected["variants"]["float32"]["cases"]):
        r = cascade.run(image28, fit=True)
        assert (r.label, r.exit_index) == (case["label"], case["exit_index"])
    resized = scan_lite.fit_images(np.full((1, 40, 40, 3), 200, np.uint8), 32, 32, 1)
    assert resized.shape == (1, 32, 32, 1)
    np.testing.assert_allclose(resized, 200 * 0.9999, rtol=1e-3)


def test_bad_pixel_values_and_types():
    cascade = scan_lite.Cascade(EXPORT, variant="float32")
    with pytest.raises(ValueError, match="0..255"):
        cascade.run(np.full((32, 32, 3), 300.0))
    with pytest.raises(ValueError, match="0..255"):
        cascade.run(np.full((32, 32, 3), np.nan))
    with pytest.raises(ValueError, match="H x W"):
        cascade.run(np.zeros((2, 32, 32, 3)))
    with pytest.raises(ValueError, match="variant"):
        scan_lite.Cascade(EXPORT, variant="float16")


def test_requantize():
    src = {"dtype": "int8", "scale": 0.02, "zero_point": -128}
    q = np.arange(-128, 128, dtype=np.int8)
    assert quant.requantize(q, src, dict(src, scale=0.02 * (1 + 1e-7))) is q
    dst = {"dtype": "int8", "scale": 0.05, "zero_point": -10}
    out = quant.requantize(q, src, dst)
    assert out.dtype == np.int8
    real_in = quant.dequantize(q, src)
    real_out = quant.dequantize(out, dst)
    inside = real_in <= (127 + 10) * 0.05
    assert np.all(np.abs(real_out - real_in)[inside] <= 0.05 / 2 + 1e-6)
    assert np.all(out[~inside] == 127)
    # int8 -> uint8 with the same scale is a shift of the zero point.
    u8 = quant.requantize(q, src, {"dtype": "uint8", "scale": 0.02, "zero_point": 0})
    assert u8.dtype == np.uint8 and np.array_equal(u8.astype(int), q.astype(int) + 128)
    # Float on either side.
    f = {"dtype": "float32", "scale": 0.0, "zero_point": 0}
    np.testing.assert_allclose(quant.requantize(q, src, f), real_in)
    assert np.array_equal(quant.requantize(real_in, f, src), q)
    # Halves round away from zero, like LiteRT's quantize kernel.
    half = {"dtype": "int8", "scale": 1.0, "zero_point": 0}
    assert quant.quantize(np.array([0.5, -0.5, 1.5]), half).tolist() == [1, -1, 2]


def test_requantizing_links_keep_the_results(monkeypatch, expected, images):
    """Force the requantization path between every pair of stages."""
    monkeypatch.setattr(quant, "same_quantization", lambda src, dst: False)
    cascade = scan_lite.Cascade(EXPORT, variant="int8", stage_files=True)
    assert cascade.requantized_links == [1, 2]
    for image, case in zip(images, expected["variants"]["int8"]["cases"]):
        r = cascade.run_all(image)
        np.testing.assert_allclose(
            np.stack(r.stage_probs), case["stage_probs"], atol=1e-7
        )
        assert (r.label, r.exit_index) == (case["label"], case["exit_index"])


def _count_invocations(monkeypatch):
    """Records every LiteRT invocation: (interpreter id, signature key or None)."""
    from ai_edge_litert import interpreter as litert

    calls = []
    run_signature = litert.SignatureRunner.__call__
    invoke = litert.Interpreter.invoke

    def counted_signature(runner, **inputs):
        calls.append((id(runner._interpreter), runner._signature_key))
        return run_signature(runner, **inputs)

    def counted_invoke(interpreter):
        calls.append((id(interpreter), None))
        return invoke(interpreter)

    monkeypatch.setattr(litert.SignatureRunner, "__call__", counted_signature)
    monkeypatch.setattr(litert.Interpreter, "invoke", counted_invoke)
    return calls


@pytest.mark.parametrize("stage_files", [False, True], ids=["cascade", "stage_files"])
def test_early_exit_invokes_only_the_stages_it_needs(
    stage_files, monkeypatch, expected, images
):
    """Counts LiteRT invocations per stage: an early exit must skip the later stages."""
    cascade = scan_lite.Cascade(EXPORT, variant="int8", stage_files=stage_files)
    stages = [(id(s.runner._interpreter), s.key) for s in cascade.stages]
    k = cascade.num_exits - 1
    calls = _count_invocations(monkeypatch)
    answered = set()
    for image, case in zip(images, expected["variants"]["int8"]["cases"]):
        calls.clear()
        r = cascade.run(image)
        e = case["exit_index"]
        assert r.exit_index == e
        # Stages 0..e once each, nothing else: no later stage, no exit model.
        assert calls == stages[: e + 1]
        answered.add(e)
        calls.clear()
        cascade.run_all(image)
        assert calls == stages
    assert answered == set(range(k + 1))  # exit 0, the middle and the end


def _rescale_stage_input(path, key, factor, zero_point):
    """Rewrites a .tflite file as if its signature `key` took its input at
    `factor` times the scale and with another zero point, as a converter
    calibrating that stage on its own could have written it.

    The int8 kernels assume bias scale == input scale * weight scale, so the
    biases of the ops reading the input are requantized too. Uses the
    flatbuffer schema shipped with ai-edge-litert. Returns the new scale.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(path.read_bytes(), 0))
    sig = next(s for s in model.signatureDefs if s.signatureKey.decode() == key)
    graph = model.subgraphs[sig.subgraphIndex]
    index = sig.inputs[0].tensorIndex
    q = graph.tensors[index].quantization
    q.scale = (q.scale * factor).astype(np.float32)
    q.zeroPoint = np.array([zero_point], np.int64)
    for op in graph.operators:
        if index in list(op.inputs):  # CONV_2D(input, weights, bias)
            bias = graph.tensors[op.inputs[2]]
            shared = [t for g in model.subgraphs for t in g.tensors]
            assert sum(t.buffer == bias.buffer for t in shared) == 1
            buffer = model.buffers[bias.buffer]
            values = np.round(buffer.data.view(np.int32) / factor).astype(np.int32)
            buffer.data = values.view(np.uint8)
            bias.quantization.scale = (bias.quantization.scale * factor).astype(
                np.float32
            )
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return float(q.scale[0])


@pytest.mark.parametrize("factor, zero_point", [(1.5, -118), (0.75, -128)])
@pytest.mark.parametrize("stage_files", [False, True], ids=["cascade", "stage_files"])
def test_requantization_between_stages_with_differing_scales(
    factor, zero_point, stage_files, export_copy, expected, images, monkeypatch
):
    """stage_0's features (scale s, zp -128) feed a stage_1 that takes them at
    another scale and zero point: the runtime must requantize, and the
    cascade then stays as close to the float32 model as the plain int8 one."""
    names = ["cascade.int8.tflite", "stage_1.int8.tflite"]
    for name in names:
        scale = _rescale_stage_input(export_copy / name, "stage_1", factor, zero_point)

    def edit(m):
        variant = m["variants"]["int8"]
        for entry in (variant["cascade"], variant["stages"][1]):
            features = entry["signatures"]["stage_1"]["inputs"]["features"]
            features.update(scale=scale, zero_point=zero_point)
        for name in names:
            data = (export_copy / name).read_bytes()
            m["files"][name].update(
                bytes=len(data), sha256=hashlib.sha256(data).hexdigest()
            )

    edit_manifest(export_copy, edit)
    float_probs = np.asarray(
        [c["stage_probs"] for c in expected["variants"]["float32"]["cases"]]
    )

    int8_probs = np.asarray(
        [c["stage_probs"] for c in expected["variants"]["int8"]["cases"]]
    )
    # How far the plain int8 export is from float32 at each stage.
    plain = np.abs(int8_probs - float_probs).max(axis=(0, 2))

    def error(cascade):
        probs = np.asarray([cascade.run_all(x).stage_probs for x in images])
        return np.abs(probs - float_probs).max(axis=(0, 2))

    cascade = scan_lite.Cascade(export_copy, variant="int8", stage_files=stage_files)
    assert cascade.requantized_links == [1]
    assert np.all(error(cascade) <= plain + 0.05), (error(cascade), plain)
    # Control: feeding stage_0's values unchanged is far off.
    monkeypatch.setattr(quant, "same_quantization", lambda src, dst: True)
    unconverted = scan_lite.Cascade(
        export_copy, variant="int8", stage_files=stage_files
    )
    assert unconverted.requantized_links == []
    assert np.any(error(unconverted)[1:] > plain[1:] + 0.2), (error(unconverted), plain)


def test_quantize_rounds_halves_away_from_zero_and_clips():
    """LiteRT's quantize kernel rounds with std::round; the input is not changed."""
    t = {"dtype": "int8", "scale": 0.5, "zero_point": 3}
    real = np.array([-1.25, -0.75, -0.25, 0.25, 0.75, 1.25, 100.0, -100.0], np.float32)
    before = real.copy()
    # real / scale: -2.5, -1.5, -0.5, 0.5, 1.5, 2.5 -> -3, -2, -1, 1, 2, 3 (+ 3)
    expected = [0, 1, 2, 4, 5, 6, 127, -128]
    assert quant.quantize(real, t).tolist() == expected
    assert quant.Codec(t).quantize(real).tolist() == expected
    assert quant.quantize(real, t).dtype == np.int8
    np.testing.assert_array_equal(real, before)
