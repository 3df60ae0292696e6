"""The flow behind the CLI: spec -> data -> features -> folds -> runs -> blend -> submission.

Each step reads the previous step's artifact; :class:`Context` gathers what they share.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

import kagtools
from kagtools.core.data import CompetitionData, load_competition
from kagtools.core.engine import TrainingSet, cross_validate
from kagtools.core.environment import default_workdir
from kagtools.core.folds import TARGETS_FILE, Folds, changed_files, ensure_folds, recorded_folds
from kagtools.core.io import clean_litter
from kagtools.core.metrics import get_metric
from kagtools.core.runs import Run, git_sha, inputs_hash, list_runs, load_run, make_run_id, run_root
from kagtools.core.spec import CompetitionSpec, check_name, load_spec
from kagtools.core.submission import render_submission, write_submission
from kagtools.errors import KagtoolsError
from kagtools.workflow.pipeline import build_training_set, load_pipeline

__all__ = ["Context", "open_context", "run_inputs", "run_model", "run_pipeline_models", "choose_best", "make_submission",
           "leaderboard"]


@dataclass
class Context:
    """One competition, its data and where its artifacts go."""

    spec: CompetitionSpec
    data_dir: str | os.PathLike | None
    workdir: Path
    #: For commands that only read artifacts (``runs``, ``blend``): without a data folder, the
    #: folds are those recorded in ``runs/<slug>/`` for the spec's scheme.
    from_artifacts: bool = False

    @cached_property
    def data(self) -> CompetitionData:
        return load_competition(self.spec, self.data_dir)

    @cached_property
    def training_set(self) -> TrainingSet:
        data, spec = self.data, self.spec
        if data.test is not None:
            known = {spec.id_col, *spec.target_cols, *spec.options.get("train_only_columns", ())}
            lost = [str(c) for c in data.train.columns if c not in data.test.columns and c not in known]
            if lost:
                print(f"warning: {len(lost)} column(s) of the training file are not in the test file, so no model "
                      f"can use them: {', '.join(lost[:5])}{', ...' if len(lost) > 5 else ''} (list them under "
                      f"options.train_only_columns in the spec to silence this)", flush=True)
        return build_training_set(spec, data)

    @property
    def root(self) -> Path:
        return run_root(self.workdir, self.spec.slug)

    @property
    def reports(self) -> Path:
        return self.workdir / "reports" / self.spec.slug

    @cached_property
    def folds(self) -> Folds:
        try:
            train = self.data.train
        except KagtoolsError:
            # Without the data, the recorded folds' fingerprint is trusted.
            recorded = recorded_folds(self.root, self.spec.cv.as_dict()) if self.from_artifacts else None
            if recorded is None:
                raise
            return recorded
        return ensure_folds(train, self.spec, self.root, files=self.data.fingerprints)

    @property
    def pipeline(self):
        return load_pipeline(self.spec)

    def targets(self) -> tuple[pd.Series | pd.DataFrame, pd.Series]:
        """The training rows' targets and ids: from the training set, or, for a command that
        only reads artifacts and has no data folder, from ``runs/<slug>/targets.parquet``."""
        try:
            tset = self.training_set
        except KagtoolsError:
            path = self.root / TARGETS_FILE
            if not (self.from_artifacts and path.is_file()):
                raise
            table = pd.read_parquet(path)
            cols = list(self.spec.target_cols)
            return (table[cols[0]] if len(cols) == 1 else table[cols]), table[self.spec.id_col]
        return tset.y, tset.ids

    @cached_property
    def inputs(self) -> dict[str, Any]:
        """What every run of this context depends on: the data files' content, the spec, the
        features' version, the folds and the code (version and git commit)."""
        spec = self.spec
        return {"data": self.data.fingerprints,
                "spec": hashlib.sha256(spec.path.read_bytes()).hexdigest() if spec.path else None,
                "features": self.training_set.name, "folds": self.folds.hash, "kagtools": kagtools.__version__,
                "git": git_sha()}

    def runs(self) -> list[Run]:
        """Runs made on the current folds from the current data; stale runs (other folds, or data
        whose content has changed since) are left out."""
        return [r for r in list_runs(self.root, folds_hash=self.folds.hash) if self._current(r)]

    def stale_runs(self) -> list[Run]:
        """Runs on the current folds made from data whose content has changed since."""
        return [r for r in list_runs(self.root, folds_hash=self.folds.hash) if not self._current(r)]

    def _current(self, run: Run) -> bool:
        fingerprint = self.folds.fingerprint
        return fingerprint is None or run.record.provenance.get("data_fingerprint") == fingerprint

    def run(self, run_id: str) -> Run:
        """The recorded run ``run_id``; refused when it was made on other folds or other data."""
        run = load_run(self.root, check_name(run_id, "run id"))
        if run.record.folds_hash != self.folds.hash:
            raise KagtoolsError(f"run {run_id} was made on other folds ({run.record.folds_hash}, now "
                                f"{self.folds.hash}): the CV scheme or the training rows changed; rerun it")
        if not self._current(run):
            try:
                now = self.data.fingerprints
            except KagtoolsError:
                now = {}
            what = changed_files(self.root, run.record.provenance.get("data_fingerprint"), now) if now else []
            raise KagtoolsError(f"run {run_id} is stale: {', '.join(what) or 'the data'} changed since it was "
                                f"made; rerun it (`kagtools submit {self.spec.slug}` retrains what changed)")
        return run

    def eda_notes(self) -> list[str]:
        """Lines the pipeline module adds to the EDA report (``eda_notes(data, spec)``)."""
        fn = getattr(self.pipeline, "eda_notes", None)
        return list(fn(self.data, self.spec)) if fn else []


def open_context(slug: str, *, data_dir: str | os.PathLike | None = None,
                 workdir: str | os.PathLike | None = None) -> Context:
    workdir = Path(workdir) if workdir else default_workdir()
    ctx = Context(spec=load_spec(slug, workdir), data_dir=data_dir, workdir=workdir)
    # What a killed process left half-written (temporary files of atomic writes) goes now.
    clean_litter(ctx.root, ctx.reports, workdir / "submissions" / ctx.spec.slug, workdir / "competitions")
    return ctx


def run_inputs(ctx: Context, model: str, params: dict[str, Any], seed: int) -> str:
    """A hash of everything a run's predictions depend on: :attr:`Context.inputs`, the model, its
    parameters and seed. A recorded run with the same hash is the run this one would make."""
    return inputs_hash({**ctx.inputs, "model": model, "params": params, "seed": seed})


def run_model(ctx: Context, model: str, params: dict[str, Any] | None = None, *, n_jobs: int = 1,
              seed: int | None = None, run_id: str | None = None, reuse: bool = False, **kwargs) -> Run:
    """Cross-validate one model on the shared folds and write its run.

    With ``reuse``, a recorded run made from the same inputs (:func:`run_inputs`) is returned
    instead of retraining: same data, spec, features, folds, code, model, parameters and seed.
    """
    params = dict(params or {})
    seed = ctx.spec.cv.seed if seed is None else seed
    inputs = run_inputs(ctx, model, params, seed)
    if reuse:
        rid = run_id or make_run_id(model, params, seed, ctx.folds.hash, ctx.training_set.name)
        if (ctx.root / rid / "run.json").is_file():
            run = load_run(ctx.root, rid)
            if run.record.inputs == inputs:
                print(f"    reused {rid} (inputs unchanged; --force retrains)", flush=True)
                return run
    return cross_validate(ctx.spec, ctx.training_set, ctx.folds, model, params, root=ctx.root,
                          n_jobs=n_jobs, seed=seed, run_id=run_id, inputs=inputs, **kwargs)


def run_pipeline_models(ctx: Context, *, profile: str | None = None, n_jobs: int = 1,
                        reuse: bool = False, preset: str | None = None, refit: bool | None = None,
                        time_limit: float | None = None) -> list[Run]:
    """Cross-validate every model of the pipeline, or of ``preset`` (tuned parameters where
    ``tune`` left some); without a pipeline module, the ``medium`` preset. ``refit`` overrides
    the refit policy; ``time_limit`` (seconds) stops what cannot finish in time
    (:func:`kagtools.workflow.presets.run_plan`)."""
    from kagtools.workflow.presets import plan_for, run_plan

    plan = plan_for(ctx.spec, profile=profile, preset=preset, refit=refit)
    return run_plan(ctx, plan, n_jobs=n_jobs, reuse=reuse, time_limit=time_limit).runs


def choose_best(ctx: Context, runs: list[Run]) -> Run:
    """The run to submit: the most robust candidate within the noise of the best one, compared
    fold by fold on the shared folds (:func:`kagtools.ensemble.selection.choose`)."""
    from kagtools.ensemble.selection import choose

    if not runs:
        raise KagtoolsError(f"no runs for '{ctx.spec.slug}' on the current folds; run `kagtools cv` first")
    return choose(runs, ctx.spec.metric)


def make_submission(ctx: Context, run: Run, info: dict[str, Any] | None = None) -> Path:
    """Render ``run``'s test predictions, validate against the sample, write atomically."""
    sample = ctx.data.sample_submission
    if sample is None:
        raise KagtoolsError(f"spec '{ctx.spec.slug}' names no sample_submission file to validate against")
    if not run.has_test:
        raise KagtoolsError(f"run {run.run_id} has no test predictions")
    sub = render_submission(ctx.spec, run, sample)
    return write_submission(ctx.spec, sub, sample, workdir=ctx.workdir, run=run, info=info)


def leaderboard(ctx: Context, runs: list[Run] | None = None) -> list[dict[str, Any]]:
    """Rows for the runs table, best first; ``gap`` +- ``gap_se`` is each run's paired gap to the
    leader over the shared folds (higher-is-better sense) and its standard error."""
    from kagtools.ensemble.selection import fold_scores, gaps

    runs = ctx.runs() if runs is None else runs
    metric = get_metric(ctx.spec.metric)
    paired = gaps(fold_scores(runs)[1], metric.sign())[1] if runs else []
    rows = []
    for r, gap in zip(runs, paired, strict=True):
        rec = r.record
        rows.append({
            "run": r.run_id, "model": rec.model, "kind": rec.kind, "cv": rec.scores["cv"],
            "std": rec.scores.get("cv_std", 0.0), "nested": rec.scores.get("nested"),
            "in_sample": rec.scores.get("in_sample"), "weights": rec.weights, "seconds": rec.wall_seconds,
            "gap": gap.mean, "gap_se": gap.se,
        })
    rows.sort(key=lambda row: -metric.sign() * (row["nested"] if row["nested"] is not None else row["cv"]))
    return rows
