"""Fashion-MNIST from local IDX files (numpy only, no TensorFlow).

Finds the four IDX files (`data_dir`, `$KERAS_SCAN_DATA_DIR`, the Debian package
`dataset-fashion-mnist`, the Keras cache), parses them with numpy, and builds
the `"fashion_mnist"` dataset spec's `DataSplits`.
"""

import gzip
import math
import os
import pathlib
import zlib

import keras
import numpy as np

from keras_scan.data.data_splits import DataSplits
from keras_scan.data.resize import resize_images
from keras_scan.data.validation_split import split_validation

FASHION_MNIST_LABELS = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


# Where the Debian package `dataset-fashion-mnist` installs the IDX files.
FASHION_MNIST_SYSTEM_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")


# The four IDX files: key -> (file stem, IDX kind, number of dimensions).
_FASHION_MNIST_FILES = {
    "train_images": ("train-images", "idx3", 3),
    "train_labels": ("train-labels", "idx1", 1),
    "test_images": ("t10k-images", "idx3", 3),
    "test_labels": ("t10k-labels", "idx1", 1),
}


def _fashion_mnist_search_dirs(data_dir=None):
    """The folders `find_fashion_mnist` looks in, in order."""
    dirs = []
    if data_dir is not None:
        data_dir = pathlib.Path(data_dir).expanduser()
        dirs += [data_dir, data_dir / "fashion-mnist"]
    env_dir = os.environ.get("KERAS_SCAN_DATA_DIR")
    if env_dir:
        env_dir = pathlib.Path(env_dir).expanduser()
        dirs += [env_dir, env_dir / "fashion-mnist"]
    dirs.append(FASHION_MNIST_SYSTEM_DIR)
    keras_home = os.environ.get("KERAS_HOME")
    if keras_home:
        dirs.append(pathlib.Path(keras_home).expanduser() / "datasets/fashion-mnist")
    dirs.append(pathlib.Path.home() / ".keras/datasets/fashion-mnist")
    unique = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def _find_idx_file(folder, stem, kind):
    for sep in ("-", "."):
        for suffix in (".gz", ""):
            path = folder / f"{stem}{sep}{kind}-ubyte{suffix}"
            if path.is_file():
                return path
    return None


def _fashion_mnist_files(folder):
    return {
        key: _find_idx_file(folder, stem, kind)
        for key, (stem, kind, _) in _FASHION_MNIST_FILES.items()
    }


def find_fashion_mnist(data_dir=None):
    """Finds the folder that holds the four Fashion-MNIST IDX files.

    Looks, in order, in `data_dir` (and `data_dir/fashion-mnist`),
    `$KERAS_SCAN_DATA_DIR`, `/usr/share/datasets/fashion-mnist` (Debian package
    `dataset-fashion-mnist`), `$KERAS_HOME/datasets/fashion-mnist` and
    `~/.keras/datasets/fashion-mnist` (where `keras.datasets` downloads them).
    Files may be gzipped or not (`train-images-idx3-ubyte[.gz]`, ...).

    Args:
        data_dir: str or path, optional. A folder to look in first.

    Returns:
        The `pathlib.Path` of the first folder that holds all four files.

    Raises:
        FileNotFoundError: none of the places holds them; the message lists every
            place looked in and how to get the data.
    """
    looked = []
    for folder in _fashion_mnist_search_dirs(data_dir):
        if not folder.is_dir():
            looked.append(f"  {folder} (no such folder)")
            continue
        files = _fashion_mnist_files(folder)
        missing = [
            f"{_FASHION_MNIST_FILES[k][0]}-{_FASHION_MNIST_FILES[k][1]}-ubyte[.gz]"
            for k, path in files.items()
            if path is None
        ]
        if not missing:
            return folder
        looked.append(f"  {folder} (missing {', '.join(missing)})")
    raise FileNotFoundError(
        "Fashion-MNIST IDX files (train-images-idx3-ubyte.gz, "
        "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz) not found. Looked in:\n"
        + "\n".join(looked)
        + "\nTo get them: `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), "
        "or put the files in a folder and pass it as `data_dir` (`--data-dir`) or "
        "$KERAS_SCAN_DATA_DIR, or let Keras download them with `download=True` "
        "(`--download`)."
    )


def _read_idx(path, ndim):
    """Reads an IDX file of unsigned bytes with `ndim` dimensions."""
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(
            f"Cannot read the IDX file {path}: {e}. The file is corrupt or "
            "truncated; reinstall it (`apt-get install --reinstall "
            "dataset-fashion-mnist`) or download it again."
        ) from None
    expected_magic = bytes([0, 0, 0x08, ndim])
    if raw[:4] != expected_magic:
        raise ValueError(
            f"{path} is not an IDX file of unsigned bytes with {ndim} dimension(s): "
            f"its magic number is 0x{raw[:4].hex() or '(empty)'}, expected "
            f"0x{expected_magic.hex()}. The file is corrupt or not Fashion-MNIST."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: {len(raw)} bytes, no full header.")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    expected = header + math.prod(dims)
    if len(raw) != expected:
        raise ValueError(
            f"{path} is truncated or corrupt: its header says shape {dims} "
            f"({expected} bytes) but the file holds {len(raw)} bytes."
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims).copy()


def load_fashion_mnist(data_dir=None, download=False):
    """Loads Fashion-MNIST from local IDX files (numpy only, no TensorFlow).

    Args:
        data_dir: str or path, optional. A folder to look in first; see
            `find_fashion_mnist` for the search order.
        download: bool. When no local copy is found, fall back to
            `keras.datasets.fashion_mnist.load_data()` (needs the internet).
            Defaults to `False`.

    Returns:
        `{"train": (x, y), "test": (x, y)}` with `x` uint8 of shape (N, 28, 28)
        and `y` int32 of shape (N,): 60,000 train and 10,000 test images.

    Example:
    ```python
    splits = keras_scan.data.load_fashion_mnist()
    x_train, y_train = splits["train"]
    ```
    """
    try:
        folder = find_fashion_mnist(data_dir)
    except FileNotFoundError:
        if not download:
            raise
        (x_tr, y_tr), (x_te, y_te) = keras.datasets.fashion_mnist.load_data()
        return {
            "train": (np.asarray(x_tr, np.uint8), np.asarray(y_tr, np.int32)),
            "test": (np.asarray(x_te, np.uint8), np.asarray(y_te, np.int32)),
        }
    files = _fashion_mnist_files(folder)
    out = {}
    for split in ("train", "test"):
        img_path, lbl_path = files[f"{split}_images"], files[f"{split}_labels"]
        x = _read_idx(img_path, 3)
        y = _read_idx(lbl_path, 1)
        if x.shape[1:] != (28, 28):
            raise ValueError(
                f"{img_path} holds images of shape {x.shape[1:]}, expected (28, 28)."
            )
        if len(x) != len(y):
            raise ValueError(
                f"{img_path} holds {len(x)} images but {lbl_path} holds "
                f"{len(y)} labels."
            )
        if len(y) and int(y.max()) >= len(FASHION_MNIST_LABELS):
            raise ValueError(
                f"{lbl_path} holds label {int(y.max())}; Fashion-MNIST labels are "
                "0..9. The file is corrupt."
            )
        out[split] = (x, y.astype(np.int32))
    return out


def load_fashion_mnist_splits(
    *, size, channels, val_fraction, seed, limit, source, data_dir, download
):
    """The `"fashion_mnist"` spec's `DataSplits` (numpy arrays; see `load_dataset`)."""
    raw = load_fashion_mnist(data_dir=data_dir, download=download)
    x, y = raw["train"]
    if limit is not None and limit < len(y):
        keep = np.sort(np.random.default_rng(seed).permutation(len(y))[:limit])
        x, y = x[keep], y[keep]
    (x_tr, y_tr), (x_val, y_val) = split_validation(x, y, val_fraction, seed)
    x_te, y_te = raw["test"]
    if limit is not None:
        x_te, y_te = x_te[:limit], y_te[:limit]
    return DataSplits(
        train=(resize_images(x_tr, size, channels), y_tr),
        val=(resize_images(x_val, size, channels), y_val),
        test=(resize_images(x_te, size, channels), y_te),
        num_classes=len(FASHION_MNIST_LABELS),
        class_names=list(FASHION_MNIST_LABELS),
        image_shape=(*size, channels),
        source=source,
    )
