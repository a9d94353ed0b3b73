"""`load_dataset`: picks the source that reads a dataset spec.

Each source lives in its own module: `idx` (`"fashion_mnist"`), `tfds_source`
(`"tfds:NAME[:SPLIT]"`), `image_folder` (`"folder:PATH"`).
"""

from keras_scan.checks import is_int
from keras_scan.data.idx import load_fashion_mnist_splits
from keras_scan.data.image_folder import load_folder_splits
from keras_scan.data.resize import check_channels, size_pair
from keras_scan.data.tfds_source import load_tfds_splits
from keras_scan.data.validation_split import check_fraction

VALID_SPECS = (
    "'fashion_mnist', 'tfds:NAME[:SPLIT]' (e.g. 'tfds:cifar10', "
    "'tfds:mnist:test'), 'folder:PATH' (one subfolder of images per class)"
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
    size = size_pair(image_size)
    check_channels(channels)
    check_fraction(val_fraction)
    if limit is not None and (not is_int(limit) or limit < 2):
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
        return load_fashion_mnist_splits(data_dir=data_dir, download=download, **common)
    if spec.startswith("tfds:"):
        name, _, split = spec[len("tfds:") :].partition(":")
        if not name:
            raise ValueError(
                f"`spec` 'tfds:NAME[:SPLIT]' needs a NAME. Received: spec={spec!r}"
            )
        return load_tfds_splits(
            name, split or None, data_dir=data_dir, download=download, **common
        )
    if spec.startswith("folder:"):
        path = spec[len("folder:") :]
        if not path:
            raise ValueError(
                f"`spec` 'folder:PATH' needs a PATH. Received: spec={spec!r}"
            )
        return load_folder_splits(path, **common)
    raise ValueError(
        f"Unknown dataset spec. Valid forms: {VALID_SPECS}. Received: spec={spec!r}"
    )
