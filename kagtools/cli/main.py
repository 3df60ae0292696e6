"""``kagtools <verb> <slug> [options]``: one console script for every step of the flow."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from kagtools.cli.options import COMMANDS
from kagtools.errors import KagtoolsError

__all__ = ["main", "build_parser"]


def _load_command_modules() -> None:
    import kagtools.cli as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"{pkg.__name__}.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    _load_command_modules()
    parser = argparse.ArgumentParser(prog="kagtools", description=__doc__)
    sub = parser.add_subparsers(dest="verb", required=True, metavar="verb")
    for name in COMMANDS.names():
        cmd = COMMANDS.get(name)
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
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
