"""Tests for keras_scan.data on real Fashion-MNIST (no network)."""

import gzip
import os
import pathlib
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from keras_scan import data
from keras_scan.data import idx

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fm():
    return data.load_fashion_mnist()


@pytest.fixture(scope="module")
def fm_splits():
    return data.load_dataset("fashion_mnist", 32, limit=2000)


def _write_idx(path, array):
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def _write_small_fashion_mnist(folder, n=20, gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for stem in ("train", "t10k"):
        _write_idx(
            folder / f"{stem}-images-idx3-ubyte{suffix}",
            rng.integers(0, 256, (n, 28, 28)),
        )
        _write_idx(folder / f"{stem}-labels-idx1-ubyte{suffix}", np.arange(n) % 10)


def _no_system_data(monkeypatch, tmp_path):
    """Hides every default place Fashion-MNIST could be found."""
    monkeypatch.setattr(idx, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KERAS_SCAN_DATA_DIR", raising=False)
    monkeypatch.delenv("KERAS_HOME", raising=False)


# --- Fashion-MNIST IDX files -------------------------------------------------


def test_load_fashion_mnist_shapes_dtypes_and_histogram(fm):
    x, y = fm["train"]
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (60000,) and y.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(y), [6000] * 10)
    xt, yt = fm["test"]
    assert xt.shape == (10000, 28, 28) and yt.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(yt), [1000] * 10)
    assert 0 < x.mean() < 255 and x.max() == 255
    assert len(data.FASHION_MNIST_LABELS) == 10


def test_find_fashion_mnist_missing_lists_every_place(monkeypatch, tmp_path):
    _no_system_data(monkeypatch, tmp_path)
    monkeypatch.setenv("KERAS_SCAN_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(FileNotFoundError) as err:
        data.find_fashion_mnist(tmp_path / "given")
    msg = str(err.value)
    for place in ("given", "env", "system", "home/.keras/datasets/fashion-mnist"):
        assert str(tmp_path / place) in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "download=True" in msg and "--data-dir" in msg
    with pytest.raises(FileNotFoundError):
        data.load_fashion_mnist(tmp_path / "given")


def test_data_dir_first_uncompressed_and_partial(monkeypatch, tmp_path):
    _no_system_data(monkeypatch, tmp_path)
    _write_small_fashion_mnist(tmp_path / "mine", n=20, gz=False)
    assert data.find_fashion_mnist(tmp_path / "mine") == tmp_path / "mine"
    loaded = data.load_fashion_mnist(tmp_path / "mine")
    assert loaded["train"][0].shape == (20, 28, 28)
    assert loaded["test"][1].dtype == np.int32
    # A parent folder holding fashion-mnist/ is accepted, gzipped files too.
    _write_small_fashion_mnist(tmp_path / "parent/fashion-mnist", n=10, gz=True)
    assert data.load_fashion_mnist(tmp_path / "parent")["train"][0].shape[0] == 10
    # A folder with some of the files says what is missing.
    (tmp_path / "mine/t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="missing t10k-labels"):
        data.find_fashion_mnist(tmp_path / "mine")


def test_corrupt_idx_files_name_the_file(monkeypatch, tmp_path):
    _no_system_data(monkeypatch, tmp_path)
    folder = tmp_path / "fm"
    _write_small_fashion_mnist(folder, n=20, gz=True)
    labels = folder / "train-labels-idx1-ubyte.gz"

    labels.write_bytes(b"this is not gzip")
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz.*corrupt"):
        data.load_fashion_mnist(folder)

    _write_idx(labels, np.zeros((20, 3)))  # 2-D: wrong magic number.
    with pytest.raises(ValueError, match="train-labels.*magic number"):
        data.load_fashion_mnist(folder)

    with gzip.open(labels, "wb") as f:  # Header says 20 labels, holds 5.
        f.write(bytes([0, 0, 8, 1]) + (20).to_bytes(4, "big") + bytes(5))
    with pytest.raises(ValueError, match="train-labels.*truncated"):
        data.load_fashion_mnist(folder)

    _write_idx(labels, np.arange(19) % 10)  # 20 images, 19 labels.
    with pytest.raises(ValueError, match="20 images.*19 labels"):
        data.load_fashion_mnist(folder)


# --- resize_images ------------------------------------------------------------


def test_resize_pads_28_to_32_with_zeros(fm):
    x = fm["test"][0][:50]
    out = data.resize_images(x, 32)
    assert out.shape == (50, 32, 32, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 2:30, 2:30, 0], x.astype(np.float32))
    for c in (1, 2):
        np.testing.assert_array_equal(out[..., c], out[..., 0])
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert not out[:, border].any()
    grey = data.resize_images(x[..., None], 32, channels=1)
    assert grey.shape == (50, 32, 32, 1)
    np.testing.assert_array_equal(grey[..., 0], out[..., 0])


def test_resize_28_to_20_matches_tf(fm):
    tf = pytest.importorskip("tensorflow")
    x = fm["test"][0][:50]
    out = data.resize_images(x, 20)
    assert out.shape == (50, 20, 20, 3) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255
    ref = tf.image.resize(x[..., None].astype("float32"), (20, 20), antialias=True)
    np.testing.assert_allclose(out[..., :1], ref.numpy(), atol=0.01)
    # Mean brightness survives resampling.
    np.testing.assert_allclose(out.mean(), x.mean(), rtol=0.02)


def test_resize_nhwc_rgb_to_grey_and_bad_input():
    rgb = np.zeros((2, 10, 10, 3), np.uint8)
    rgb[..., 0] = 255
    grey = data.resize_images(rgb, 15, channels=1)
    assert grey.shape == (2, 15, 15, 1)
    np.testing.assert_allclose(grey, 0.2989 * 255, rtol=1e-3)
    with pytest.raises(ValueError, match="channels"):
        data.resize_images(rgb, 16, channels=2)
    with pytest.raises(ValueError, match="image_size"):
        data.resize_images(rgb, 0)
    with pytest.raises(ValueError, match="x.shape"):
        data.resize_images(np.zeros((10, 10)), 16)


# --- split_validation ---------------------------------------------------------


def test_split_validation_disjoint_seeded_stratified(fm):
    y = fm["train"][1][:5000]
    idx = np.arange(len(y))
    (i_tr, y_tr), (i_val, y_val) = data.split_validation(idx, y, 0.1, seed=0)
    assert len(i_val) == 500 and len(i_tr) == 4500
    assert not set(i_tr) & set(i_val)
    np.testing.assert_array_equal(np.sort(np.concatenate([i_tr, i_val])), idx)
    np.testing.assert_array_equal(y[i_val], y_val)
    np.testing.assert_array_equal(y[i_tr], y_tr)
    # Stratified: each class holds ~10% of its examples out.
    counts = np.bincount(y, minlength=10)
    assert np.all(np.abs(np.bincount(y_val, minlength=10) - counts * 0.1) <= 1)
    (_, _), (i_val_again, _) = data.split_validation(idx, y, 0.1, seed=0)
    np.testing.assert_array_equal(i_val, i_val_again)
    (_, _), (i_val_other, _) = data.split_validation(idx, y, 0.1, seed=1)
    assert not np.array_equal(i_val, i_val_other)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, "0.1", None])
def test_split_validation_bad_fraction(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        data.split_validation(np.zeros(10), np.zeros(10), fraction)


# --- load_dataset: fashion_mnist ---------------------------------------------


def test_load_dataset_fashion_mnist_limit(fm_splits):
    s = fm_splits
    x_tr, y_tr = s.train
    assert x_tr.shape == (1800, 32, 32, 3) and x_tr.dtype == np.float32
    assert y_tr.dtype == np.int32
    assert s.val[0].shape == (200, 32, 32, 3)
    assert s.test[0].shape == (2000, 32, 32, 3)
    assert s.image_shape == (32, 32, 3) and s.num_classes == 10
    assert s.class_names == data.FASHION_MNIST_LABELS
    assert s.source == "fashion_mnist"
    assert s.sizes() == {"train": 1800, "val": 200, "test": 2000}
    assert 0 <= x_tr.min() and x_tr.max() <= 255 and x_tr.max() > 1
    assert set(np.unique(s.val[1])) == set(range(10))


def test_load_dataset_bad_arguments():
    with pytest.raises(ValueError, match="fashion_mnist.*tfds:NAME.*folder:PATH"):
        data.load_dataset("cifar10", 32)
    with pytest.raises(TypeError, match="spec"):
        data.load_dataset(None, 32)
    with pytest.raises(ValueError, match="limit"):
        data.load_dataset("fashion_mnist", 32, limit=0)
    with pytest.raises(ValueError, match="val_fraction"):
        data.load_dataset("fashion_mnist", 32, val_fraction=1.0)
    with pytest.raises(ValueError, match="channels"):
        data.load_dataset("fashion_mnist", 32, channels=4)


# --- pipelines ---------------------------------------------------------------


def test_make_tf_dataset_training_augments_and_preserves_labels(fm_splits):
    pytest.importorskip("tensorflow")
    x, y = fm_splits.val
    ds = data.make_tf_dataset((x, y), 64, training=True, seed=3)
    epochs = [list(ds.as_numpy_iterator()) for _ in range(2)]
    for batches in epochs:
        assert len(batches) == 4 and batches[0][0].shape == (64, 32, 32, 3)
        assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.int32
        labels = np.concatenate([b[1] for b in batches])
        np.testing.assert_array_equal(np.sort(labels), np.sort(y))
        images = np.concatenate([b[0] for b in batches])
        assert images.min() >= 0 and images.max() <= 255
    assert not np.array_equal(epochs[0][0][0], epochs[1][0][0])
    # Same seed, same stream (reproducible).
    again = data.make_tf_dataset((x, y), 64, training=True, seed=3)
    np.testing.assert_array_equal(next(iter(again))[0].numpy(), epochs[0][0][0])
    # Without augmentation every (image, label) pair is an original pair.
    plain = data.make_tf_dataset((x, y), 64, training=True, augment=False)
    lookup = {x[i].tobytes(): y[i] for i in range(len(y))}
    for xb, yb in plain.as_numpy_iterator():
        assert [lookup[img.tobytes()] for img in xb] == yb.tolist()


def _is_crop_or_flip_of(image, originals, pad):
    h, w = image.shape[:2]
    padded = np.pad(originals, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    for candidate in (image, image[:, ::-1]):
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                crops = padded[:, dy : dy + h, dx : dx + w]
                if (crops == candidate).all(axis=(1, 2, 3)).any():
                    return True
    return False


def test_augmentation_is_a_padded_crop_plus_flip():
    rng = np.random.default_rng(0)
    x = rng.integers(1, 256, (16, 16, 16, 3)).astype(np.float32)
    y = np.arange(16, dtype=np.int32)
    batches = [data.NumpyDataset(x, y, 16, training=True, seed=2)[0][0]]
    pytest.importorskip("tensorflow")
    ds = data.make_tf_dataset((x, y), 16, training=True, seed=2)
    batches.append(next(iter(ds))[0].numpy())
    for batch in batches:
        assert batch.shape == x.shape
        assert all(_is_crop_or_flip_of(img, x, pad=2) for img in batch)
        assert not np.array_equal(np.sort(batch, axis=None), np.sort(x, axis=None))


def test_make_tf_dataset_eval_is_deterministic(fm_splits):
    pytest.importorskip("tensorflow")
    x, y = fm_splits.val
    ds = data.make_tf_dataset((x, y), 64, training=False)
    first = list(ds.as_numpy_iterator())
    second = list(ds.as_numpy_iterator())
    np.testing.assert_array_equal(np.concatenate([b[0] for b in first]), x)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in second]), y)
    with pytest.raises(ValueError, match="batch_size"):
        data.make_tf_dataset((x, y), 0, training=False)


def test_numpy_dataset_batches_and_epochs(fm_splits):
    x, y = fm_splits.val
    train = data.NumpyDataset(x, y, 64, training=True, seed=1)
    assert len(train) == 4
    xb, yb = train[0]
    assert xb.shape == (64, 32, 32, 3) and xb.dtype == np.float32
    assert yb.dtype == np.int32 and train[3][0].shape == (8, 32, 32, 3)
    epoch0 = [train[i] for i in range(len(train))]
    np.testing.assert_array_equal(
        np.sort(np.concatenate([b[1] for b in epoch0])), np.sort(y)
    )
    np.testing.assert_array_equal(train[0][0], xb)  # Same epoch, same batch.
    train.on_epoch_end()
    assert not np.array_equal(train[0][0], xb)
    evals = data.NumpyDataset(x, y, 64, training=False)
    np.testing.assert_array_equal(np.concatenate([evals[i][0] for i in range(4)]), x)
    with pytest.raises(IndexError):
        evals[4]


def test_a_resumed_epoch_sees_the_uninterrupted_runs_batches(fm_splits):
    """Epoch e's order and augmentation depend on (seed, epoch) only."""
    x, y = fm_splits.train
    x, y = x[:300], y[:300]
    steps = 3  # ceil(300 / 128)

    def tf_batches(first, epochs):
        ds = data.make_tf_dataset(
            (x, y), 128, training=True, seed=4, epochs=range(first, first + epochs)
        )
        return [(a.numpy(), b.numpy()) for a, b in ds]

    def numpy_batches(first, epochs):
        ds = data.NumpyDataset(x, y, 128, training=True, seed=4, first_epoch=first)
        out = []
        for _ in range(epochs):
            out += [ds[i] for i in range(len(ds))]
            ds.on_epoch_end()
        return out

    for batches in (tf_batches, numpy_batches):
        whole, resumed = batches(0, 3), batches(2, 1)
        assert [len(b[1]) for b in whole[:steps]] == [128, 128, 44]
        for a, b in zip(whole[2 * steps :], resumed, strict=True):
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
        # ... and each epoch its own order and draws.
        assert not np.array_equal(whole[0][1], whole[steps][1])
    with pytest.raises(ValueError, match="epochs"):
        data.make_tf_dataset((x, y), 128, training=True, epochs=range(0))
    with pytest.raises(ValueError, match="first_epoch"):
        data.NumpyDataset(x, y, 128, training=True, first_epoch=1.5)


def test_numpy_dataset_fits_a_keras_model(fm_splits):
    import keras

    x, y = fm_splits.val
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(data.NumpyDataset(x, y, 50, training=True), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_representative_images(fm_splits):
    images = data.representative_images(fm_splits.train, n=30, seed=0)
    assert images.shape == (30, 32, 32, 3) and images.dtype == np.float32
    np.testing.assert_array_equal(
        images, data.representative_images(fm_splits.train, n=30, seed=0)
    )
    assert data.representative_images(fm_splits.val, n=1000).shape[0] == 200
    pytest.importorskip("tensorflow")
    ds = data.make_tf_dataset(fm_splits.val, 16, training=False)
    assert data.representative_images(ds, n=20).shape == (20, 32, 32, 3)


# --- tfds ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, channels, size",
    [("tfds:mnist", 3, 32), ("tfds:cifar10", 3, 24), ("tfds:cifar10", 1, 32)],
)
def test_tfds_with_mock_data(spec, channels, size):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=40):
        s = data.load_dataset(spec, size, channels=channels, seed=0)
        assert s.num_classes == 10 and len(s.class_names) == 10
        assert s.image_shape == (size, size, channels)
        assert s.sizes() == {"train": 36, "val": 4, "test": 40}
        train = list(s.train.as_numpy_iterator())
        val = list(s.val.as_numpy_iterator())
        assert len(train) == 36 and len(val) == 4
        image, label = train[0]
        assert image.shape == (size, size, channels) and image.dtype == np.float32
        assert label.dtype == np.int32 and 0 <= label < 10
        assert 0 <= image.min() and image.max() <= 255 and image.max() > 1
        batch = next(iter(data.make_tf_dataset(s.train, 8, training=True)))
        assert batch[0].shape == (8, size, size, channels)
        limited = data.load_dataset(spec, size, channels=channels, limit=20)
        assert limited.sizes() == {"train": 18, "val": 2, "test": 20}


def test_tfds_missing_dataset_offline_fails_fast(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match="--download.*tfds build mnist"):
        data.load_dataset("tfds:mnist", 32, data_dir=tmp_path)
    assert time.monotonic() - start < 30


def test_tfds_unknown_name(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(ValueError, match="Unknown tensorflow-datasets name.*mnist"):
        data.load_dataset("tfds:mnistt", 32, data_dir=tmp_path)


# --- image folders -------------------------------------------------------------


def _write_folder(root, fm, classes=(0, 1, 2), per_class=20, offset=0):
    tf = pytest.importorskip("tensorflow")
    x, y = fm["test"]
    for c in classes:
        folder = root / data.FASHION_MNIST_LABELS[c].replace("/", "_")
        folder.mkdir(parents=True, exist_ok=True)
        for j, i in enumerate(np.flatnonzero(y == c)[offset : offset + per_class]):
            png = tf.io.encode_png(x[i][..., None]).numpy()
            (folder / f"{j:03d}.png").write_bytes(png)


def test_folder_dataset(tmp_path, fm):
    _write_folder(tmp_path / "imgs", fm)
    s = data.load_dataset(f"folder:{tmp_path / 'imgs'}", 32)
    assert s.class_names == ["Pullover", "T-shirt_top", "Trouser"]
    assert s.num_classes == 3 and s.image_shape == (32, 32, 3)
    assert s.sizes() == {"train": 54, "val": 6, "test": 6}
    assert s.test is s.val and "validation split reused" in s.notes[0]
    train = list(s.train.as_numpy_iterator())
    image, label = train[0]
    assert image.shape == (32, 32, 3) and image.dtype == np.float32
    assert label.dtype == np.int32
    # 28x28 PNGs are zero-padded exactly like the numpy path.
    x, y = fm["test"]
    name = s.class_names[label]
    c = [n.replace("/", "_") for n in data.FASHION_MNIST_LABELS].index(name)
    originals = data.resize_images(x[np.flatnonzero(y == c)[:20]], 32)
    assert any(np.array_equal(image, o) for o in originals)
    val_labels = [int(lbl) for _, lbl in s.val.as_numpy_iterator()]
    assert sorted(val_labels) == [0, 0, 1, 1, 2, 2]  # Stratified.
    grey = data.load_dataset(f"folder:{tmp_path / 'imgs'}", 20, channels=1, limit=30)
    assert grey.sizes() == {"train": 27, "val": 3, "test": 3}
    assert next(iter(grey.train))[0].shape == (20, 20, 1)


def test_folder_with_train_and_test_subfolders(tmp_path, fm):
    _write_folder(tmp_path / "ds/train", fm, per_class=10)
    _write_folder(tmp_path / "ds/test", fm, per_class=4, offset=10)
    s = data.load_dataset(f"folder:{tmp_path / 'ds'}", 28, val_fraction=0.2)
    assert s.sizes() == {"train": 24, "val": 6, "test": 12}
    assert s.test is not s.val and not s.notes
    assert (
        sorted(int(lbl) for _, lbl in s.test.as_numpy_iterator())
        == [0] * 4 + [1] * 4 + [2] * 4
    )


def test_folder_bad_input(tmp_path, fm):
    _write_folder(tmp_path / "one", fm, classes=(0,), per_class=3)
    with pytest.raises(ValueError, match=f"{tmp_path / 'one'}.*at least 2 class"):
        data.load_dataset(f"folder:{tmp_path / 'one'}", 32)
    _write_folder(tmp_path / "bad", fm, classes=(0, 1), per_class=3)
    corrupt = tmp_path / "bad/Trouser/broken.png"
    corrupt.write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="broken.png"):
        data.load_dataset(f"folder:{tmp_path / 'bad'}", 32)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        data.load_dataset(f"folder:{tmp_path / 'nowhere'}", 32)


# --- no TensorFlow -----------------------------------------------------------------


BLOCKED_TF_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys

    class BlockTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "tensorflow_datasets", "tf_keras"):
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, BlockTensorFlow())

    import numpy as np
    from keras_scan import data

    s = data.load_dataset("fashion_mnist", 32, limit=300)
    assert s.train[0].shape == (270, 32, 32, 3), s.train[0].shape
    ds = data.NumpyDataset(*s.train, 64, training=True)
    x, y = ds[0]
    assert x.shape == (64, 32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int32
    assert data.representative_images(s.val, 10).shape == (10, 32, 32, 3)
    try:
        data.make_tf_dataset(s.train, 8, training=True)
    except ImportError as e:
        assert "TensorFlow" in str(e)
    else:
        raise AssertionError("make_tf_dataset worked without TensorFlow")
    assert not any(m.split(".")[0] == "tensorflow" for m in sys.modules)
    print("OK")
    """
)


def test_numpy_path_works_without_tensorflow():
    env = dict(os.environ, KERAS_BACKEND="numpy")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    result = subprocess.run(
        [sys.executable, "-c", BLOCKED_TF_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout
