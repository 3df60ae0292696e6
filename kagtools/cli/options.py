"""What every command module shares: the ``@command`` registry, common options and printing.

Command modules (``kagtools/cli/cmd_*.py``) import from here; :mod:`kagtools.cli.main` imports
them. Nothing here imports a command module, so the imports point one way.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from kagtools.core.registry import Registry, did_you_mean
from kagtools.errors import KagtoolsError

__all__ = ["COMMANDS", "Command", "Parser", "command", "add_common", "open_ctx", "json_object_arg",
           "slug_arg", "int_at_least", "n_jobs_arg", "seconds_arg",
           "print_runs", "weights_text"]


class Command:
    """A verb: its function, the options it adds to its parser, its one-line help, a longer
    description (default: the help) and an example command line."""

    def __init__(self, fn: Callable, add_options: Callable[[argparse.ArgumentParser], None], help: str, *,
                 example: str | None = None, description: str | None = None):
        self.fn, self.add_options, self.help = fn, add_options, help
        self.example, self.description = example, description


COMMANDS: Registry[Command] = Registry("command")


def command(name: str, help: str, *, options: Callable[[argparse.ArgumentParser], None] = lambda p: None,
            example: str | None = None, description: str | None = None):
    """Decorator: ``@command("cv", "...", options=add_cv_options, example="kagtools cv titanic
    --model lgbm")`` on ``fn(args)``. Without ``example`` the help shows ``kagtools <name> titanic``."""

    def deco(fn):
        COMMANDS.add(name, Command(fn, options, help, example=example, description=description))
        return fn

    return deco


class Parser(argparse.ArgumentParser):
    """``argparse`` with help laid out as written and a "did you mean" for a misspelt choice
    (a verb, a ``kernel`` action, a ``--submission`` kind)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def _check_value(self, action, value):
        if action.choices is not None and value not in action.choices:
            choices = [str(c) for c in action.choices]
            raise argparse.ArgumentError(action, f"invalid choice: '{value}'{did_you_mean(value, choices)} "
                                                 f"(choose from {', '.join(choices)})")


def slug_arg(value: str) -> str:
    """argparse type of a competition slug: one plain path component (no ``/``, no ``..``)."""
    from kagtools.core.spec import check_name

    try:
        return check_name(value, "competition slug")
    except KagtoolsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def int_at_least(low: int) -> Callable[[str], int]:
    """argparse type of a whole number ``>= low``."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
        if number < low:
            raise argparse.ArgumentTypeError(f"{number} is below {low}")
        return number

    return parse


def seconds_arg(value: str) -> float:
    """argparse type of a time budget: seconds above 0."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{value} is not a budget: give seconds above 0")
    return seconds


def n_jobs_arg(value: str) -> int:
    """argparse type of ``--n-jobs``: joblib's convention, a count of workers or -1 for every core
    (-2 all but one, ...); 0 is nothing."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number == 0:
        raise argparse.ArgumentTypeError("0 workers run nothing: give a count, or -1 for every core")
    return number


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("slug", type=slug_arg, help="competition slug, e.g. titanic")
    p.add_argument("--data-dir", help="competition files (default: $KAGTOOLS_DATA_DIR/<slug>, "
                                      "/kaggle/input/<slug>, ./data/<slug>)")
    p.add_argument("--workdir", help="where runs/, reports/ and submissions/ go (default: .)")
    p.add_argument("--tracking-uri", help="MLflow tracking server or store (default: $MLFLOW_TRACKING_URI, "
                                          "else sqlite:///<workdir>/runs/mlflow.db); needs kagtools[tracking]")
    p.add_argument("--no-track", action="store_true",
                   help="no MLflow mirror, no TensorBoard files (also: KAGTOOLS_NO_TRACK=1)")


def open_ctx(args):
    from kagtools.core.tracking import configure
    from kagtools.workflow.context import open_context

    configure(args.workdir, args.slug, uri=args.tracking_uri, enabled=not args.no_track)
    return open_context(args.slug, data_dir=args.data_dir, workdir=args.workdir)


def json_object_arg(text: str | None, flag: str = "--params",
                    example: str = '{"n_estimators": 500}') -> dict:
    """Parse a command-line JSON object, with one clear error naming the flag."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KagtoolsError(f"{flag} is not valid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(value, dict):
        raise KagtoolsError(f"{flag} must be a JSON object, e.g. '{example}'")
    return value


def print_runs(ctx, runs=None, highlight: str | None = None) -> None:
    """The leaderboard of ``runs`` (default: every current run), with the split it was made on."""
    from kagtools.core.metrics import get_metric
    from kagtools.core.table import format_table
    from kagtools.workflow.context import leaderboard

    rows = leaderboard(ctx, runs)
    for row in rows:
        row["chosen"] = "*" if row["run"] == highlight else ""
        row["cv"] = f"{row['cv']:.4f} +- {row['std']:.4f}"
        row["nested"] = f"{row['nested']:.4f}" if row["nested"] is not None else "-"
        row["in-sample"] = f"{row['in_sample']:.4f}" if row["in_sample"] is not None else "-"
        row["weights"] = weights_text(row["weights"])
        row["seconds"] = f"{row['seconds']:.1f}"
        row["gap +- se"] = f"{row['gap']:.4f} +- {row['gap_se']:.4f}" if row["gap"] else "leader"
    scheme = ctx.folds.scheme
    greater = get_metric(ctx.spec.metric).greater_is_better
    print(f"\n{ctx.spec.slug}: {ctx.spec.metric} ({'higher' if greater else 'lower'} is better), "
          f"CV = {scheme['splitter']} {scheme['n_splits']} folds x {scheme['n_repeats']} repeat(s), "
          f"seed {scheme['seed']}" + (f", grouped by {scheme['group']}" if scheme.get("group") else ""))
    print(format_table(rows, ["chosen", "run", "model", "kind", "cv", "nested", "in-sample", "gap +- se", "seconds",
                              "weights"]))
    print("gap +- se: the paired gap to the leader over the shared folds; a gap within about two "
          "standard errors is noise, not a better model.")
    if runs is None and (stale := ctx.stale_runs()):
        print(f"{len(stale)} stale run(s) hidden: made from data that has changed since "
              f"(e.g. {stale[0].run_id}); `kagtools submit {ctx.spec.slug}` retrains them")


def weights_text(weights: dict | None, top: int = 3) -> str:
    """A blend's largest run weights, e.g. ``rf-41bae0b6 .52, lgbm-2ed0b9e8 .31, +2``."""
    if not weights:
        return ""
    ranked = sorted(((w, r) for r, w in weights.items() if w > 0.005), reverse=True)
    text = ", ".join(f"{r} {w:.2f}".replace(" 0.", " .") for w, r in ranked[:top])
    return text + (f", +{len(ranked) - top}" if len(ranked) > top else "")
