"""Value predicates shared by every argument check of keras_scan.

Whether a value is an int or a finite real number, the same way everywhere
(Python or numpy scalars; never a bool, which Python counts as an int). Each
caller keeps its own message, which names its argument and echoes the value.
"""

import math
import numbers

__all__ = ["is_int", "is_number"]


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
