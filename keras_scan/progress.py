"""Progress bars for keras_scan's long jobs (tqdm), on stderr, off unless asked.

The library functions that take a while (`keras_scan.thresholds.
search_thresholds`: the forward pass and the NSGA-II generations;
`keras_scan.export`: int8 calibration) take `progress=False`: a notebook or a
script gets no bar unless it asks for one. `keras-scan search` and `keras-scan
export` turn them on when stderr is a terminal (`wanted`), so output piped to a
file or read by a test stays clean; `--progress` / `--no-progress` force either.

A finished bar stays on screen as one line (what ran, how many, how long);
bars never go to stdout, where the commands print their results.
"""

import contextlib
import io
import os
import sys


def stderr_is_terminal():
    """Whether `sys.stderr` is a terminal (False when closed, replaced or missing)."""
    try:
        return bool(sys.stderr is not None and sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def wanted(flag=None):
    """The CLI's choice: `flag` when given (`--progress` / `--no-progress`),
    else whether stderr is a terminal."""
    return stderr_is_terminal() if flag is None else bool(flag)


def check(progress):
    """`progress` as a bool; ValueError unless a bool."""
    if not isinstance(progress, bool):
        raise ValueError(
            f"`progress` must be a bool (True draws progress bars on stderr). "
            f"Received: progress={progress!r}"
        )
    return progress


def bar(enabled, total=None, desc=None, unit="it", file=None, **kwargs):
    """A tqdm bar on `file` (stderr) when `enabled`; a silent one otherwise.

    Use it as tqdm: `with bar(...) as b: b.update(n)`, or iterate it (pass the
    iterable as `iterable=`). A disabled bar prints nothing and costs next to
    nothing.
    """
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=f" {unit}",  # "40/40 [00:02<00:00, 19.9 images/s]"
        file=sys.stderr if file is None else file,
        disable=not enabled,
        dynamic_ncols=True,
        leave=True,
        **kwargs,
    )


@contextlib.contextmanager
def terminal_stream(enabled=True):
    """A text stream on stderr as it is now, kept while descriptor 2 is redirected.

    `keras_scan.native_logs.dropped_lines` points descriptor 2 at a file around
    the LiteRT converter to drop its settings lines; a bar drawn during the
    conversion (int8 calibration) writes here instead, so it still reaches the
    terminal as it moves. Yields `sys.stderr` itself when it has no descriptor
    (a notebook, pytest's capsys) or when not `enabled`.
    """
    stream = sys.stderr
    fd = None
    if enabled:
        try:
            stream.flush()
            fd = os.dup(stream.fileno())
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            fd = None
    if fd is None:
        yield stream
        return
    encoding = getattr(stream, "encoding", None) or "utf-8"
    with os.fdopen(fd, "w", encoding=encoding, errors="replace") as copy:
        yield copy
