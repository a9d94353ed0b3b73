"""The run folder: what `keras-scan train` writes and every later command reads.

```
RUN/
  model.keras        the model with the best validation accuracy of the final exit
  last.keras         the model after the last finished epoch
  config.json        the resolved configuration (every argument, defaults included)
  history.csv        one row per epoch
  eval.json          `keras-scan evaluate`
  thresholds.json    `keras-scan search`
  tradeoff.png       `keras-scan search`
```
Files are written atomically (a temporary file renamed into place), so an
interrupted command never leaves a half-written file behind.
"""

import contextlib
import json
import os
import pathlib
import shutil
import tempfile
import zipfile

MODEL = "model.keras"
LAST = "last.keras"
CONFIG = "config.json"
HISTORY = "history.csv"
EVAL = "eval.json"
THRESHOLDS = "thresholds.json"
TRADEOFF = "tradeoff.png"


def run_path(run, must_exist=True, what="run folder"):
    """`run` as a `pathlib.Path`, with a clear error when it is not a run folder."""
    path = pathlib.Path(run).expanduser()
    if must_exist and not (path / CONFIG).is_file():
        raise FileNotFoundError(
            f"`run` must be a {what} written by `keras-scan train` (with {CONFIG}). "
            f"Received: run={str(run)!r}"
            + ("" if path.is_dir() else " (no such folder)")
        )
    return path


def write_json(path, payload):
    """Writes JSON atomically (tmp file in the same folder, then rename)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=False, default=_json_default)
            f.write("\n")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; use the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, pathlib.Path):
        return str(obj)
    raise TypeError(f"Cannot write {type(obj).__name__} to JSON: {obj!r}")


def read_json(path):
    with open(path) as f:
        return json.load(f)


def load_config(run):
    """The resolved configuration of a run (`RUN/config.json`) as a dict."""
    return read_json(run_path(run) / CONFIG)


def load_model(run, which=MODEL):
    """Loads a run's trained model, with a clear error when there is none."""
    import keras

    import keras_scan  # noqa: F401  (registers the custom objects)

    path = run_path(run) / which
    if not path.is_file():
        raise FileNotFoundError(
            f"`run` has no trained model: {path} does not exist (did `keras-scan "
            f"train` finish an epoch?). Received: run={str(run)!r}"
        )
    # A `.keras` file is a zip archive; Keras reports a truncated one as
    # "File not found", which sends a user looking for a missing file.
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"`run` has a corrupt model file: {path} is not a Keras archive "
            f"(truncated or overwritten?). Retrain, or restore the file. "
            f"Received: run={str(run)!r}"
        )
    try:
        return keras.saving.load_model(path)
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as e:
        # a damaged member inside a valid archive (JSON, HDF5, zip entry)
        raise ValueError(
            f"`run` has a corrupt model file: {path} cannot be loaded "
            f"({type(e).__name__}: {e}). Retrain, or restore the file. "
            f"Received: run={str(run)!r}"
        ) from e


def load_splits(run, dataset=None, data_dir=None, download=False):
    """The data splits of a run, re-created from its configuration.

    Args:
        run: the run folder.
        dataset: optional dataset spec replacing the one the run trained on
            (evaluate on other data with the same image size).
        data_dir: optional folder for Fashion-MNIST files.
        download: allow tensorflow-datasets / Keras to download.
    """
    from keras_scan import data

    config = load_config(run)
    return data.load_dataset(
        dataset or config["dataset"],
        config["image_size"],
        channels=config.get("channels", 3),
        val_fraction=config.get("val_fraction", 0.1),
        seed=config.get("seed", 0),
        limit=config.get("limit"),
        data_dir=data_dir or config.get("data_dir"),
        download=download,
    )


@contextlib.contextmanager
def atomic_folder(dest, overwrite=False, what="output folder", arg="out"):
    """Yields a temporary sibling folder that replaces `dest` on success.

    On any exception the temporary folder is removed and `dest` is untouched,
    so an interrupted export or run never leaves a half-written folder.
    """
    dest = pathlib.Path(dest).expanduser()
    if dest.exists() and not overwrite:
        raise FileExistsError(
            f"`{arg}` already exists: {str(dest)!r}. Pass --overwrite (or "
            f"`overwrite=True`) to replace this {what}."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    try:
        yield tmp
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
