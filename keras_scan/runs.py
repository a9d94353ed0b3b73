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
Files are written atomically (`keras_scan.files`: a temporary file renamed
into place), so an interrupted command never leaves a half-written file behind.
"""

import json
import pathlib
import zipfile

from keras_scan import files
from keras_scan.files import atomic_folder  # noqa: F401  (run and export folders)

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
    """Writes JSON atomically (see `keras_scan.files.atomic_write_json`)."""
    files.atomic_write_json(path, payload)


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
