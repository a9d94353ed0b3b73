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
import zlib

from keras_scan import files
from keras_scan.checks import is_int, is_number
from keras_scan.files import atomic_folder  # noqa: F401  (run and export folders)

MODEL = "model.keras"
LAST = "last.keras"
CONFIG = "config.json"
HISTORY = "history.csv"
EVAL = "eval.json"
THRESHOLDS = "thresholds.json"
TRADEOFF = "tradeoff.png"


def run_path(run, must_exist=True, what="run folder", arg="run"):
    """`run` as a `pathlib.Path`, with a clear error when it is not a run folder."""
    path = pathlib.Path(run).expanduser()
    if must_exist and not (path / CONFIG).is_file():
        raise FileNotFoundError(
            f"`{arg}` must be a {what} written by `keras-scan train` (with "
            f"{CONFIG}). Received: {arg}={str(run)!r}"
            + ("" if path.is_dir() else " (no such folder)")
        )
    return path


def write_json(path, payload):
    """Writes JSON atomically (see `keras_scan.files.atomic_write_json`)."""
    files.atomic_write_json(path, payload)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def load_json(path, arg="run"):
    """A run file's JSON, with a clear error naming the file when it is damaged.

    Args:
        path: the file (e.g. `RUN/config.json`).
        arg: the argument the file came from, named in the error. Defaults to
            `"run"`.
    """
    path = pathlib.Path(path)
    try:
        return read_json(path)
    except UnicodeDecodeError as e:
        problem = f"not text ({e.reason})"
    except json.JSONDecodeError as e:
        problem = f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
    except IsADirectoryError:
        problem = "a folder, not a file"
    raise ValueError(
        f"`{arg}` has a corrupt {path.name}: {path} is {problem} (truncated or "
        f"overwritten?). Restore the file or rerun the command that wrote it. "
        f"Received: {arg}={str(path.parent)!r}"
    )


# Keys every command reads from config.json (re-creating the data splits), with
# the check each must pass: (requirement, test). The same predicates as
# `keras_scan.training.TrainingConfig` (`keras_scan.commands.arguments`), but
# not its checks: config.json is also written by `grow` and `compress`, whose
# runs hold other keys, and only what the data splits need is checked here.
_CONFIG_KEYS = {
    "dataset": ("a dataset spec", lambda v: isinstance(v, str) and bool(v)),
    "image_size": ("an int >= 1", lambda v: is_int(v) and v >= 1),
}
_OPTIONAL_CONFIG_KEYS = {
    "channels": ("1 or 3", lambda v: is_int(v) and v in (1, 3)),
    "val_fraction": (
        "a number strictly between 0 and 1",
        lambda v: is_number(v) and 0 < v < 1,
    ),
    "seed": ("an int", is_int),
    "limit": ("null or an int >= 2", lambda v: v is None or (is_int(v) and v >= 2)),
    "batch_size": ("an int >= 1", lambda v: is_int(v) and v >= 1),
    "num_classes": ("an int >= 2", lambda v: is_int(v) and v >= 2),
    "no_exits": ("true or false", lambda v: isinstance(v, bool)),
}


def load_config(run, arg="run"):
    """The resolved configuration of a run (`RUN/config.json`) as a dict.

    Refuses (naming the file, the key and the value) a file that is not JSON,
    not a mapping, or lacks or mangles a setting the commands read.
    """
    path = run_path(run, arg=arg) / CONFIG
    config = load_json(path, arg)
    if not isinstance(config, dict):
        raise ValueError(
            f"`{arg}` has a corrupt {CONFIG}: {path} must hold a mapping of "
            f"settings, not a {type(config).__name__}. Received: {arg}={str(run)!r}"
        )
    checks = [(k, *c, True) for k, c in _CONFIG_KEYS.items()]
    checks += [(k, *c, False) for k, c in _OPTIONAL_CONFIG_KEYS.items()]
    for key, requirement, test, required in checks:
        if key not in config:
            if required:
                raise ValueError(
                    f"`{arg}` has a corrupt {CONFIG}: {path} has no {key!r} "
                    f"setting. Received: {arg}={str(run)!r}"
                )
            continue
        if not test(config[key]):
            raise ValueError(
                f"`{arg}` has a corrupt {CONFIG}: {key!r} in {path} must be "
                f"{requirement}. Received: {key}={config[key]!r}"
            )
    return config


def check_model_file(path, arg="run"):
    """Refuses a missing or damaged `.keras` file without loading it.

    A `.keras` file is a zip archive; Keras reports a truncated one as "File
    not found", which sends a user looking for a missing file. This checks the
    archive and the checksum of every member (cheap: no model is built).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"`{arg}` has no trained model: {path} does not exist (did `keras-scan "
            f"train` finish an epoch?). Received: {arg}={str(path.parent)!r}"
        )
    problem = None
    if not zipfile.is_zipfile(path):
        problem = "is not a Keras archive"
    else:
        try:
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
                names = set(z.namelist())
            if bad is not None:
                problem = f"has a damaged member {bad!r} (checksum mismatch)"
            elif "config.json" not in names:
                problem = "is not a Keras archive (no config.json inside)"
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as e:
            problem = f"cannot be read ({type(e).__name__}: {e})"
    if problem:
        raise ValueError(
            f"`{arg}` has a corrupt model file: {path} {problem} (truncated or "
            f"overwritten?). Retrain, or restore the file. "
            f"Received: {arg}={str(path.parent)!r}"
        )
    return path


def load_model(run, which=MODEL, arg="run"):
    """Loads a run's trained model, with a clear error when it is missing or damaged."""
    import keras

    import keras_scan  # noqa: F401  (registers the custom objects)

    path = check_model_file(run_path(run, arg=arg) / which, arg)
    try:
        return keras.saving.load_model(path)
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as e:
        # a damaged member inside a valid archive (JSON, HDF5, zip entry)
        raise ValueError(
            f"`{arg}` has a corrupt model file: {path} cannot be loaded "
            f"({type(e).__name__}: {e}). Retrain, or restore the file. "
            f"Received: {arg}={str(run)!r}"
        ) from e


def require_exits(run, command, arg="run", model=None):
    """Refuses a run without exits (trained with `--no-exits`, or grown).

    Without `model`, reads `config.json` (`no_exits`; nothing is loaded, so a
    command can refuse before any work); with it, checks the loaded model.
    """
    from keras_scan.scan_model import ScanModel

    if model is None:
        plain = load_config(run, arg).get("no_exits") is True
        kind = "a plain model (no_exits in config.json)"
    else:
        plain = not isinstance(model, ScanModel)
        kind = f"a plain {type(model).__name__} model"
    if plain:
        raise ValueError(
            f"`{arg}` has no exits: {run_path(run, arg=arg) / MODEL} is {kind}, "
            f"trained with --no-exits or cut by `keras-scan grow`; `keras-scan "
            f"{command}` needs a SCAN model with early exits. Received: "
            f"{arg}={str(run)!r}"
        )


def load_thresholds(run, num_exits=None, arg="run"):
    """`RUN/thresholds.json` as `keras_scan.thresholds.Thresholds`, checked.

    Args:
        run: the run folder.
        num_exits: optional number of exits of the run's model (the final one
            included): the file must hold one threshold per shallow exit.
        arg: the argument named in errors. Defaults to `"run"`.
    """
    from keras_scan.thresholds import Thresholds

    path = run_path(run, arg=arg) / THRESHOLDS
    payload = load_json(path, arg)
    if isinstance(payload, dict) and not isinstance(payload.get("values"), list):
        raise ValueError(
            f"`{arg}` has an invalid {THRESHOLDS}: 'values' in {path} must be a "
            f"list of numbers in [0, 1], one per shallow exit. Received: "
            f"values={payload.get('values')!r}"
        )
    try:
        thresholds = Thresholds.from_dict(payload)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"`{arg}` has an invalid {THRESHOLDS}: {path}: {e} Rerun `keras-scan "
            f"search {run}` to write it again."
        ) from None
    if num_exits is not None:
        check_threshold_count(thresholds, num_exits, path, arg)
    return thresholds


def check_threshold_count(thresholds, num_exits, path, arg="run"):
    """One threshold per shallow exit (`num_exits - 1`), named in the error."""
    if len(thresholds.values) != num_exits - 1:
        raise ValueError(
            f"`{arg}` has an invalid {THRESHOLDS}: {path} holds "
            f"{len(thresholds.values)} thresholds but the model has {num_exits} "
            f"exits (one threshold per shallow exit: {num_exits - 1}). Rerun "
            f"`keras-scan search` on this run. Received: "
            f"values={thresholds.values}"
        )


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
