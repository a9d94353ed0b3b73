"""`DataSplits`: the train / validation / test splits of one data set."""

import dataclasses


def num_examples(split):
    """Number of examples in a split (`(x, y)` or a `tf.data.Dataset`), or None."""
    if isinstance(split, (tuple, list)):
        return len(split[0])
    if hasattr(split, "cardinality"):
        n = int(split.cardinality())
        return n if n >= 0 else None
    return len(split)


@dataclasses.dataclass
class DataSplits:
    """Train, validation and test splits of one data set, ready for training.

    Args:
        train: `(x, y)` numpy arrays (x float32 0..255 NHWC, y int32) or an
            unbatched `tf.data.Dataset` of `(image, label)`.
        val: same, held out of the original train split (seeded).
        test: same, the data set's test split.
        num_classes: int.
        class_names: list of str, one per class.
        image_shape: tuple `(height, width, channels)`.
        source: str. The dataset spec it came from, e.g. `"fashion_mnist"`.
        notes: list of str. What a user should know, e.g. that the test split
            is the validation split reused.
    """

    train: object
    val: object
    test: object
    num_classes: int
    class_names: list
    image_shape: tuple
    source: str
    notes: list = dataclasses.field(default_factory=list)

    def sizes(self):
        """`{"train": N, "val": N, "test": N}` (None where unknown)."""
        return {
            name: num_examples(getattr(self, name)) for name in ("train", "val", "test")
        }

    def __repr__(self):
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes().items())
        return (
            f"DataSplits(source={self.source!r}, {sizes}, "
            f"image_shape={self.image_shape}, num_classes={self.num_classes}, "
            f"notes={self.notes})"
        )
