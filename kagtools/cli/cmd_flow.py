"""The main flow's verbs: ``eda``, ``cv``, ``runs``, ``submit`` and ``models``."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import kagtools
from kagtools.cli.options import (
    add_common,
    command,
    int_at_least,
    json_object_arg,
    n_jobs_arg,
    open_ctx,
    print_runs,
    seconds_arg,
)
from kagtools.core.registry import did_you_mean
from kagtools.errors import KagtoolsError

__all__ = ["cmd_eda", "cmd_cv", "cmd_runs", "cmd_submit", "cmd_models"]


@command("eda", "write reports/<slug>/eda.html and print a summary", example="kagtools eda titanic",
         options=add_common)
def cmd_eda(args) -> None:
    from kagtools.analysis.eda import write_eda

    ctx = open_ctx(args)
    path, res = write_eda(ctx.spec, ctx.data, ctx.reports, notes=ctx.eda_notes())
    print("\n".join(res.summary))
    print(f"report: {path}")


def _cv_options(p):
    add_common(p)
    p.add_argument("--model", required=True, help="registered model name (see `kagtools models`)")
    p.add_argument("--params", help="model parameters as a JSON object")
    p.add_argument("--seed", type=int)
    p.add_argument("--n-jobs", type=n_jobs_arg, default=-1, help="parallel fold fits (joblib; -1: every core)")
    p.add_argument("--bag", type=int_at_least(1), default=1,
                   help="repeat the run over N seeds and average (bagging; 1: no bag)")
    p.add_argument("--bootstrap", action="store_true", help="with --bag: fit each bag on a bootstrap sample")
    p.add_argument("--scheduler", help="Dask scheduler address (tcp://HOST:PORT) to run folds on")


@command("cv", "cross-validate one model on the shared folds and write its run",
         example="kagtools cv titanic --model lgbm --params '{\"num_leaves\": 15}'", options=_cv_options)
def cmd_cv(args) -> None:
    from kagtools.core.model_registry import check_params
    from kagtools.core.parallel import scheduler_context
    from kagtools.tuning.tuned import tuned_params
    from kagtools.workflow.context import run_model

    # A misspelt model or a bad parameter value fails now, not after the data is read.
    check_params(args.model, json_object_arg(args.params))
    ctx = open_ctx(args)
    params = {**tuned_params(ctx.root, args.model), **json_object_arg(args.params)}
    with scheduler_context(args.scheduler):
        if args.bag > 1:
            from kagtools.ensemble.bagging import bagged_cv

            run = bagged_cv(ctx.spec, ctx.training_set, ctx.folds, args.model, params, root=ctx.root,
                            n_bags=args.bag, bootstrap=args.bootstrap, n_jobs=args.n_jobs, seed=args.seed)
        else:
            run = run_model(ctx, args.model, params, n_jobs=args.n_jobs, seed=args.seed)
    print_runs(ctx, [run])
    print(f"run: {run.path}")


@command("runs", "the leaderboard of runs on the current folds",
         description="The leaderboard of the runs recorded under runs/<slug>/ on the current folds. It reads only\n"
                     "the artifacts: the data folder is not needed once folds and runs exist.",
         example="kagtools runs titanic", options=add_common)
def cmd_runs(args) -> None:
    ctx = open_ctx(args)
    ctx.from_artifacts = True  # the recorded folds and runs are enough
    print_runs(ctx)


def _submit_options(p):
    add_common(p)
    p.add_argument("--run", help="submit this run (default: train the pipeline's models, blend, choose the best)")
    p.add_argument("--file", metavar="CSV", help="validate this CSV (made anywhere) against the sample submission "
                                                 "instead of training; with --to-kaggle, upload it")
    p.add_argument("--profile", help="pipeline profile (e.g. smoke, cpu, gpu)")
    p.add_argument("--preset", choices=("fast", "medium", "best"),
                   help="train a preset's model zoo instead of the pipeline's MODELS (default without a "
                        "pipeline module: medium)")
    p.add_argument("--time-limit", type=seconds_arg, metavar="SECONDS",
                   help="budget for the whole submit: models that cannot finish in time are abandoned; "
                        "what finished is blended and submitted")
    refit = p.add_mutually_exclusive_group()
    refit.add_argument("--refit", dest="refit", action="store_true", default=None,
                       help="test predictions from each model refitted on every training row (the CV "
                            "score stays the folds'); default: the preset's policy")
    refit.add_argument("--no-refit", dest="refit", action="store_false",
                       help="test predictions averaged over the fold models, for every model")
    p.add_argument("--save-models", action="store_true", default=None,
                   help="keep every run's fitted fold models (runs/<slug>/<run>/models.joblib); default: a "
                        "pipeline's runs keep them, a preset's zoo does not (hundreds of MB)")
    p.add_argument("--no-eda", action="store_true", help="skip the EDA report")
    p.add_argument("--force", action="store_true",
                   help="retrain every model (default: reuse runs whose data, spec, features, code and params are unchanged)")
    p.add_argument("--n-jobs", type=n_jobs_arg, default=-1)
    p.add_argument("--scheduler", help="Dask scheduler address (tcp://HOST:PORT) to run folds on")
    p.add_argument("--to-kaggle", action="store_true",
                   help="upload the validated file to Kaggle (credentials are checked before any training)")
    p.add_argument("-m", "--message", default="kagtools", help="submission message on Kaggle")


@command("submit", "EDA, folds, every pipeline model, blend, choose, write a validated submission",
         description="Train the pipeline's models on the shared folds, blend them, choose the best and write\n"
                     "submissions/<slug>/submission.csv, validated against the sample submission. --run submits\n"
                     "a recorded run; --file validates a CSV of your own. --to-kaggle uploads the file.\n"
                     "--preset fast|medium|best trains a preset's models (medium is the default without a\n"
                     "pipeline module); --time-limit SECONDS spends a budget on them; --refit refits each\n"
                     "model on all training rows for the test predictions.",
         example="kagtools submit titanic --profile smoke\n"
                 "  kagtools submit my-comp --preset best --time-limit 600\n"
                 "  kagtools submit titanic --file my.csv --to-kaggle -m 'my features'",
         options=_submit_options)
def cmd_submit(args) -> None:
    from kagtools.workflow.submit import submit

    if args.file and args.run:
        raise KagtoolsError("--file and --run both name what to submit; pass one")
    if args.run and (args.preset or args.time_limit is not None or args.refit is not None or args.save_models):
        raise KagtoolsError("--run submits a recorded run; --preset, --time-limit, --refit and --save-models train "
                            "new ones")
    ctx = open_ctx(args)
    if args.to_kaggle:
        from kagtools.kaggle.api import check_credentials

        check_credentials()  # before any training: its result would have nowhere to go
    if args.file:
        _submit_csv(ctx, args)
        return
    res = submit(ctx, run_id=args.run, profile=args.profile, eda=not args.no_eda, n_jobs=args.n_jobs,
                 scheduler=args.scheduler, reuse=not args.force, preset=args.preset, time_limit=args.time_limit,
                 refit=args.refit, save_models=args.save_models)
    print_runs(ctx, res.runs, highlight=res.best.run_id)
    if res.path is None:
        print(f"\nno test set in {ctx.data.data_dir}: CV runs only (best {res.best.run_id}); no submission written")
        return
    s = res.best.record.scores
    if res.selection:
        sel = res.selection
        print(f"\nselection-aware CV {ctx.spec.metric} {sel['estimate']:.4f} +- {sel['std']:.4f} (the choice made "
              f"on inner folds, scored on the fold left out, {sel['n_folds']} folds); naive best CV "
              f"{sel['naive']:.4f}")
    budget = f" of a {res.time_limit:g}s budget" if res.time_limit is not None else ""
    print(f"submission: {res.path}  (run {res.best.run_id}, CV {ctx.spec.metric} {s['cv']:.4f} +- "
          f"{s.get('cv_std', 0):.4f}; {res.seconds:.1f}s{budget})")
    if args.to_kaggle:
        from kagtools.kaggle.api import submit_file

        print(submit_file(ctx.spec.slug, res.path, message=args.message))


def _submit_csv(ctx, args) -> None:
    """``submit --file``: a CSV made anywhere, checked against the sample, then uploaded if asked."""
    from kagtools.core.submission import validate_submission_file

    sample = ctx.data.sample_submission
    if sample is None:
        raise KagtoolsError(f"spec '{ctx.spec.slug}' names no sample_submission file to validate {args.file} against")
    sub = validate_submission_file(ctx.spec, args.file, sample)
    print(f"{args.file}: valid ({len(sub)} rows, columns {', '.join(map(str, sub.columns))} as the sample "
          "submission)")
    if args.to_kaggle:
        from kagtools.kaggle.api import submit_file

        print(submit_file(ctx.spec.slug, args.file, message=args.message))
    else:
        print(f"upload it: kagtools submit {ctx.spec.slug} --file {args.file} --to-kaggle -m MESSAGE")


def _models_options(p):
    p.add_argument("pattern", nargs="?", default="*", help="a glob on the names, e.g. 'cf_*' (default: all)")


@command("models", "list registered models: tasks, the pip extra each needs, what it is",
         description="The registered models: the tasks each supports, the pip extra it needs beyond the core\n"
                     "install, and one line on what it is. Listing them imports no torch.",
         example="kagtools models 'cf_*'", options=_models_options)
def cmd_models(args) -> None:
    from kagtools.core.extras import MODEL_EXTRAS
    from kagtools.core.model_registry import LAZY_MODELS, MODELS
    from kagtools.core.table import format_table
    from kagtools.models import list_models

    rows = []
    for name in list_models(args.pattern):
        if name in LAZY_MODELS:  # described from the module's source: importing it would import torch
            tasks, doc = _class_facts(LAZY_MODELS[name], name)
        else:
            cls = MODELS.get(name)
            tasks, doc = tuple(cls.tasks), cls.__doc__ or ""
        rows.append({"model": name, "tasks": ", ".join(tasks), "extra": MODEL_EXTRAS.get(name, "core"),
                     "what it is": _first_sentence(doc)})
    if not rows:
        raise KagtoolsError(f"no model matches '{args.pattern}'{did_you_mean(args.pattern, list_models())}")
    print(format_table(rows, ["model", "tasks", "extra", "what it is"]))
    print("extra: what `pip install 'kagtools[EXTRA]'` adds (core: the plain install is enough)")


def _first_sentence(doc: str, width: int = 90) -> str:
    """A docstring's first sentence on one line, without reST markup."""
    text = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split()).replace("``", "")
    text = re.split(r"(?<=\.)\s+(?=[A-Z])", text, maxsplit=1)[0].rstrip(".")
    return text if len(text) <= width else text[:width - 3].rstrip() + "..."


def _source(module: str) -> ast.Module:
    """A kagtools module's syntax tree, read from its file (never imported)."""
    base = Path(kagtools.__file__).parent.joinpath(*module.split(".")[1:])
    path = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
    return ast.parse(path.read_text())


def _class_facts(module: str, name: str) -> tuple[tuple[str, ...], str]:
    """``(tasks, docstring)`` of the class registered as ``name`` in ``module``, from the source:
    ``tasks`` is followed through base classes in the same module or imported from kagtools."""
    for node in _source(module).body:
        if isinstance(node, ast.ClassDef) and any(
                isinstance(d, ast.Call) and getattr(d.func, "id", "") == "register_model"
                and d.args and getattr(d.args[0], "value", None) == name for d in node.decorator_list):
            return _tasks(module, node.name), ast.get_docstring(node) or ""
    raise KagtoolsError(f"model '{name}': no class registered under that name in {module}")


def _tasks(module: str, cls_name: str) -> tuple[str, ...]:
    tree = _source(module)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    imported = {a.asname or a.name: n.module for n in tree.body if isinstance(n, ast.ImportFrom)
                and n.module and n.module.startswith("kagtools.") for a in n.names}
    node = classes.get(cls_name)
    if node is None:
        return _tasks(imported[cls_name], cls_name) if cls_name in imported else ()
    for stmt in node.body:
        if isinstance(stmt, ast.Assign) and any(getattr(t, "id", "") == "tasks" for t in stmt.targets):
            return tuple(ast.literal_eval(stmt.value))
    for base in node.bases:
        if isinstance(base, ast.Name) and (tasks := _tasks(module, base.id)):
            return tasks
    return ()
