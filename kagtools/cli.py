"""``kagtools <verb> <slug> [options]``: one console script for every step of the flow."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
import time
from collections.abc import Callable

from kagtools.errors import KagtoolsError
from kagtools.table import format_table

__all__ = ["main", "build_parser", "command", "options", "json_object_arg"]

_COMMANDS: dict[str, tuple[Callable, Callable[[argparse.ArgumentParser], None], str]] = {}


def command(name: str, help: str):
    """Decorator: ``@command("cv", "...")`` on ``fn(args)``; its ``.options`` adds arguments."""

    def deco(fn):
        _COMMANDS[name] = (fn, getattr(fn, "options", lambda p: None), help)
        return fn

    return deco


def options(adder: Callable[[argparse.ArgumentParser], None]):
    def deco(fn):
        fn.options = adder
        return fn

    return deco


def _common(p: argparse.ArgumentParser, *, slug: bool = True) -> None:
    if slug:
        p.add_argument("slug", help="competition slug, e.g. titanic")
    p.add_argument("--data-dir", help="competition files (default: $KAGTOOLS_DATA_DIR/<slug>, "
                                      "/kaggle/input/<slug>, ./data/<slug>)")
    p.add_argument("--workdir", help="where runs/, reports/ and submissions/ go (default: .)")


def _ctx(args):
    from kagtools.workflow import open_context

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


def _print_runs(ctx, runs=None, highlight: str | None = None) -> None:
    from kagtools.workflow import leaderboard

    rows = leaderboard(ctx, runs)
    for row in rows:
        row["chosen"] = "*" if row["run"] == highlight else ""
        row["cv"] = f"{row['cv']:.4f} +- {row['std']:.4f}"
        row["nested"] = f"{row['nested']:.4f}" if row["nested"] is not None else "-"
        row["in-sample"] = f"{row['in_sample']:.4f}" if row["in_sample"] is not None else "-"
        row["weights"] = _weights_text(row["weights"])
        row["seconds"] = f"{row['seconds']:.1f}"
    scheme = ctx.folds.scheme
    print(f"\n{ctx.spec.slug}: {ctx.spec.metric} ({'higher' if _greater(ctx) else 'lower'} is better), "
          f"CV = {scheme['splitter']} {scheme['n_splits']} folds x {scheme['n_repeats']} repeat(s), "
          f"seed {scheme['seed']}" + (f", grouped by {scheme['group']}" if scheme.get("group") else ""))
    print(format_table(rows, ["chosen", "run", "model", "kind", "cv", "nested", "in-sample", "seconds", "weights"]))


def _weights_text(weights: dict | None, top: int = 3) -> str:
    """A blend's largest run weights, e.g. ``rf-41bae0b6 .52, lgbm-2ed0b9e8 .31, +2``."""
    if not weights:
        return ""
    ranked = sorted(((w, r) for r, w in weights.items() if w > 0.005), reverse=True)
    text = ", ".join(f"{r} {w:.2f}".replace(" 0.", " .") for w, r in ranked[:top])
    return text + (f", +{len(ranked) - top}" if len(ranked) > top else "")


def _greater(ctx) -> bool:
    from kagtools.metrics import get_metric

    return get_metric(ctx.spec.metric).greater_is_better


@command("eda", "write reports/<slug>/eda.html and print a summary")
@options(_common)
def cmd_eda(args) -> None:
    from kagtools.eda import write_eda

    ctx = _ctx(args)
    path, res = write_eda(ctx.spec, ctx.data, ctx.reports)
    print("\n".join(res.summary))
    print(f"report: {path}")


def _cv_options(p):
    _common(p)
    p.add_argument("--model", required=True, help="registered model name (see `kagtools models`)")
    p.add_argument("--params", help="model parameters as a JSON object")
    p.add_argument("--seed", type=int)
    p.add_argument("--n-jobs", type=int, default=-1, help="parallel fold fits (joblib)")
    p.add_argument("--bag", type=int, default=1, help="repeat the run over N seeds and average (bagging)")
    p.add_argument("--bootstrap", action="store_true", help="with --bag: fit each bag on a bootstrap sample")
    p.add_argument("--scheduler", help="Dask scheduler address (tcp://HOST:PORT) to run folds on")


@command("cv", "cross-validate one model on the shared folds and write its run")
@options(_cv_options)
def cmd_cv(args) -> None:
    from kagtools.scale import scheduler_context
    from kagtools.workflow import run_model, tuned_params

    ctx = _ctx(args)
    params = {**tuned_params(ctx, args.model), **json_object_arg(args.params)}
    with scheduler_context(args.scheduler):
        if args.bag > 1:
            from kagtools.bagging import bagged_cv

            run = bagged_cv(ctx, args.model, params, n_bags=args.bag, bootstrap=args.bootstrap,
                            n_jobs=args.n_jobs, seed=args.seed)
        else:
            run = run_model(ctx, args.model, params, n_jobs=args.n_jobs, seed=args.seed)
    _print_runs(ctx, [run])
    print(f"run: {run.path}")


@command("runs", "the leaderboard of runs on the current folds")
@options(_common)
def cmd_runs(args) -> None:
    ctx = _ctx(args)
    _print_runs(ctx)


def _submit_options(p):
    _common(p)
    p.add_argument("--run", help="submit this run (default: train the pipeline's models, blend, choose the best)")
    p.add_argument("--profile", help="pipeline profile (e.g. smoke, cpu, gpu)")
    p.add_argument("--no-eda", action="store_true", help="skip the EDA report")
    p.add_argument("--n-jobs", type=int, default=-1)
    p.add_argument("--scheduler", help="Dask scheduler address (tcp://HOST:PORT) to run folds on")
    p.add_argument("--to-kaggle", action="store_true", help="upload the validated file to Kaggle")
    p.add_argument("-m", "--message", default="kagtools", help="submission message on Kaggle")


@command("submit", "EDA, folds, every pipeline model, blend, choose, write a validated submission")
@options(_submit_options)
def cmd_submit(args) -> None:
    from kagtools.blend import auto_blend
    from kagtools.workflow import choose_best, make_submission, run_pipeline_models

    ctx = _ctx(args)
    start = time.perf_counter()
    if args.run:
        best = ctx.run(args.run)
        runs = [best]
    else:
        if not args.no_eda:
            from kagtools.eda import write_eda

            path, res = write_eda(ctx.spec, ctx.data, ctx.reports)
            print("\n".join(res.summary) + f"\nEDA report: {path}")
        print(f"folds: {ctx.root / 'folds.csv'} (hash {ctx.folds.hash})")
        from kagtools.scale import scheduler_context

        with scheduler_context(args.scheduler):
            runs = run_pipeline_models(ctx, profile=args.profile, n_jobs=args.n_jobs)
        if len(runs) > 1:
            tset = ctx.training_set
            runs.extend(auto_blend(ctx.spec, runs, tset.y, tset.ids, root=ctx.root, reports=ctx.reports,
                                   features=tset))
        best = choose_best(ctx, runs)
    if ctx.data.test is None:
        _print_runs(ctx, runs, highlight=best.run_id)
        print(f"\nno test set in {ctx.data.data_dir}: CV runs only (best {best.run_id}); no submission written")
        return
    path = make_submission(ctx, best)
    _print_runs(ctx, runs, highlight=best.run_id)
    s = best.meta["scores"]
    print(f"\nsubmission: {path}  (run {best.run_id}, CV {ctx.spec.metric} {s['cv']:.4f} +- "
          f"{s.get('cv_std', 0):.4f}; {time.perf_counter() - start:.1f}s)")
    if args.to_kaggle:
        from kagtools.kaggle_api import submit_file

        print(submit_file(ctx.spec.slug, path, message=args.message))


def _models_options(p):
    p.add_argument("pattern", nargs="?", default="*")


@command("models", "list registered models")
@options(_models_options)
def cmd_models(args) -> None:
    from kagtools.models import list_models

    print("\n".join(list_models(args.pattern)))


def _load_command_modules() -> None:
    import kagtools.commands as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    _load_command_modules()
    parser = argparse.ArgumentParser(prog="kagtools", description=__doc__)
    sub = parser.add_subparsers(dest="verb", required=True, metavar="verb")
    for name, (fn, add, help_) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        add(p)
        p.set_defaults(func=fn)
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
    # `python -m kagtools.cli`: run the imported module's main, where the commands register.
    from kagtools.cli import main as _main

    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(_main())
