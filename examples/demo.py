"""The main job (`make demo`): train SCAN on Fashion-MNIST and report every exit.

Runs in a few minutes on 2 CPU cores: a narrow CIFAR ResNet18 on a subset of
Fashion-MNIST (padded to 32x32x3), then per-exit test accuracy and cost.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

import keras_scan  # noqa: E402
from keras_scan import data  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo_out", help="output folder")
    parser.add_argument("--limit", type=int, default=12000, help="training images")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--width", type=int, default=16)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    splits = data.load_dataset("fashion_mnist", 32, limit=args.limit)
    print(splits)
    backbone = keras_scan.backbones.cifar_resnet(18, width=args.width)
    model = keras_scan.build(backbone, num_classes=splits.num_classes)
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
        metrics=["accuracy"],
    )
    train = data.make_tf_dataset(splits.train, 64, training=True)
    val = data.make_tf_dataset(splits.val, 256, training=False)
    test = data.make_tf_dataset(splits.test, 256, training=False)
    start = time.time()
    model.fit(train, validation_data=val, epochs=args.epochs, verbose=2)
    print(f"trained in {time.time() - start:.0f} s")
    result = model.evaluate(test, verbose=0, return_dict=True)
    print(f"\n{'exit':8} {'layer':20} {'test acc':>9} {'MACs (M)':>9}")
    for info in model.exit_info:
        acc = result[f"{info['name']}_accuracy"]
        print(f"{info['name']:8} {info['layer']:20} {acc:9.4f} {info['macs'] / 1e6:9.1f}")
    os.makedirs(args.out, exist_ok=True)
    model.save(os.path.join(args.out, "model.keras"))
    print(f"saved {os.path.join(args.out, 'model.keras')}")


if __name__ == "__main__":
    main()
