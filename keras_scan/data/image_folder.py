"""The `"folder:PATH"` dataset spec: one subfolder of images per class."""

import pathlib

import numpy as np

from keras_scan.data.data_splits import DataSplits
from keras_scan.data.resize import tf_decode_image, tf_fit
from keras_scan.data.tf_import import import_tf
from keras_scan.data.validation_split import split_validation

# Same list as keras.utils.image_dataset_from_directory.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


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
        image = tf_decode_image(tf, tf.io.read_file(path), channels)
        return tf_fit(tf, image, size), label

    ds = tf.data.Dataset.from_tensor_slices(
        (np.asarray(paths, dtype=str), np.asarray(labels, np.int32))
    )
    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)


def load_folder_splits(path, *, size, channels, val_fraction, seed, limit, source):
    """The `"folder:PATH"` spec's `DataSplits` (see `load_dataset`)."""
    tf = import_tf()
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
