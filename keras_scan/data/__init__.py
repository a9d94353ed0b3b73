"""Data sets and input pipelines for keras_scan.

Three dataset specs are understood by `load_dataset`:

- `"fashion_mnist"`: the IDX files of the Debian package `dataset-fashion-mnist`
  (or `data_dir`, `$KERAS_SCAN_DATA_DIR`, the Keras cache), parsed with numpy.
- `"tfds:NAME[:SPLIT]"`: a tensorflow-datasets data set; SPLIT names the test split.
- `"folder:PATH"`: one subfolder of images per class (optionally `train/` and `test/`).

Conventions shared by every path: images are float32 in 0..255, NHWC; labels are
int32. Nothing here normalises: the models carry their own `Rescaling` layer.
A validation split is always held out of train, seeded.

TensorFlow is imported lazily, only by the functions that build `tf.data`
pipelines, read tfds or image folders: the numpy path (`load_fashion_mnist`,
`load_dataset("fashion_mnist", ...)`, `NumpyDataset`) runs without TensorFlow,
e.g. on a JAX-only GPU machine.

Modules, one concept each:

- `sources`: `load_dataset`, which picks the source for a spec:
  `idx` (Fashion-MNIST IDX files), `tfds_source`, `image_folder`.
- `resize`: image fitting (pad or resize, channels), numpy and TensorFlow.
- `validation_split`: the seeded validation split held out of train.
- `data_splits`: `DataSplits`, what every source returns.
- `pipelines`: `tf.data` pipelines (`make_tf_dataset`), `representative_images`.
- `numpy_dataset`: `NumpyDataset`, the TensorFlow-free pipeline.
- `augment`: the crop + flip augmentation, TensorFlow and numpy.
- `tf_import`: the lazy TensorFlow import.
"""

from keras_scan.data.data_splits import DataSplits, num_examples
from keras_scan.data.idx import (
    FASHION_MNIST_LABELS,
    FASHION_MNIST_SYSTEM_DIR,
    find_fashion_mnist,
    load_fashion_mnist,
)
from keras_scan.data.image_folder import IMAGE_EXTENSIONS
from keras_scan.data.numpy_dataset import NumpyDataset
from keras_scan.data.pipelines import make_tf_dataset, representative_images
from keras_scan.data.resize import resize_images
from keras_scan.data.sources import VALID_SPECS, load_dataset
from keras_scan.data.validation_split import split_validation

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
