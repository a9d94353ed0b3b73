"""`train`: the SCAN paper's recipe end to end, into a run folder.

`train(out, **config)` is what `keras-scan train` runs, usable from Python
without the CLI: it resolves the configuration (defaults, then a YAML/JSON
file, then explicit arguments), loads the data, builds the model, trains it
with the paper's recipe and writes a run folder (see
`keras_scan.training.run_folder` and `keras_scan.runs`). The recipe's pieces
are `keras_scan.training.schedule` (optimizer) and `keras_scan.training.recipe`
(batch norm, distillation warm-up); every setting is overridable
(`keras_scan.training.config`).

Several devices or machines: `distribute="data-parallel"` or `"multi-worker"`
(`keras-scan train --distribute`) trains under `keras_scan.distribution`, with
`batch_size` the global batch; only the chief writes the run folder (see
`keras_scan.distribute`).
"""

import contextlib
import dataclasses
import math
import pathlib
import shutil
import sys

import keras

from keras_scan import data, distribute, runs
from keras_scan.backbones import registry
from keras_scan.scan_model import ScanModel
from keras_scan.training import recipe, run_folder
from keras_scan.training.config import check_limit, resolve_config
from keras_scan.training.evaluation import evaluate_model
from keras_scan.training.model_factory import compile_model, make_model
from keras_scan.training.schedule import make_optimizer, scaled_learning_rate


def _uses_tf_data(splits):
    return keras.backend.backend() == "tensorflow" or not isinstance(
        splits.train, tuple
    )


def make_pipelines(splits, config, epoch=0, distribution=None):
    """Batched train (shuffled; crop + flip with `augment`) and validation inputs.

    `tf.data` on the TensorFlow backend (or when the data is a `tf.data`
    pipeline), else `keras_scan.data.NumpyDataset` (no TensorFlow, e.g. JAX).
    Every epoch's order and augmentation depend on `(seed, epoch)` only, and
    the training input starts at `epoch`: a run resumed there sees exactly the
    batches an uninterrupted run saw. The tf.data training input holds the
    epochs from `epoch` to the last one: give `fit` `steps_per_epoch`
    (`steps_per_epoch()`).

    Under a `distribution` every training step takes a full global batch (the
    last partial batch of an epoch is dropped); on JAX the last validation
    batch is padded to a multiple of the replicas with zero-weight rows, and
    each process of a multi-worker job feeds its own part of every batch.
    """
    batch_size, seed = config["batch_size"], config["seed"]
    drop = distribution is not None
    if _uses_tf_data(splits):
        train = data.make_tf_dataset(
            splits.train,
            batch_size,
            training=True,
            augment=config["augment"],
            seed=seed,
            drop_remainder=drop,
            epochs=range(epoch, max(epoch + 1, config["epochs"])),
        )
        val = data.make_tf_dataset(splits.val, batch_size, training=False)
    else:
        shard = distribution.process_shard if drop else (0, 1)
        train = data.NumpyDataset(
            *splits.train,
            batch_size,
            training=True,
            augment=config["augment"],
            seed=seed,
            drop_remainder=drop,
            process_shard=shard,
            first_epoch=epoch,
        )
        val = data.NumpyDataset(
            *splits.val,
            batch_size,
            training=False,
            multiple_of=distribution.num_replicas if drop else 1,
            process_shard=shard,
        )
    return train, val


def steps_per_epoch(splits, batch_size, drop_remainder=False):
    """Training steps in one epoch of `splits.train` (`make_pipelines`' batches).

    With `drop_remainder` (distributed training) the last partial batch is not
    a step, and fewer examples than one batch are refused.
    """
    n = data.num_examples(splits.train)
    if n is None:  # a tf.data pipeline of unknown length: count once
        n = sum(1 for _ in splits.train)
    if drop_remainder:
        if n < batch_size:
            raise ValueError(
                f"`batch_size` must not exceed the {n} training examples in "
                "distributed training (each step takes a full global batch). "
                f"Received: batch_size={batch_size}"
            )
        return n // batch_size
    return max(1, math.ceil(n / batch_size))


def _tensorboard(folder, say):
    import importlib.util

    # Keras' TensorBoard callback writes through tf.summary, which needs the
    # `tensorboard` package (TensorFlow 2.21 no longer installs it).
    if importlib.util.find_spec("tensorboard") is None:
        logs = run_folder.LOGS
        say(f"note: `pip install tensorboard` to get TensorBoard logs in {logs}/.")
        return []
    return [
        keras.callbacks.TensorBoard(
            log_dir=str(folder / run_folder.LOGS), write_graph=False
        )
    ]


class TrainingStopped(RuntimeError):
    """Training ended before the last epoch (e.g. the loss became NaN)."""


@dataclasses.dataclass
class TrainResult:
    """What `train` did.

    Attributes:
        run: `pathlib.Path` of the run folder.
        status: str. `"trained"`, or `"up-to-date"` when the run folder already
            held a finished run with the same configuration.
        config: dict. The resolved configuration (as in `config.json`).
        history: list of dicts, one per epoch (as in `history.csv`).
        evaluation: dict or `None`. The test evaluation (as in `eval.json`).
        model: the trained model (best by `val_final_accuracy`), or `None`
            when nothing was trained.
    """

    run: pathlib.Path
    status: str
    config: dict
    history: list
    evaluation: dict = None
    model: object = None


def train(
    out,
    *,
    config_file=None,
    resume=False,
    overwrite=False,
    evaluate=True,
    download=False,
    callbacks=None,
    verbose="auto",
    **config,
):
    """Trains a SCAN model (or the `no_exits` baseline) into a run folder.

    Rerunning the same call after an interruption continues from the last
    finished epoch. A run folder with a different configuration is refused
    unless `resume` (continue it with the new settings, e.g. more epochs; the
    model-shaping settings must match) or `overwrite` (train from scratch and
    replace it when done). Nothing is written before the configuration, the data
    and the model are checked.

    Args:
        out: str or path. The run folder.
        config_file: str or path of a YAML or JSON file of settings, optional.
        resume: bool. Continue a run whose configuration differs. Defaults to
            `False`.
        overwrite: bool. Replace a finished run. Defaults to `False`.
        evaluate: bool. Evaluate the best model on the test split into
            `eval.json`. Defaults to `True`.
        download: bool. Let tensorflow-datasets / Keras download missing data.
            Defaults to `False`.
        callbacks: list of extra `keras.callbacks.Callback`, optional.
        verbose: `"auto"` (progress bar on a terminal, one line per epoch
            otherwise), 0, 1 or 2. Defaults to `"auto"`.
        **config: settings, see `DEFAULTS` (`backbone`, `dataset`, `epochs`,
            `batch_size`, `lr`, `width`, `limit`, ...).

    Returns:
        A `TrainResult`.

    Example:
    ```python
    result = keras_scan.training.train(
        "runs/fm", backbone="cifar_resnet18", width=16, dataset="fashion_mnist",
        epochs=3, limit=4000)
    print(keras_scan.training.format_table(result.evaluation))
    ```
    """
    config = resolve_config(config, config_file)
    run = pathlib.Path(out).expanduser()
    work = run_folder.work_folder(run)
    plan = run_folder.plan(run, work, config, resume, overwrite)
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    say = print if verbose else (lambda *a, **k: None)
    if plan == "done":
        say(
            f"{run} already holds a finished run with this configuration; nothing "
            "to do (pass --overwrite to train again)."
        )
        evaluation = (
            runs.read_json(run / runs.EVAL) if (run / runs.EVAL).is_file() else None
        )
        return TrainResult(
            run,
            "up-to-date",
            run_folder.read_config(run),
            run_folder.read_history(run / runs.HISTORY),
            evaluation,
        )

    if plan == "extend":
        finished = len(run_folder.read_history(run / runs.HISTORY))
        if config["epochs"] <= finished:
            raise ValueError(
                f"`epochs` must exceed the {finished} epochs {str(run)!r} already "
                f"trained to continue it with --resume. Received: "
                f"epochs={config['epochs']}"
            )

    # Check the devices, the data and the model before writing anything.
    dist = None
    if config["distribute"] is not None:
        dist = distribute.distribution(config["distribute"])
        dist.check_batch_size(config["batch_size"])
        say(
            f"Distributed: {dist.mode} on {dist.backend}, {dist.num_replicas} "
            f"replicas (worker {dist.worker_index} of {dist.num_workers}), global "
            f"batch {config['batch_size']} = {config['batch_size'] // dist.num_replicas}"
            " per replica."
        )
    scope = dist if dist is not None else contextlib.nullcontext()
    keras.utils.set_random_seed(config["seed"])
    splits = data.load_dataset(
        config["dataset"],
        config["image_size"],
        channels=config["channels"],
        val_fraction=config["val_fraction"],
        seed=config["seed"],
        limit=config["limit"],
        data_dir=config["data_dir"],
        download=download,
    )
    for note in splits.notes:
        say(f"note: {note}")
    steps = steps_per_epoch(splits, config["batch_size"], drop_remainder=bool(dist))
    with scope:
        model = make_model(config, splits.num_classes)
        if dist is not None:
            dist.prepare(model)
    check_limit(config, splits.num_classes)
    resolved = dict(
        config,
        scaled_lr=scaled_learning_rate(config["lr"], config["batch_size"]),
        num_classes=splits.num_classes,
        class_names=list(splits.class_names),
        preprocessing=registry.preprocessing(config["backbone"]),
        steps_per_epoch=steps,
        sizes=splits.sizes(),
        backend=keras.backend.backend(),
        keras_scan_version=_version(),
        num_replicas=dist.num_replicas if dist else 1,
        num_workers=dist.num_workers if dist else 1,
    )

    # From here on only the work folder is written (by the chief; the other
    # workers of a multi-worker job write their own scratch folder).
    chief = dist is None or dist.is_chief
    folder = work if chief else run_folder.worker_folder(run, dist.worker_index)
    if chief:
        if plan == "fresh" and work.exists():
            shutil.rmtree(work)
        if plan == "extend":
            shutil.copytree(run, work)
    else:
        shutil.rmtree(folder, ignore_errors=True)
        source = {"continue": work, "extend": run}.get(plan)
        if source is not None:  # restore from the chief's state (shared disk)
            shutil.copytree(source, folder)
    folder.mkdir(parents=True, exist_ok=True)
    runs.write_json(folder / runs.CONFIG, resolved)

    with scope:
        compile_model(model, make_optimizer(config, steps, model=model))
        initial_epoch, history = run_folder.restore(model, folder)
    if initial_epoch:
        say(f"Continuing {run} after epoch {initial_epoch} of {config['epochs']}.")
    say(f"Training into {folder} (renamed to {run} when done).")

    train_ds, val_ds = make_pipelines(splits, config, initial_epoch, dist)
    fit_callbacks = [
        keras.callbacks.TerminateOnNaN(),
        *(_tensorboard(folder, say) if chief else []),
        *recipe.recipe_callbacks(config),
        run_folder.RunCheckpoint(folder, history),
        keras.callbacks.BackupAndRestore(
            str(folder / run_folder.BACKUP), delete_checkpoint=False
        ),
        *(callbacks or []),
    ]
    with scope:
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=config["epochs"],
            initial_epoch=initial_epoch,
            steps_per_epoch=steps,
            shuffle=False,  # the pipelines shuffle (seeded)
            callbacks=fit_callbacks,
            verbose=verbose if chief else 0,
        )
    history = run_folder.read_history(folder / runs.HISTORY)
    if len(history) < config["epochs"]:
        raise TrainingStopped(
            f"Training stopped after {len(history)} of {config['epochs']} epochs "
            f"(e.g. TerminateOnNaN: the loss became NaN; lower --lr). The "
            f"interrupted run is in {str(folder)!r}; {str(run)!r} was not written."
        )
    if not chief:
        shutil.rmtree(folder, ignore_errors=True)
        say(f"Worker {dist.worker_index} finished; the chief writes {run}.")
        return TrainResult(run, "trained", resolved, history, None, model)

    if dist is None:
        model.load_weights(work / runs.MODEL)  # the best epoch
    else:  # evaluate on one device, outside the distribution
        model = keras.saving.load_model(work / runs.MODEL, compile=False)
    if isinstance(model, ScanModel):
        # The ramp's share is training state: the published model carries the
        # full distillation weight (a checkpoint may hold a share mid-ramp).
        model.distill_scale.assign(1.0)
    used = recipe.finish_training(model, splits, config)
    run_folder.save_atomic(model, work / runs.MODEL)
    if used:
        say(f"Batch-norm statistics re-estimated from {used} training batches.")
    evaluation = None
    if evaluate:
        evaluation = evaluate_model(model, splits.test, config["batch_size"])
        evaluation.update(dataset=config["dataset"], split="test", model=runs.MODEL)
        runs.write_json(work / runs.EVAL, evaluation)
    shutil.rmtree(work / run_folder.BACKUP, ignore_errors=True)
    run_folder.publish(work, run)
    say(f"Finished: {run}")
    return TrainResult(run, "trained", resolved, history, evaluation, model)


def _version():
    import keras_scan

    return keras_scan.__version__
