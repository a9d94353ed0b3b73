"""Tests for keras_scan.graph, the one module that reads Keras' private graph
attributes: what taps, cost, compact, depth and scan_model rely on, and that no
other module of the package reads those attributes itself."""

import ast
import pathlib

import keras
import pytest

import keras_scan
from keras_scan import graph
from keras_scan.backbones import taps

L = keras.layers

# Private attributes of Keras' functional graph (`keras.src.ops.function`,
# `keras.src.ops.node`, `keras.src.models.sequential`).
PRIVATE_GRAPH_ATTRIBUTES = {
    "_keras_history",
    "_inbound_nodes",
    "_outbound_nodes",
    "_nodes_by_depth",
    "_operations",
    "_layers_by_depth",
    "_functional",
}
PACKAGE = pathlib.Path(keras_scan.__file__).parent


def _residual():
    """8x8x3 -> conv1 (a) -> bn -> relu -> conv2 (b) -> add(a, b) -> gap -> fc."""
    inputs = keras.Input((8, 8, 3), name="image")
    a = L.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    x = L.BatchNormalization(name="bn")(a)
    x = L.ReLU(name="relu")(x)
    b = L.Conv2D(4, 3, padding="same", name="conv2")(x)
    x = L.Add(name="add")([a, b])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(3, name="fc")(x))


def _check_order(nodes):
    """Every node comes after the nodes producing its inputs, and produces its
    own outputs."""
    position = {id(n): i for i, n in enumerate(nodes)}
    for i, node in enumerate(nodes):
        for t in node.input_tensors:
            assert position[id(graph.producer(t))] < i
        for t in node.outputs:
            assert graph.producer(t) is node


def test_topological_nodes_of_a_residual_model():
    model = _residual()
    nodes = graph.topological_nodes(model)
    names = [n.operation.name for n in nodes]
    assert names == ["image", "conv1", "bn", "relu", "conv2", "add", "gap", "fc"]
    assert nodes[0].is_input and nodes[0].input_tensors == []
    assert not any(n.is_input for n in nodes[1:])
    _check_order(nodes)
    # Tap positions index this list (compact.blocks and taps share it).
    for tap in taps.cut_points(model):
        assert nodes[tap.position].outputs[0] is tap.tensor


def test_producer_agrees_with_the_public_layer_api():
    model = _residual()
    for layer in model.layers[1:]:
        node = graph.producer(layer.output)
        assert node.operation is layer
        inputs = layer.input if isinstance(layer.input, list) else [layer.input]
        assert len(node.input_tensors) == len(inputs)
        assert all(t is u for t, u in zip(node.input_tensors, inputs))
    add = graph.producer(model.get_layer("add").output)
    a, b = add.input_tensors
    assert a is model.get_layer("conv1").output
    assert b is model.get_layer("conv2").output
    # A model input comes from its InputLayer's node, which reads nothing.
    node = graph.producer(model.inputs[0])
    assert node.is_input and node.input_tensors == []
    assert node.operation is model.get_layer("image")
    # Nothing produced these.
    assert graph.producer(keras.KerasTensor((1, 4))) is None
    assert graph.producer(3.0) is None


def test_tensor_uses_counts_reads_not_outputs():
    model = _residual()
    uses = graph.tensor_uses(model)
    assert uses[id(model.get_layer("conv1").output)] == 2  # bn and the add
    assert uses[id(model.get_layer("conv2").output)] == 1
    assert uses[id(model.inputs[0])] == 1
    assert id(model.outputs[0]) not in uses
    nodes = graph.topological_nodes(model)
    assert sum(uses.values()) == sum(len(n.input_tensors) for n in nodes)

    inputs = keras.Input((4,))
    twice = keras.Model(inputs, L.Add()([inputs, inputs]))
    assert graph.tensor_uses(twice)[id(inputs)] == 2


def test_calls_outside_the_model_are_not_its_nodes():
    # ScanModel's stage sub-models call backbone layers again: the layer gets
    # more inbound nodes, the backbone's graph does not change.
    model = _residual()
    before = graph.topological_nodes(model)
    relu = model.get_layer("relu")
    other = relu(keras.Input((8, 8, 4)))
    assert graph.producer(other).operation is relu
    assert graph.producer(other) is not graph.producer(relu.output)
    after = graph.topological_nodes(model)
    assert len(after) == len(before)
    assert all(n is m for n, m in zip(after, before))
    assert graph.producer(model.get_layer("conv2").input) in before

    # A layer shared inside one graph: one node per call.
    inputs = keras.Input((8, 8, 4))
    shared = L.ReLU(name="shared")
    y = shared(shared(inputs))
    nodes = graph.topological_nodes(keras.Model(inputs, y))
    assert [n.operation for n in nodes[1:]] == [shared, shared]
    assert graph.producer(y) is nodes[2]


def test_functional_graph_and_nested_models():
    model = _residual()
    assert graph.functional_graph(model) is model

    seq = keras.Sequential([keras.Input((4,)), L.Dense(2, name="d")])
    inner = graph.functional_graph(seq)
    assert inner is not None and inner is not seq
    assert [n.operation.name for n in graph.topological_nodes(seq)][1:] == ["d"]
    assert graph.topological_nodes(seq)[0].outputs[0] is seq.inputs[0]

    class Sub(keras.Model):
        def call(self, x):
            return x

    assert graph.functional_graph(keras.Sequential([L.Dense(2)])) is None
    assert graph.functional_graph(Sub()) is None
    assert graph.functional_graph(L.Dense(2)) is None
    with pytest.raises(TypeError, match="`model` must be a functional"):
        graph.topological_nodes(Sub())

    # A nested model is one call of the outer graph.
    inputs = keras.Input((8, 8, 3))
    outer = keras.Model(inputs, L.Flatten(name="flat")(model(inputs)))
    nodes = graph.topological_nodes(outer)
    assert [n.operation for n in nodes[1:-1]] == [model]
    assert graph.producer(outer.get_layer("flat").input) is nodes[1]


def test_keras_application():
    model = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10
    )
    nodes = graph.topological_nodes(model)
    assert len(nodes) == len(model.layers)  # no layer called twice
    assert nodes[0].is_input and nodes[-1].operation.name == "predictions"
    _check_order(nodes)
    for layer in model.layers:
        assert graph.producer(layer.output).operation is layer
    # A residual block's input feeds its expansion and its add.
    uses = graph.tensor_uses(model)
    assert uses[id(model.get_layer("block_1_project_BN").output)] == 2
    add = graph.producer(model.get_layer("block_2_add").output)
    assert model.get_layer("block_1_project_BN").output in add.input_tensors
    assert graph.functional_graph(model) is model


def _private_uses(source):
    """`(line, name)` for each private graph attribute read in `source`, as an
    attribute (`x._keras_history`) or a string (`getattr(x, "_keras_history")`)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            name = node.value
        else:
            continue
        if name in PRIVATE_GRAPH_ATTRIBUTES:
            found.append((node.lineno, name))
    return found


def test_private_uses_are_found():
    assert _private_uses("h = t._keras_history.operation") == [(1, "_keras_history")]
    assert _private_uses('getattr(m, "_functional", None)') == [(1, "_functional")]
    assert _private_uses("x = node.input_tensors  # _inbound_nodes") == []


def test_private_graph_attributes_only_in_graph_module():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "graph.py":
            continue
        for line, name in _private_uses(path.read_text()):
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {name}")
    assert offenders == [], (
        "Read Keras' private graph attributes through keras_scan.graph: "
        + "; ".join(offenders)
    )
    assert _private_uses((PACKAGE / "graph.py").read_text())
