"""Train SCAN on CIFAR-100 from tensorflow-datasets, the paper's setting.

The first run needs the internet: `--download` lets tensorflow-datasets fetch
CIFAR-100 (about 160 MB) into `--data-dir` (default ~/tensorflow_datasets).
Later runs, or a machine where `tfds build cifar100` was run, need no network.
Killing the script and running it again continues from the last finished epoch.

The same from the shell:

    keras-scan train --backbone cifar_resnet18 --dataset tfds:cifar100 --download \\
        --epochs 200 --augment --out runs/cifar100
    keras-scan evaluate runs/cifar100

Example:

    python examples/train_cifar100.py --download --epochs 200 --out runs/cifar100
"""

import argparse
import os
import sys


def parse_args(argv=None):
    """The script's arguments (argv: a list of str; default: sys.argv[1:])."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/cifar100", help="the run folder")
    parser.add_argument(
        "--download",
        action="store_true",
        help="let tensorflow-datasets download CIFAR-100 if it is not local",
    )
    parser.add_argument("--data-dir", help="the tensorflow-datasets data folder")
    parser.add_argument(
        "--backbone",
        default="cifar_resnet18",
        help="cifar_resnet18 (default), cifar_resnet34, cifar_resnet50, or a "
        "Keras Applications name such as resnet50 (with --image-size 32 or more)",
    )
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument(
        "--width", type=int, help="CIFAR ResNet width (default 64, the paper's)"
    )
    parser.add_argument(
        "--epochs", type=int, default=200, help="default 200 (the paper's)"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--limit", type=int, help="train on N images only")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a finished run"
    )
    return parser.parse_args(argv)


def settings(args):
    """The `keras_scan.training.train` settings the arguments stand for."""
    return dict(
        dataset="tfds:cifar100",
        backbone=args.backbone,
        image_size=args.image_size,
        width=args.width,
        epochs=args.epochs,
        batch_size=args.batch_size,
        limit=args.limit,
        data_dir=args.data_dir,
        # Photographs over 200 epochs: crop + flip, as in the paper (off by
        # default, measured on short Fashion-MNIST runs).
        augment=True,
    )


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_scan import training

    try:
        result = training.train(
            args.out,
            download=args.download,
            overwrite=args.overwrite,
            **settings(args),
        )
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"train_cifar100.py: error: {e}", file=sys.stderr)
        return 2
    if result.evaluation:
        print(training.format_table(result.evaluation))
    return 0


if __name__ == "__main__":
    sys.exit(main())
