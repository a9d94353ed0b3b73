"""Progress bars for `scan-lite bench` (tqdm), on stderr, off unless asked.

`bench(..., progress=False)` draws nothing by default; `scan-lite bench` turns
the bar on when stderr is a terminal (`--progress` / `--no-progress` force
either), so a report piped to a file or read by a test stays clean. tqdm is
imported only when a bar is drawn: the runtime itself loads numpy and
ai-edge-litert only, and without tqdm the bench runs without a bar.
"""

import sys


def stderr_is_terminal():
    """Whether `sys.stderr` is a terminal (False when closed, replaced or missing)."""
    try:
        return bool(sys.stderr is not None and sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def wanted(flag=None):
    """The CLI's choice: `flag` when given, else whether stderr is a terminal."""
    return stderr_is_terminal() if flag is None else bool(flag)


class _NoBar:
    """What a disabled bar does: nothing."""

    def update(self, n=1):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def bar(enabled, total=None, desc=None, unit="it", file=None):
    """A tqdm bar on `file` (stderr) when `enabled` and tqdm is installed; else a
    silent stand-in with the same `update` / `close` / `with`."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(
        total=total,
        desc=desc,
        unit=f" {unit}",  # "40/40 [00:02<00:00, 19.9 images/s]"
        file=sys.stderr if file is None else file,
        dynamic_ncols=True,
        leave=True,
    )
