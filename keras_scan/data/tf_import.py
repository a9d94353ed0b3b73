"""The lazy TensorFlow import of the `tf.data` parts of keras_scan.data."""


def import_tf():
    """The `tensorflow` module; ImportError pointing to the numpy path without it."""
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
