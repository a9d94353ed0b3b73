"""Per-exit evaluation: logits of every exit, accuracy, costs, a plain table."""

import numpy as np

from keras_scan import inference
from keras_scan.exit_rule import softmax
from keras_scan.scan_model import FINAL, ScanModel


def numpy_batches(split, batch_size):
    """Yields `(images, labels)` numpy batches of a split, in order.

    The training side's iteration (`recalibrate_batchnorm`): any model input,
    not only images, and no checks against a model. The evaluation reads
    `keras_scan.batches.checked_batches` (through `predict_exits`).

    Args:
        split: `(x, y)` arrays or a `tf.data.Dataset` of `(image, label)`
            (unbatched, or already batched).
        batch_size: int. Batch size of arrays and of an unbatched dataset.
    """
    if isinstance(split, (tuple, list)):
        x, y = split
        for i in range(0, len(y), batch_size):
            yield (
                np.asarray(x[i : i + batch_size], np.float32),
                np.asarray(y[i : i + batch_size]),
            )
        return
    ds = split
    if hasattr(ds, "element_spec") and ds.element_spec[0].shape.rank == 3:
        ds = ds.batch(batch_size)
    for x, y in ds.as_numpy_iterator() if hasattr(ds, "as_numpy_iterator") else ds:
        yield np.asarray(x, np.float32), np.asarray(y)


def predict_exits(model, split, batch_size=128):
    """Logits of every exit on a split, with its labels.

    One forward pass in inference mode (`keras_scan.inference.collect_logits`,
    the pass the threshold search also reads), over the batches of
    `keras_scan.batches.checked_batches`.

    Args:
        model: a `ScanModel` or a single-output model (treated as `"final"`).
        split: `(x, y)` arrays or a `tf.data.Dataset` of `(image, label)`
            (unbatched, or already batched).
        batch_size: int. Defaults to 128.

    Returns:
        `(logits, labels)`: a dict exit name -> float32 array (N, classes), and
        an int64 array (N,).
    """
    logits, labels = inference.collect_logits(
        model, split, batch_size, labels_needed=True, arg="split"
    )
    return dict(zip(inference.exit_names(model), logits)), labels


def evaluate_model(model, split, batch_size=128):
    """Per-exit accuracy, ensemble accuracy, MACs and params of a model.

    The accuracy of exit `k` is the share of examples whose argmax logit is the
    label (what `model.evaluate` reports as `<exit>_accuracy`); the ensemble
    averages the softmax probabilities of all exits (`keras_scan.exit_rule.softmax`,
    the threshold search's). Costs come from the graph
    (`ScanModel.exit_info`): `macs` is the cost of answering at this exit when
    the exits are tried in order, `standalone_macs` the exit alone.

    Args:
        model: a `ScanModel`, or a plain single-output classifier (e.g. a
            `--no-exits` baseline), reported as one `"final"` exit.
        split: `(x, y)` arrays or a `tf.data.Dataset` of `(image, label)`
            (unbatched, or already batched).
        batch_size: int. Defaults to 128.

    Returns:
        A JSON-compatible dict: `num_examples`, `majority_share` (the share
        of the most common label: the accuracy of always answering it),
        `exits` (a list of dicts with `name`, `layer`, `accuracy`, `macs`,
        `standalone_macs`, `params`, ...) and `ensemble` (`accuracy`, `macs`,
        `params`; `None` without exits).

    Example:
    ```python
    result = keras_scan.training.evaluate_model(model, (x_test, y_test))
    print(keras_scan.training.format_table(result))
    ```
    """
    from keras_scan import cost

    logits, labels = predict_exits(model, split, batch_size)
    accuracy = {
        n: float(np.mean(np.argmax(z, axis=-1) == labels)) for n, z in logits.items()
    }
    if isinstance(model, ScanModel):
        exits = [
            dict(info, accuracy=accuracy[info["name"]]) for info in model.exit_info
        ]
        probs = np.mean([softmax(z) for z in logits.values()], axis=0)
        ensemble = {
            "accuracy": float(np.mean(np.argmax(probs, axis=-1) == labels)),
            "macs": exits[-1]["macs"],
            "params": int(cost.count_params(model)),
        }
    else:
        macs, params = int(cost.count_macs(model)), int(cost.count_params(model))
        exits = [
            {
                "name": FINAL,
                "layer": model.layers[-1].name,
                "accuracy": accuracy[FINAL],
                "macs": macs,
                "standalone_macs": macs,
                "head_macs": 0,
                "params": params,
            }
        ]
        ensemble = None
    return {
        "num_examples": int(len(labels)),
        "majority_share": float(np.bincount(labels).max() / len(labels)),
        "exits": exits,
        "ensemble": ensemble,
    }


def format_table(result):
    """A plain-text table of an `evaluate_model` result."""
    lines = [
        f"{'exit':10} {'layer':26} {'accuracy':>9} {'MACs':>10} "
        f"{'MACs alone':>11} {'params':>10}"
    ]
    for e in result["exits"]:
        lines.append(
            f"{e['name']:10} {e['layer'][:26]:26} {e['accuracy']:9.4f} "
            f"{_human(e['macs']):>10} {_human(e['standalone_macs']):>11} "
            f"{_human(e['params']):>10}"
        )
    ens = result.get("ensemble")
    if ens:
        lines.append(
            f"{'ensemble':10} {'(mean of all exits)':26} {ens['accuracy']:9.4f} "
            f"{_human(ens['macs']):>10} {'':>11} {_human(ens['params']):>10}"
        )
    n = result.get("num_examples")
    where = " ".join(
        str(result[k]) for k in ("dataset", "split") if result.get(k) is not None
    )
    lines.append(f"({n} examples{' of ' + where if where else ''}; MACs at batch 1)")
    lines += [f"warning: {line}" for line in unlearned_exits(result)]
    return "\n".join(lines)


def unlearned_exits(result, margin=0.01):
    """One line per exit that answers no better than the most common label.

    An exit whose accuracy is within `margin` of `result["majority_share"]`
    (always answering the most common label) has not learned: a run too short
    for its backbone, or a learning rate too high for it. Results written
    before `majority_share` existed give no lines.
    """
    share = result.get("majority_share")
    if share is None:
        return []
    return [
        f"exit {e['name']} is right on {100 * e['accuracy']:.2f}% of these "
        f"examples, no better than always answering the most common label "
        f"({100 * share:.2f}%): it has not learned (too few steps for this "
        "backbone, or too high a learning rate: see --epochs, --lr)"
        for e in result["exits"]
        if e["accuracy"] <= share + margin
    ]


def _human(n):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))
