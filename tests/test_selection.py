"""The choice rule and the selection-aware estimate, on synthetic fold scores whose truth is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kagtools.core.runs import Run
from kagtools.ensemble.selection import choose, gaps, robustness, selection_estimate
from tests.conftest import make_record

REPEATS, FOLDS = 10, 5


def _run(name: str, scores: np.ndarray, *, kind: str = "cv", method: str | None = None) -> Run:
    folds = [{"repeat": r, "fold": f, "score": float(scores[r * FOLDS + f])}
             for r in range(REPEATS) for f in range(FOLDS)]
    rec = make_record(name, kind=kind, method=method, scores={"cv": float(np.mean(scores)), "folds": folds})
    return Run(path=Path("/nonexistent") / name, record=rec)


def _noisy_equals(rng, n: int, true: float = 0.80, common: float = 0.03, own: float = 0.01) -> list[np.ndarray]:
    """``n`` models of equal skill: a fold effect they share (the fold is easy or hard) plus a
    small noise of their own, as correlated CV scores are."""
    fold_effect = rng.normal(0, common, REPEATS * FOLDS)
    return [true + fold_effect + rng.normal(0, own, REPEATS * FOLDS) for _ in range(n)]


def test_a_truly_better_single_run_displaces_the_blend():
    rng = np.random.default_rng(0)
    base = _noisy_equals(rng, 12)
    runs = [_run(f"m{i}", s) for i, s in enumerate(base)]
    runs.append(_run("better", base[0] + 0.03))  # better on every fold by far more than the noise
    runs.append(_run("blend-mean", np.mean(base, axis=0) + 0.002, kind="blend", method="mean"))
    assert choose(runs, "accuracy").run_id == "better"


def test_the_maximum_of_equal_noisy_runs_gives_way_to_the_robust_blend():
    rng = np.random.default_rng(1)
    base = _noisy_equals(rng, 12)
    runs = [_run(f"m{i}", s) for i, s in enumerate(base)]
    runs.append(_run("blend-hill", np.mean(base, axis=0), kind="blend", method="hill_climb"))
    runs.append(_run("blend-mean", np.mean(base, axis=0), kind="blend", method="mean"))
    best_by_cv = max(runs, key=lambda r: r.record.scores["cv"])
    assert best_by_cv.record.kind == "cv"  # the naive choice: one lucky single run
    assert choose(runs, "accuracy").run_id == "blend-mean"
    assert [robustness(r) for r in runs[-2:]] == [1, 0]


def test_lower_is_better_metrics_choose_the_lowest():
    rng = np.random.default_rng(2)
    base = _noisy_equals(rng, 5, true=0.5)
    runs = [_run(f"m{i}", s) for i, s in enumerate(base)] + [_run("better", base[0] - 0.05)]
    assert choose(runs, "rmse").run_id == "better"
    leader, gs = gaps(np.array([r_s for r_s in base] + [base[0] - 0.05]), -1.0)
    assert leader == len(base) and gs[leader].mean == 0.0 and all(g.mean > 0 for g in gs[:-1])


def test_selection_estimate_removes_the_winners_curse():
    """With 20 runs of equal true skill, the best CV overstates the truth; the nested estimate
    does not (on average over many simulated competitions)."""
    rng = np.random.default_rng(3)
    naive, nested = [], []
    for _ in range(40):
        runs = [_run(f"m{i}", s) for i, s in enumerate(_noisy_equals(rng, 20, own=0.02))]
        est = selection_estimate(runs, "accuracy")
        truth = np.mean([r.record.scores["cv"] for r in runs])  # every run's true skill is the same
        naive.append(est["naive"] - truth)
        nested.append(est["estimate"] - truth)
        assert est["n_folds"] == REPEATS * FOLDS and sum(est["chosen"].values()) == REPEATS * FOLDS
    assert np.mean(naive) > 0.004  # the maximum of 20 equal runs overstates them
    assert abs(np.mean(nested)) < 0.002  # the nested choice does not


def test_selection_estimate_of_one_clearly_best_run_is_its_score():
    rng = np.random.default_rng(4)
    base = _noisy_equals(rng, 6)
    runs = [_run(f"m{i}", s) for i, s in enumerate(base)] + [_run("better", base[0] + 0.05)]
    est = selection_estimate(runs, "accuracy")
    assert est["chosen"] == {"better": REPEATS * FOLDS}
    assert est["estimate"] == pytest.approx(est["naive"])


def test_selection_estimate_scores_either_rule_and_refuses_an_unknown_one():
    rng = np.random.default_rng(5)
    runs = [_run(f"m{i}", s) for i, s in enumerate(_noisy_equals(rng, 8))]
    runs.append(_run("blend-mean", np.mean([r.record.scores["cv"] for r in runs]) + np.zeros(REPEATS * FOLDS),
                     kind="blend", method="mean"))
    by_max = selection_estimate(runs, "accuracy", rule="max")
    by_rule = selection_estimate(runs, "accuracy")
    assert set(by_max["chosen"]) <= {r.run_id for r in runs} and by_max["naive"] == by_rule["naive"]
    assert "blend-mean" in by_rule["chosen"]
    with pytest.raises(Exception, match="unknown choice rule"):
        selection_estimate(runs, "accuracy", rule="best")
