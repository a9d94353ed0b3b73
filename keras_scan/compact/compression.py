"""`keras_scan.compress`: the public entry, from arguments to the report.

See `keras_scan.compact` for the method, step by step.
"""

import math
import time

import keras
import numpy as np

from keras_scan import cost
from keras_scan.backbones import taps as taps_lib
from keras_scan.checks import check_float, check_int
from keras_scan.compact import allocation, arguments, distillation
from keras_scan.compact import blocks as blocks_lib
from keras_scan.compact import student as student_lib
from keras_scan.scan_model import ScanModel

SUPPORTED = (
    "backbones made of residual blocks whose outputs are cut points: "
    "`keras_scan.backbones.cifar_resnet` (tested), and by the same graph rules "
    "Keras Applications ResNet/ResNetV2/MobileNetV2"
)


def compress(
    teacher,
    train_data,
    val_data,
    budget_flops=None,
    budget_params=None,
    keep=None,
    exclude=None,
    blockwise_epochs=1,
    finetune_epochs=2,
    batch_size=64,
    learning_rate=1e-3,
    temperature=4.0,
    alpha=0.5,
    probe_batches=20,
    probe_images=512,
    seed=0,
    verbose=0,
):
    """Compresses a backbone (or a SCAN model) by block-wise distillation.

    Replaces residual blocks of the teacher's backbone with cheaper candidates
    (narrower, depthwise-separable, or dropped) chosen greedily to meet a
    budget, distils each new block from its teacher block's features, then
    fine-tunes the student end to end with logit distillation. A SCAN model
    keeps its exits (same taps, heads warm-started from the teacher's) and each
    exit is distilled from the teacher's same exit. See the module docstring
    for the rule; `compress_with_report` also returns the report.

    Args:
        teacher: a trained `keras_scan.ScanModel`, or a single-input,
            single-output functional `keras.Model` (its output: logits,
            probabilities, or a feature map). Not modified.
        train_data: `(x, y)` numpy arrays (images 0..255 as the model expects,
            integer labels) or a `tf.data.Dataset` of `(image, label)`; read
            into memory.
        val_data: same; held-out images for the probe errors and the report.
        budget_flops: float in (0, 1). Student backbone MACs <= this fraction
            of the teacher backbone's MACs (counted by `keras_scan.cost`).
        budget_params: float in (0, 1). The same for parameters. Give exactly
            one of the two.
        keep: list of block names (`"stage1_block1"` or its output layer name)
            left exactly as in the teacher. Defaults to `None`.
        exclude: list of candidates never used (`"drop"`), or for one block
            (`"stage4_block2:drop"`). Defaults to `None`.
        blockwise_epochs: int >= 0. Epochs of block-wise feature distillation.
            Defaults to 1.
        finetune_epochs: int >= 0. Epochs of end-to-end logit distillation.
            Defaults to 2.
        batch_size: int. Defaults to 64.
        learning_rate: float. Adam learning rate of both phases. Defaults to 1e-3.
        temperature: float > 0. Distillation temperature T. Defaults to 4.0.
        alpha: float in [0, 1]. Weight of the KL term vs cross-entropy.
            Defaults to 0.5.
        probe_batches: int >= 1. Batches each candidate is distilled for before
            its error is measured (the allocation's loss estimate). Defaults to 20.
        probe_images: int >= 1. Validation images the probe errors are measured
            on. Defaults to 512.
        seed: int. Seeds Keras (`keras.utils.set_random_seed`) and batching.
            Defaults to 0.
        verbose: int. 1 prints one line per phase. Defaults to 0.

    Returns:
        The student: a `keras_scan.ScanModel` for a SCAN teacher, else a
        functional `keras.Model`, with the teacher's input and outputs.

    Example:
    ```python
    student = keras_scan.compress(
        teacher, (x_train, y_train), (x_val, y_val), budget_flops=0.5)
    keras_scan.cost.count_macs(student.backbone)  # <= 0.5 x the teacher's
    ```

    Reference: Ahmed et al., "Compact CNN Structure Learning by Knowledge
    Distillation", arXiv 2104.09191.
    """
    student, _ = compress_with_report(
        teacher,
        train_data,
        val_data,
        budget_flops=budget_flops,
        budget_params=budget_params,
        keep=keep,
        exclude=exclude,
        blockwise_epochs=blockwise_epochs,
        finetune_epochs=finetune_epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        temperature=temperature,
        alpha=alpha,
        probe_batches=probe_batches,
        probe_images=probe_images,
        seed=seed,
        verbose=verbose,
    )
    return student


def compress_with_report(
    teacher,
    train_data,
    val_data,
    budget_flops=None,
    budget_params=None,
    keep=None,
    exclude=None,
    blockwise_epochs=1,
    finetune_epochs=2,
    batch_size=64,
    learning_rate=1e-3,
    temperature=4.0,
    alpha=0.5,
    probe_batches=20,
    probe_images=512,
    seed=0,
    verbose=0,
    test_data=None,
    scratch_baseline=False,
):
    """`compress`, returning `(student, report)`.

    Args:
        (as `compress`, plus:)
        test_data: optional `(x, y)`; accuracies on it are added to the report.
        scratch_baseline: bool. Also train the student's architecture from a
            random initialisation for `blockwise_epochs + finetune_epochs`
            epochs with the same optimizer and its plain loss (cross-entropy;
            SCAN's own self-distillation for a SCAN model) and report its
            accuracy: the benefit of distillation, measured side by side.
            Defaults to `False`.

    Returns:
        `(student, report)`; `report` is a JSON-ready dict: budget, teacher
        and student MACs/params/accuracy (per exit for SCAN models), block
        choices with every candidate's cost and probe error, feature errors
        before/after the block-wise stage, timings.

    Example:
    ```python
    student, report = keras_scan.compact.compress_with_report(
        teacher, (x, y), (xv, yv), budget_params=0.3)
    report["student"]["params"], report["blocks"][0]["choice"]
    ```
    """
    # --- arguments (all checked before any work) ---
    budget_arg, fraction = arguments.check_budget(budget_flops, budget_params)
    metric = "macs" if budget_arg == "budget_flops" else "params"
    blockwise_epochs = check_int("blockwise_epochs", blockwise_epochs, 0)
    finetune_epochs = check_int("finetune_epochs", finetune_epochs, 0)
    batch_size = check_int("batch_size", batch_size, 1)
    probe_batches = check_int("probe_batches", probe_batches, 1)
    probe_images = check_int("probe_images", probe_images, 1)
    seed = check_int("seed", seed, 0)
    learning_rate = check_float("learning_rate", learning_rate, 0.0, low_open=True)
    temperature = check_float("temperature", temperature, 0.0, low_open=True)
    alpha = check_float("alpha", alpha, 0.0, 1.0)
    is_scan = isinstance(teacher, ScanModel)
    if not is_scan:
        taps_lib.check_functional(teacher, "teacher")
        if len(teacher.outputs) != 1:
            raise ValueError(
                "`teacher` must be a keras_scan.ScanModel or a functional model "
                f"with one output. Received: teacher={teacher.name!r} with "
                f"{len(teacher.outputs)} outputs"
            )
    x_train, y_train = arguments.as_arrays(train_data, "train_data")
    x_val, y_val = arguments.as_arrays(val_data, "val_data")
    test = None if test_data is None else arguments.as_arrays(test_data, "test_data")
    expected = tuple(teacher.inputs[0].shape[1:])
    for arg, x in (("train_data", x_train), ("val_data", x_val)):
        if tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"`{arg}` images must have the teacher's input shape {expected}. "
                f"Received: images of shape {tuple(x.shape[1:])}"
            )

    def log(message):
        if verbose:
            print(f"compress: {message}", flush=True)

    keras.utils.set_random_seed(seed)
    seconds = {}

    # --- blocks, candidates, costs ---
    frozen = distillation.clone_model(teacher)
    frozen.trainable = False
    backbone = frozen.backbone if is_scan else frozen
    blocks = blocks_lib.find_blocks(backbone)
    if not blocks:
        raise ValueError(
            f"`teacher` has no residual blocks to compress; `compress` supports "
            f"{SUPPORTED}. Received: teacher={teacher.name!r} (backbone "
            f"{backbone.name!r})"
        )
    pinned, excluded = allocation.resolve_keep_exclude(blocks, keep, exclude)
    nodes = blocks_lib.graph_nodes(backbone)
    bn_momentum = student_lib.batchnorm_momentum(backbone)
    teacher_cost = {
        "macs": cost.count_macs(backbone),
        "params": cost.count_params(backbone),
    }
    candidates = allocation.candidate_table(
        backbone, blocks, nodes, pinned, excluded, metric, bn_momentum
    )
    limit = fraction * teacher_cost[metric]
    smallest = teacher_cost[metric] - sum(
        c["keep"][metric] - min(e[metric] for e in c.values())
        for c in candidates.values()
    )
    if smallest > limit:
        extra = []
        if pinned:
            extra.append(f"keep={sorted(pinned)}")
        if exclude:
            extra.append(f"exclude={arguments.names_list(exclude, 'exclude')}")
        raise ValueError(
            f"`{budget_arg}` cannot be met: the smallest reachable student has "
            f"{smallest / teacher_cost[metric]:.4f} of the teacher backbone's "
            f"{'MACs' if metric == 'macs' else 'parameters'} ({int(smallest)} of "
            f"{teacher_cost[metric]}) with every block at its cheapest candidate"
            + (f" ({', '.join(extra)})" if extra else "")
            + f". Received: {budget_arg}={fraction}"
        )

    # --- teacher features for the block-wise distillation ---
    feature_tensors, index = [], {}
    for b in blocks:
        for t in (b.input_tensor, b.output_tensor):
            if id(t) not in index:
                index[id(t)] = len(feature_tensors)
                feature_tensors.append(t)
    features = keras.Model(backbone.inputs[0], feature_tensors, name="teacher_blocks")
    features.trainable = False
    n_probe = min(probe_images, len(x_val))
    x_probe = x_val[:n_probe]
    sample = distillation.predict_arrays(
        features, x_train[: min(256, len(x_train))], batch_size
    )
    scales = {
        b.name: float(np.mean(np.square(sample[index[id(b.output_tensor)]]))) + 1e-8
        for b in blocks
    }
    del sample

    def distiller_for(pairs):
        spec, models = [], []
        for b, kind in pairs:
            spec.append(
                (
                    f"{b.name}/{kind}",
                    index[id(b.input_tensor)],
                    index[id(b.output_tensor)],
                    scales[b.name],
                )
            )
            models.append(candidates[b.name][kind]["model"])
        return distillation.BlockDistiller(
            features, models, spec, name="block_distiller"
        ), spec

    # --- probe: every candidate distilled for a few batches, errors measured ---
    t0 = time.time()
    probe_pairs = [
        (b, kind) for b in blocks for kind in candidates[b.name] if kind != "keep"
    ]
    errors = {b.name: {"keep": 0.0} for b in blocks}
    initial = {}
    if probe_pairs:
        distiller, spec = distiller_for(probe_pairs)
        initial = distillation.feature_errors(distiller, spec, x_probe, batch_size)
        if distiller.trainable_weights:
            distillation.fit(
                distiller,
                x_train,
                y_train,
                batch_size,
                seed,
                steps=min(probe_batches, math.ceil(len(x_train) / batch_size)),
                learning_rate=learning_rate,
                eager=True,
            )
        for key, err in distillation.feature_errors(
            distiller, spec, x_probe, batch_size
        ).items():
            name, kind = key.split("/")
            errors[name][kind] = err
    seconds["probe"] = time.time() - t0
    log(
        f"probe: {len(probe_pairs)} candidates over {len(blocks)} blocks, "
        f"{probe_batches} batches, {seconds['probe']:.1f} s"
    )

    # --- allocation ---
    choices = allocation.allocate(
        blocks, candidates, errors, metric, teacher_cost[metric], limit
    )
    log("choices: " + ", ".join(f"{n}={k}" for n, k in choices.items() if k != "keep"))

    # --- block-wise distillation of the chosen new blocks ---
    t0 = time.time()
    chosen = [(b, choices[b.name]) for b in blocks if choices[b.name] != "keep"]
    after = {}
    if chosen:
        distiller, spec = distiller_for(chosen)
        if distiller.trainable_weights and blockwise_epochs > 0:
            distillation.fit(
                distiller,
                x_train,
                y_train,
                batch_size,
                seed + 1,
                epochs=blockwise_epochs,
                learning_rate=learning_rate,
            )
        after = distillation.feature_errors(distiller, spec, x_probe, batch_size)
    seconds["blockwise"] = time.time() - t0
    log(
        f"block-wise distillation: {blockwise_epochs} epoch(s), {seconds['blockwise']:.1f} s"
    )

    # --- the student ---
    trained = [candidates[b.name][k]["model"] for b, k in chosen]
    student_backbone = student_lib.build_backbone(
        backbone, blocks, choices, trained, bn_momentum
    )
    student_cost = {
        "macs": cost.count_macs(student_backbone),
        "params": cost.count_params(student_backbone),
    }
    if student_cost[metric] > limit:
        raise RuntimeError(
            f"Internal error: the student backbone has {student_cost[metric]} "
            f"{metric}, over the budget {limit:.0f}; please report this."
        )
    if is_scan:
        student = student_lib.scan_student(frozen, student_backbone)
        kind, names = "logits", list(student.exit_names)
    else:
        student = student_backbone
        kind, names = distillation.output_kind(frozen), None

    # --- end-to-end logit distillation ---
    before_finetune = distillation.exit_accuracies(student, x_val, y_val, 256, kind)
    t0 = time.time()
    if finetune_epochs > 0:
        tuner = distillation.LogitDistiller(
            student, frozen, names, kind, alpha, temperature, name="logit_distiller"
        )
        distillation.fit(
            tuner,
            x_train,
            y_train,
            batch_size,
            seed + 2,
            epochs=finetune_epochs,
            learning_rate=learning_rate,
        )
    seconds["finetune"] = time.time() - t0
    log(f"fine-tuning: {finetune_epochs} epoch(s), {seconds['finetune']:.1f} s")

    # --- report ---
    def describe(model, costs):
        entry = {
            "name": model.name,
            "macs": int(costs["macs"]),
            "params": int(costs["params"]),
            "model_macs": int(cost.count_macs(model)),
            "model_params": int(cost.count_params(model)),
            "accuracy": {
                "val": distillation.exit_accuracies(model, x_val, y_val, 256, kind)
            },
        }
        if test is not None:
            entry["accuracy"]["test"] = distillation.exit_accuracies(
                model, *test, 256, kind
            )
        if isinstance(model, ScanModel):
            entry["exits"] = model.exit_info
        return entry

    report = {
        "method": "block-wise knowledge distillation (Ahmed et al., arXiv 2104.09191)",
        "budget": {
            "argument": budget_arg,
            "metric": metric,
            "fraction": fraction,
            "limit": float(limit),
            "teacher": int(teacher_cost[metric]),
            "student": int(student_cost[metric]),
            "student_fraction": student_cost[metric] / teacher_cost[metric],
            "smallest_reachable_fraction": smallest / teacher_cost[metric],
            "counted_on": "backbone (keras_scan.cost, batch size 1)",
        },
        "allocation": allocation.ALLOCATION_RULE,
        "teacher": describe(frozen, teacher_cost),
        "student": dict(
            describe(student, student_cost),
            accuracy_before_finetune={"val": before_finetune},
        ),
        "macs_ratio": student_cost["macs"] / teacher_cost["macs"],
        "params_ratio": student_cost["params"] / teacher_cost["params"],
        "blocks": [
            _block_report(b, choices[b.name], candidates, errors, initial, after)
            | {"pinned": b.name in pinned}
            for b in blocks
        ],
        "settings": {
            "blockwise_epochs": blockwise_epochs,
            "finetune_epochs": finetune_epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "temperature": temperature,
            "alpha": alpha,
            "probe_batches": probe_batches,
            "probe_images": n_probe,
            "keep": sorted(pinned),
            "exclude": arguments.names_list(exclude, "exclude"),
            "seed": seed,
            "train_images": int(len(x_train)),
            "val_images": int(len(x_val)),
            "test_images": None if test is None else int(len(test[0])),
        },
        "seconds": seconds,
        "scratch": None,
    }

    if scratch_baseline:
        report["scratch"] = distillation.scratch_baseline(
            student,
            kind,
            x_train,
            y_train,
            batch_size,
            seed,
            blockwise_epochs + finetune_epochs,
            learning_rate,
            (x_val, y_val),
            test,
        )
        seconds["scratch"] = report["scratch"]["seconds"]
    return student, report


def _block_report(block, choice, candidates, errors, initial, after):
    """The report entry of one block: choice, costs, errors."""
    table = candidates[block.name]
    key = f"{block.name}/{choice}"
    return {
        "name": block.name,
        "output_layer": block.output_layer,
        "input_shape": list(block.input_shape),
        "output_shape": list(block.output_shape),
        "choice": choice,
        "macs": {
            "teacher": int(table["keep"]["macs"]),
            "student": int(table[choice]["macs"]),
        },
        "params": {
            "teacher": int(table["keep"]["params"]),
            "student": int(table[choice]["params"]),
        },
        "candidates": {
            k: {
                "macs": int(e["macs"]),
                "params": int(e["params"]),
                "probe_error": errors[block.name].get(k),
            }
            for k, e in table.items()
        },
        "feature_error": None
        if choice == "keep"
        else {
            "initial": initial.get(key),
            "after_probe": errors[block.name][choice],
            "after_blockwise": after.get(key),
        },
    }
