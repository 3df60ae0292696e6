"""``kagtools <verb> <slug> [options]``: one console script for every step of the flow."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

import kagtools
from kagtools.cli.options import COMMANDS, Parser
from kagtools.errors import KagtoolsError

__all__ = ["main", "build_parser", "version"]

DESCRIPTION = """\
kagtools: from a Kaggle competition's files to a validated submission.

  kagtools <verb> <slug> [options]      e.g. kagtools submit titanic

The flow: download -> init (a spec from the files) -> eda -> folds -> cv (one model) ->
blend -> submit; kernel pushes the same pipeline to Kaggle. `kagtools <verb> --help` shows a
verb's options and an example."""

EPILOG = """\
examples:
  kagtools download titanic                       the competition's files, via the kaggle API
  kagtools submit titanic --profile smoke         train, blend, choose, write the submission
  kagtools runs titanic                           the leaderboard of recorded runs
  kagtools submit titanic --file my.csv --to-kaggle -m "my try"
                                                  check your own CSV against the sample, upload it
  kagtools models                                 the registered models"""


def version() -> str:
    """The installed distribution's version, else the package's ``__version__``."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("kagtools")
    except PackageNotFoundError:
        return getattr(kagtools, "__version__", "unknown")


class _Version(argparse.Action):
    """``--version``, with the version looked up only when asked for."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"kagtools {version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    import kagtools.cli as pkg

    for info in pkgutil.iter_modules(pkg.__path__):  # each cmd_* module registers its verbs
        if info.name.startswith("cmd_"):
            importlib.import_module(f"{pkg.__name__}.{info.name}")
    parser = Parser(prog="kagtools", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action=_Version, help="print kagtools' version and exit")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="verb")
    for name in COMMANDS.names():
        cmd = COMMANDS.get(name)
        example = cmd.example or f"kagtools {name} titanic"
        p = sub.add_parser(name, help=cmd.help, description=cmd.description or cmd.help,
                           epilog=f"example:\n  {example}")
        cmd.add_options(p)
        p.set_defaults(func=cmd.fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KagtoolsError as exc:
        print(f"kagtools: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kagtools: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    # `python -m kagtools.cli.main`: run the imported module's main, where the commands register.
    from kagtools.cli.main import main as _main

    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(_main())
