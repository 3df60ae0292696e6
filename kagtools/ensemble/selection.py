"""Choosing the run to submit, and an estimate of the whole procedure that includes the choice.

Every candidate (single runs, bags, boosts, blends) was scored on the same shared folds, blends
on their nested OOF, so candidates are compared fold by fold: the paired difference of two
runs' fold scores is far less noisy than either score. Taking the maximum of many correlated
CV scores is the winner's curse: the maximum overstates what the chosen run will score.

The rule (:func:`choose`), the one-standard-error rule applied to paired differences:

1. the leader is the candidate with the best mean fold score;
2. each candidate's gap to the leader is measured fold by fold, with the standard error of
   that paired difference;
3. the most robust candidate whose gap is within ``z`` standard errors is chosen, ``z`` being
   one standard error widened for the number ``m`` of candidates compared:
   ``z = max(1, sqrt(2 ln m))``, about the largest of ``m`` noise terms, so the leader of many
   equally good runs does not win on its luck alone. Robust means, in this order: a blend that
   fits nothing (``mean``, ``rank_mean``, ``geo_mean``), then a blend with fitted weights, then
   a single run. Within a class the smaller gap wins.

So a single run displaces a blend only when it wins by more than the noise of the difference.

:func:`selection_estimate` is the honest score of "train everything, then choose": for every
fold, the choice is made on the other folds of its repeat only and scored on that fold, so the
fold never votes for the run it scores. It is printed beside the naive best CV.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kagtools.core.metrics import get_metric
from kagtools.core.runs import Run
from kagtools.errors import KagtoolsError

__all__ = ["UNFITTED_BLENDS", "RULES", "Gap", "fold_scores", "robustness", "gaps", "noise_multiplier", "choose",
           "selection_estimate"]

#: Blend methods that fit nothing to the labels: as robust as a candidate gets.
UNFITTED_BLENDS = ("mean", "rank_mean", "geo_mean")


def robustness(run: Run) -> int:
    """0 for a blend that fits nothing, 1 for a blend with fitted weights, 2 for a single run."""
    if run.record.kind != "blend":
        return 2
    return 0 if run.record.method in UNFITTED_BLENDS else 1


def fold_scores(runs: Sequence[Run]) -> tuple[list[tuple[int, int]], np.ndarray]:
    """``(keys, S)``: the (repeat, fold) keys every run was scored on, and ``S[i, j]`` the score
    of run ``i`` on fold ``keys[j]`` (as recorded in its run.json)."""
    per_run = [{(f["repeat"], f["fold"]): f["score"] for f in r.record.scores["folds"]} for r in runs]
    # Folds where some run's score is undefined (null: e.g. AUC on a one-class fold) are left out.
    keys = sorted(k for k in set.intersection(*(set(p) for p in per_run))
                  if all(p[k] is not None and np.isfinite(p[k]) for p in per_run))
    if not keys:
        raise KagtoolsError("the runs share no scored fold; were they made on the same folds?")
    return keys, np.array([[p[k] for k in keys] for p in per_run], dtype=float)


@dataclass(frozen=True)
class Gap:
    """A candidate's paired gap to the leader: mean of (leader - candidate) fold scores, in the
    metric's "higher is better" sense, and the standard error of that mean."""

    mean: float
    se: float


def gaps(S: np.ndarray, sign: float) -> tuple[int, list[Gap]]:
    """The leader (best mean fold score) and every candidate's :class:`Gap` to it."""
    mean = S.mean(axis=1) * sign
    leader = int(np.argmax(mean))
    d = (S[leader] - S) * sign  # >= 0 on average
    n = S.shape[1]
    se = d.std(axis=1, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(len(S))
    return leader, [Gap(float(m), float(s)) for m, s in zip(d.mean(axis=1), se, strict=True)]


def noise_multiplier(m: int) -> float:
    """How many standard errors of a paired gap count as noise among ``m`` candidates."""
    return max(1.0, float(np.sqrt(2 * np.log(max(m, 1)))))


def _choose(S: np.ndarray, rank: Sequence[int], sign: float) -> int:
    leader, gs = gaps(S, sign)
    z = noise_multiplier(len(S))
    within = [i for i, g in enumerate(gs) if g.mean <= z * g.se]
    return min(within, key=lambda i: (rank[i], gs[i].mean, i)) if within else leader


def choose(runs: Sequence[Run], metric: str) -> Run:
    """The run to submit by the paired one-standard-error rule (module docstring)."""
    if not runs:
        raise KagtoolsError("no runs to choose from")
    _, S = fold_scores(runs)
    return runs[_choose(S, [robustness(r) for r in runs], get_metric(metric).sign())]


#: The choice rules :func:`selection_estimate` can score: this module's, and the naive maximum.
RULES = ("one_se", "max")


def selection_estimate(runs: Sequence[Run], metric: str, *, rule: str = "one_se") -> dict:
    """The score of the whole procedure, the choice included, without selection bias.

    For each (repeat, fold), the choice ``rule`` (:func:`choose`'s, or ``"max"``: the best mean)
    is applied to the scores of the *other* folds of that repeat, and the chosen run is scored
    on the fold left out. Returns the mean and the standard deviation of those fold scores, the
    naive figure (the best mean fold score, what picking the maximum claims) and how often each
    run was chosen.
    """
    if rule not in RULES:
        raise KagtoolsError(f"unknown choice rule {rule!r}; known: {', '.join(RULES)}")
    keys, S = fold_scores(runs)
    sign = get_metric(metric).sign()
    rank = [robustness(r) for r in runs]
    picked, scores = [], []
    for j, (repeat, _) in enumerate(keys):
        inner = [i for i, (r, _) in enumerate(keys) if r == repeat and i != j]
        if not inner:  # one fold per repeat: nothing to choose on
            continue
        c = _choose(S[:, inner], rank, sign) if rule == "one_se" else int(np.argmax(S[:, inner].mean(axis=1) * sign))
        picked.append(runs[c].run_id)
        scores.append(S[c, j])
    if not scores:
        raise KagtoolsError("a selection-aware estimate needs at least two folds per repeat")
    return {"estimate": float(np.mean(scores)), "std": float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0,
            "naive": float((S.mean(axis=1) * sign).max() * sign), "n_folds": len(scores),
            "chosen": {rid: picked.count(rid) for rid in dict.fromkeys(picked)}}
