"""Argument checks shared by the `keras-scan` commands and the settings they read.

One rule, checked in one of three places:

- value predicates (`is_int`, `is_number`, from `keras_scan.checks`, which
  the library's own checks use too);
- argparse `type=` functions (`finite_float`, `float_at_least`, `fraction`,
  `int_at_least`), for a flag whose value alone is wrong: argparse prints the
  message after the flag and exits with code 2, before any work
  (`keras-scan search: error: argument --population: must be >= 4. Received: 2`);
- checks after parsing (`check`, `refuse`), for a flag whose default is only
  known later (`keras-scan grow` leaves its training flags unset so that
  `--from-run` can refuse them): a `keras_scan.cli.UserError`
  (`` `--start-depth` must be >= 1. Received: --start-depth=0 ``).

`add_progress_flag` declares `--progress` / `--no-progress` (bars on stderr,
by default only on a terminal); `output_folder` is the `--out` check of the
commands that write a new folder.
"""

import argparse
import math
import pathlib

from keras_scan.checks import is_int, is_number  # noqa: F401 (re-exported)

# A rule: (requirement, test). The requirement completes "must be ...".


def at_least(low):
    """The rule "a finite number >= `low`"."""
    return f">= {low}", lambda value: is_number(value) and value >= low


def above(low):
    """The rule "a finite number > `low`"."""
    return f"> {low}", lambda value: is_number(value) and value > low


# ------------------------------------------------------------ argparse types


def _convert(text, convert, kind):
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {kind}: {text!r}") from None


def _type(rule, convert, kind):
    """An argparse type: `text` converted, then refused unless it passes `rule`."""
    requirement, test = rule

    def parse(text):
        value = convert(text)
        if not test(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}. Received: {text}")
        return value

    parse.__name__ = f"{kind} {requirement}"
    return parse


def finite_float(text):
    """An argparse type: a finite float (`not a number: 'x'`, `not a finite ...`)."""
    value = _convert(text, float, "a number")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def float_at_least(low):
    """An argparse type: a finite float >= `low`."""
    return _type(at_least(low), finite_float, "number")


def fraction(requirement="a fraction strictly between 0 and 1"):
    """An argparse type: a float strictly between 0 and 1.

    Args:
        requirement: str. What the value must be, completing "must be ..." in
            the error (e.g. what the fraction is of).
    """
    rule = (requirement, lambda value: 0 < value < 1)
    return _type(rule, lambda text: _convert(text, float, "a number"), "fraction")


def int_at_least(low):
    """An argparse type: an int >= `low`."""
    return _type(at_least(low), lambda text: _convert(text, int, "an int"), "int")


# ------------------------------------------------------------ progress bars


def add_progress_flag(parser, what):
    """`--progress` / `--no-progress`: bars on stderr over `what`.

    Unset (None), the command draws them when stderr is a terminal
    (`keras_scan.progress.wanted`): never into a pipe, a file or a test's
    captured output.
    """
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"progress bars on stderr over {what} (default: only when stderr "
        "is a terminal)",
    )


# ------------------------------------------------------ checks after parsing


def flag(key):
    """The flag of an argparse destination: `start_depth` -> `--start-depth`."""
    return "--" + key.replace("_", "-")


def refuse(name, requirement, received):
    """The `UserError` "`NAME` must be REQUIREMENT. Received: RECEIVED"."""
    from keras_scan.cli import UserError

    return UserError(f"`{name}` must be {requirement}. Received: {received}")


def check(args, key, rule, optional=False):
    """Refuses `args.<key>` unless it passes `rule`, naming the flag and the value.

    Args:
        args: the parsed arguments.
        key: str. The argparse destination (`start_depth`).
        rule: `(requirement, test)`, e.g. `at_least(1)`.
        optional: bool. Accept None (an unset flag without a default).

    Raises:
        keras_scan.cli.UserError: "`--start-depth` must be >= 1. Received:
            --start-depth=0".
    """
    value = getattr(args, key)
    if optional and value is None:
        return
    requirement, test = rule
    if not test(value):
        raise refuse(flag(key), requirement, f"{flag(key)}={value}")


# ------------------------------------------------------------ output folders


def output_folder(out, overwrite, source=None, source_arg="run", note=""):
    """`--out` as a path, refused when it is the source folder or exists.

    Checked before any work, so a refused command writes nothing (the writer,
    `keras_scan.files.atomic_folder`, checks again when it renames into place).

    Args:
        out: str or path. The folder to write.
        overwrite: bool. `--overwrite` was given: an existing `out` is replaced.
        source: str or path, optional. The folder the command reads, which `out`
            must not be.
        source_arg: str. The argument that named `source`, for the error.
        note: str. Why `out` must differ, appended to the requirement
            (e.g. `" (the teacher is kept)"`).

    Raises:
        keras_scan.cli.UserError: naming `--out` and the values.
    """
    from keras_scan.cli import UserError

    path = pathlib.Path(out).expanduser()
    if source is not None:
        if path.resolve() == pathlib.Path(source).expanduser().resolve():
            raise UserError(
                f"`--out` must differ from `{source_arg}`{note}. Received: "
                f"--out={str(out)!r}, {source_arg}={str(source)!r}"
            )
    if path.exists() and not overwrite:
        raise UserError(
            f"`--out` already exists: {str(out)!r}. Pass --overwrite to replace "
            "it, or choose another folder."
        )
    return path
