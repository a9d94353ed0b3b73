"""`NumpyDataset`: batches numpy images for `fit` / `evaluate` without TensorFlow."""

import math

import keras
import numpy as np

from keras_scan.checks import is_int
from keras_scan.data.augment import np_augment
from keras_scan.data.pipelines import check_batch_size


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
        first_epoch: int. The epoch the first pass is (a resumed run passes
            the epoch it resumes at, so it sees the uninterrupted run's
            batches). Defaults to `0`.
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
        first_epoch=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim != 4 or y.ndim != 1 or len(x) != len(y) or not len(x):
            raise ValueError(
                "`x` must be non-empty images of shape (N, H, W, C) and `y` labels "
                f"of shape (N,). Received: x.shape={x.shape}, y.shape={y.shape}"
            )
        check_batch_size(batch_size)
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
        if not is_int(first_epoch) or first_epoch < 0:
            raise ValueError(
                f"`first_epoch` must be an int >= 0. Received: first_epoch={first_epoch!r}"
            )
        self.epoch = int(first_epoch)
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
            xb = np_augment(xb, rng)
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
