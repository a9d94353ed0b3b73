"""`keras-scan`: the command line.

Each subcommand lives in `keras_scan/commands/<name>.py` with two functions:
`add_parser(subparsers)` (declares its flags, help and an example) and
`run(args) -> int` (the exit code). argparse is enough for this: no extra
dependency, `--help` on every subcommand, and plain functions that tests
can call.

The terminal: TensorFlow logs its start-up (oneDNN, CUDA drivers, CPU
instructions) and the LiteRT converter's settings at INFO/WARNING level on
stderr. Unless the user set `TF_CPP_MIN_LOG_LEVEL` themselves, `keras-scan`
sets it to 2 before TensorFlow is imported: TensorFlow's own ERROR and FATAL
lines still show, and so do Python warnings and the commands' own messages. A
few INFO lines are printed by absl while TensorFlow's shared libraries load,
before that variable is read; they are dropped from stderr during that import
(only absl INFO lines and absl's banner, anything else is passed on) whenever
the level in effect hides INFO. The oneDNN setting (`TF_ENABLE_ONEDNN_OPTS`)
is changed only for `--distribute` (see `prepare_terminal`).

`-v` / `--verbose`, before or after the subcommand, brings all of it back
(`TF_CPP_MIN_LOG_LEVEL=0`, nothing dropped). `train --verbose N` keeps its own
meaning (Keras' progress output 0/1/2), so for train the flag is `-v`:
`keras-scan -v train ...` or `keras-scan train -v ...`.
"""

import argparse
import importlib
import importlib.util
import logging
import os
import sys

from keras_scan import native_logs

# Subcommands in the order `--help` lists them; a module that is not there yet
# is skipped, so the CLI works while the product grows.
COMMANDS = ("train", "evaluate", "search", "export", "compress", "grow")

# Level used when the user set none: 2 hides INFO and WARNING, keeps ERROR.
QUIET_TF_LOG_LEVEL = "2"


class UserError(Exception):
    """A bad argument or input: printed as one clear line, exit code 2."""


def wants_detail(argv):
    """Whether `argv` asks for the framework's logs (`-v` / `--verbose`).

    `-v` anywhere, or `--verbose` anywhere except after `train` (whose
    `--verbose N` is Keras' progress output), up to a `--`.
    """
    command = None
    for arg in argv:
        if arg == "--":
            break
        if command is None and arg in COMMANDS:
            command = arg
        elif arg == "-v" or (arg == "--verbose" and command != "train"):
            return True
    return False


def is_cli_process(argv0=None, orig_argv=None):
    """Whether this process was started as `keras-scan` (or `-m keras_scan.cli`)."""
    argv0 = (getattr(sys, "argv", None) or [""])[0] if argv0 is None else argv0
    orig_argv = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    name = os.path.basename(argv0).removesuffix(".exe")
    if name == "keras-scan":
        return True
    return any(
        a == "-m" and b == "keras_scan.cli" for a, b in zip(orig_argv, orig_argv[1:])
    )


def prepare_terminal(argv=None):
    """Sets TensorFlow's log level for `keras-scan`, before TensorFlow loads.

    Called by `keras_scan/__init__.py` (the console script imports the package
    before `main` runs) when this process is the command, and again by `main`.
    Changes log levels only (and, for `--distribute`, turns TensorFlow's
    oneDNN kernels off, which only works before it loads), and only where the
    user set none; with `-v` /
    `--verbose` sets `TF_CPP_MIN_LOG_LEVEL=0` (the flag wins over the
    environment). Returns whether detail was asked for.
    """
    argv = sys.argv[1:] if argv is None else argv
    if any(a.split("=")[0] == "--distribute" for a in argv):
        # TensorFlow's oneDNN CPU kernels corrupt memory (segfault, "double
        # free") when several replicas run collectives in one process or
        # across workers on CPU; GPUs do not use them. Must be set before
        # TensorFlow is imported; TF_ENABLE_ONEDNN_OPTS=1 overrides it.
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    if wants_detail(argv):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_TF_LOG_LEVEL)
    if "tensorflow" not in sys.modules:
        _import_tensorflow_without_load_time_info()
    tf_logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _RetracingNote) for f in tf_logger.filters):
        tf_logger.addFilter(_RetracingNote())
    return False


class _RetracingNote(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warning.

    keras_scan's commands call `predict` on several stage models (export's
    calibration, for one); the retracing that follows is theirs to fix, not
    something a user of the command can act on. `--verbose` keeps it.
    """

    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


def _import_tensorflow_without_load_time_info():
    """Imports TensorFlow, dropping absl's load-time INFO lines from stderr."""
    if importlib.util.find_spec("tensorflow") is None:
        return
    with native_logs.dropped_lines(native_logs.LOAD_TIME_INFO):
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            pass  # keras_scan's own imports say what is missing.


_DETAIL_HELP = (
    "show TensorFlow's start-up, runtime and converter logs (hidden by default)"
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-scan",
        description="Scalable CNNs (SCAN) for Keras 3: train multi-exit models, "
        "search exit thresholds, export to LiteRT.",
        epilog="TensorFlow's INFO and WARNING logs are hidden unless "
        "TF_CPP_MIN_LOG_LEVEL is set; -v/--verbose (before or after COMMAND) "
        "shows them. `train --verbose N` is Keras' progress output: use -v there.",
    )
    parser.add_argument(
        "-v", "--verbose", dest="detail", action="store_true", help=_DETAIL_HELP
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"keras_scan.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"keras_scan.commands.{name}":
                continue
            raise
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
        _add_detail_flag(sub)
    return parser


def _add_detail_flag(sub):
    """`-v/--verbose` on a subcommand too; just `-v` where `--verbose` is taken."""
    kwargs = dict(
        dest="detail", action="store_true", default=argparse.SUPPRESS, help=_DETAIL_HELP
    )
    try:
        sub.add_argument("-v", "--verbose", **kwargs)
    except argparse.ArgumentError:  # train: --verbose is Keras' progress output
        sub.add_argument("-v", **kwargs)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    prepare_terminal(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (UserError, ValueError, TypeError, FileNotFoundError, FileExistsError) as e:
        if os.environ.get("KERAS_SCAN_DEBUG"):
            raise
        print(f"keras-scan {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the machine, not the input: a full disk, permissions
        if os.environ.get("KERAS_SCAN_DEBUG"):
            raise
        print(f"keras-scan {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"keras-scan {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
