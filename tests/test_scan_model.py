import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from helpers import small_backbone

import keras_scan
from keras_scan import cost


def _outputs_equal(a, b, x):
    pa, pb = a.predict(x, verbose=0), b.predict(x, verbose=0)
    assert sorted(pa) == sorted(pb)
    for key in pa:
        np.testing.assert_allclose(pa[key], pb[key], atol=1e-5)


def test_outputs_and_exit_info():
    model = keras_scan.build(small_backbone(), num_classes=10)
    assert model.exit_names == ["exit_0", "exit_1", "exit_2", "final"]
    out = model(np.zeros((2, 32, 32, 3), "float32"))
    assert sorted(out) == sorted(
        model.exit_names + [f"{n}_features" for n in model.exit_names]
    )
    assert all(out[n].shape == (2, 10) for n in model.exit_names)
    assert all(out[f"{n}_features"].shape == (2, 128) for n in model.exit_names)
    info = model.exit_info
    assert [i["layer"] for i in info] == [
        "stage1_block2_out",
        "stage2_block2_out",
        "stage3_block2_out",
        "stage4_block2_out",
    ]
    assert [i["stride"] for i in info] == [1, 2, 4, 8]
    # Cumulative MACs grow; the last equals the whole SCAN model's cost.
    macs = [i["macs"] for i in info]
    assert macs == sorted(macs) and macs[-1] == cost.count_macs(model)
    # The final exit alone costs the plain backbone plus its classifier.
    backbone_macs = cost.count_macs(model.backbone)
    assert 0 < info[-1]["standalone_macs"] - backbone_macs < 1e4
    assert set(model.taps) == {"exit_0", "exit_1", "exit_2"}


def test_stage_models_chain_to_the_full_model():
    model = keras_scan.build(small_backbone(), num_classes=10)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    full = model.predict(x, verbose=0)
    features = x
    for i, stage in enumerate(model.stage_models()[:-1]):
        features, logits = stage(features)
        np.testing.assert_allclose(np.asarray(logits), full[f"exit_{i}"], atol=1e-4)
    final = model.stage_models()[-1](features)
    np.testing.assert_allclose(np.asarray(final), full["final"], atol=1e-4)
    # The stages share weights with the model: no copies.
    assert model.stage_models()[0].layers[-1] is model.get_layer("exit_0_head")


def test_serialization_roundtrip(tmp_path):
    model = keras_scan.build(small_backbone(), num_classes=10, head="sepconv", beta=0.3)
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    clone = keras_scan.ScanModel.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    _outputs_equal(model, clone, x)
    assert clone.get_config()["beta"] == 0.3 and clone.head == "sepconv"
    model.compile(optimizer="sgd", metrics=["accuracy"])
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, keras_scan.ScanModel)
    assert loaded.exits == model.exits
    _outputs_equal(model, loaded, x)


def test_backbone_with_its_own_classifier():
    backbone = small_backbone(num_classes=10)
    model = keras_scan.build(backbone, num_classes=10)
    # The backbone's own linear classifier is the final exit.
    assert model.get_layer("predictions") is backbone.get_layer("predictions")
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        model.predict(x, verbose=0)["final"], backbone.predict(x, verbose=0), atol=1e-5
    )
    # A softmax top (Keras Applications) is turned into logits with the same weights.
    app = keras.applications.MobileNetV2(
        weights=None, input_shape=(64, 64, 3), classes=5
    )
    scan = keras_scan.build(app, num_classes=5)
    y = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    probs = app.predict(y, verbose=0)
    logits = scan.predict(y, verbose=0)["final"]
    np.testing.assert_allclose(keras.ops.softmax(logits), probs, atol=1e-5)


def test_loss_terms_and_ablations():
    keras.utils.set_random_seed(1)
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = np.arange(8) % 10
    # The paper's term (T^2-scaled KL) first; the other kinds below.
    model = keras_scan.build(
        small_backbone(),
        num_classes=10,
        kd_loss="kl_t2",
        kd_mix="convex",
        exit_weights="equal",
        teacher="final",
    )
    pred = model(x, training=False)

    ce = lambda logits: float(  # noqa: E731
        keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        )
    )
    ce_all = [ce(pred[n]) for n in model.exit_names]

    def expected(alpha, T, beta, distill):
        teacher = keras.ops.softmax(pred["final"] / T)
        total = ce_all[-1]
        for i, n in enumerate(model.exit_names[:-1]):
            student = keras.ops.log_softmax(pred[n] / T)
            kl = float(
                keras.ops.mean(
                    keras.ops.sum(teacher * (keras.ops.log(teacher) - student), -1)
                )
            )
            term = (1 - alpha) * ce_all[i] + alpha * T**2 * kl if distill else ce_all[i]
            feat = float(
                keras.ops.mean(
                    keras.ops.square(pred[f"{n}_features"] - pred["final_features"])
                )
            )
            total += term + beta * feat
        return total

    for alpha, T, beta, distill in [
        (0.5, 3.0, 1.0, True),
        (0.3, 1.0, 0.0, True),
        (0.5, 3.0, 0.0, False),
    ]:
        model.alpha, model.temperature, model.beta, model.distillation = (
            alpha,
            T,
            beta,
            distill,
        )
        got = float(model.compute_loss(x, y, pred, training=False))
        assert got == pytest.approx(expected(alpha, T, beta, distill), rel=1e-4)
    # distillation=False: the shallow exits see labels only, no KL term.
    model.alpha, model.temperature, model.beta, model.distillation = (
        0.5,
        3.0,
        0.0,
        False,
    )
    assert float(model.compute_loss(x, y, pred, training=False)) == pytest.approx(
        sum(ce_all), rel=1e-5
    )
    # The other distillation terms, and the ramp's share of alpha.
    T, alpha = 3.0, 0.4
    teacher_lp = keras.ops.log_softmax(pred["final"] / T)
    for kind, mix in [
        ("kl", "convex"),
        ("kl_t2", "convex"),
        ("reverse_kl", "convex"),
        ("reverse_kl_t2", "convex"),
        ("kl", "add"),
        ("kl_t2", "add"),
    ]:
        for scale in (0.0, 0.5, 1.0):
            model.alpha, model.temperature, model.beta, model.distillation = (
                alpha,
                T,
                0.0,
                True,
            )
            model.kd_loss, model.kd_mix = kind, mix
            model.distill_scale.assign(scale)
            a = alpha * scale
            want = ce_all[-1]
            for i, n in enumerate(model.exit_names[:-1]):
                student_lp = keras.ops.log_softmax(pred[n] / T)
                p, q = (
                    (student_lp, teacher_lp)
                    if kind.startswith("reverse")
                    else (teacher_lp, student_lp)
                )
                div = float(
                    keras.ops.mean(keras.ops.sum(keras.ops.exp(p) * (p - q), -1))
                )
                div *= T**2 if kind.endswith("_t2") else 1.0
                # "add": the labels keep their full weight beside the teacher.
                want += (1 if mix == "add" else 1 - a) * ce_all[i] + a * div
            got = float(model.compute_loss(x, y, pred, training=False))
            assert got == pytest.approx(want, rel=1e-4), (kind, mix, scale)
    model.kd_mix = "convex"
    # The ensemble teacher: the mean of all exits' softened probabilities
    # teaches every exit, the final one included.
    model.kd_loss, model.teacher = "kl", "ensemble"
    model.distill_scale.assign(1.0)
    mean = sum(keras.ops.softmax(pred[n] / T) for n in model.exit_names) / len(
        model.exit_names
    )
    want = 0.0
    for i, n in enumerate(model.exit_names):
        student_lp = keras.ops.log_softmax(pred[n] / T)
        div = float(
            keras.ops.mean(keras.ops.sum(mean * (keras.ops.log(mean) - student_lp), -1))
        )
        want += (1 - alpha) * ce_all[i] + alpha * div
    assert float(model.compute_loss(x, y, pred, training=False)) == pytest.approx(
        want, rel=1e-4
    )
    model.kd_loss, model.teacher = "kl_t2", "final"
    model.alpha, model.temperature, model.beta, model.distillation = (
        0.5,
        3.0,
        0.0,
        False,
    )
    # One-hot labels give the same loss.
    onehot = keras.ops.one_hot(y, 10)
    assert float(model.compute_loss(x, onehot, pred, training=False)) == pytest.approx(
        sum(ce_all), rel=1e-5
    )


def test_exit_weights_multiply_each_exits_loss():
    keras.utils.set_random_seed(2)
    x = np.random.default_rng(1).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = np.arange(8) % 10
    model = keras_scan.build(
        small_backbone(width=8), num_classes=10, exit_weights="equal"
    )
    assert model.exit_weights is None
    pred = model(x, training=False)
    plain = float(model.compute_loss(x, y, pred, training=False))
    parts = {n: float(model._loss_trackers[n].result()) for n in model.exit_names}
    assert plain == pytest.approx(sum(parts.values()), rel=1e-5)
    assert (
        keras_scan.build(small_backbone(width=8), num_classes=10).exit_weights is None
    )
    # "depth": exit k of K weighs (k + 1) / K.
    depth = keras_scan.build(
        small_backbone(width=8), num_classes=10, exit_weights="depth"
    )
    assert depth.exit_weights == [0.25, 0.5, 0.75, 1.0]
    depth.set_weights(model.get_weights())
    loss = float(depth.compute_loss(x, y, pred, training=False))
    expected = sum(w * parts[n] for w, n in zip(depth.exit_weights, model.exit_names))
    assert loss == pytest.approx(expected, rel=1e-5)
    weights = [0.0, 0.5, 2.0, 3.0]
    weighted = keras_scan.build(
        small_backbone(width=8), num_classes=10, exit_weights=weights
    )
    weighted.set_weights(model.get_weights())
    loss = float(weighted.compute_loss(x, y, pred, training=False))
    expected = sum(w * parts[n] for w, n in zip(weights, model.exit_names))
    assert loss == pytest.approx(expected, rel=1e-5)
    config = weighted.get_config()
    assert config["exit_weights"] == weights
    assert keras_scan.ScanModel.from_config(config).exit_weights == weights


def test_gradient_equilibrium_scales_count_the_exits_reaching_each_weight():
    model = keras_scan.build(small_backbone(width=8), num_classes=10)
    scales = model.gradient_equilibrium_scales()
    by_layer = {}
    for layer in model.layers:
        for v in layer.trainable_variables:
            by_layer.setdefault(layer.name, set()).add(scales[v.path])
    # 3 exits + the final one: the stem reaches 4, each stage one fewer.
    assert by_layer["stem_conv"] == {1 / 4}
    assert by_layer["stage1_block1_1_conv"] == {1 / 4}
    assert by_layer["stage2_block1_1_conv"] == {1 / 3}
    assert by_layer["stage3_block1_1_conv"] == {1 / 2}
    assert by_layer["stage4_block1_1_conv"] == {1.0}
    for name in ("exit_0_head", "exit_2_attention", "final_logits"):
        assert by_layer[name] == {1.0}
    assert len(scales) == len(model.trainable_variables)


def test_teacher_side_gets_no_gradient_from_the_distillation_terms():
    """The final exit teaches: the KL and feature terms must not move it.

    Only weights no shallow exit uses are checked (the last stage, after the
    last tap, and the final classifier): with the teacher stop-gradient their
    gradient is that of the final exit's own cross-entropy, whatever alpha and
    beta are.
    """
    import tensorflow as tf

    keras.utils.set_random_seed(2)
    x = np.random.default_rng(1).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = np.arange(8) % 10
    model = keras_scan.build(small_backbone(width=8), num_classes=10, teacher="final")
    head = [
        v
        for layer in model.layers
        if layer.name.startswith("stage4") or layer.name == "final_logits"
        for v in layer.trainable_variables
    ]
    assert len(head) > 2

    def grads(**settings):
        for k, v in settings.items():
            setattr(model, k, v)
        with tf.GradientTape() as tape:
            pred = model(x, training=False)
            loss = model.compute_loss(x, y, pred, training=False)
        return [g.numpy() for g in tape.gradient(loss, head)]

    own = grads(alpha=0.0, beta=0.0, distillation=False)
    for settings in (
        dict(alpha=0.9, beta=0.0, distillation=True),
        dict(alpha=0.0, beta=5.0, distillation=True),
    ):
        for a, b in zip(own, grads(**settings)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
        assert any(np.abs(g).max() > 0 for g in own)


def test_no_attention_builds_without_attention_layers():
    model = keras_scan.build(small_backbone(), num_classes=10, attention=False)
    assert not any("attention" in layer.name for layer in model.layers)
    assert model.attention is None
    with_att = keras_scan.build(small_backbone(), num_classes=10)
    assert sum("attention" in layer.name for layer in with_att.layers) == 3


def _exit_layers(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


def test_default_exits_are_lite_heads_with_channel_gates_paper_exits_by_name():
    from keras_scan.layers import AttentionModule, ShallowClassifier

    model = keras_scan.build(small_backbone(), num_classes=10)
    assert {h.head for h in _exit_layers(model, ShallowClassifier)} == {"lite"}
    assert {a.kind for a in _exit_layers(model, AttentionModule)} == {"gate"}
    assert model.teacher == "ensemble"  # the mean of the exits teaches
    paper = keras_scan.build(
        small_backbone(), num_classes=10, head="scan", attention="scan"
    )
    assert {h.head for h in _exit_layers(paper, ShallowClassifier)} == {"scan"}
    assert {a.kind for a in _exit_layers(paper, AttentionModule)} == {"scan"}
    # The exits cost far less than the paper's, the backbone being the same.
    heads = [e["head_macs"] for e in model.exit_info[:-1]]
    paper_heads = [e["head_macs"] for e in paper.exit_info[:-1]]
    assert all(5 * a < b for a, b in zip(heads, paper_heads)), (heads, paper_heads)
    # A model saved before attention kinds existed (`attention: true`) is the paper's.
    config = paper.get_config()
    config["attention"] = True
    old = keras_scan.ScanModel.from_config(config)
    assert {a.kind for a in _exit_layers(old, AttentionModule)} == {"scan"}
    with pytest.raises(ValueError, match="attention='spatial'"):
        keras_scan.build(small_backbone(), num_classes=10, attention="spatial")


@pytest.mark.slow
def test_training_on_fashion_mnist_lifts_every_exit(trained, fm_small):
    model, history, _ = trained
    losses = history.history["loss"]
    assert losses[-1] < losses[0] * 0.8
    result = model.evaluate(*fm_small["test"], verbose=0, return_dict=True)
    for name in model.exit_names:
        assert result[f"{name}_accuracy"] > 0.5, (name, result)
    # The progress bar/log has per-exit loss and accuracy.
    for name in model.exit_names:
        assert (
            f"{name}_accuracy" in history.history and f"{name}_loss" in history.history
        )
        assert f"val_{name}_accuracy" in history.history


@pytest.mark.slow
def test_trained_model_save_load_identical(trained, fm_small):
    model, _, path = trained
    loaded = keras.saving.load_model(path)
    _outputs_equal(model, loaded, fm_small["test"][0][:16])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_classes": 1}, "num_classes=1"),
        ({"num_classes": 2.5}, "num_classes=2.5"),
        ({"num_classes": 10, "alpha": 1.5}, "alpha=1.5"),
        ({"num_classes": 10, "temperature": 0}, "temperature=0"),
        ({"num_classes": 10, "beta": -1}, "beta=-1"),
        ({"num_classes": 10, "beta": float("nan")}, "beta=nan"),
        ({"num_classes": 10, "alpha": float("nan")}, "alpha=nan"),
        ({"num_classes": 10, "temperature": float("inf")}, "temperature=inf"),
        ({"num_classes": 10, "kd_loss": "js"}, "kd_loss='js'"),
        ({"num_classes": 10, "kd_mix": "sum"}, "kd_mix='sum'"),
        ({"num_classes": 10, "teacher": "self"}, "teacher='self'"),
        ({"num_classes": 10, "head": "mlp"}, "head='mlp'"),
        ({"num_classes": 10, "exit_weights": [1, 1]}, r"4 numbers >= 0"),
        ({"num_classes": 10, "exit_weights": [1, 1, -1, 1]}, "exit_weights="),
        ({"num_classes": 10, "exit_weights": [0, 0, 0, 0]}, "not all 0"),
        ({"num_classes": 10, "exit_weights": "deep"}, "'equal', 'depth' or 4"),
        ({"num_classes": 10, "exits": ["missing"]}, "missing"),
        ({"num_classes": 10, "exits": ["stage2_block1_1_conv"]}, "cut point"),
    ],
)
def test_bad_build_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_scan.build(small_backbone(width=8), **kwargs)


def test_bad_backbones():
    seq = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3)])
    with pytest.raises(TypeError, match="functional"):
        keras_scan.build(seq, 10)

    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(TypeError, match="functional"):
        keras_scan.build(Sub(), 10)
    a, b = keras.Input((32, 32, 3)), keras.Input((32, 32, 3))
    two = keras.Model([a, b], keras.layers.Add()([a, b]))
    with pytest.raises(ValueError, match="exactly one input"):
        keras_scan.build(two, 10)
    # Too small: a 8x8 input reaches its final resolution with no earlier stage.
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inp)
    tiny = keras.Model(inp, keras.layers.Conv2D(8, 3, padding="same")(x))
    with pytest.raises(ValueError, match="too small"):
        keras_scan.build(tiny, 10)
    with pytest.raises(TypeError, match="model="):
        keras_scan.build("resnet", 10)


def test_compile_rejects_a_loss():
    model = keras_scan.build(small_backbone(width=8), 10)
    with pytest.raises(ValueError, match="`loss` must be None"):
        model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="metrics"):
        model.compile(optimizer="sgd", metrics=["auc"])


_TF_BLOCKER = textwrap.dedent(
    """
    import sys
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ImportError("TensorFlow is blocked in this test")
    sys.meta_path.insert(0, _Block())
    """
)


def _run(code, backend):
    env = dict(os.environ, KERAS_BACKEND=backend)
    return subprocess.run(
        [sys.executable, "-c", _TF_BLOCKER + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_import_build_and_forward_without_tensorflow():
    proc = _run(
        """
        import numpy as np, keras, keras_scan
        from keras_scan import data
        m = keras_scan.build(keras_scan.backbones.cifar_resnet(18, width=8), num_classes=10)
        out = m.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0)
        assert out["final"].shape == (2, 10)
        assert "tensorflow" not in sys.modules
        print("OK", keras.backend.backend())
        """,
        "numpy",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK numpy" in proc.stdout


def test_trains_with_jax_backend_without_tensorflow():
    pytest.importorskip("jax")
    proc = _run(
        """
        import numpy as np, keras, keras_scan
        keras.utils.set_random_seed(0)
        m = keras_scan.build(keras_scan.backbones.cifar_resnet(18, width=8), num_classes=10)
        m.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), metrics=["accuracy"])
        x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
        y = np.arange(16) % 10
        before = [w.copy() for w in m.get_weights()]
        h = m.fit(x, y, batch_size=8, epochs=1, verbose=0)
        assert "exit_0_accuracy" in h.history and np.isfinite(h.history["loss"][0])
        assert any(not np.allclose(a, b) for a, b in zip(before, m.get_weights()))
        assert "tensorflow" not in sys.modules
        print("OK", keras.backend.backend())
        """,
        "jax",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK jax" in proc.stdout
