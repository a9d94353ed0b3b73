"""Cutting a trained SCAN model at an exit: the instant optimal depth.

`cut_at_exit(scan_model, exit_name)` keeps the backbone prefix and one exit of
a trained SCAN model as a plain `image -> logits` model;
`from_scan_model(scan_model, target_accuracy, ...)` picks the shallowest exit
that reaches the target on the validation split and cuts there (`keras-scan
grow --from-run RUN`).
"""

import keras

from keras_scan import cost, inference
from keras_scan.depth.blocks import BLOCK_NAME
from keras_scan.depth.checks import check_target
from keras_scan.depth.report import summary
from keras_scan.depth.splits import check_split, plain_accuracy

__all__ = [
    "cut_at_exit",
    "copy_model",
    "select_exit",
    "validation_accuracies",
    "from_scan_model",
]


def copy_model(model, name=None):
    """An independent copy of a functional model (same graph, copied weights)."""
    config = model.get_config()
    if name is not None:
        config["name"] = name
    copy = keras.Model.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def cut_at_exit(scan_model, exit_name, copy=True):
    """The backbone prefix and one exit of a SCAN model, as a plain model.

    Args:
        scan_model: a `keras_scan.ScanModel`.
        exit_name: str. One of `scan_model.exit_names` (`"exit_0"`, ...,
            `"final"`).
        copy: bool. `True` gives an independent model with copied weights;
            `False` shares the weights with `scan_model`. Defaults to `True`.

    Returns:
        A functional `keras.Model` `image -> logits` holding only the layers on
        the way to that exit (the deeper blocks and other heads are gone).

    Example:
    ```python
    model = keras.saving.load_model("runs/fm18/model.keras")
    small = keras_scan.cut_at_exit(model, "exit_1")
    small.save("exit_1.keras")
    ```
    """
    from keras_scan.scan_model import ScanModel

    if not isinstance(scan_model, ScanModel):
        raise TypeError(
            "`scan_model` must be a keras_scan.ScanModel (with exits). Received: "
            f"scan_model of type {type(scan_model).__name__}"
        )
    if exit_name not in scan_model.exit_names:
        raise ValueError(
            f"`exit_name` must be one of {scan_model.exit_names}. "
            f"Received: exit_name={exit_name!r}"
        )
    sub = scan_model.exit_model(exit_name)
    name = f"{scan_model.name}_cut_{exit_name}"
    if not copy:
        return keras.Model(sub.inputs, sub.outputs, name=name)
    return copy_model(sub, name=name)


def select_exit(accuracies, target_accuracy, exit_names=None):
    """The shallowest exit whose accuracy reaches the target.

    Args:
        accuracies: dict exit name -> accuracy (validation split).
        target_accuracy: float in (0, 1].
        exit_names: list of exit names, shallowest first. Defaults to the
            dict's order.

    Returns:
        `(exit_name, reached)`; when no exit reaches the target, the deepest
        exit and `False`.
    """
    target = check_target(target_accuracy)
    names = list(exit_names or accuracies)
    missing = [n for n in names if n not in accuracies]
    if missing:
        raise ValueError(
            f"`accuracies` must give every exit {names}; missing {missing}. "
            f"Received: accuracies={accuracies!r}"
        )
    for name in names:
        if float(accuracies[name]) >= target:
            return name, True
    return names[-1], False


def _accuracy_table(entries, exit_names):
    """Per-exit accuracy from one eval.json layout, or None."""
    if isinstance(entries, list):
        out = {}
        for e in entries:
            if isinstance(e, dict) and "name" in e and "accuracy" in e:
                out[e["name"]] = float(e["accuracy"])
        entries = out
    if not isinstance(entries, dict):
        return None
    out = {}
    for name in exit_names:
        value = entries.get(name)
        if isinstance(value, dict):
            value = value.get("accuracy")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out if len(out) == len(exit_names) else None


def validation_accuracies(eval_payload, exit_names):
    """Per-exit validation accuracy read from an `eval.json` payload, or None.

    Only numbers that are stated to be on the validation split count (the
    exit must be chosen on validation data, never on test). Understood
    layouts: a top-level `"split"` of `"val"`/`"validation"` with the
    accuracies under `"exits"` (a list of `{"name", "accuracy"}` or a dict
    name -> accuracy or name -> `{"accuracy"}`) or `"accuracy"` (a dict), or
    the same under a top-level `"val"` / `"validation"` key.

    Args:
        eval_payload: the parsed JSON.
        exit_names: list of exit names that must all be present.

    Returns:
        dict exit name -> accuracy, or None.
    """
    if not isinstance(eval_payload, dict):
        return None
    candidates = []
    if str(eval_payload.get("split", "")).lower() in ("val", "validation"):
        candidates.append(eval_payload)
    for key in ("val", "validation"):
        if isinstance(eval_payload.get(key), dict):
            candidates.append(eval_payload[key])
    for payload in candidates:
        for key in ("exits", "accuracy", "per_exit"):
            table = _accuracy_table(payload.get(key), exit_names)
            if table is not None:
                return table
    return None


def from_scan_model(
    scan_model,
    target_accuracy,
    *,
    val_data=None,
    val_accuracies=None,
    test_data=None,
    log=print,
):
    """Cuts a trained SCAN model at the shallowest exit reaching the target.

    Args:
        scan_model: a trained `keras_scan.ScanModel`.
        target_accuracy: float in (0, 1]. Validation accuracy to reach.
        val_data: `(x, y)` or an unbatched tf.data.Dataset: the exits'
            validation accuracies are measured on it when `val_accuracies`
            is None.
        val_accuracies: optional dict exit name -> validation accuracy (e.g.
            from `eval.json`).
        test_data: optional split: test accuracy of the cut and the full model.
        log: callable taking a str, or None. Defaults to `print`.

    Returns:
        `(model, report)` like `grow`: the cut model (`cut_at_exit`, copied
        weights) and a JSON-ready report.
    """
    from keras_scan.scan_model import ScanModel

    target = check_target(target_accuracy)
    if not isinstance(scan_model, ScanModel):
        raise TypeError(
            "`scan_model` must be a keras_scan.ScanModel (a model with exits, "
            "as `keras-scan train` writes). Received: scan_model of type "
            f"{type(scan_model).__name__}"
        )
    say = log or (lambda _: None)
    names = scan_model.exit_names
    source = "given"
    if val_accuracies is None:
        if val_data is None:
            raise ValueError(
                "`val_data` or `val_accuracies` must be given to choose an exit "
                "on the validation split. Received: both None"
            )
        val_accuracies = inference.exit_accuracies(
            scan_model, check_split("val_data", val_data), arg="val_data"
        )
        source = "measured"
    chosen, reached = select_exit(val_accuracies, target, names)
    cut = cut_at_exit(scan_model, chosen)
    full = cut_at_exit(scan_model, names[-1])
    info = {i["name"]: i for i in scan_model.exit_info}
    # Block outputs by name, in graph order (not `residual_blocks`: a
    # ScanModel's stage sub-models add nodes to its backbone's layers).
    blocks = [
        layer.name
        for layer in scan_model.backbone.layers
        if BLOCK_NAME.fullmatch(layer.name)
    ]
    layer = info[chosen]["layer"]
    report = {
        "mode": "from_run",
        "target_accuracy": target,
        "reached": reached,
        "stopped_because": "target" if reached else "full_depth",
        "exit": chosen,
        "block": layer,
        "depth": blocks.index(layer) + 1 if layer in blocks else None,
        "num_blocks": len(blocks) or None,
        "val_accuracy": round(float(val_accuracies[chosen]), 6),
        "val_accuracies": {n: round(float(val_accuracies[n]), 6) for n in names},
        "val_accuracies_source": source,
        "exits": [
            {
                "name": n,
                "block": info[n]["layer"],
                "depth": blocks.index(info[n]["layer"]) + 1
                if info[n]["layer"] in blocks
                else None,
                "val_accuracy": round(float(val_accuracies[n]), 6),
                "standalone_macs": info[n]["standalone_macs"],
                "params": info[n]["params"],
            }
            for n in names
        ],
        **cost.compare_costs(cost.model_costs(cut), cost.model_costs(full)),
    }
    if test_data is not None:
        test_data = check_split("test_data", test_data)
        report["test_accuracy"] = round(plain_accuracy(cut, test_data), 6)
        report["full_test_accuracy"] = round(plain_accuracy(full, test_data), 6)
    say(summary(report))
    return cut, report
