"""Data sets and input pipelines for keras_scan (see `keras_scan.data.idx`)."""

from keras_scan.data.idx import (
    FASHION_MNIST_LABELS,
    FASHION_MNIST_SYSTEM_DIR,
    IMAGE_EXTENSIONS,
    VALID_SPECS,
    DataSplits,
    NumpyDataset,
    find_fashion_mnist,
    load_dataset,
    load_fashion_mnist,
    make_tf_dataset,
    num_examples,
    representative_images,
    resize_images,
    split_validation,
)

__all__ = [
    "FASHION_MNIST_LABELS",
    "FASHION_MNIST_SYSTEM_DIR",
    "IMAGE_EXTENSIONS",
    "VALID_SPECS",
    "DataSplits",
    "NumpyDataset",
    "find_fashion_mnist",
    "load_dataset",
    "load_fashion_mnist",
    "make_tf_dataset",
    "num_examples",
    "representative_images",
    "resize_images",
    "split_validation",
]
