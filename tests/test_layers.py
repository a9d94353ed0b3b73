import keras
import numpy as np
import pytest

from keras_scan import cost
from keras_scan.layers import AttentionModule, ShallowClassifier


def _roundtrip(layer, x):
    """get_config -> from_config rebuilds the same layer; weights copied give equal outputs."""
    out = layer(x)
    clone = type(layer).from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    for a, b in zip(keras.tree.flatten(out), keras.tree.flatten(clone(x))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    assert clone.get_config() == layer.get_config()
    assert keras.saving.get_registered_name(type(layer)).startswith("keras_scan>")


@pytest.mark.parametrize("size", [8, 7, 1])
def test_attention_module_masks_features(size):
    x = np.random.default_rng(0).normal(size=(2, size, size, 6)).astype("float32")
    layer = AttentionModule()
    y = np.asarray(layer(x))
    assert y.shape == x.shape
    # A sigmoid mask: every output is x times a factor in (0, 1).
    ratio = y / np.where(np.abs(x) < 1e-6, 1.0, x)
    assert np.all((ratio > 0) & (ratio < 1) | (np.abs(x) < 1e-6))
    _roundtrip(layer, x)


def test_attention_module_macs_hand_counted():
    layer = AttentionModule()
    layer(np.zeros((1, 32, 32, 64), "float32"))
    down = 16 * 16 * 64 * 9 * 64  # conv3x3/2
    up = 16 * 16 * 16 * 64 * 64  # transposed 4x4/2: in positions * k*k * cin * cout
    elementwise = (
        16 * 16 * 64 * 2 + 32 * 32 * 64 * 2 + 32 * 32 * 64
    )  # BN+ReLU, BN+sigmoid, product
    assert layer.compute_macs([(1, 32, 32, 64)]) == down + up + elementwise


@pytest.mark.parametrize("head", ["scan", "sepconv", "linear"])
def test_shallow_classifier_variants(head):
    x = np.random.default_rng(1).normal(size=(3, 16, 16, 32)).astype("float32")
    layer = ShallowClassifier(10, feature_dim=128, stride=4, head=head)
    features, logits = layer(x)
    assert logits.shape == (3, 10)
    assert features.shape == (3, 32 if head == "linear" else 128)
    _roundtrip(layer, x)


def test_head_costs_rank_scan_above_sepconv_above_linear():
    shape = (1, 32, 32, 64)
    macs = {}
    for head in ["scan", "sepconv", "linear"]:
        layer = ShallowClassifier(10, feature_dim=512, stride=8, head=head)
        layer(np.zeros(shape, "float32"))
        macs[head] = layer.compute_macs([shape])
    # The paper's head: 1x1 (64->128) at 32x32, 8x8/8 conv (128->128) to 4x4, 1x1 to 512.
    scan = 32 * 32 * 64 * 128 + 4 * 4 * 64 * 128 * 128 + 4 * 4 * 128 * 512
    assert macs["scan"] > scan and macs["scan"] < scan * 1.05
    assert macs["scan"] > macs["sepconv"] > macs["linear"]


def test_layers_counted_by_cost_model_in_a_graph():
    inputs = keras.Input((16, 16, 8))
    x = AttentionModule()(inputs)
    _, logits = ShallowClassifier(5, feature_dim=32, stride=4)(x)
    model = keras.Model(inputs, logits)
    per_layer = {c.class_name: c.macs for c in cost.layer_costs(model)}
    assert per_layer["AttentionModule"] > 0 and per_layer["ShallowClassifier"] > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="head='deep'"):
        ShallowClassifier(10, 64, 2, head="deep")
    with pytest.raises(ValueError, match="stride=0"):
        ShallowClassifier(10, 64, 0)
    with pytest.raises(ValueError, match="input_shape"):
        AttentionModule()(np.zeros((2, 8, 3), "float32"))
