"""Shared fixtures: real Fashion-MNIST subsets and one small trained SCAN model.

Training is the expensive part of the suite, so one tiny CIFAR ResNet18
(width 16) is trained once per session on a Fashion-MNIST subset and shared by
every test that needs a trained model (search, inference, export).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from helpers import small_backbone  # noqa: E402

import keras_scan  # noqa: E402
from keras_scan import data  # noqa: E402

TRAIN_N = 4000
VAL_N = 1000
TEST_N = 1000


@pytest.fixture(scope="session")
def fashion_mnist():
    """Full Fashion-MNIST as uint8 arrays (from the Debian package)."""
    return data.load_fashion_mnist()


@pytest.fixture(scope="session")
def fm_small(fashion_mnist):
    """A 32x32x3 Fashion-MNIST subset: train / val (held out of train) / test."""
    x, y = fashion_mnist["train"]
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(x))[: TRAIN_N + VAL_N]
    x32 = data.resize_images(x[idx], 32, channels=3)
    y = y[idx].astype("int32")
    xt, yt = fashion_mnist["test"]
    return {
        "train": (x32[:TRAIN_N], y[:TRAIN_N]),
        "val": (x32[TRAIN_N:], y[TRAIN_N:]),
        "test": (
            data.resize_images(xt[:TEST_N], 32, channels=3),
            yt[:TEST_N].astype("int32"),
        ),
    }


@pytest.fixture(scope="session")
def trained(fm_small, tmp_path_factory):
    """A small SCAN model trained on the subset; returns (model, history, path)."""
    keras.utils.set_random_seed(0)
    model = keras_scan.build(small_backbone(), num_classes=10)
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
        metrics=["accuracy"],
    )
    x, y = fm_small["train"]
    history = model.fit(
        x, y, batch_size=64, epochs=3, validation_data=fm_small["val"], verbose=0
    )
    path = tmp_path_factory.mktemp("trained") / "model.keras"
    model.save(path)
    return model, history, path
