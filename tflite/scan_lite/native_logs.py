"""Native log lines that cannot be turned off from Python, dropped at the source.

LiteRT's C++ code logs straight to file descriptor 2. The first interpreter of
a process to allocate its tensors applies the default CPU delegate and says
so: "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.". Its severity
cannot be raised from Python: `tflite::LoggerOptions` is C++ only,
ai-edge-litert exports no logger function or option, and LiteRT's logger
ignores `TF_CPP_MIN_LOG_LEVEL`.

`dropped_lines` captures descriptor 2 around one call and writes back every
line that does not match a pattern, so warnings, errors and tracebacks still
reach the terminal (after the call; a crash inside it loses what it printed).
`Cascade` opens each model inside `quiet_litert()`, which drops LiteRT's INFO
lines ("INFO: ...") unless `TF_CPP_MIN_LOG_LEVEL` is set to 0: `scan-lite -v`
and `keras-scan -v` set it. keras_scan.native_logs drops TensorFlow's own
start-up and converter lines with the same capture.
"""

import contextlib
import os
import re
import sys
import tempfile

# LiteRT's logger writes "<SEVERITY>: <message>"; only INFO is dropped.
LITERT_INFO = re.compile(rb"^INFO: ")


def litert_info_shown():
    """Whether LiteRT's INFO lines show: only when `TF_CPP_MIN_LOG_LEVEL` is 0."""
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() == "0"


def quiet_litert():
    """`dropped_lines(LITERT_INFO)` unless `litert_info_shown()`."""
    return dropped_lines(LITERT_INFO, enabled=not litert_info_shown())


@contextlib.contextmanager
def dropped_lines(pattern, enabled=True):
    """Drops lines matching `pattern` (bytes regex) from descriptor 2 while inside.

    Every other line is written back to descriptor 2 on leaving, also when
    the call raises. Does nothing when not `enabled`, or when descriptor 2
    cannot be captured (closed, or no temporary file can be made).
    """
    saved, captured = _capture() if enabled else (None, None)
    if captured is None:
        yield
        return
    try:
        yield
    finally:
        _flush_stderr()
        os.dup2(saved, 2)
        os.close(saved)
        with captured:
            captured.seek(0)
            data = b"".join(
                line
                for line in captured.read().splitlines(keepends=True)
                if not pattern.match(line)
            )
        with contextlib.suppress(OSError):  # e.g. the reader of stderr is gone
            while data:
                data = data[os.write(2, data) :]


def _flush_stderr():
    # sys.stderr may be None (pythonw), closed, or have no descriptor (capsys).
    with contextlib.suppress(AttributeError, OSError, ValueError):
        sys.stderr.flush()


def _capture():
    """Points descriptor 2 at a temporary file: (copy of the old 2, file) or Nones."""
    _flush_stderr()
    try:
        saved = os.dup(2)
    except OSError:
        return None, None
    captured = None
    try:
        captured = tempfile.TemporaryFile()
        os.dup2(captured.fileno(), 2)
    except OSError:
        os.close(saved)
        if captured is not None:
            captured.close()
        return None, None
    return saved, captured
