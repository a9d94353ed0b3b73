"""Value checks shared by every argument check of keras_scan.

Whether a value is an int or a finite real number, the same way everywhere
(Python or numpy scalars; never a bool, which Python counts as an int), and the
two checks built on them that name the argument and echo the value:
`check_int` and `check_float`. A caller with its own wording keeps its message
and uses the predicates.
"""

import math
import numbers

__all__ = ["is_int", "is_number", "check_int", "check_float"]


def is_int(value):
    """Whether `value` is an integer (Python or numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value):
    """Whether `value` is a finite real number (Python or numpy), not a bool."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def check_int(name, value, low, allow_none=False):
    """`value` as an int >= `low` (or None when allowed), or a `ValueError`.

    Example: `check_int("batch_size", 0, 1)` raises "`batch_size` must be an
    int >= 1. Received: batch_size=0".
    """
    if value is None and allow_none:
        return None
    if not is_int(value) or value < low:
        extra = " or None" if allow_none else ""
        raise ValueError(
            f"`{name}` must be an int >= {low}{extra}. Received: {name}={value!r}"
        )
    return int(value)


def check_float(name, value, low, high=None, low_open=False):
    """`value` as a finite float >= `low` (> when `low_open`), <= `high`.

    Raises a `ValueError` naming `name` and echoing `value` otherwise.
    """
    ok = is_number(value) and (value > low if low_open else value >= low)
    ok = ok and (high is None or value <= high)
    if not ok:
        bound = f"{'>' if low_open else '>='} {low}"
        if high is not None:
            bound += f" and <= {high}"
        raise ValueError(
            f"`{name}` must be a number {bound}. Received: {name}={value!r}"
        )
    return float(value)
