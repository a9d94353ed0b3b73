"""One module per `keras-scan` subcommand: `add_parser(subparsers)` and `run(args)`."""
