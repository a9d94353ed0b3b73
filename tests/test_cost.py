"""Tests for keras_scan.cost against MACs computed by hand."""

import keras
import pytest

from keras_scan import cost, graph

L = keras.layers


def _tiny_residual():
    """8x8x3 -> conv/BN/ReLU -> conv -> add -> GAP -> dense softmax."""
    inputs = keras.Input((8, 8, 3))
    a = L.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    x = L.BatchNormalization(name="bn")(a)
    x = L.ReLU(name="relu")(x)
    b = L.Conv2D(4, 3, padding="same", name="conv2")(x)
    x = L.Add(name="add")([a, b])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(5, activation="softmax", name="fc")(x)
    return keras.Model(inputs, outputs)


# Hand counts for _tiny_residual (bias adds are not counted).
TINY = {
    "conv1": 8 * 8 * 4 * (3 * 3 * 3),
    "bn": 8 * 8 * 4,
    "relu": 8 * 8 * 4,
    "conv2": 8 * 8 * 4 * (3 * 3 * 4),
    "add": 8 * 8 * 4,  # 2 inputs -> 1 addition per element
    "gap": 8 * 8 * 4,
    "fc": 4 * 5 + 5,  # matmul + softmax per output element
}


def test_tiny_residual_by_hand():
    model = _tiny_residual()
    costs = cost.layer_costs(model)
    by_name = {c.name: c for c in costs}
    assert costs[0].class_name == "InputLayer" and costs[0].macs == 0
    assert {n: by_name[n].macs for n in TINY} == TINY
    assert cost.count_macs(model) == sum(TINY.values()) == 17177
    assert by_name["conv1"].params == 3 * 3 * 3 * 4 + 4
    assert by_name["bn"].params == 4 * 4
    assert by_name["conv2"].output_shape == (None, 8, 8, 4)
    assert by_name["fc"].class_name == "Dense"
    # Topological order: every conv before the add that consumes it.
    names = [c.name for c in costs]
    assert names.index("conv2") < names.index("add") < names.index("fc")


def test_depthwise_separable_transpose_grouped():
    inputs = keras.Input((16, 16, 8))
    x = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, name="dw")(
        inputs
    )  # -> 8x8x16
    x = L.SeparableConv2D(12, 3, padding="same", name="sep")(x)  # -> 8x8x12
    x = L.Conv2DTranspose(6, 4, strides=2, padding="same", name="up")(x)  # 16x16x6
    x = L.Conv2D(8, 3, padding="same", groups=2, name="grouped")(x)  # 16x16x8
    x = L.Conv2D(8, 1, activation="relu", name="pw_relu")(x)
    model = keras.Model(inputs, x)
    macs = {c.name: c.macs for c in cost.layer_costs(model)}
    assert macs["dw"] == 8 * 8 * 16 * 9
    assert macs["sep"] == 8 * 8 * 16 * 9 + 8 * 8 * 16 * 12
    assert macs["up"] == 8 * 8 * (4 * 4) * 12 * 6
    assert macs["grouped"] == 16 * 16 * 8 * (3 * 3 * 6 // 2)
    assert macs["pw_relu"] == 16 * 16 * 8 * 8 + 16 * 16 * 8  # + relu
    assert cost.count_params(model) == model.count_params()


def test_other_layers_and_ops():
    seq = keras.Input((5, 7))
    d = L.Dense(3, name="dense_seq")(seq)  # 5 positions x 7 x 3
    c1 = L.Conv1D(4, 3, name="conv1d")(seq)  # -> 3x4, k=3, in 7
    e = L.EinsumDense("abc,cd->abd", output_shape=(5, 6), name="einsum")(seq)
    img = keras.Input((8, 8, 2))
    p = L.MaxPooling2D(2, name="maxpool")(img)  # -> 4x4x2
    q = L.AveragePooling2D(3, strides=1, padding="same", name="avgpool")(img)
    m = L.Multiply(name="mul3")([img, q, img])
    r = L.Rescaling(1 / 255.0, name="rescale")(m)
    s = r * 2.0 + r  # keras.ops in the graph: multiply (1 tensor) + add
    t = keras.ops.mean(s, axis=(1, 2))
    u = L.UpSampling2D(2, interpolation="bilinear", name="bilinear")(p)
    v = L.UpSampling2D(2, name="nearest")(p)
    f = L.Flatten(name="flat")(L.Concatenate(name="cat")([u, v]))
    g = L.Activation("linear", name="lin")(L.Dropout(0.5, name="drop")(f))
    model = keras.Model([seq, img], [d, c1, e, t, g])
    macs = {c.name: c.macs for c in cost.layer_costs(model)}
    assert macs["dense_seq"] == 5 * 7 * 3
    assert macs["conv1d"] == 3 * 4 * (3 * 7)
    assert macs["einsum"] == 5 * 6 * 7
    assert macs["maxpool"] == 4 * 4 * 2 * 4
    assert macs["avgpool"] == 8 * 8 * 2 * 9
    assert macs["mul3"] == 2 * 8 * 8 * 2
    assert macs["rescale"] == 8 * 8 * 2
    assert macs["bilinear"] == 4 * (8 * 8 * 2)
    for free in ("nearest", "cat", "flat", "drop", "lin"):
        assert macs[free] == 0, free
    ops = {n: m for n, m in macs.items() if n not in {c.name for c in model.layers}}
    # multiply by a constant, add, mean (reduction over 8*8*2 inputs)
    assert sorted(ops.values()) == sorted([8 * 8 * 2, 8 * 8 * 2, 8 * 8 * 2])


def test_count_params_matches_keras_with_shared_layer():
    inputs = keras.Input((6, 6, 3))
    shared = L.Conv2D(3, 3, padding="same", name="shared")
    x = shared(shared(inputs))
    x = L.BatchNormalization()(x)
    model = keras.Model(inputs, L.Dense(2)(L.Flatten()(x)))
    costs = cost.layer_costs(model)
    shared_calls = [c for c in costs if c.name == "shared"]
    assert [c.params for c in shared_calls] == [3 * 3 * 3 * 3 + 3, 0]
    assert [c.macs for c in shared_calls] == [6 * 6 * 3 * 27] * 2
    assert cost.count_params(model) == model.count_params()
    assert sum(c.params for c in costs) == model.count_params()


def test_nested_models_recurse_with_call_shapes():
    # Inner backbone with undefined spatial dims, as Keras Applications build
    # when include_top=False; it is counted with the shapes of the outer call.
    inner_in = keras.Input((None, None, 3))
    inner_out = L.Conv2D(4, 3, padding="same", name="conv")(inner_in)
    inner_out = L.ReLU(name="relu")(inner_out)
    inner = keras.Model(inner_in, inner_out, name="backbone")
    head = keras.Sequential([keras.Input((4,)), L.Dense(3, name="fc")], name="head")
    inputs = keras.Input((10, 10, 3))
    x = L.GlobalAveragePooling2D(name="gap")(inner(inputs))
    model = keras.Model(inputs, head(x))

    costs = cost.layer_costs(model)
    macs = {c.name: c.macs for c in costs}
    assert macs["backbone/conv"] == 10 * 10 * 4 * 27
    assert macs["backbone/relu"] == 10 * 10 * 4
    assert macs["head/fc"] == 4 * 3
    assert "backbone" not in macs  # listed through its layers only
    expected = 10 * 10 * 4 * 27 + 10 * 10 * 4 + 10 * 10 * 4 + 4 * 3
    assert cost.count_macs(model) == expected
    assert sum(c.params for c in costs) == model.count_params()
    assert cost.count_params(model) == model.count_params()
    # The nested model's own graph is untouched by the re-propagation.
    assert inner.get_layer("conv").output.shape == (None, None, None, 4)
    # node_macs of the nested model's node is the sum of its layers.
    node = graph.producer(model.get_layer("gap").input)
    assert node.operation is inner
    assert cost.node_macs(node) == 10 * 10 * 4 * 27 + 10 * 10 * 4


def test_macs_to_tensors_chain_and_residual():
    model = _tiny_residual()
    cum = cost.macs_to_tensors(model)
    chain = ["conv1", "bn", "relu", "conv2", "add", "gap", "fc"]
    values = [cum[id(model.get_layer(n).output)] for n in chain]
    assert values == sorted(values)
    assert cum[id(model.input)] == 0
    assert cum[id(model.get_layer("conv1").output)] == TINY["conv1"]
    # conv1 feeds both branches of the add but is counted once.
    before_gap = ["conv1", "bn", "relu", "conv2", "add"]
    assert cum[id(model.get_layer("add").output)] == sum(TINY[n] for n in before_gap)
    assert cum[id(model.output)] == cost.count_macs(model)
    assert len(cum) == len(model.layers)  # one tensor per layer here


def test_unknown_layer_warns_once_and_counts_zero():
    inputs = keras.Input((4,))
    x = L.Lambda(lambda t: t * 2, name="lam1")(inputs)
    x = L.Lambda(lambda t: t + 1, name="lam2")(x)
    model = keras.Model(inputs, x)
    with pytest.warns(UserWarning, match="`Lambda`") as record:
        costs = cost.layer_costs(model)
    assert len([w for w in record if "Lambda" in str(w.message)]) == 1
    assert [c.macs for c in costs if c.class_name == "Lambda"] == [0, 0]


def test_errors_name_the_argument():
    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(TypeError, match="`model` must be a functional"):
        cost.layer_costs(Sub())
    with pytest.raises(ValueError, match="Sequential model without a known input"):
        cost.count_macs(keras.Sequential([L.Dense(2)]))
    with pytest.raises(ValueError, match="undefined dimension"):
        inputs = keras.Input((None, None, 3))
        cost.count_macs(keras.Model(inputs, L.Conv2D(2, 3)(inputs)))
    with pytest.raises(TypeError, match="`node` must be a Keras Node"):
        cost.node_macs("conv1")
    with pytest.raises(ValueError, match="`model` must be built"):
        cost.count_params(L.Dense(3))


def _cifar_resnet18(num_classes=10):
    """CIFAR ResNet18: 3x3 stem (64), no max-pool, 4 stages x 2 basic blocks."""
    inputs = keras.Input((32, 32, 3))

    def conv_bn(x, filters, kernel, stride, relu=True):
        x = L.Conv2D(filters, kernel, stride, padding="same", use_bias=False)(x)
        x = L.BatchNormalization()(x)
        return L.ReLU()(x) if relu else x

    x = conv_bn(inputs, 64, 3, 1)
    in_ch = 64
    for stage, filters in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            y = conv_bn(x, filters, 3, stride)
            y = conv_bn(y, filters, 3, 1, relu=False)
            shortcut = x
            if stride != 1 or in_ch != filters:
                shortcut = conv_bn(x, filters, 1, stride, relu=False)
            x = L.ReLU()(L.Add()([y, shortcut]))
            in_ch = filters
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(num_classes)(x))


def test_cifar_resnet18_conv_macs_by_hand():
    model = _cifar_resnet18()
    conv_macs = sum(c.macs for c in cost.layer_costs(model) if c.class_name == "Conv2D")

    def conv(hw, k, cin, cout):  # output resolution hw x hw
        return hw * hw * cout * k * k * cin

    expected = conv(32, 3, 3, 64)  # stem
    expected += 4 * conv(32, 3, 64, 64)  # stage 1: 2 blocks x 2 convs
    for hw, cin, cout in ((16, 64, 128), (8, 128, 256), (4, 256, 512)):
        expected += conv(hw, 3, cin, cout)  # first conv, stride 2
        expected += 3 * conv(hw, 3, cout, cout)
        expected += conv(hw, 1, cin, cout)  # 1x1 stride-2 projection
    assert expected == 555_417_600
    assert conv_macs == expected
    assert conv_macs == pytest.approx(0.556e9, rel=0.01)
    assert cost.count_params(model) == model.count_params()


def test_resnet50_macs():
    model = keras.applications.ResNet50(weights=None, include_top=True)
    costs = cost.layer_costs(model)
    total = sum(c.macs for c in costs)
    conv_fc = sum(c.macs for c in costs if c.class_name in ("Conv2D", "Dense"))
    # Keras' ResNet50 is v1 (stride 2 in the first 1x1 conv of a stage): 3.8e9
    # multiply-adds in He et al. 2015, Table 1.
    assert total == pytest.approx(3.8e9, rel=0.05)
    # The often quoted ~4.1 GMACs is v1.5 (torchvision), whose stride moves to the
    # 3x3 conv, so the first 1x1 conv of stages 3-5 runs at 4x the positions.
    # (hw: v1 output size of that conv; cin -> cin / 2 channels)
    v15_extra = sum(
        3 * hw * hw * cin * (cin // 2) for hw, cin in ((28, 256), (14, 512), (7, 1024))
    )
    assert conv_fc + v15_extra == pytest.approx(4.1e9, rel=0.01)
    assert sum(c.params for c in costs) == model.count_params()


def test_mobilenet_v2_macs():
    model = keras.applications.MobileNetV2(
        weights=None, input_shape=(224, 224, 3), alpha=1.0
    )
    assert cost.count_macs(model) == pytest.approx(300e6, rel=0.10)
    assert cost.count_params(model) == model.count_params()


def test_peak_activation_bytes_counts_live_tensors():
    inputs = keras.Input((8, 8, 1))
    a = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 256 floats
    b = keras.layers.ReLU()(a)  # 256 floats, `a` still alive while it runs
    c = keras.layers.Add()([a, b])  # a, b, c alive: 768 floats
    d = keras.layers.GlobalAveragePooling2D()(c)
    model = keras.Model(inputs, keras.layers.Dense(2)(d))
    assert cost.peak_activation_bytes(model) == 768 * 4
    assert cost.peak_activation_bytes(model, bytes_per_element=1) == 768


def test_model_costs_and_their_comparison():
    small, big = (
        _tiny_residual(),
        keras.applications.MobileNetV2(
            weights=None, input_shape=(32, 32, 3), include_top=False
        ),
    )
    costs = cost.model_costs(small)
    assert costs["params"] == small.count_params()
    assert costs["macs"] == cost.count_macs(small)
    assert costs["file_bytes"] > 0 and costs["peak_activation_bytes"] > 0
    compared = cost.compare_costs(costs, cost.model_costs(big))
    assert compared["chosen"] is costs
    assert set(compared["reduction"]) == set(costs)
    assert all(0 < r < 1 for r in compared["reduction"].values())
    # A cost the full model does not have is not compared.
    assert "macs" not in cost.compare_costs(costs, {**costs, "macs": 0})["reduction"]
