"""Image fitting: zero-pad (centred, even border) or resize, and set channels.

One rule, written for numpy (`resize_images`, whole arrays) and for TensorFlow
(`tf_fit`, one image inside a `tf.data` map; the caller passes the `tf`
module, so this module never imports TensorFlow).
"""

import numpy as np

from keras_scan.checks import is_int


def size_pair(image_size):
    """`(height, width)` of an int or a pair; ValueError naming `image_size`."""
    if is_int(image_size):
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


def check_channels(channels):
    """ValueError unless `channels` is 1 or 3."""
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
    check_channels(channels)
    th, tw = size_pair(image_size)
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


def tf_convert_channels(tf, image, channels):
    """`image` (1, 3 or 4 channels) with `channels` channels (TF twin of numpy's)."""
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


def tf_decode_image(tf, contents, channels):
    """Encoded image bytes (PNG, JPEG, BMP, GIF) -> float32 (H, W, `channels`).

    Decoded in the file's own channels, then converted with the rule every
    runtime uses (alpha dropped; grey repeated to RGB; RGB to grey as
    0.2989 R + 0.5870 G + 0.1140 B). Asking the decoder for the channels
    instead would turn RGB grey with libpng's other weights, before any resize.
    """
    image = tf.io.decode_image(contents, channels=0, expand_animations=False)
    image = tf.cast(image, tf.float32)
    has_colour = tf.shape(image)[-1] >= 3
    image = tf.cond(has_colour, lambda: image[..., :3], lambda: image[..., :1])
    if channels == 3:
        image = tf.cond(has_colour, lambda: image, lambda: tf.tile(image, [1, 1, 3]))
    else:
        image = tf.cond(
            has_colour,
            lambda: tf.image.rgb_to_grayscale(image),
            lambda: image,
        )
    image.set_shape((None, None, channels))
    return image


def tf_fit(tf, image, size):
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
