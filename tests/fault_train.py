"""`keras-scan` with pause points, for the kill-and-resume tests.

Run by `tests/test_faults.py` in a subprocess that the test then SIGKILLs; the
hooks only pause and record, they change nothing training computes.

    FAULT_PAUSE=batch:E:B  after batch B of epoch E (0-based): pause
    FAULT_PAUSE=save:E     while last.keras of epoch E is being written (its
                           temporary file holds half of the weights): pause
    FAULT_PAUSE=backup:E   while Keras' BackupAndRestore writes its weights
                           file after epoch E (in place, before HDF5 closes it)
    FAULT_MARKER=FILE      written when pausing (the test waits for it)
    FAULT_WEIGHTS=DIR      the weights at the first epoch's start
                           (begin_E.npz) and after every epoch (end_E.npz)

    python tests/fault_train.py train ... --out RUN
"""

import os
import pathlib
import sys
import time
import zipfile

PAUSE = os.environ.get("FAULT_PAUSE", "")
_epoch = [-1]


def _pause():
    pathlib.Path(os.environ["FAULT_MARKER"]).write_text(str(os.getpid()))
    time.sleep(600)  # until SIGKILL


def _pause_in_checkpoint_write(epoch):
    """Pauses inside Keras' zip writer, half of model.weights.h5 on disk."""
    writestr = zipfile.ZipFile.writestr

    def paused_writestr(self, name, data, *args, **kwargs):
        file = os.path.basename(str(self.filename or ""))
        if (
            _epoch[0] == epoch
            and file.startswith(".last.keras.")
            and str(name).endswith(".h5")
        ):
            with self.open(str(name), "w") as member:
                member.write(data[: len(data) // 2])
                self.fp.flush()
                os.fsync(self.fp.fileno())
                _pause()
        return writestr(self, name, data, *args, **kwargs)

    zipfile.ZipFile.writestr = paused_writestr


def _pause_in_backup_write(epoch):
    """Pauses before HDF5 closes BackupAndRestore's `latest.weights.h5`."""
    from keras.src.saving import saving_lib

    close = saving_lib.H5IOStore.close

    def paused_close(self):
        path = str(self.path_or_io)
        if _epoch[0] == epoch and self.mode == "w" and "backup" in path:
            _pause()
        return close(self)

    saving_lib.H5IOStore.close = paused_close


def _hook():
    import keras
    import numpy as np

    folder = os.environ.get("FAULT_WEIGHTS")
    kind, _, where = PAUSE.partition(":")
    at = tuple(int(v) for v in where.split(":")) if kind == "batch" else None

    def save(name, model):
        weights = {w.path.replace("/", "|"): w.numpy() for w in model.weights}
        np.savez(pathlib.Path(folder) / f"{name}.npz", **weights)

    class Hook(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if folder and _epoch[0] < 0:
                save(f"begin_{epoch}", self.model)
            _epoch[0] = epoch

        def on_train_batch_end(self, batch, logs=None):
            if (_epoch[0], batch) == at:
                _pause()

        def on_epoch_end(self, epoch, logs=None):
            if folder:
                save(f"end_{epoch}", self.model)

    return Hook()


if __name__ == "__main__":
    from keras_scan import cli
    from keras_scan.training import recipe

    if PAUSE.startswith("save:"):
        _pause_in_checkpoint_write(int(PAUSE.split(":")[1]))
    if PAUSE.startswith("backup:"):
        _pause_in_backup_write(int(PAUSE.split(":")[1]))
    # `train` calls `recipe.recipe_callbacks`: patched where it is defined.
    recipe_callbacks = recipe.recipe_callbacks
    recipe.recipe_callbacks = lambda config: [*recipe_callbacks(config), _hook()]
    sys.exit(cli.main(sys.argv[1:]))
