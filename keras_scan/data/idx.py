"""Data sets and input pipelines for keras_scan.

Three dataset specs are understood by `load_dataset`:

- `"fashion_mnist"`: the IDX files of the Debian package `dataset-fashion-mnist`
  (or `data_dir`, `$KERAS_SCAN_DATA_DIR`, the Keras cache), parsed with numpy.
- `"tfds:NAME[:SPLIT]"`: a tensorflow-datasets data set; SPLIT names the test split.
- `"folder:PATH"`: one subfolder of images per class (optionally `train/` and `test/`).

Conventions shared by every path: images are float32 in 0..255, NHWC; labels are
int32. Nothing here normalises: the models carry their own `Rescaling` layer.
A validation split is always held out of train, seeded.

TensorFlow is imported lazily, only by the functions that build `tf.data`
pipelines, read tfds or image folders: the numpy path (`load_fashion_mnist`,
`load_dataset("fashion_mnist", ...)`, `NumpyDataset`) runs without TensorFlow,
e.g. on a JAX-only GPU machine.
"""

import dataclasses
import difflib
import gzip
import math
import os
import pathlib
import zlib

import keras
import numpy as np

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

# Same list as keras.utils.image_dataset_from_directory.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")

VALID_SPECS = (
    "'fashion_mnist', 'tfds:NAME[:SPLIT]' (e.g. 'tfds:cifar10', "
    "'tfds:mnist:test'), 'folder:PATH' (one subfolder of images per class)"
)


# ---------------------------------------------------------------------------
# Fashion-MNIST (numpy only)
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Image size and channels (numpy)
# ---------------------------------------------------------------------------


def _size_pair(image_size):
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        size = (int(image_size), int(image_size))
    elif (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(isinstance(s, (int, np.integer)) for s in image_size)
    ):
        size = (int(image_size[0]), int(image_size[1]))
    else:
        size = None
    if size is None or min(size) < 1:
        raise ValueError(
            "`image_size` must be a positive int (or a (height, width) pair). "
            f"Received: image_size={image_size!r}"
        )
    return size


def _check_channels(channels):
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f"`channels` must be 1 or 3. Received: channels={channels!r}")


def _pads_exactly(h, w, th, tw):
    """True when (h, w) fits in (th, tw) with an even, centred zero border."""
    return th >= h and tw >= w and (th - h) % 2 == 0 and (tw - w) % 2 == 0


def _linear_weights(in_size, out_size):
    """(out_size, in_size) matrix of bilinear (triangle) resampling weights.

    Half-pixel centres; the kernel widens when downsampling (antialiasing), so
    this matches `tf.image.resize(..., "bilinear", antialias=True)`.
    """
    scale = out_size / in_size
    support = max(1.0, in_size / out_size)
    centres = (np.arange(out_size) + 0.5) / scale - 0.5
    dist = np.abs(np.arange(in_size)[None, :] - centres[:, None]) / support
    weights = np.clip(1.0 - dist, 0.0, None)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights.astype(np.float32)


def _np_convert_channels(x, channels):
    c = x.shape[-1]
    if c == channels:
        return x
    if c == 1:
        return np.repeat(x, channels, axis=-1)
    # RGB -> grey, same weights as tf.image.rgb_to_grayscale.
    grey = np.asarray([0.2989, 0.5870, 0.1140], np.float32)
    return (x[..., :3].astype(np.float32) @ grey)[..., None]


def resize_images(x, image_size, channels=3):
    """Pads or resizes a batch of images to `image_size`, as float32 0..255.

    When the target is at least as large as the image and the difference is even,
    the image is zero-padded in the centre (28 -> 32 pads 2 pixels on each side),
    so no pixel is interpolated. Otherwise it is resized bilinearly (antialiased
    when shrinking; same result as `tf.image.resize(..., antialias=True)`). Grey
    images are repeated to 3 channels when `channels=3`; RGB images are turned
    grey when `channels=1`. Works in chunks, numpy only.

    Args:
        x: array of shape (N, H, W) or (N, H, W, C), any numeric dtype, 0..255.
        image_size: int or (height, width). The output size.
        channels: int, 1 or 3. Output channels. Defaults to `3`.

    Returns:
        float32 array of shape (N, image_size, image_size, channels).
    """
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
        raise ValueError(
            "`x` must be images of shape (N, H, W) or (N, H, W, C) with C in "
            f"(1, 3, 4). Received: x.shape={x.shape}"
        )
    _check_channels(channels)
    th, tw = _size_pair(image_size)
    n, h, w, _ = x.shape
    out = np.empty((n, th, tw, channels), np.float32)
    chunk = max(1, (1 << 22) // max(1, h * w + th * tw))
    if _pads_exactly(h, w, th, tw):
        top, left = (th - h) // 2, (tw - w) // 2
        out[:] = 0.0
        for i in range(0, n, chunk):
            block = _np_convert_channels(x[i : i + chunk], channels)
            out[i : i + chunk, top : top + h, left : left + w] = block
        return out
    wh, ww = _linear_weights(h, th), _linear_weights(w, tw)
    for i in range(0, n, chunk):
        block = x[i : i + chunk].astype(np.float32)
        block = np.einsum("sh,bhwc->bswc", wh, block, optimize=True)
        block = np.einsum("tw,bswc->bstc", ww, block, optimize=True)
        out[i : i + chunk] = _np_convert_channels(block, channels)
    return out


# ---------------------------------------------------------------------------
# Validation split
# ---------------------------------------------------------------------------


def _check_fraction(val_fraction):
    if (
        isinstance(val_fraction, bool)
        or not isinstance(val_fraction, (int, float, np.floating))
        or not 0 < val_fraction < 1
    ):
        raise ValueError(
            "`val_fraction` must be a number strictly between 0 and 1. "
            f"Received: val_fraction={val_fraction!r}"
        )


def _validation_indices(y, val_fraction, seed):
    """Seeded, stratified choice of round(N * val_fraction) indices (sorted)."""
    y = np.asarray(y)
    n = len(y)
    if n < 2:
        raise ValueError(
            f"Need at least 2 examples to hold out a validation split; got {n}."
        )
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    rng = np.random.default_rng(seed)
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    ideal = counts * n_val / n
    per_class = np.floor(ideal).astype(int)
    remainder = n_val - int(per_class.sum())
    # Largest remainders first, ties broken at random (seeded).
    order = np.lexsort((rng.random(len(classes)), -(ideal - per_class)))
    per_class[order[:remainder]] += 1
    chosen = [
        rng.permutation(np.flatnonzero(inverse == k))[:m]
        for k, m in enumerate(per_class)
    ]
    return np.sort(np.concatenate(chosen))


def split_validation(x, y, val_fraction=0.1, seed=0):
    """Holds a seeded, stratified validation split out of `(x, y)`.

    Each class contributes its share of the round(N * val_fraction) validation
    examples; both parts keep the original order.

    Args:
        x: array-like of N examples (images, or anything indexable by an array).
        y: array-like of N integer labels.
        val_fraction: float in (0, 1). The share held out. Defaults to `0.1`.
        seed: int. Defaults to `0`.

    Returns:
        `(x_train, y_train), (x_val, y_val)`.
    """
    _check_fraction(val_fraction)
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(
            f"`x` and `y` must have the same length. Received: len(x)={len(x)}, "
            f"len(y)={len(y)}"
        )
    val_idx = _validation_indices(y, val_fraction, seed)
    is_val = np.zeros(len(y), bool)
    is_val[val_idx] = True
    train_idx = np.flatnonzero(~is_val)
    return (x[train_idx], y[train_idx]), (x[val_idx], y[val_idx])


# ---------------------------------------------------------------------------
# DataSplits and load_dataset
# ---------------------------------------------------------------------------


def num_examples(split):
    """Number of examples in a split (`(x, y)` or a `tf.data.Dataset`), or None."""
    if isinstance(split, (tuple, list)):
        return len(split[0])
    if hasattr(split, "cardinality"):
        n = int(split.cardinality())
        return n if n >= 0 else None
    return len(split)


@dataclasses.dataclass
class DataSplits:
    """Train, validation and test splits of one data set, ready for training.

    Args:
        train: `(x, y)` numpy arrays (x float32 0..255 NHWC, y int32) or an
            unbatched `tf.data.Dataset` of `(image, label)`.
        val: same, held out of the original train split (seeded).
        test: same, the data set's test split.
        num_classes: int.
        class_names: list of str, one per class.
        image_shape: tuple `(height, width, channels)`.
        source: str. The dataset spec it came from, e.g. `"fashion_mnist"`.
        notes: list of str. What a user should know, e.g. that the test split
            is the validation split reused.
    """

    train: object
    val: object
    test: object
    num_classes: int
    class_names: list
    image_shape: tuple
    source: str
    notes: list = dataclasses.field(default_factory=list)

    def sizes(self):
        """`{"train": N, "val": N, "test": N}` (None where unknown)."""
        return {
            name: num_examples(getattr(self, name)) for name in ("train", "val", "test")
        }

    def __repr__(self):
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes().items())
        return (
            f"DataSplits(source={self.source!r}, {sizes}, "
            f"image_shape={self.image_shape}, num_classes={self.num_classes}, "
            f"notes={self.notes})"
        )


def load_dataset(
    spec,
    image_size,
    *,
    channels=3,
    val_fraction=0.1,
    seed=0,
    limit=None,
    data_dir=None,
    download=False,
):
    """Loads a data set by spec into train / validation / test splits.

    Specs:
    - `"fashion_mnist"`: local IDX files (see `find_fashion_mnist`), numpy arrays;
      28x28 images are zero-padded (or resized) to `image_size`.
    - `"tfds:NAME[:SPLIT]"`: tensorflow-datasets; `train` gives train and
      validation, SPLIT (default `test`, else `validation`) gives test. Unbatched
      `tf.data.Dataset`s. Downloads only with `download=True`.
    - `"folder:PATH"`: one subfolder of images per class; if PATH has `train/`
      and `test/` subfolders they give train and test, else the validation split
      is reused as test (see `notes`). Unbatched `tf.data.Dataset`s.

    Args:
        spec: str. One of the specs above.
        image_size: int. Output images are (image_size, image_size, channels).
        channels: int, 1 or 3. Grey images are repeated to 3 channels. Defaults
            to `3`.
        val_fraction: float in (0, 1). Share of train held out for validation
            (stratified for numpy and folder data). Defaults to `0.1`.
        seed: int. Seeds the validation split and `limit`. Defaults to `0`.
        limit: int, optional. Keep only N train images (chosen by a seeded
            shuffle; for tfds the first N stored, which tfds already shuffled)
            before the validation split, and min(N, len) test images.
        data_dir: str or path, optional. Where to look for Fashion-MNIST files
            or the tfds data folder.
        download: bool. Allow downloading when the data is not local. Defaults
            to `False`.

    Returns:
        A `DataSplits`.

    Example:
    ```python
    splits = keras_scan.data.load_dataset("fashion_mnist", 32, limit=2000)
    train_ds = keras_scan.data.make_tf_dataset(splits.train, 128, training=True)
    ```
    """
    if not isinstance(spec, str):
        raise TypeError(
            f"`spec` must be a str ({VALID_SPECS}). Received: spec={spec!r}"
        )
    size = _size_pair(image_size)
    _check_channels(channels)
    _check_fraction(val_fraction)
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 2
    ):
        raise ValueError(
            f"`limit` must be None or an int >= 2. Received: limit={limit!r}"
        )
    common = dict(
        size=size,
        channels=channels,
        val_fraction=val_fraction,
        seed=seed,
        limit=None if limit is None else int(limit),
        source=spec,
    )
    if spec in ("fashion_mnist", "fashion-mnist"):
        return _load_fashion_mnist_splits(
            data_dir=data_dir, download=download, **common
        )
    if spec.startswith("tfds:"):
        name, _, split = spec[len("tfds:") :].partition(":")
        if not name:
            raise ValueError(
                f"`spec` 'tfds:NAME[:SPLIT]' needs a NAME. Received: spec={spec!r}"
            )
        return _load_tfds_splits(
            name, split or None, data_dir=data_dir, download=download, **common
        )
    if spec.startswith("folder:"):
        path = spec[len("folder:") :]
        if not path:
            raise ValueError(
                f"`spec` 'folder:PATH' needs a PATH. Received: spec={spec!r}"
            )
        return _load_folder_splits(path, **common)
    raise ValueError(
        f"Unknown dataset spec. Valid forms: {VALID_SPECS}. Received: spec={spec!r}"
    )


def _load_fashion_mnist_splits(
    *, size, channels, val_fraction, seed, limit, source, data_dir, download
):
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


# ---------------------------------------------------------------------------
# TensorFlow helpers (imported lazily)
# ---------------------------------------------------------------------------


def _import_tf():
    try:
        import tensorflow as tf
    except ImportError as e:
        raise ImportError(
            "This part of keras_scan.data builds tf.data pipelines and needs "
            "TensorFlow (`pip install keras-scan[tf]`). Without TensorFlow, use "
            "the numpy path: load_dataset('fashion_mnist', ...) and NumpyDataset. "
            f"({e})"
        ) from e
    return tf


def _import_tfds():
    _import_tf()
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError(
            "The 'tfds:' dataset specs need tensorflow-datasets and "
            "importlib_resources (`pip install keras-scan[tf]`). "
            f"({e})"
        ) from e
    return tfds


def _tf_convert_channels(tf, image, channels):
    c = image.shape[-1]
    if c == channels:
        return image
    if c == 4:
        image = image[..., :3]
        c = 3
    if c == 1 and channels == 3:
        return tf.image.grayscale_to_rgb(image)
    if c == 3 and channels == 1:
        return tf.image.rgb_to_grayscale(image)
    if c == channels:
        return image
    raise ValueError(f"Cannot convert images with {c} channels to {channels}.")


def _tf_fit(tf, image, size):
    """Zero-pads (centred, even border) or resizes one float image to `size`."""
    th, tw = size
    h, w, c = image.shape
    if h is not None and w is not None:
        if _pads_exactly(h, w, th, tw):
            if (h, w) == (th, tw):
                return image
            top, left = (th - h) // 2, (tw - w) // 2
            return tf.pad(image, [[top, th - h - top], [left, tw - w - left], [0, 0]])
        return tf.image.resize(image, (th, tw), "bilinear", antialias=True)
    shape = tf.shape(image)
    hh, ww = shape[0], shape[1]
    pads = (hh <= th) & (ww <= tw) & ((th - hh) % 2 == 0) & ((tw - ww) % 2 == 0)
    out = tf.cond(
        pads,
        lambda: tf.image.pad_to_bounding_box(
            image, (th - hh) // 2, (tw - ww) // 2, th, tw
        ),
        lambda: tf.image.resize(image, (th, tw), "bilinear", antialias=True),
    )
    out.set_shape((th, tw, c))
    return out


def _assert_cardinality(tf, ds, n):
    return ds.apply(tf.data.experimental.assert_cardinality(n))


def _seeded_roles(n, val_fraction, seed):
    """Boolean array: True where example i goes to validation (seeded)."""
    if n < 2:
        raise ValueError(
            f"Need at least 2 training examples to hold out a validation split; "
            f"got {n}."
        )
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    is_val = np.zeros(n, bool)
    is_val[np.random.default_rng(seed).permutation(n)[:n_val]] = True
    return is_val


# ---------------------------------------------------------------------------
# tfds
# ---------------------------------------------------------------------------


def _load_tfds_splits(
    name,
    test_split,
    *,
    size,
    channels,
    val_fraction,
    seed,
    limit,
    source,
    data_dir,
    download,
):
    tf = _import_tf()
    tfds = _import_tfds()
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except ValueError as e:  # tfds' DatasetNotFoundError is a ValueError.
        base = name.split("/")[0].split(":")[0]
        close = difflib.get_close_matches(base, tfds.list_builders(), n=5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown tensorflow-datasets name {name!r}.{hint} "
            "`tfds.list_builders()` lists every name (catalogue: "
            "https://www.tensorflow.org/datasets/catalog/overview). "
            f"Received: spec={source!r}"
        ) from e
    info = builder.info
    keys = info.supervised_keys
    if not (
        isinstance(keys, tuple)
        and len(keys) == 2
        and all(isinstance(k, str) for k in keys)
    ):
        raise ValueError(
            f"tfds dataset {name!r} has no (image, label) supervised keys "
            f"(supervised_keys={keys!r}); keras_scan needs image classification "
            f"data. Received: spec={source!r}"
        )
    image_key, label_key = keys
    image_feature = info.features[image_key]
    label_feature = info.features[label_key]
    if not isinstance(label_feature, tfds.features.ClassLabel):
        raise ValueError(
            f"tfds dataset {name!r}: label {label_key!r} is not a ClassLabel; "
            f"keras_scan needs image classification data. Received: spec={source!r}"
        )
    image_shape = tuple(getattr(image_feature, "shape", ()) or ())
    if len(image_shape) != 3:
        raise ValueError(
            f"tfds dataset {name!r}: feature {image_key!r} has shape {image_shape}, "
            f"not an image (H, W, C). Received: spec={source!r}"
        )
    encoded = isinstance(image_feature, tfds.features.Image)

    splits = dict(info.splits)  # Empty when not prepared (and under mock_data).
    if splits and "train" not in splits:
        raise ValueError(
            f"tfds dataset {name!r} has no 'train' split (splits: "
            f"{sorted(splits)}). Received: spec={source!r}"
        )
    if test_split is None:
        if not splits or "test" in splits:
            test_split = "test"
        elif "validation" in splits:
            test_split = "validation"
        else:
            raise ValueError(
                f"tfds dataset {name!r} has no 'test' or 'validation' split; name "
                f"the test split as 'tfds:{name}:SPLIT' (splits: {sorted(splits)})."
            )

    def load(split):
        try:
            return tfds.load(
                name,
                split=split,
                data_dir=data_dir,
                download=download,
                as_supervised=True,
                shuffle_files=False,
                decoders={image_key: tfds.decode.SkipDecoding()} if encoded else None,
            )
        except AssertionError as e:  # tfds' way of saying "not prepared".
            raise FileNotFoundError(
                f"tfds dataset {name!r} is not on this machine (looked in "
                f"{builder.data_dir}). Get it with `--download` "
                f"(load_dataset(..., download=True)) on a machine with internet, "
                f"or `tfds build {name}` and pass the data folder as `--data-dir` "
                f"(default ~/tensorflow_datasets). ({e})"
            ) from None

    src_channels = image_shape[-1] if image_shape[-1] in (1, 3, 4) else 3

    def prepare(image, label):
        if encoded:
            image = tf.io.decode_image(
                image, channels=src_channels, expand_animations=False
            )
            image.set_shape(image_shape[:2] + (src_channels,))
        image = tf.cast(image, tf.float32)
        image = _tf_convert_channels(tf, image, channels)
        image = _tf_fit(tf, image, size)
        return image, tf.cast(label, tf.int32)

    train_all = load("train")
    n = int(train_all.cardinality())
    if n < 0:
        n = int(train_all.reduce(np.int64(0), lambda count, _: count + 1))
    if limit is not None and limit < n:
        train_all, n = train_all.take(limit), limit
    is_val = tf.constant(_seeded_roles(n, val_fraction, seed))
    n_val = int(np.sum(is_val.numpy()))

    def part(want_val, count):
        if want_val:
            ds = train_all.enumerate().filter(lambda i, ex: is_val[i])
        else:
            ds = train_all.enumerate().filter(lambda i, ex: tf.logical_not(is_val[i]))
        ds = ds.map(lambda i, ex: ex)
        ds = _assert_cardinality(tf, ds, count)
        return ds.map(lambda x, y: prepare(x, y), num_parallel_calls=tf.data.AUTOTUNE)

    test = load(test_split)
    if limit is not None:
        test = test.take(limit)
    test = test.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return DataSplits(
        train=part(False, n - n_val),
        val=part(True, n_val),
        test=test,
        num_classes=int(label_feature.num_classes),
        class_names=list(label_feature.names),
        image_shape=(*size, channels),
        source=source,
        notes=[f"test split: tfds '{test_split}'"],
    )


# ---------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------


def _list_image_folder(root):
    """(class names, {class name: sorted image paths}) of a class-per-folder tree."""
    classes = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if sub.name.startswith("."):
            continue
        files = sorted(
            str(p)
            for p in sub.rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        )
        if files:
            classes[sub.name] = files
    return classes


def _check_images_decode(tf, paths, channels, spec):
    """Decodes every file once; ValueError naming the files that fail."""
    if not len(paths):
        return

    def probe(path):
        image = tf.io.decode_image(
            tf.io.read_file(path), channels=channels, expand_animations=False
        )
        return path, tf.shape(image)

    ds = tf.data.Dataset.from_tensor_slices(np.asarray(paths, dtype=str))
    ds = ds.map(probe, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.ignore_errors(log_warning=False)
    ok = {p.decode() for p, _ in ds.as_numpy_iterator()}
    bad = [p for p in paths if p not in ok]
    if bad:
        shown = "\n  ".join(bad[:10])
        more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise ValueError(
            f"{len(bad)} image file(s) in {spec!r} cannot be decoded; fix or remove "
            f"them:\n  {shown}{more}"
        )


def _image_files_dataset(tf, paths, labels, size, channels):
    def load(path, label):
        image = tf.io.decode_image(
            tf.io.read_file(path), channels=channels, expand_animations=False
        )
        image.set_shape((None, None, channels))
        image = _tf_fit(tf, tf.cast(image, tf.float32), size)
        return image, label

    ds = tf.data.Dataset.from_tensor_slices(
        (np.asarray(paths, dtype=str), np.asarray(labels, np.int32))
    )
    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)


def _load_folder_splits(path, *, size, channels, val_fraction, seed, limit, source):
    tf = _import_tf()
    root = pathlib.Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"Image folder {str(root)!r} does not exist or is not a folder. "
            f"Received: spec={source!r}"
        )
    train_root, test_root = root, None
    if (root / "train").is_dir() and (root / "test").is_dir():
        train_root, test_root = root / "train", root / "test"
    classes = _list_image_folder(train_root)
    if len(classes) < 2:
        raise ValueError(
            f"Image folder {str(train_root)!r} must hold at least 2 class "
            f"subfolders with images ({', '.join(IMAGE_EXTENSIONS)}); found "
            f"{len(classes)}: {sorted(classes)}. Received: spec={source!r}"
        )
    class_names = list(classes)
    paths = np.asarray([p for c in class_names for p in classes[c]], dtype=str)
    labels = np.asarray(
        [i for i, c in enumerate(class_names) for _ in classes[c]], np.int32
    )
    rng = np.random.default_rng(seed)
    if limit is not None and limit < len(paths):
        keep = np.sort(rng.permutation(len(paths))[:limit])
        paths, labels = paths[keep], labels[keep]
    (p_tr, y_tr), (p_val, y_val) = split_validation(paths, labels, val_fraction, seed)

    notes = []
    test_paths = np.asarray([], dtype=str)
    if test_root is not None:
        test_classes = _list_image_folder(test_root)
        unknown = sorted(set(test_classes) - set(class_names))
        if unknown:
            raise ValueError(
                f"{str(test_root)!r} has classes {unknown} that "
                f"{str(train_root)!r} lacks. Received: spec={source!r}"
            )
        test_paths = np.asarray(
            [p for c in class_names for p in test_classes.get(c, [])], dtype=str
        )
        test_labels = np.asarray(
            [i for i, c in enumerate(class_names) for _ in test_classes.get(c, [])],
            np.int32,
        )
        if limit is not None and limit < len(test_paths):
            keep = np.sort(rng.permutation(len(test_paths))[:limit])
            test_paths, test_labels = test_paths[keep], test_labels[keep]
        if not len(test_paths):
            raise ValueError(f"{str(test_root)!r} holds no images.")
    else:
        notes.append(
            f"{str(root)!r} has no train/ and test/ subfolders: the test split "
            "is the validation split reused (do not report it as a test score)."
        )
    _check_images_decode(tf, [*paths.tolist(), *test_paths.tolist()], channels, source)

    train = _image_files_dataset(tf, p_tr, y_tr, size, channels)
    val = _image_files_dataset(tf, p_val, y_val, size, channels)
    if test_root is not None:
        test = _image_files_dataset(tf, test_paths, test_labels, size, channels)
    else:
        test = val
    return DataSplits(
        train=train,
        val=val,
        test=test,
        num_classes=len(class_names),
        class_names=class_names,
        image_shape=(*size, channels),
        source=source,
        notes=notes,
    )


# ---------------------------------------------------------------------------
# Input pipelines
# ---------------------------------------------------------------------------


def _check_batch_size(batch_size):
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(
            f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}"
        )


def _as_tf_dataset(tf, split):
    if isinstance(split, (tuple, list)):
        if len(split) != 2:
            raise ValueError(
                "`split` must be an (x, y) pair or an unbatched tf.data.Dataset. "
                f"Received: a {type(split).__name__} of length {len(split)}"
            )
        x, y = np.asarray(split[0]), np.asarray(split[1])
        if x.ndim != 4 or len(x) != len(y):
            raise ValueError(
                "`split` must be (x, y) with x of shape (N, H, W, C) and y of "
                f"shape (N,). Received: x.shape={x.shape}, y.shape={y.shape}"
            )
        return tf.data.Dataset.from_tensor_slices(
            (x.astype(np.float32, copy=False), y.astype(np.int32, copy=False))
        )
    if isinstance(split, tf.data.Dataset):
        spec = split.element_spec
        if not (isinstance(spec, tuple) and len(spec) == 2 and spec[0].shape.rank == 3):
            raise ValueError(
                "`split` must be an unbatched tf.data.Dataset of (image, label) with "
                f"images of rank 3. Received: element_spec={spec}"
            )
        return split.map(
            lambda x, y: (tf.cast(x, tf.float32), tf.cast(y, tf.int32)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    raise TypeError(
        "`split` must be an (x, y) pair of arrays or an unbatched tf.data.Dataset. "
        f"Received: split of type {type(split).__name__}"
    )


def make_tf_dataset(
    split,
    batch_size,
    *,
    training,
    augment=True,
    seed=0,
    shuffle_buffer=10000,
    drop_remainder=False,
):
    """Batches a split into a `tf.data.Dataset` for `fit` / `evaluate`.

    Training: shuffle (seeded, new order each epoch), then, when `augment`, a
    random crop (zero-pad by image_size // 8, crop back) and a random horizontal
    flip (seeded, new draws each epoch). Evaluation: no augmentation, original
    order. Always batched and prefetched; images float32 0..255, labels int32.

    Args:
        split: `(x, y)` numpy arrays or an unbatched `tf.data.Dataset` of
            `(image, label)` (e.g. a `DataSplits` member).
        batch_size: int.
        training: bool. Shuffle and augment.
        augment: bool. Crop + flip when training. Defaults to `True`.
        seed: int. Defaults to `0`.
        shuffle_buffer: int. Shuffle buffer size (capped at the split's size).
            Defaults to `10000`.
        drop_remainder: bool. Drop the last, smaller batch (distributed
            training: every step splits a full global batch evenly). Defaults
            to `False`.

    Returns:
        A batched, prefetched `tf.data.Dataset`.

    Example:
    ```python
    splits = keras_scan.data.load_dataset("fashion_mnist", 32)
    train_ds = keras_scan.data.make_tf_dataset(splits.train, 128, training=True)
    val_ds = keras_scan.data.make_tf_dataset(splits.val, 256, training=False)
    ```
    """
    tf = _import_tf()
    _check_batch_size(batch_size)
    ds = _as_tf_dataset(tf, split)
    if training:
        n = int(ds.cardinality())
        buffer = max(1, min(int(shuffle_buffer), n) if n > 0 else int(shuffle_buffer))
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if training and augment:
        # Augment whole batches (vectorised: far cheaper than per-image maps).
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, seeds.batch(2))).map(
            lambda xy, s: (_tf_augment(tf, xy[0], s), xy[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return ds.prefetch(tf.data.AUTOTUNE)


def _tf_augment(tf, images, seed):
    """Random crop (zero-pad by size // 8) + horizontal flip of a batch."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    _, h, w, _ = images.shape
    if h is None or w is None:
        raise ValueError(
            "Augmentation needs images of a static size; resize them first "
            f"(e.g. with load_dataset). Received: image shape {images.shape[1:]}"
        )
    n = tf.shape(images)[0]
    ph, pw = h // 8, w // 8
    if ph or pw:
        padded = tf.pad(images, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
        offsets = tf.random.stateless_uniform(
            (2, n), crop_seed, maxval=2**30, dtype=tf.int32
        )
        rows = (offsets[0] % (2 * ph + 1))[:, None] + tf.range(h)[None, :]
        cols = (offsets[1] % (2 * pw + 1))[:, None] + tf.range(w)[None, :]
        images = tf.gather(padded, rows, axis=1, batch_dims=1)
        images = tf.gather(images, cols, axis=2, batch_dims=1)
    flip = tf.random.stateless_uniform((n,), flip_seed) < 0.5
    return tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)


def _np_augment(x, rng):
    """Random crop (zero-pad by size // 8) + horizontal flip of a batch."""
    n, h, w, _ = x.shape
    ph, pw = h // 8, w // 8
    if ph or pw:
        padded = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
        oy = rng.integers(0, 2 * ph + 1, size=n)
        ox = rng.integers(0, 2 * pw + 1, size=n)
        rows = oy[:, None] + np.arange(h)
        cols = ox[:, None] + np.arange(w)
        x = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    flip = rng.random(n) < 0.5
    x[flip] = x[flip, :, ::-1]
    return x


class NumpyDataset(keras.utils.PyDataset):
    """Batches numpy images for `fit` / `evaluate` without TensorFlow.

    The TensorFlow-free counterpart of `make_tf_dataset` (e.g. JAX on a GPU
    machine): same crop + flip augmentation in numpy, a new seeded order each
    epoch when training, the original order otherwise. Batches are
    `(float32 images 0..255, int32 labels)`. Randomness depends only on
    (seed, epoch, batch index), so worker threads do not change the result.

    Args:
        x: array of shape (N, H, W, C), 0..255.
        y: array of shape (N,), integer labels.
        batch_size: int.
        training: bool. Shuffle each epoch and augment.
        augment: bool. Crop + flip when training. Defaults to `True`.
        seed: int. Defaults to `0`.
        drop_remainder: bool. Drop the last, smaller batch. Defaults to `False`.
        multiple_of: int. Pad the last batch up to a multiple of this many rows
            (copies of its last image) for devices that need equal shares (JAX
            data-parallel); every batch then carries sample weights, 0 on the
            padding, so metrics and the loss ignore it. Defaults to `1` (no
            padding, no weights).
        process_shard: `(index, count)`: yield only the index-th of `count`
            contiguous parts of every batch (each process of a multi-process
            JAX job feeds its own part of the global batch). Defaults to
            `(0, 1)`.
        **kwargs: passed to `keras.utils.PyDataset` (`workers`,
            `use_multiprocessing`, `max_queue_size`).

    Example:
    ```python
    splits = keras_scan.data.load_dataset("fashion_mnist", 32)
    train = keras_scan.data.NumpyDataset(*splits.train, 128, training=True)
    model.fit(train, epochs=3)
    ```
    """

    def __init__(
        self,
        x,
        y,
        batch_size,
        *,
        training,
        augment=True,
        seed=0,
        drop_remainder=False,
        multiple_of=1,
        process_shard=(0, 1),
        **kwargs,
    ):
        super().__init__(**kwargs)
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim != 4 or y.ndim != 1 or len(x) != len(y) or not len(x):
            raise ValueError(
                "`x` must be non-empty images of shape (N, H, W, C) and `y` labels "
                f"of shape (N,). Received: x.shape={x.shape}, y.shape={y.shape}"
            )
        _check_batch_size(batch_size)
        self.x = x
        self.y = y.astype(np.int32, copy=False)
        self.batch_size = int(batch_size)
        self.training = bool(training)
        self.augment = bool(augment)
        self.seed = int(seed)
        self.drop_remainder = bool(drop_remainder)
        if not isinstance(multiple_of, int) or multiple_of < 1:
            raise ValueError(
                f"`multiple_of` must be an int >= 1. Received: multiple_of={multiple_of!r}"
            )
        self.multiple_of = multiple_of
        index, count = process_shard
        uneven_last = not self.drop_remainder and multiple_of % count
        if not 0 <= index < count or self.batch_size % count or uneven_last:
            raise ValueError(
                "`process_shard` must be (index, count) with 0 <= index < count, "
                "count dividing `batch_size` and, unless `drop_remainder`, "
                "`multiple_of`. Received: "
                f"process_shard={process_shard!r}, batch_size={batch_size}, "
                f"multiple_of={multiple_of}"
            )
        self.process_shard = (int(index), int(count))
        if self.drop_remainder and len(self.y) < self.batch_size:
            raise ValueError(
                f"`batch_size` must not exceed the {len(self.y)} examples when "
                f"dropping the last partial batch. Received: batch_size={batch_size}"
            )
        self.epoch = 0
        self._order = self._epoch_order()

    def _epoch_order(self):
        if not self.training:
            return None
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.y))

    def __len__(self):
        if self.drop_remainder:
            return len(self.y) // self.batch_size
        return math.ceil(len(self.y) / self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index {index} out of range [0, {len(self)}).")
        start, stop = index * self.batch_size, (index + 1) * self.batch_size
        sel = slice(start, stop) if self._order is None else self._order[start:stop]
        xb = self.x[sel].astype(np.float32)
        if self.training and self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            xb = _np_augment(xb, rng)
        yb = self.y[sel]
        if self.multiple_of == 1 and self.process_shard[1] == 1:
            return xb, yb
        weights = np.ones(len(yb), np.float32)
        pad = -len(yb) % self.multiple_of
        if pad:
            xb = np.concatenate([xb, np.repeat(xb[-1:], pad, axis=0)])
            yb = np.concatenate([yb, np.repeat(yb[-1:], pad)])
            weights = np.concatenate([weights, np.zeros(pad, np.float32)])
        index, count = self.process_shard
        if count > 1:
            part = slice(index * len(yb) // count, (index + 1) * len(yb) // count)
            xb, yb, weights = xb[part], yb[part], weights[part]
        if self.multiple_of == 1:
            return xb, yb
        return xb, yb, weights

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._epoch_order()


def representative_images(split, n=200, seed=0):
    """Draws `n` images from a split, e.g. for int8 calibration at export.

    Args:
        split: `(x, y)` numpy arrays, an image array, or a `tf.data.Dataset` of
            images or `(image, label)` (batched or not).
        n: int. How many images (fewer if the split is smaller). Defaults to `200`.
        seed: int. Defaults to `0`.

    Returns:
        float32 array of shape (n, H, W, C).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"`n` must be a positive int. Received: n={n!r}")
    if isinstance(split, (tuple, list)):
        split = split[0]
    if isinstance(split, np.ndarray):
        count = min(n, len(split))
        idx = np.sort(np.random.default_rng(seed).choice(len(split), count, False))
        return split[idx].astype(np.float32)
    tf = _import_tf()
    if not isinstance(split, tf.data.Dataset):
        raise TypeError(
            "`split` must be (x, y) arrays, an image array or a tf.data.Dataset. "
            f"Received: split of type {type(split).__name__}"
        )
    ds = split
    if isinstance(ds.element_spec, tuple):
        ds = ds.map(lambda *parts: parts[0])
    if ds.element_spec.shape.rank == 4:
        ds = ds.unbatch()
    buffer = max(10 * n, 1000)
    total = int(ds.cardinality())
    if total > 0:
        buffer = min(buffer, total)
    ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=False).take(n)
    images = [np.asarray(img, np.float32) for img in ds.as_numpy_iterator()]
    if not images:
        raise ValueError("`split` holds no images.")
    return np.stack(images)
