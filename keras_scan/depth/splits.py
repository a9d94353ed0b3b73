"""The data splits growing and cutting read: checks, batches, accuracy.

A split is `(x, y)` numpy arrays (x float32 0..255 NHWC, y int) or an
unbatched `tf.data.Dataset` of `(image, label)`.
"""

import numpy as np

__all__ = [
    "check_split",
    "num_examples",
    "image_shape",
    "batched",
    "plain_accuracy",
]


def check_split(name, split):
    """`split` as `(x, y)` arrays or the dataset itself, or a clear error."""
    if isinstance(split, (tuple, list)):
        if len(split) != 2:
            raise ValueError(
                f"`{name}` must be (x, y) arrays or an unbatched tf.data.Dataset "
                f"of (image, label). Received: a sequence of length {len(split)}"
            )
        x, y = np.asarray(split[0]), np.asarray(split[1])
        if x.ndim != 4 or y.ndim != 1 or len(x) != len(y) or not len(x):
            raise ValueError(
                f"`{name}` must be non-empty images (N, H, W, C) with labels (N,). "
                f"Received: x.shape={x.shape}, y.shape={y.shape}"
            )
        return (x, y)
    if hasattr(split, "cardinality") and hasattr(split, "element_spec"):
        return split
    raise TypeError(
        f"`{name}` must be (x, y) numpy arrays or an unbatched tf.data.Dataset of "
        f"(image, label). Received: {name} of type {type(split).__name__}"
    )


def num_examples(split):
    """Number of examples of a checked split (a dataset must have a known size)."""
    if isinstance(split, (tuple, list)):
        return len(split[0])
    n = int(split.cardinality())
    if n < 0:
        raise ValueError(
            "`train_data` / `val_data` must have a known size (a finite "
            "tf.data.Dataset, not repeated). Received a dataset of unknown cardinality"
        )
    return n


def image_shape(split):
    """`(height, width, channels)` of the images of a checked split."""
    if isinstance(split, tuple):
        return tuple(int(d) for d in split[0].shape[1:])
    spec = split.element_spec[0]
    return tuple(int(d) for d in spec.shape[-3:])


def batched(split, batch_size, training, augment, seed):
    """Batches of a checked split (`keras_scan.data`'s pipelines)."""
    from keras_scan import data

    if isinstance(split, tuple):
        return data.NumpyDataset(
            split[0],
            split[1],
            batch_size,
            training=training,
            augment=augment,
            seed=seed,
        )
    return data.make_tf_dataset(
        split, batch_size, training=training, augment=augment, seed=seed
    )


def plain_accuracy(model, split, batch_size=256):
    """Accuracy of an `image -> logits` model on a split (no compile needed)."""
    from keras_scan import inference

    return inference.exit_accuracies(model, split, batch_size, arg="test_data")["final"]
