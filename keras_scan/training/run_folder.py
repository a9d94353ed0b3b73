"""The run folder's lifecycle: plan, resume, checkpoints, history, publish.

How a run folder is written: training happens in a sibling work folder
`.<RUN>.incomplete/` that is renamed to `RUN` only when training (and the test
evaluation) finished, so `RUN` is never half-written. The work folder holds
`keras.callbacks.BackupAndRestore` state (`backup/`), so rerunning the same
command after a crash or Ctrl-C continues from the last finished epoch with the
same weights and optimizer state. The files of `RUN` are named in
`keras_scan.runs`.
"""

import csv
import io
import math
import pathlib

import keras

from keras_scan import distribute, files, runs
from keras_scan.scan_model import FINAL
from keras_scan.training.config import ARCHITECTURE, config_diff, format_diff

MONITOR = f"val_{FINAL}_accuracy"
BACKUP = "backup"
LOGS = "logs"


def work_folder(run):
    """The sibling folder a run trains in until it is complete."""
    run = pathlib.Path(run).expanduser()
    return run.with_name(f".{run.name}.incomplete")


def read_config(folder):
    """The `config.json` of a (work) run folder, or `None` if it cannot be read."""
    try:
        return runs.read_json(folder / runs.CONFIG)
    except (OSError, ValueError):
        return None


def plan(run, work, config, resume, overwrite):
    """What to do with `run`: "fresh", "continue", "extend" or "done".

    Raises (and writes nothing) when `run` holds something else.
    """
    if run.exists() and not run.is_dir():
        raise FileExistsError(
            f"`out` must be a folder; a file is in the way. Received: out={str(run)!r}"
        )
    if work.exists():
        old = read_config(work)
        if old is not None:
            diff = config_diff(old, config)
            if not diff:
                return "continue"
            if resume:
                _check_architecture(diff, work)
                return "continue"
        if overwrite or old is None:
            return "fresh"
        raise FileExistsError(
            f"An interrupted run with a different configuration is in "
            f"{str(work)!r} ({format_diff(diff)}). Pass --resume to continue it "
            "with the new settings, or --overwrite to start again. Received: "
            f"out={str(run)!r}"
        )
    if run.exists():
        old = read_config(run)
        if old is None:
            if overwrite or not any(run.iterdir()):
                return "fresh"
            raise FileExistsError(
                f"`out` exists and is not a run folder (no {runs.CONFIG}). Pass "
                f"--overwrite to replace it, or choose another folder. Received: "
                f"out={str(run)!r}"
            )
        if overwrite:
            return "fresh"
        diff = config_diff(old, config)
        if not diff:
            return "done"
        if resume:
            _check_architecture(diff, run)
            return "extend"
        raise FileExistsError(
            f"`out` holds a run with a different configuration "
            f"({format_diff(diff)}). Pass --resume to continue training it with "
            "the new settings (e.g. more epochs), --overwrite to replace it, or "
            f"choose another --out. Received: out={str(run)!r}"
        )
    return "fresh"


def _check_architecture(diff, folder):
    changed = {k: v for k, v in diff.items() if k in ARCHITECTURE}
    if changed:
        raise ValueError(
            f"Cannot resume the run in {str(folder)!r}: these settings change the "
            f"model, so its weights do not carry over ({format_diff(changed)}). "
            "Pass --overwrite to train from scratch, or choose another --out."
        )


def publish(work, run):
    """Renames the finished work folder to `run`, replacing what was there."""
    files.replace_folder(work, run)


def read_history(path):
    """The rows of a `history.csv` (dicts of strings); `[]` when there is none."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _write_history(path, rows):
    keys = ["epoch", "learning_rate"]
    for row in rows:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files.atomic_write_text(path, buf.getvalue())


def save_atomic(model, path):
    """Saves `model` to `path` (a `.keras` file) through a temporary file."""
    # Keras requires the `.keras` suffix on the temporary name too.
    with files.atomic_path(path, suffix=".keras") as tmp:
        with distribute.local_batchnorm(model):  # loadable on any backend
            model.save(tmp)


class RunCheckpoint(keras.callbacks.Callback):
    """After each epoch: history.csv, last.keras and (when best) model.keras.

    `history.csv` has one row per epoch: `epoch` (0-based, like Keras'
    `CSVLogger`), `learning_rate` (at the start of the epoch) and every log.

    Every file is written to a temporary name and renamed, so a crash never
    leaves a broken file. "Best" is the highest `val_final_accuracy` so far,
    counting the epochs already in `history.csv` of a resumed run.

    Args:
        folder: path of the (work) run folder.
        history: list of dicts, the rows of the epochs already trained.
        monitor: str. Defaults to `"val_final_accuracy"`.
    """

    def __init__(self, folder, history=(), monitor=MONITOR):
        super().__init__()
        self.folder = pathlib.Path(folder)
        self.rows = [dict(r) for r in history]
        self.monitor = monitor
        previous = [
            float(r[monitor]) for r in self.rows if r.get(monitor) not in (None, "")
        ]
        self.best = max(previous, default=-math.inf)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_lr = _current_lr(self.model.optimizer)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        row = {"epoch": epoch, "learning_rate": self._epoch_lr}
        row.update({k: float(v) for k, v in logs.items()})
        self.rows.append(row)
        _write_history(self.folder / runs.HISTORY, self.rows)
        save_atomic(self.model, self.folder / runs.LAST)
        value = logs.get(self.monitor)
        if value is not None and math.isfinite(value) and value > self.best:
            self.best = float(value)
            save_atomic(self.model, self.folder / runs.MODEL)
        elif not (self.folder / runs.MODEL).exists():
            save_atomic(self.model, self.folder / runs.MODEL)


def _current_lr(optimizer):
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def _backup_epoch(folder):
    """Epochs finished according to BackupAndRestore's state (0 if none)."""
    try:
        meta = runs.read_json(folder / BACKUP / "training_metadata.json")
        return int(meta["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def restore(model, folder):
    """Where training in `folder` starts: `(initial_epoch, history rows)`.

    BackupAndRestore's state when there is one (it restores the weights and
    optimizer itself in `fit`); else `last.keras` and `history.csv` (a finished
    run continued with `resume`, or a crash before the first backup); else
    nothing: epoch 0.
    """
    history = read_history(folder / runs.HISTORY)
    epoch = _backup_epoch(folder)
    if epoch:
        return epoch, [r for r in history if int(r["epoch"]) < epoch]
    if history and (folder / runs.LAST).is_file():
        model.optimizer.build(model.trainable_variables)
        model.load_weights(folder / runs.LAST)  # weights and optimizer state
        return len(history), history
    return 0, []


def worker_folder(run, index):
    """The scratch folder a non-chief worker writes (removed when done)."""
    return run.with_name(f".{run.name}.worker-{index}")
