"""The target-accuracy check shared by growing and cutting.

Ints and floats are checked by `keras_scan.checks` (errors name the argument).
"""

from keras_scan.checks import is_number

__all__ = ["check_target"]


def check_target(target_accuracy):
    """`target_accuracy` as a float in (0, 1], or a `ValueError`."""
    if not is_number(target_accuracy) or not 0 < target_accuracy <= 1:
        raise ValueError(
            "`target_accuracy` must be a number in (0, 1] (a fraction, e.g. 0.92 "
            f"for 92%). Received: target_accuracy={target_accuracy!r}"
        )
    return float(target_accuracy)
