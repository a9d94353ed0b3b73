"""The `"tfds:NAME[:SPLIT]"` dataset spec: a tensorflow-datasets data set."""

import difflib

import numpy as np

from keras_scan.data.data_splits import DataSplits
from keras_scan.data.resize import tf_convert_channels, tf_fit
from keras_scan.data.tf_import import import_tf
from keras_scan.data.validation_split import seeded_roles


def _import_tfds():
    import_tf()
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError(
            "The 'tfds:' dataset specs need tensorflow-datasets and "
            "importlib_resources (`pip install keras-scan[tf]`). "
            f"({e})"
        ) from e
    return tfds


def _assert_cardinality(tf, ds, n):
    return ds.apply(tf.data.experimental.assert_cardinality(n))


def load_tfds_splits(
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
    """The `"tfds:NAME[:SPLIT]"` spec's `DataSplits` (see `load_dataset`)."""
    tf = import_tf()
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
        image = tf_convert_channels(tf, image, channels)
        image = tf_fit(tf, image, size)
        return image, tf.cast(label, tf.int32)

    train_all = load("train")
    n = int(train_all.cardinality())
    if n < 0:
        n = int(train_all.reduce(np.int64(0), lambda count, _: count + 1))
    if limit is not None and limit < n:
        train_all, n = train_all.take(limit), limit
    is_val = tf.constant(seeded_roles(n, val_fraction, seed))
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
