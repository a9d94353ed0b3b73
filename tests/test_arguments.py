"""keras_scan.commands.arguments: the argument checks every command shares."""

import argparse
import math

import numpy as np
import pytest

from keras_scan import cli
from keras_scan.commands import arguments


def _parse_error(type_, text, capsys):
    """What argparse prints for `--x TEXT` with `type=type_`."""
    parser = argparse.ArgumentParser(prog="p")
    parser.add_argument("--x", type=type_)
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["--x", text])
    assert e.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "type_, text, message",
    [
        (arguments.int_at_least(4), "2", "must be >= 4. Received: 2"),
        (arguments.int_at_least(0), "-1", "must be >= 0. Received: -1"),
        (arguments.int_at_least(1), "1.5", "not an int: '1.5'"),
        (arguments.finite_float, "x", "not a number: 'x'"),
        (arguments.finite_float, "nan", "not a finite number: 'nan'"),
        (arguments.finite_float, "inf", "not a finite number: 'inf'"),
        (arguments.float_at_least(0), "-1", "must be >= 0. Received: -1"),
        (arguments.float_at_least(0), "nan", "not a finite number: 'nan'"),
        (
            arguments.fraction(),
            "1",
            "must be a fraction strictly between 0 and 1. Received: 1",
        ),
        (arguments.fraction("half-ish"), "nan", "must be half-ish. Received: nan"),
        (arguments.fraction(), "x", "not a number: 'x'"),
    ],
)
def test_types_name_the_flag_and_the_value(type_, text, message, capsys):
    assert _parse_error(type_, text, capsys) == f"p: error: argument --x: {message}"


def test_types_return_the_value():
    assert arguments.int_at_least(4)("4") == 4
    assert arguments.float_at_least(0)("0") == 0.0
    assert arguments.finite_float("1e9") == 1e9
    assert arguments.fraction()("0.5") == 0.5


def test_every_command_uses_the_shared_types():
    """No command defines its own argparse type (the copies this module replaced)."""
    parser = cli.build_parser()
    commands = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )
    seen = set()
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if callable(action.type):
                module = getattr(action.type, "__module__", "builtins")
                assert module in ("builtins", arguments.__name__), (name, action.dest)
                seen.add(module)
    assert arguments.__name__ in seen


@pytest.mark.parametrize(
    "value, is_int, is_number",
    [
        (3, True, True),
        (np.int64(3), True, True),
        (True, False, False),
        (2.0, False, True),
        (np.float32(0.5), False, True),
        (math.nan, False, False),
        (math.inf, False, False),
        ("3", False, False),
        (None, False, False),
    ],
)
def test_value_predicates(value, is_int, is_number):
    assert arguments.is_int(value) is is_int
    assert arguments.is_number(value) is is_number


def test_checks_after_parsing_name_the_flag():
    args = argparse.Namespace(start_depth=0, max_epochs=None, lr=math.nan)
    with pytest.raises(
        cli.UserError,
        match=r"^`--start-depth` must be >= 1. Received: --start-depth=0$",
    ):
        arguments.check(args, "start_depth", arguments.at_least(1))
    arguments.check(args, "max_epochs", arguments.at_least(1), optional=True)
    with pytest.raises(cli.UserError, match=r"`--lr` must be > 0. Received: --lr=nan"):
        arguments.check(args, "lr", arguments.above(0))


def test_output_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert arguments.output_folder(tmp_path / "new", False) == tmp_path / "new"
    with pytest.raises(cli.UserError, match="`--out` already exists.*--overwrite"):
        arguments.output_folder(run, False)
    assert arguments.output_folder(run, True) == run
    with pytest.raises(
        cli.UserError,
        match=r"`--out` must differ from `--from-run`. Received: --out='\S*run', "
        r"--from-run='\S*run'",
    ):
        arguments.output_folder(str(run), True, str(run), "--from-run")
