"""TensorFlow's C++ log lines that ignore `TF_CPP_MIN_LOG_LEVEL`.

TensorFlow's C++ code writes its logs straight to file descriptor 2. Most of
them obey `TF_CPP_MIN_LOG_LEVEL`; two kinds do not:

- absl's INFO lines (and its "All log messages before absl::InitializeLog()"
  banner) printed while TensorFlow's shared libraries load, before the
  variable is read: "oneDNN custom operations are on", "Could not find cuda
  drivers";
- the LiteRT quantizer's settings, printed with a plain stream once per
  converted endpoint: "fully_quantize: 0, inference_type: 6, ...".

`dropped_lines` captures descriptor 2 around one call and writes back every
line that does not match the pattern, so warnings, errors and tracebacks still
reach the terminal (after the call; a crash inside it loses what it printed).
It only drops lines while the level in effect hides INFO, so
`TF_CPP_MIN_LOG_LEVEL=0` (`keras-scan --verbose`) shows everything.
"""

import contextlib
import os
import re
import sys
import tempfile

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


@contextlib.contextmanager
def dropped_lines(pattern):
    """Drops lines matching `pattern` (bytes regex) from stderr while inside.

    Does nothing when `TF_CPP_MIN_LOG_LEVEL` shows INFO, or when descriptor 2
    cannot be captured.
    """
    if min_log_level() < 1:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as captured:
        try:
            os.dup2(captured.fileno(), 2)
            yield
        finally:
            with contextlib.suppress(AttributeError, OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            data = b"".join(
                line
                for line in captured.read().splitlines(keepends=True)
                if not pattern.match(line)
            )
            while data:
                data = data[os.write(2, data) :]
