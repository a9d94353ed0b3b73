"""Training augmentation: random crop (zero-pad by size // 8) + horizontal flip.

One rule, written for TensorFlow (`tf_augment`, in `make_tf_dataset`; the
caller passes the `tf` module) and for numpy (`np_augment`, in `NumpyDataset`).
"""

import numpy as np


def tf_augment(tf, images, seed):
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


def np_augment(x, rng):
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
