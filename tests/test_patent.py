"""U.S. Patent Phrase to Phrase Matching: spec, anchor-grouped folds, features, the classical
baseline end to end on the real file, and the whole submit flow on a real slice."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kagtools.core.data import load_competition
from kagtools.core.folds import make_folds
from kagtools.core.metrics import get_metric
from kagtools.core.spec import load_spec

SLUG = "us-patent-phrase-to-phrase-matching"
DATA = Path(os.environ["KAGTOOLS_DATA_DIR"]) / SLUG
needs_data = pytest.mark.skipif(not (DATA / "train.csv").is_file(), reason="patent data mirror not available")


@pytest.fixture(scope="module")
def spec():
    return load_spec(SLUG)


@pytest.fixture(scope="module")
def data(spec):
    return load_competition(spec, DATA)


@pytest.fixture(scope="module")
def slice_dir(tmp_path_factory) -> Path:
    """A real slice: every row of 16 anchors (and all test rows), the other files as they are."""
    out = tmp_path_factory.mktemp("patent") / SLUG
    out.mkdir()
    train = pd.read_csv(DATA / "train.csv")
    anchors = pd.Series(train["anchor"].unique()).sample(16, random_state=0)
    train[train["anchor"].isin(anchors)].to_csv(out / "train.csv", index=False)
    for name in ("test.csv", "sample_submission.csv", "cpc_context_titles.csv"):
        shutil.copy(DATA / name, out / name)
    return out


def test_spec_declares_anchor_grouped_folds(spec):
    assert spec.task == "regression" and spec.metric == "pearson"
    assert spec.cv.splitter == "StratifiedGroupKFold"
    assert (spec.cv.group, spec.cv.stratify) == ("anchor", "score")
    assert spec.options["clip"] == {"score": [0.0, 1.0]}


def test_pearson_metric_matches_scipy():
    rng = np.random.default_rng(0)
    y = rng.choice([0, 0.25, 0.5, 0.75, 1.0], 500)
    p = y + rng.normal(0, 0.3, 500)
    assert get_metric("pearson")(y, p) == pytest.approx(stats.pearsonr(y, p)[0], abs=1e-12)
    assert get_metric("pearson").greater_is_better


@needs_data
def test_folds_never_share_an_anchor_and_keep_the_score_mix(spec, data):
    table = make_folds(data.train, spec).merge(data.train[["id", "anchor", "score"]], on="id")
    assert (table["fold"] >= 0).all()
    assert table.groupby("anchor")["fold"].nunique().max() == 1
    for f in range(spec.cv.n_splits):
        train_anchors = set(table.loc[table["fold"] != f, "anchor"])
        assert train_anchors.isdisjoint(table.loc[table["fold"] == f, "anchor"])
    # Stratified on the 5 score values (not quantile bins): each fold's mix is close to the whole's.
    share = pd.crosstab(table["fold"], table["score"], normalize="index")
    overall = table["score"].value_counts(normalize=True).sort_index()
    assert (share.sub(overall, axis=1).abs() < 0.03).all().all()
    assert table.groupby("fold").size().min() > 0.8 * len(table) / spec.cv.n_splits


@needs_data
def test_eda_notes_show_the_anchor_sharing(spec, data):
    from pipelines.us_patent_phrase_to_phrase_matching import anchor_overlap, eda_notes

    overlap = anchor_overlap(data)
    assert overlap["test_anchors_in_train"] == 1.0 and overlap["train_anchors"] == data.train["anchor"].nunique()
    notes = eda_notes(data, spec)
    assert "grouped by anchor" in notes[0] and "100% of test anchors" in notes[0]
    assert all(f"{sec} n=" in notes[1] for sec in "ABCDEFGH")


@needs_data
def test_features_carry_context_titles_and_similarities(spec, slice_dir):
    from pipelines.us_patent_phrase_to_phrase_matching import features

    data = load_competition(spec, slice_dir)
    tset = features(data, spec)
    titles = pd.read_csv(slice_dir / "cpc_context_titles.csv").set_index("code")["title"]
    assert (tset.X["title"] == data.train["context"].map(titles).to_numpy()).all()
    assert len(tset.X_test) == len(data.test) and list(tset.X_test.columns) == list(tset.X.columns)
    # Identical phrases are maximally similar on every measure.
    same = tset.X["anchor"].str.lower() == tset.X["target"].str.lower()
    if same.any():
        assert np.allclose(tset.X.loc[same, ["tfidf_char", "lev", "emb_cos"]], 1.0, atol=1e-4)
    assert tset.X["emb_cos"].corr(tset.y) > 0.3


@needs_data
def test_missing_context_title_is_one_clear_error(spec, slice_dir, tmp_path):
    from kagtools.errors import KagtoolsError
    from pipelines.us_patent_phrase_to_phrase_matching import context_titles, features

    bad = tmp_path / SLUG
    shutil.copytree(slice_dir, bad)
    titles = pd.read_csv(bad / "cpc_context_titles.csv")
    data = load_competition(spec, bad)
    code = data.train["context"].iloc[0]
    titles[titles["code"] != code].to_csv(bad / "cpc_context_titles.csv", index=False)
    assert code not in context_titles(data, spec).index
    with pytest.raises(KagtoolsError, match=f"context '{code}' has no title"):
        features(data, spec)


@needs_data
@pytest.mark.slow
def test_classical_baseline_end_to_end_on_the_real_file(tmp_path):
    """Similarity features -> LightGBM on every row, anchor-grouped 5-fold CV (target >= 0.60)."""
    import torch

    from kagtools.workflow.context import open_context, run_model
    from kagtools.workflow.pipeline import pipeline_models

    torch.set_num_threads(2)
    ctx = open_context(SLUG, data_dir=DATA, workdir=tmp_path)
    name, params = pipeline_models(ctx.spec, "cpu")["similarity_lgbm"]
    run = run_model(ctx, name, params, n_jobs=1, save_models=False)
    scores = run.record.scores
    assert len(scores["folds"]) == 5
    assert scores["cv"] > 0.6
    assert len(run.oof) == len(ctx.data.train) and run.oof["pred"].notna().all()
    assert len(run.test) == len(ctx.data.test)


@needs_data
@pytest.mark.slow
def test_submit_smoke_profile_on_a_real_slice(slice_dir, tmp_path, capsys):
    """The whole flow (folds, both models, blends, validated submission) on a slice of the data."""
    from kagtools.cli.main import main

    assert main(["submit", SLUG, "--data-dir", str(slice_dir), "--workdir", str(tmp_path), "--profile", "smoke",
                 "--no-eda", "--n-jobs", "1"]) == 0
    sub = pd.read_csv(tmp_path / "submissions" / SLUG / "submission.csv")
    sample = pd.read_csv(slice_dir / "sample_submission.csv")
    assert list(sub.columns) == ["id", "score"]
    assert set(sub["id"]) == set(sample["id"]) and len(sub) == len(sample)
    assert sub["score"].between(0, 1).all() and sub["score"].nunique() > 1
    from kagtools.core.runs import list_runs

    runs = list_runs(tmp_path / "runs" / SLUG)
    assert {"similarity_lgbm", "hf_group_cross_encoder"} <= {r.record.model for r in runs}
    assert any(r.record.kind == "blend" for r in runs)
    assert all(r.record.cv_scheme["group"] == "anchor" for r in runs if r.record.cv_scheme)
