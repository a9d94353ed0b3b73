"""`grow`: the optimal depth of a backbone by progressive depth expansion (ODN).

Train the network at a shallow depth first, add blocks as the earlier ones
converge (`keras_scan.depth.GrowingNetwork`: new blocks start near the
identity, earlier weights carried over), and stop at the first depth that
reaches a target accuracy.

Convergence criterion ("the earlier blocks have converged"). The paper does
not publish its exact rule. Here a depth has converged when its validation
accuracy has not improved by more than `min_delta` for `patience` epochs in a
row (Keras `EarlyStopping`'s plateau rule), or after `epochs_per_step` epochs
at that depth. The target is checked after every epoch, so the search stops at
the first epoch that reaches it. Validation accuracy is used because it is the
quantity the target is stated in and is measured anyway; per-block weight or
gradient norms keep moving under SGD noise long after accuracy is flat. When a
depth has converged, its best weights (by validation accuracy) are restored
before the next block is added. `freeze=True` stops training the stem and the
earlier blocks (they keep their batch-norm statistics).
"""

import inspect
import time

import keras
import numpy as np

from keras_scan import cost
from keras_scan.backbones.cifar_resnet import cifar_resnet
from keras_scan.checks import check_float, check_int
from keras_scan.depth.blocks import BACKBONES, make_backbone
from keras_scan.depth.checks import check_target
from keras_scan.depth.cutting import copy_model
from keras_scan.depth.growing_network import HEADS, GrowingNetwork
from keras_scan.depth.report import summary
from keras_scan.depth.splits import (
    batched,
    check_split,
    image_shape,
    num_examples,
    plain_accuracy,
)

__all__ = ["grow", "GROW_DEFAULTS"]


def _resolve_backbone(backbone, input_shape, width):
    if isinstance(backbone, str):
        return make_backbone(backbone, input_shape, width=width), backbone
    if isinstance(backbone, keras.Model):
        return backbone, backbone.name
    if callable(backbone):
        model = backbone(tuple(input_shape))
        if not isinstance(model, keras.Model):
            raise TypeError(
                "`backbone` as a function must return a functional keras.Model. "
                f"Received: {backbone!r} returned {type(model).__name__}"
            )
        return model, model.name
    raise TypeError(
        f"`backbone` must be one of {sorted(BACKBONES)}, a functional keras.Model "
        f"or a function input_shape -> keras.Model. Received: backbone={backbone!r}"
    )


def _compile(model, learning_rate):
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=False,
    )


def _accuracy(model, batches):
    return float(model.evaluate(batches, verbose=0, return_dict=True)["accuracy"])


def grow(
    backbone,
    train_data,
    val_data,
    target_accuracy,
    *,
    num_classes=None,
    width=64,
    head="scan",
    epochs_per_step=5,
    patience=2,
    min_delta=0.002,
    max_epochs=None,
    freeze=False,
    start_depth=1,
    depth_step=1,
    batch_size=128,
    learning_rate=0.05,
    augment=False,
    seed=0,
    test_data=None,
    blocks=None,
    baseline_epochs=None,
    log=print,
):
    """Finds the optimal depth of a backbone by progressive depth expansion (ODN).

    Trains the network at `start_depth` blocks; when the validation accuracy
    has converged (no gain above `min_delta` for `patience` epochs, or
    `epochs_per_step` epochs) adds `depth_step` blocks (near identity, earlier
    weights carried over) and goes on, until the validation accuracy reaches
    `target_accuracy` (checked every epoch) or the full depth has converged.

    Args:
        backbone: a name from `keras_scan.depth.BACKBONES` (built with
            `width`), a functional `keras.Model` whose residual block outputs
            are cut points (warm-started and trained in place), or a function
            `input_shape -> keras.Model`.
        train_data: `(x, y)` numpy arrays (x float32 0..255 NHWC, y int) or an
            unbatched `tf.data.Dataset` of `(image, label)` (a
            `keras_scan.data.DataSplits` member).
        val_data: same; the target is checked on it.
        target_accuracy: float in (0, 1]. Validation accuracy to reach.
        num_classes: int. Defaults to `max(y) + 1` of numpy `train_data`
            (required for a tf.data.Dataset).
        width: int. First-stage width of a backbone built by name. Defaults to 64.
        head: str. The classifier at each depth: `"scan"` (SCAN's exit
            head), `"sepconv"` or `"dense"` (pooling + Dense); see
            `GrowingNetwork`. Defaults to `"scan"`.
        epochs_per_step: int. Most epochs at one depth. Defaults to 5.
        patience: int. Epochs without a gain above `min_delta` that count as
            converged. Defaults to 2.
        min_delta: float. Smallest validation-accuracy gain that counts.
            Defaults to 0.002.
        max_epochs: int or None. Budget of epochs over all depths; the search
            stops (at the current depth) when it is spent. Defaults to None.
        freeze: bool. Freeze the stem and converged blocks; only the new
            blocks and the classifier train. Defaults to `False`.
        start_depth: int. Blocks to start with. Defaults to 1.
        depth_step: int. Blocks added per expansion. Defaults to 1.
        batch_size: int. Defaults to 128.
        learning_rate: float. SGD (momentum 0.9, Nesterov) learning rate, a
            fresh optimizer at each depth. Defaults to 0.05.
        augment: bool. Random crop + flip of training images. Defaults to `False`.
        seed: int. Seeds weights and data order. Defaults to 0.
        test_data: optional split like `val_data`: the chosen model's test
            accuracy goes into the report.
        blocks: optional list of block-output layer names. Defaults to `None`.
        baseline_epochs: int or None. Also train the full-depth network
            (pooling + Dense, standard initialisation, same data and
            optimizer) from scratch, epoch by epoch, until its validation
            accuracy reaches the grown model's (at most this many epochs),
            and report its training cost next to the growth's
            (`report["baseline"]`). Defaults to None (no baseline).
        log: callable taking a str, or None. Progress lines. Defaults to `print`.

    Returns:
        `(model, report)`: `model` a plain functional `keras.Model` `image ->
        logits` at the chosen depth (independent weights, not compiled);
        `report` a JSON-ready dict (chosen depth, per-depth history, training
        cost, params / MACs / file size / peak activation memory against the
        full depth, test accuracy).

    Example:
    ```python
    splits = keras_scan.data.load_dataset("fashion_mnist", 32, limit=4000)
    model, report = keras_scan.grow(
        "cifar_resnet18", splits.train, splits.val, target_accuracy=0.85, width=16)
    report["depth"], report["reduction"]["macs"]
    ```

    Reference: "Optimally Deep Networks -- Adapting Model Depth to Datasets
    for Superior Efficiency", arXiv 2510.10764.
    """
    target = check_target(target_accuracy)
    train_data = check_split("train_data", train_data)
    val_data = check_split("val_data", val_data)
    if test_data is not None:
        test_data = check_split("test_data", test_data)
    epochs_per_step = check_int("epochs_per_step", epochs_per_step, 1)
    patience = check_int("patience", patience, 1)
    min_delta = check_float("min_delta", min_delta, 0.0)
    max_epochs = check_int("max_epochs", max_epochs, 1, allow_none=True)
    baseline_epochs = check_int("baseline_epochs", baseline_epochs, 1, allow_none=True)
    depth_step = check_int("depth_step", depth_step, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    learning_rate = check_float("learning_rate", learning_rate, 0.0, low_open=True)
    width = check_int("width", width, 1)
    if head not in HEADS:
        raise ValueError(f"`head` must be one of {HEADS}. Received: head={head!r}")
    if num_classes is None:
        if not isinstance(train_data, tuple):
            raise ValueError(
                "`num_classes` must be given when `train_data` is a tf.data.Dataset. "
                "Received: num_classes=None"
            )
        num_classes = int(np.max(train_data[1])) + 1
    say = log or (lambda _: None)

    keras.utils.set_random_seed(seed)
    net_backbone, backbone_name = _resolve_backbone(
        backbone, image_shape(train_data), width
    )
    net = GrowingNetwork(net_backbone, num_classes, head=head, blocks=blocks)
    start_depth = check_int("start_depth", start_depth, 1)
    if start_depth > net.num_blocks:
        raise ValueError(
            f"`start_depth` must be in [1, {net.num_blocks}] (blocks of "
            f"{backbone_name!r}). Received: start_depth={start_depth}"
        )
    depths = list(range(start_depth, net.num_blocks + 1, depth_step))
    if depths[-1] != net.num_blocks:
        depths.append(net.num_blocks)

    n_train = num_examples(train_data)
    n_val = num_examples(val_data)
    train_batches = batched(train_data, batch_size, True, augment, seed)
    val_batches = batched(val_data, max(batch_size, 256), False, False, seed)

    say(
        f"grow: {backbone_name}, {net.num_blocks} blocks, target val accuracy "
        f"{target:.4f}; {n_train} train / {n_val} val images; head={head}, "
        f"freeze={freeze}"
    )
    steps = []
    total_epochs = 0
    train_macs = 0
    reached = False
    stopped = "full_depth"
    started = time.time()
    depth = depths[0]
    for depth in depths:
        if max_epochs is not None and total_epochs >= max_epochs:
            stopped = "max_epochs"
            depth = steps[-1]["depth"]
            break
        model = net.model(depth)
        net.set_frozen(steps[-1]["depth"] if freeze and steps else 0)
        _compile(model, learning_rate)
        macs = cost.count_macs(model)
        at_expansion = _accuracy(model, val_batches)
        # The state at expansion is a candidate too: a depth never ends worse
        # than it started.
        history, best, best_weights, wait = [], at_expansion, model.get_weights(), 0
        epoch = 0
        while epoch < epochs_per_step:
            if max_epochs is not None and total_epochs >= max_epochs:
                stopped = "max_epochs"
                break
            model.fit(train_batches, epochs=1, verbose=0)
            epoch += 1
            total_epochs += 1
            train_macs += 3 * macs * n_train
            acc = _accuracy(model, val_batches)
            history.append(round(acc, 6))
            if acc > best + min_delta:
                best, best_weights, wait = acc, model.get_weights(), 0
            else:
                wait += 1
                if acc > best:
                    best, best_weights = acc, model.get_weights()
            if acc >= target:
                reached = True
                stopped = "target"
                break
            if wait >= patience:
                break
        if not reached:
            model.set_weights(best_weights)
        step = {
            "depth": depth,
            "block": net.block_names[depth - 1],
            "stage": net.stage_of(depth),
            "epochs": epoch,
            "val_accuracy_at_expansion": round(at_expansion, 6),
            "val_accuracy": round(history[-1] if reached else best, 6),
            "val_history": history,
            "macs": int(macs),
            "params": int(cost.count_params(model)),
        }
        steps.append(step)
        say(
            f"  depth {depth:2d}/{net.num_blocks} ({step['block']}): "
            f"{epoch} epoch(s), val accuracy {at_expansion:.4f} at expansion -> "
            f"{step['val_accuracy']:.4f}" + ("  target reached" if reached else "")
        )
        if reached or stopped == "max_epochs":
            break
    net.set_frozen(0)
    chosen = net.model(depth)
    final = copy_model(chosen, name=f"odn_{backbone_name}_d{depth}")

    # The full-depth model a user would train instead: all blocks, pooling, Dense.
    full_model = GrowingNetwork(
        net_backbone, num_classes, head="dense", blocks=blocks, warm_start=False
    ).model(net.num_blocks)
    best_step = max(steps, key=lambda s: s["val_accuracy"])

    val_accuracy = steps[-1]["val_accuracy"]
    report = {
        "mode": "grow",
        "backbone": backbone_name,
        "target_accuracy": target,
        "reached": reached,
        "stopped_because": stopped,
        "depth": int(depth),
        "num_blocks": net.num_blocks,
        "block": net.block_names[depth - 1],
        "blocks": net.block_names,
        "head": head,
        "freeze": bool(freeze),
        "val_accuracy": val_accuracy,
        "best_depth": best_step["depth"],
        "best_val_accuracy": best_step["val_accuracy"],
        "criterion": {
            "rule": "validation-accuracy plateau",
            "patience": patience,
            "min_delta": min_delta,
            "epochs_per_step": epochs_per_step,
            "max_epochs": max_epochs,
        },
        "steps": steps,
        "epochs": total_epochs,
        "train_images": int(total_epochs * n_train),
        "train_macs_estimate": int(train_macs),
        "val_images_evaluated": int(n_val * (total_epochs + len(steps))),
        "seconds": round(time.time() - started, 1),
        **cost.compare_costs(cost.model_costs(final), cost.model_costs(full_model)),
    }
    if test_data is not None:
        report["test_accuracy"] = round(plain_accuracy(final, test_data), 6)
    if baseline_epochs is not None:
        # The same accuracy: the target when it was reached, else what the
        # growth ended with.
        baseline_target = target if reached else report["val_accuracy"]
        say(
            f"baseline: the full-depth network from scratch, until val accuracy "
            f">= {baseline_target:.4f} (at most {baseline_epochs} epochs)"
        )
        report["baseline"] = _full_depth_baseline(
            backbone,
            net_backbone,
            width,
            num_classes,
            blocks,
            # A fresh pipeline with the same seed: the baseline sees the data
            # in the order the growth saw it first.
            batched(train_data, batch_size, True, augment, seed),
            val_batches,
            n_train,
            baseline_target,
            baseline_epochs,
            learning_rate,
            seed,
            test_data,
            say,
        )
        base = report["baseline"]
        report["train_images_vs_baseline"] = round(
            report["train_images"] / max(base["train_images"], 1), 6
        )
        report["train_macs_vs_baseline"] = round(
            report["train_macs_estimate"] / max(base["train_macs_estimate"], 1), 6
        )
    say(summary(report))
    return final, report


def _full_depth_baseline(
    backbone,
    net_backbone,
    width,
    num_classes,
    blocks,
    train_batches,
    val_batches,
    n_train,
    target,
    max_epochs,
    learning_rate,
    seed,
    test_data,
    say,
):
    """Trains the full-depth network from scratch until `target` val accuracy."""
    keras.utils.set_random_seed(seed)
    shape = tuple(net_backbone.inputs[0].shape[1:])
    if isinstance(backbone, str):
        fresh = cifar_resnet(
            BACKBONES[backbone], width=width, input_shape=shape, name=backbone
        )
    elif isinstance(backbone, keras.Model):
        fresh = keras.models.clone_model(backbone)
    else:
        fresh = backbone(shape)
    net = GrowingNetwork(
        fresh, num_classes, head="dense", blocks=blocks, warm_start=False
    )
    model = net.model(net.num_blocks)
    _compile(model, learning_rate)
    macs = cost.count_macs(model)
    history = []
    reached = False
    started = time.time()
    for _ in range(max_epochs):
        model.fit(train_batches, epochs=1, verbose=0)
        history.append(round(_accuracy(model, val_batches), 6))
        say(f"  baseline epoch {len(history)}: val accuracy {history[-1]:.4f}")
        if history[-1] >= target:
            reached = True
            break
    out = {
        "target_val_accuracy": target,
        "reached": reached,
        "epochs": len(history),
        "train_images": int(len(history) * n_train),
        "train_macs_estimate": int(3 * macs * n_train * len(history)),
        "val_history": history,
        "val_accuracy": history[-1],
        "seconds": round(time.time() - started, 1),
    }
    if test_data is not None:
        out["test_accuracy"] = round(plain_accuracy(model, test_data), 6)
    return out


# The keyword defaults of `grow` (read from its signature: one source), for
# `keras-scan grow` and anyone who wants to show them.
GROW_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(grow).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
}
