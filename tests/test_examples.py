"""examples/: the quickstart notebook runs end to end (small subset), and
train_cifar100.py parses its arguments without touching the network."""

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _load_script(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    notebook = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    os.environ["KERAS_SCAN_QUICK"] = "1"  # the kernel inherits the environment
    try:
        client = nbclient.NotebookClient(
            notebook,
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path)}},
        )
        client.execute()  # raises CellExecutionError (with the cell) on failure
    finally:
        os.environ.pop("KERAS_SCAN_QUICK", None)

    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    # The per-exit table and the exits of both backbones were printed...
    for name in ("exit_0", "exit_1", "exit_2", "final", "ensemble"):
        assert name in text, name
    assert "block_" in text and "stage1_block2_out" in text  # MobileNetV2, ResNet
    # ... and the accuracy-per-exit plot was drawn.
    assert any("image/png" in o.get("data", {}) for o in outputs)


def test_train_cifar100_script_arguments():
    script = _load_script("train_cifar100")
    args = script.parse_args([])
    assert not args.download and args.epochs == 200  # the paper's, no network
    settings = script.settings(args)
    assert settings["dataset"] == "tfds:cifar100"
    assert settings["backbone"] == "cifar_resnet18" and settings["batch_size"] == 128
    assert settings["augment"] is True  # photographs, 200 epochs: crop + flip

    args = script.parse_args(
        ["--download", "--epochs", "3", "--width", "16", "--data-dir", "/data/tfds"]
    )
    settings = script.settings(args)
    assert args.download and settings["epochs"] == 3 and settings["width"] == 16
    assert settings["data_dir"] == "/data/tfds"
    # Every setting it passes is one `keras_scan.training.train` accepts.
    from keras_scan import training

    config = training.resolve_config(settings)
    assert config["dataset"] == "tfds:cifar100" and config["lr"] == 0.1

    with pytest.raises(SystemExit):
        script.parse_args(["--epochs", "many"])


def test_train_cifar100_script_help():
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "train_cifar100.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "--download" in proc.stdout and "tfds:cifar100" in proc.stdout


def test_demo_saves_real_test_images_quietly(tmp_path):
    """`make demo`'s last step: Fashion-MNIST test images as .npy for scan-lite,
    written by a child process whose TensorFlow start-up lines stay hidden."""
    demo = _load_script("demo")
    demo.save_test_images(tmp_path, count=3)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "test_0_Ankle boot.npy",
        "test_1_Pullover.npy",
        "test_2_Trouser.npy",
    ]
    import numpy as np

    image = np.load(tmp_path / names[0])
    assert image.shape == (28, 28) and image.dtype == np.uint8
