"""The command line: ``kagtools <verb> <slug> [options]`` (verbs in ``cmd_*.py`` modules)."""

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """The ``kagtools`` console script (:func:`kagtools.cli.main.main`)."""
    from kagtools.cli.main import main as _main

    return _main(argv)
