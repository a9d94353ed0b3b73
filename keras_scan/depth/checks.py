"""Argument checks shared by growing and cutting (errors name the argument)."""

import math

import numpy as np

__all__ = ["check_target", "check_int", "check_float"]


def check_target(target_accuracy):
    """`target_accuracy` as a float in (0, 1], or a `ValueError`."""
    if (
        isinstance(target_accuracy, bool)
        or not isinstance(target_accuracy, (int, float, np.floating, np.integer))
        or not 0 < float(target_accuracy) <= 1
    ):
        raise ValueError(
            "`target_accuracy` must be a number in (0, 1] (a fraction, e.g. 0.92 "
            f"for 92%). Received: target_accuracy={target_accuracy!r}"
        )
    return float(target_accuracy)


def check_int(name, value, low, allow_none=False):
    """`value` as an int >= `low` (or None when allowed), or a `ValueError`."""
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < low
    ):
        extra = " or None" if allow_none else ""
        raise ValueError(
            f"`{name}` must be an int >= {low}{extra}. Received: {name}={value!r}"
        )
    return int(value)


def check_float(name, value, low, low_open=False):
    """`value` as a finite float >= `low` (> when `low_open`), or a `ValueError`."""
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(float(value))
    ok = ok and (float(value) > low if low_open else float(value) >= low)
    if not ok:
        sign = ">" if low_open else ">="
        raise ValueError(
            f"`{name}` must be a number {sign} {low}. Received: {name}={value!r}"
        )
    return float(value)
