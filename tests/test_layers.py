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


@pytest.mark.parametrize("kind", ["scan", "gate"])
@pytest.mark.parametrize("size", [8, 7, 1])
def test_attention_module_masks_features(size, kind):
    x = np.random.default_rng(0).normal(size=(2, size, size, 6)).astype("float32")
    layer = AttentionModule(kind=kind)
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


def test_gate_weighs_each_channel_once():
    x = np.random.default_rng(0).uniform(0.5, 1.0, size=(2, 5, 5, 16)).astype("float32")
    layer = AttentionModule(kind="gate")
    ratio = np.asarray(layer(x)) / x
    # One factor per image and channel, the same at every pixel.
    np.testing.assert_allclose(
        ratio, ratio[:, :1, :1, :] * np.ones_like(ratio), rtol=1e-5
    )
    # pool (HWC) + 1x1 16->8 (+ReLU) + 1x1 8->16 (+sigmoid) + product (HWC)
    macs = 25 * 16 + (16 * 8 + 8) + (8 * 16 + 16) + 25 * 16
    assert layer.compute_macs([(1, 5, 5, 16)]) == macs


@pytest.mark.parametrize(
    "k, steps",
    [
        (1, [(3, 1)]),
        (2, [(3, 2)]),
        (8, [(3, 2)] * 3),
        (6, [(3, 2), (3, 3)]),
        (7, [(7, 7)]),
    ],
)
def test_lite_head_downsamples_by_3x3_depthwise_steps(k, steps):
    from keras_scan.layers.shallow_classifier import _downsample_steps

    assert _downsample_steps(k) == steps
    size = 4 * k
    layer = ShallowClassifier(10, feature_dim=64, stride=k, head="lite")
    features, logits = layer(np.zeros((2, size, size, 8), "float32"))
    assert features.shape == (2, 64) and logits.shape == (2, 10)
    convs = [conv for conv, _ in layer.blocks]
    depthwise = [c for c in convs if type(c).__name__ == "DepthwiseConv2D"]
    assert [(c.kernel_size[0], c.strides[0]) for c in depthwise] == steps
    # Every depthwise step is followed by a 1x1 conv doubling the channels
    # (8 -> 16 -> 16: at most feature_dim // 4), widening after downsampling.
    pointwise = [c for c in convs if type(c).__name__ == "Conv2D"]
    assert all(c.kernel_size == (1, 1) for c in pointwise)
    assert [c.filters for c in pointwise] == [16] * len(steps)


@pytest.mark.parametrize("head", ["scan", "sepconv", "lite", "linear"])
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
    for head in ["scan", "sepconv", "lite", "linear"]:
        layer = ShallowClassifier(10, feature_dim=512, stride=8, head=head)
        layer(np.zeros(shape, "float32"))
        macs[head] = layer.compute_macs([shape])
    # lite: depthwise 3x3/2 on 64 channels to 16x16, 1x1 64->128; then twice
    # depthwise 3x3/2 and 1x1 128->128 (8x8, 4x4), each + BN + ReLU; pool;
    # dense 128->512 + BN + ReLU; logits.
    lite = 16 * 16 * 64 * (9 + 2) + 16 * 16 * (64 * 128 + 2 * 128)
    lite += (8 * 8 + 4 * 4) * (128 * (9 + 2) + 128 * 128 + 2 * 128)
    lite += 4 * 4 * 128 + 128 * 512 + 2 * 512 + 512 * 10
    assert macs["lite"] == lite
    assert macs["lite"] * 2 < macs["sepconv"] and macs["lite"] * 6 < macs["scan"]
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
    with pytest.raises(ValueError, match="kind='spatial'"):
        AttentionModule(kind="spatial")
