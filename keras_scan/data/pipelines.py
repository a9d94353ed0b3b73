"""`tf.data` input pipelines for `fit` / `evaluate`, and calibration images."""

import numpy as np

from keras_scan.checks import is_int
from keras_scan.data.augment import tf_augment
from keras_scan.data.tf_import import import_tf


def check_batch_size(batch_size):
    """ValueError unless `batch_size` is a positive int."""
    if not is_int(batch_size) or batch_size < 1:
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
    epochs=None,
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
        epochs: `range` of epoch indices, optional. Training only: the
            given epochs one after another (`range(3, 10)`: epochs 3 to 9),
            each epoch's order and augmentation a function of `(seed, epoch)`
            alone, so a run resumed at epoch `e` sees exactly the batches an
            uninterrupted run saw from epoch `e` on. Pass `steps_per_epoch`
            (the batches in one epoch) to `fit`. Defaults to `None`: one
            epoch, reshuffled on each pass.

    Returns:
        A batched, prefetched `tf.data.Dataset`.

    Example:
    ```python
    splits = keras_scan.data.load_dataset("fashion_mnist", 32)
    train_ds = keras_scan.data.make_tf_dataset(splits.train, 128, training=True)
    val_ds = keras_scan.data.make_tf_dataset(splits.val, 256, training=False)
    ```
    """
    tf = import_tf()
    check_batch_size(batch_size)
    ds = _as_tf_dataset(tf, split)
    if training and epochs is not None:
        return _epochs(
            tf,
            ds,
            batch_size,
            augment,
            seed,
            shuffle_buffer,
            drop_remainder,
            epochs,
        )
    if training:
        n = int(ds.cardinality())
        buffer = max(1, min(int(shuffle_buffer), n) if n > 0 else int(shuffle_buffer))
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if training and augment:
        # Augment whole batches (vectorised: far cheaper than per-image maps).
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, seeds.batch(2))).map(
            lambda xy, s: (tf_augment(tf, xy[0], s), xy[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return ds.prefetch(tf.data.AUTOTUNE)


def _epochs(tf, ds, batch_size, augment, seed, shuffle_buffer, drop_remainder, epochs):
    """The epochs in `epochs` of `ds`, each seeded by `(seed, epoch)` only.

    Python-int seeds per epoch, one epoch after another: a seed computed in
    the graph cannot be an op seed (TensorFlow then tests it as a bool).
    """
    if not isinstance(epochs, range) or not len(epochs) or epochs.start < 0:
        raise ValueError(
            "`epochs` must be a non-empty range of epoch indices >= 0. "
            f"Received: epochs={epochs!r}"
        )
    n = int(ds.cardinality())
    buffer = max(1, min(int(shuffle_buffer), n) if n > 0 else int(shuffle_buffer))
    seed = int(seed)

    def one_epoch(epoch):
        order = ds.shuffle(
            buffer, seed=seed * 1_000_003 + epoch, reshuffle_each_iteration=False
        ).batch(batch_size, drop_remainder=drop_remainder)
        if not augment:
            return order
        key = tf.constant([seed, epoch << 20], tf.int64)
        # Stateless draws keyed by (seed, epoch, batch index).
        return order.enumerate().map(
            lambda i, xy: (tf_augment(tf, xy[0], key + [0, i]), xy[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    out = one_epoch(epochs[0])
    for epoch in epochs[1:]:
        out = out.concatenate(one_epoch(epoch))
    return out.prefetch(tf.data.AUTOTUNE)


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
    if not is_int(n) or n < 1:
        raise ValueError(f"`n` must be a positive int. Received: n={n!r}")
    if isinstance(split, (tuple, list)):
        split = split[0]
    if isinstance(split, np.ndarray):
        count = min(n, len(split))
        idx = np.sort(np.random.default_rng(seed).choice(len(split), count, False))
        return split[idx].astype(np.float32)
    tf = import_tf()
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
