"""``kagtools init`` (a spec from a competition's files) and ``kagtools folds`` (the split)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from kagtools.cli.options import add_common, command, int_at_least, n_jobs_arg, open_ctx
from kagtools.core.table import format_table
from kagtools.errors import KagtoolsError

__all__ = ["cmd_init", "cmd_folds"]


def _init_options(p) -> None:
    add_common(p)
    p.add_argument("--metric", help="the competition's metric (default: one per task and submission kind)")
    p.add_argument("--id", dest="id_col", help="the id column (default: the sample submission's first column)")
    p.add_argument("--target", action="append", dest="targets",
                   help="a target column of train.csv (repeat for several)")
    p.add_argument("--task", help="binary, multiclass, regression, multilabel or multitarget")
    p.add_argument("--submission", dest="kind", choices=["labels", "probabilities", "values"],
                   help="what the submission holds")
    p.add_argument("--group", help="keep rows sharing this column's value in one fold")
    p.add_argument("--n-splits", type=int_at_least(2), help="folds (default 5)")
    p.add_argument("--n-repeats", type=int_at_least(1), help="repeats of the split (default 3 under 2000 rows, else 1)")
    p.add_argument("--train", help="the training CSV's name (default: train.csv)")
    p.add_argument("--test", help="the test CSV's name (default: test.csv)")
    p.add_argument("--sample", help="the sample submission's name (default: the CSV of id plus targets)")
    p.add_argument("--force", action="store_true", help="overwrite an existing competitions/<slug>.toml")
    p.add_argument("--pipeline", action="store_true",
                   help="also write pipelines/<slug>.py, a pipeline module to edit (features and MODELS)")


_PIPELINE_TEMPLATE = '''"""{slug}: features and models (written by `kagtools new {slug} --pipeline`; edit freely).

`kagtools submit {slug}` calls ``features`` once, trains every entry of ``MODELS`` on the shared
folds, blends them and submits the run the CV chooses. See docs/any-competition.md.
"""

from __future__ import annotations

from kagtools.core.data import CompetitionData
from kagtools.core.engine import TrainingSet
from kagtools.core.spec import CompetitionSpec
from kagtools.workflow.pipeline import DEFAULT_MODELS, default_features

# {{run name: (registered model, params)}}: `kagtools models` lists the models.
MODELS = dict(DEFAULT_MODELS)


def features(data: CompetitionData, spec: CompetitionSpec) -> TrainingSet:
    """Model-ready features for train and test. Start from the automatic ones and add yours;
    anything computed from the target belongs in ``TrainingSet.fold_features`` (fitted in-fold)."""
    ts = default_features(data, spec)
    # Example: a feature of your own, computed on train and test alike.
    # ts.X["n_missing"] = data.train[ts.X.columns].isna().sum(axis=1).to_numpy()
    # ts.X_test["n_missing"] = data.test[ts.X_test.columns].isna().sum(axis=1).to_numpy()
    ts.name = "{slug}-v1"  # change it when the features change: runs record it
    return ts
'''


def _write_pipeline(workdir: Path, slug: str, force: bool) -> tuple[Path, str]:
    """``pipelines/<module>.py`` from the template; returns its path and the module name."""
    from kagtools.core.io import write_text

    module = "".join(c if c.isalnum() else "_" for c in slug).lower()
    if module[:1].isdigit():
        module = "c_" + module
    path = workdir / "pipelines" / f"{module}.py"
    if path.exists() and not force:
        raise KagtoolsError(f"{path} exists; pass --force to overwrite it")
    write_text(path, _PIPELINE_TEMPLATE.format(slug=slug))
    return path, f"pipelines.{module}"


def _recorded(data_dir: Path, workdir: Path) -> str:
    """The data folder as the spec records it: relative when it is inside the project folder."""
    data_dir, project = Path(os.path.abspath(data_dir)), Path(os.path.abspath(workdir))  # links kept
    return str(data_dir.relative_to(project)) if data_dir.is_relative_to(project) else str(data_dir)


@command("init", "infer competitions/<slug>.toml from train, test and sample submission", options=_init_options,
         example="kagtools init my-comp --data-dir data/my-comp")
def cmd_init(args) -> None:
    from kagtools.analysis.spec_inference import infer_spec, scheme_table, write_inferred_spec
    from kagtools.core.environment import default_workdir, resolve_data_dir

    workdir = Path(args.workdir) if args.workdir else default_workdir()
    path = workdir / "competitions" / f"{args.slug}.toml"
    if path.exists() and not args.force:
        raise KagtoolsError(f"{path} exists; pass --force to overwrite it")
    data_dir = resolve_data_dir(args.slug, args.data_dir)
    inf = infer_spec(args.slug, data_dir, metric=args.metric, id_col=args.id_col, targets=args.targets,
                     task=args.task, kind=args.kind, train_file=args.train, test_file=args.test,
                     sample_file=args.sample, advise=not args.group)
    if args.group:  # the user's group column overrides the advisor's choice
        from kagtools.analysis.split_advisor import advise
        from kagtools.core.data import read_csv

        train, test = (read_csv(data_dir / inf.spec["files"][k]) for k in ("train", "test"))
        inf.advice = advise(train, test, id_col=inf.spec["id_col"], target_cols=inf.spec["target_cols"],
                            task=inf.spec["task"], group=args.group)
        inf.spec["cv"] = scheme_table(inf.advice.scheme)
        inf.reasons += [f"cv: {r}" for r in inf.advice.reasons]
    for key in ("n_splits", "n_repeats"):
        if value := getattr(args, key):
            inf.spec["cv"][key] = value
            inf.reasons.append(f"cv: {key} {value} (given)")
    inf.spec["data_dir"] = _recorded(data_dir, workdir)
    print(f"{args.slug}: inferred from {data_dir}")
    print("\n".join(f"  {r}" for r in inf.reasons))
    if args.pipeline:
        pipeline_path, inf.spec["pipeline"] = _write_pipeline(workdir, args.slug, args.force)
        print(f"pipeline: {pipeline_path} (features and MODELS; edit it)")
    write_inferred_spec(inf, path)
    print(f"spec: {path}\nnext: kagtools submit {args.slug}")


command("new", "start a competition of your own: init, and with --pipeline a pipeline module to edit",
        options=_init_options, example="kagtools new my-comp --data-dir data/my-comp --pipeline")(cmd_init)


def _folds_options(p) -> None:
    add_common(p)
    p.add_argument("--rebuild", action="store_true", help="rebuild folds.csv even if it is current")
    p.add_argument("--explain", action="store_true",
                   help="run the split advisor: groups, time order, imbalance, train/test drift")
    p.add_argument("--compare", action="store_true",
                   help="CV of one model (LightGBM) under the naive and the spec's split")
    p.add_argument("--n-jobs", type=n_jobs_arg, default=-1)


@command("folds", "make runs/<slug>/folds.csv from the spec's CV scheme; --explain, --compare",
         options=_folds_options)
def cmd_folds(args) -> None:
    from kagtools.core.folds import ensure_folds

    ctx = open_ctx(args)
    spec = ctx.spec
    folds = ensure_folds(ctx.data.train, spec, ctx.root, rebuild=args.rebuild)
    table = folds.table
    sizes = table[table["fold"] >= 0].groupby(["repeat", "fold"]).size()
    s = spec.cv
    print(f"{spec.slug}: {s.splitter}, {folds.n_splits} folds x {folds.n_repeats} repeat(s), seed {s.seed}"
          + "".join(f", {k} {getattr(s, k)}" for k in ("stratify", "group", "time") if getattr(s, k)))
    print(f"folds: {ctx.root / 'folds.csv'} (hash {folds.hash}; validation rows per fold "
          f"{sizes.min()}-{sizes.max()})")
    if args.explain or args.compare:
        from kagtools.analysis.split_advisor import advise

        advice = advise(ctx.data.train, ctx.data.test, id_col=spec.id_col, target_cols=list(spec.target_cols),
                        task=spec.task, n_splits=s.n_splits, seed=s.seed, probe=True if args.compare else None)
        print("\nsplit advisor, " + advice.explain())
        if advice.scheme.splitter != s.splitter or advice.scheme.group != s.group or advice.scheme.time != s.time:
            print(f"  note: the spec uses {s.splitter}" + (f" grouped by {s.group}" if s.group else "")
                  + "; edit [cv] in the spec to adopt the proposal")
    if args.compare:
        from kagtools.analysis.split_advisor import compare_schemes, naive_scheme

        schemes = {}
        for name, scheme in (("naive", naive_scheme(spec)), ("spec", spec.cv),
                             ("advisor", replace(advice.scheme, n_repeats=s.n_repeats))):
            same = [k for k, v in schemes.items() if v == scheme]
            if same:  # one run per distinct split, named by all it stands for
                schemes[f"{same[0]} = {name}"] = schemes.pop(same[0])
            else:
                schemes[name] = scheme
        rows = compare_schemes(spec, ctx.data, ctx.training_set, schemes, n_jobs=args.n_jobs)
        print(f"\nCV ({spec.metric}) of one model under each split; a naive score better than the spec's is "
              "optimism that the spec's split removes:")
        print(format_table(rows, ["scheme", "model", "splitter", "group", "time", "cv", "std"]))
