"""The main job (`make demo`): the whole product on real Fashion-MNIST, from the shell.

1. `keras-scan train`     SCAN on a narrow CIFAR ResNet18 (Fashion-MNIST padded to 32x32x3)
2. `keras-scan evaluate`  accuracy, MACs and params of every exit (test split)
3. `keras-scan search`    DEAP thresholds on the validation split
4. `keras-scan evaluate --scalable`  early exit on the test split: accuracy, MAC speedup
5. `keras-scan export`    int8 LiteRT models + manifest
6. `scan-lite run`        the device-side cascade on a few test images

Sized for a few minutes on 2 CPU cores (`--limit`, `--epochs`, `--width` to change it).
Every command is printed before it runs, so you can rerun any step by hand.
"""

import argparse
import os
import pathlib
import shlex
import subprocess
import sys
import time

import numpy as np

BIN = pathlib.Path(sys.executable).parent


def step(title, argv):
    print(f"\n=== {title}\n$ {shlex.join(argv)}", flush=True)
    start = time.time()
    subprocess.run(argv, check=True)
    print(f"--- {title}: {time.time() - start:.0f} s", flush=True)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", default="demo_out", help="folder for the run and the export"
    )
    parser.add_argument(
        "--limit", type=int, default=12000, help="training images (default 12000)"
    )
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument(
        "--width", type=int, default=16, help="CIFAR ResNet width (paper: 64)"
    )
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out = pathlib.Path(args.out)
    run, export = out / "run", out / "export"
    ks = str(BIN / "keras-scan")
    # fmt: off
    step("train", [ks, "train", "--backbone", "cifar_resnet18", "--width", str(args.width),
                   "--dataset", "fashion_mnist", "--image-size", "32", "--limit", str(args.limit),
                   "--epochs", str(args.epochs), "--batch-size", "64", "--out", str(run),
                   "--verbose", "2"])
    step("evaluate", [ks, "evaluate", str(run)])
    step("search", [ks, "search", str(run), "--max-accuracy-drop", "0.5"])
    step("evaluate --scalable", [ks, "evaluate", str(run), "--scalable"])
    step("export", [ks, "export", str(run), "--out", str(export), "--quantize", "int8",
                    "--overwrite", "--eval-limit", "2000"])
    # fmt: on

    # A few real test images the model never saw, as .npy files (28x28 grey, as
    # a phone camera crop would be fitted).
    from keras_scan import data

    images, labels = data.load_fashion_mnist()["test"]
    paths = []
    for i in range(6):
        path = (
            out
            / f"test_{i}_{data.FASHION_MNIST_LABELS[labels[i]].replace('/', '-')}.npy"
        )
        np.save(path, images[i])
        paths.append(str(path))
    step("scan-lite run", [str(BIN / "scan-lite"), "run", str(export), "--fit", *paths])
    print(f"\nDone. Run folder: {run}   export: {export}")


if __name__ == "__main__":
    main()
