"""TensorFlow's C++ log lines that ignore `TF_CPP_MIN_LOG_LEVEL`.

TensorFlow's C++ code writes its logs straight to file descriptor 2. Most of
them obey `TF_CPP_MIN_LOG_LEVEL`; two kinds do not:

- absl's INFO lines (and its "All log messages before absl::InitializeLog()"
  banner) printed while TensorFlow's shared libraries load, before the
  variable is read: "oneDNN custom operations are on", "Could not find cuda
  drivers";
- the LiteRT quantizer's settings, printed with a plain stream once per
  converted endpoint: "fully_quantize: 0, inference_type: 6, ...".

`dropped_lines` drops the lines matching a pattern from descriptor 2 around
one call and writes back every other line, so warnings, errors and tracebacks
still reach the terminal (after the call; a crash inside it loses what it
printed). The capture is scan_lite's (`scan_lite.native_logs`, which drops
LiteRT's own INFO lines with it); here it only drops lines while the level in
effect hides INFO, so `TF_CPP_MIN_LOG_LEVEL=0` (`keras-scan --verbose`) shows
everything. Without scan_lite installed (`pip install ./tflite`) nothing is
dropped.
"""

import contextlib
import os
import re

try:
    from scan_lite import native_logs as _capture
except ImportError:  # scan_lite (tflite/) not installed: nothing is dropped
    _capture = None

LOAD_TIME_INFO = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are "
    rb"written to STDERR|I\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.\-]+:\d+\] )"
)
QUANTIZER_SETTINGS = re.compile(
    rb"^fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, "
    rb"output_inference_type: \w+\s*$"
)


def min_log_level():
    """`TF_CPP_MIN_LOG_LEVEL` in effect: 0 (everything) when unset or not a number."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def dropped_lines(pattern):
    """Drops lines matching `pattern` (bytes regex) from stderr while inside.

    Does nothing when `TF_CPP_MIN_LOG_LEVEL` shows INFO, when descriptor 2
    cannot be captured, or when scan_lite is not installed.
    """
    if _capture is None:
        return contextlib.nullcontext()
    return _capture.dropped_lines(pattern, enabled=min_log_level() >= 1)
