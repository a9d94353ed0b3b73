"""Reading the graph of a functional Keras model: the one place that touches
Keras' private graph attributes.

Written against Keras 3.15.1 (`keras.__version__`, pinned in setup.cfg).

keras_scan cuts backbones at tensors, counts MACs per call and replays a
teacher's graph with some blocks swapped, so it needs the *calls* of a
functional graph (Keras `Node`s) and which call produced a given tensor.
Keras' public API stops short of that: `model.layers` / `model.operations`
list operations, not calls (a layer called twice, or also called by another
model, has several); `layer.input` / `layer.output` only answer for a layer
called once; and nothing public maps a `KerasTensor` to the call that made it
or gives a `keras.Sequential`'s inner functional graph. So this module reads
`model._nodes_by_depth`, `tensor._keras_history`, `operation._inbound_nodes`
and `Sequential._functional`, and nothing else in keras_scan does (a test
parses the sources). On a Keras upgrade, this is the file to check.

The helpers hand out Keras' own `Node` objects; callers read only their
public attributes: `operation`, `input_tensors`, `outputs`, `is_input` and
`arguments` (`node.arguments.fill_in(tensors)` to call the operation again on
other tensors).
"""

import keras

__all__ = ["functional_graph", "producer", "tensor_uses", "topological_nodes"]


def functional_graph(model):
    """The functional graph of `model`, or `None` when it has none.

    Args:
        model: any object. A functional `keras.Model` (including subclasses
            built with `super().__init__(inputs, outputs)`) is its own graph;
            a `keras.Sequential` with a known input shape has an inner
            functional graph; anything else (a subclassed model, a Sequential
            not built yet, a layer) has none.

    Returns:
        A functional `keras.Model`, or `None`.
    """
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    if isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth"):
        return model
    return None


def _graph_of(model):
    graph = functional_graph(model)
    if graph is None:
        raise TypeError(
            "`model` must be a functional Keras model (or a Sequential model with "
            f"a known input shape). Received: model={model!r}"
        )
    return graph


def topological_nodes(model):
    """The calls (Keras `Node`s) of `model`'s graph in topological order.

    Input nodes come first; every node comes after the nodes producing its
    inputs. The order is fixed by the graph (deepest depth first, then Keras'
    order within a depth), so positions in this list identify calls across
    keras_scan (`keras_scan.backbones.Tap.position`).

    Args:
        model: a functional `keras.Model` (or a `keras.Sequential` with a
            known input shape: its inner graph).

    Returns:
        list of Keras `Node`. Calls of nested models are one node each.

    Example:

    ```python
    nodes = keras_scan.graph.topological_nodes(model)
    [n.operation.name for n in nodes]  # ["input_layer", "conv1", ...]
    ```
    """
    by_depth = _graph_of(model)._nodes_by_depth
    return [n for depth in sorted(by_depth, reverse=True) for n in by_depth[depth]]


def producer(tensor):
    """The call (Keras `Node`) that produced `tensor`, or `None`.

    Args:
        tensor: a `KerasTensor` of a functional graph. A model input's
            producer is its `InputLayer`'s node (`node.is_input`, no input
            tensors).

    Returns:
        A Keras `Node` (`node.operation` is the layer or op, `node.input_tensors`
        what it read), or `None` for a tensor no operation produced (a bare
        `keras.KerasTensor`, a number).
    """
    history = getattr(tensor, "_keras_history", None)
    if history is None or history.operation is None:
        return None
    return history.operation._inbound_nodes[history.node_index]


def tensor_uses(model):
    """How many calls of `model`'s graph read each tensor.

    A tensor read twice by one call (`Add()([x, x])`) counts twice; being a
    model output is not a use.

    Args:
        model: a functional `keras.Model` (or a `keras.Sequential` with a
            known input shape).

    Returns:
        dict mapping `id(KerasTensor)` to int; tensors nothing reads are absent.
    """
    uses = {}
    for node in topological_nodes(model):
        for t in node.input_tensors:
            uses[id(t)] = uses.get(id(t), 0) + 1
    return uses
