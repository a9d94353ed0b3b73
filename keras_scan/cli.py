"""`keras-scan`: the command line.

Each subcommand lives in `keras_scan/commands/<name>.py` with two functions:
`add_parser(subparsers)` (declares its flags, help and an example) and
`run(args) -> int` (the exit code). argparse is enough for this: no extra
dependency, `--help` on every subcommand, and plain functions that tests
can call.
"""

import argparse
import importlib
import os
import sys

# Subcommands in the order `--help` lists them; a module that is not there yet
# is skipped, so the CLI works while the product grows.
COMMANDS = ("train", "evaluate", "search", "export", "compress", "grow")


class UserError(Exception):
    """A bad argument or input: printed as one clear line, exit code 2."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-scan",
        description="Scalable CNNs (SCAN) for Keras 3: train multi-exit models, "
        "search exit thresholds, export to LiteRT.",
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
    return parser


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if any(a.split("=")[0] == "--distribute" for a in (argv or sys.argv[1:])):
        # TensorFlow's oneDNN CPU kernels corrupt memory (segfault, "double
        # free") when several replicas run collectives in one process or
        # across workers on CPU; GPUs do not use them. Must be set before
        # TensorFlow is imported; TF_ENABLE_ONEDNN_OPTS=1 overrides it.
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (UserError, ValueError, TypeError, FileNotFoundError, FileExistsError) as e:
        if os.environ.get("KERAS_SCAN_DEBUG"):
            raise
        print(f"keras-scan {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"keras-scan {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
