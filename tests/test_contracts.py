"""Contract tests (issue 17, "one engine"): everything registered meets its registry's contract.

The cases are parametrised over what the registries hold when the tests are collected, so a
model, metric, blender or splitter is tested the moment it is registered. A new model needs
an entry in :data:`MODEL_CASES` (its input kind and small parameters), a new metric one in
:data:`METRIC_CASES`: ``test_every_model_has_a_case`` / ``test_every_metric_has_a_case`` fail
until they are there. Torch models are tiny and marked ``slow``.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics as skm
from sklearn.base import BaseEstimator, clone

from kagtools.core import metrics as metrics_module
from kagtools.core import model_registry
from kagtools.core.folds import SPLITTERS, make_folds
from kagtools.core.metrics import METRICS, NEEDS, Metric, get_metric
from kagtools.core.model_registry import (
    EAGER_MODULES,
    LAZY_MODELS,
    MODELS,
    get_model_class,
    list_models,
    make_model,
    seed_params,
)
from kagtools.core.registry import Registry
from kagtools.core.spec import parse_spec
from kagtools.core.task import TASKS, Task
from kagtools.ensemble.blenders import BLENDERS, make_blender
from kagtools.errors import KagtoolsError

ROOT = Path(__file__).resolve().parent.parent

# Every registered model, the torch-backed (lazy) ones included: importing them is the point.
#: Every registered model but the ones a test module registers for itself (``_`` names).
ALL_MODELS: dict[str, type] = {k: v for k, v in MODELS.load_all().items() if not k.startswith("_")}


# ================================================================== input kinds: tiny data builders
# A builder is ``build(task, n, seed, workdir) -> (X, y)``; ``y`` is (n,) but for multitarget (n, 2).

N_TARGETS = 2  # multitarget
N_CLASSES = 3  # multiclass


def _labels_from(signal: np.ndarray, task: str, rng: np.random.Generator) -> np.ndarray:
    """A target of ``task`` driven by ``signal``, every class present."""
    n = len(signal)
    if task == "binary":
        y = (signal > np.median(signal)).astype(int)
    elif task == "multiclass":
        y = np.digitize(signal, np.quantile(signal, [1 / 3, 2 / 3]))
    elif task == "regression":
        return signal * 2 + rng.normal(scale=0.1, size=n)
    else:
        return np.column_stack([signal * 2, -signal + rng.normal(scale=0.3, size=n)])
    return y


def table_data(task: str, n: int, seed: int, workdir: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """A mixed table: numerics (with NaN), a ``category`` column and an object column."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "num": rng.normal(size=n),
        "noise": rng.normal(size=n),
        "cat": pd.Series(rng.choice(["a", "b", "c"], n)).astype("category"),
        "text_cat": rng.choice(["p", "q"], n),
    })
    signal = X["num"].to_numpy() + (X["cat"] == "a").to_numpy() * 1.5
    X.loc[::9, "num"] = np.nan
    return X, _labels_from(signal, task, rng)


def ratings_data(task: str, n: int, seed: int, workdir: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Explicit ratings ``3 + b_user + b_item`` in [0.5, 5] on ``userId``/``movieId``."""
    assert task == "regression"
    rng = np.random.default_rng(seed)
    bu, bi = np.random.default_rng(0).normal(0, 0.6, 15), np.random.default_rng(1).normal(0, 0.6, 12)
    u, i = rng.integers(0, 15, n), rng.integers(0, 12, n)
    X = pd.DataFrame({"userId": u + 100, "movieId": i + 1000})
    return X, np.clip(3.0 + bu[u] + bi[i] + rng.normal(0, 0.2, n), 0.5, 5.0)


_ANCHORS = ["battery cell", "wireless signal", "gear shaft", "water pump"]
_TARGETS = ["battery pack", "cell housing", "radio signal", "antenna", "shaft bearing", "toothed gear",
            "pump impeller", "fluid pump", "paper clip", "coffee cup"]
_TITLES = ["ELECTRICITY", "MECHANICAL ENGINEERING"]


def phrase_data(task: str, n: int, seed: int, workdir: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Phrase pairs: ``anchor``/``target``/``title`` text and numeric similarity columns (the
    cross-encoders read the text, ``similarity_lgbm`` the numbers)."""
    rng = np.random.default_rng(seed)
    anchor = rng.choice(_ANCHORS, n)
    target = rng.choice(_TARGETS, n)
    overlap = np.array([len(set(a.split()) & set(t.split())) for a, t in zip(anchor, target, strict=True)], float)
    X = pd.DataFrame({"anchor": anchor, "target": target, "title": rng.choice(_TITLES, n),
                      "overlap": overlap, "cosine": overlap / 2 + rng.normal(0, 0.1, n)})
    if task == "regression":  # the patent scores: 0, 0.25, ..., 1
        return X, np.clip(np.round((overlap / 2 + rng.normal(0, 0.1, n)) * 4) / 4, 0, 1)
    return X, _labels_from(X["cosine"].to_numpy(), task, rng)


def pixel_data(task: str, n: int, seed: int, workdir: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """28 x 28 grey 'digits' as 784 pixel columns: class k is a bright bar at row 4 + 5k."""
    rng = np.random.default_rng(seed)
    k = 2 if task == "binary" else N_CLASSES
    y = np.arange(n) % k
    rng.shuffle(y)
    img = rng.integers(0, 40, (n, 28, 28))
    for row, c in enumerate(y):
        img[row, 4 + 5 * c: 7 + 5 * c, 4:24] = 255
    return pd.DataFrame(img.reshape(n, -1), columns=[f"pixel{j}" for j in range(784)]), y


def image_data(task: str, n: int, seed: int, workdir: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Image files (PNG) in ``workdir`` and a ``path`` column: class k is tinted channel k."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    k = 2 if task == "binary" else N_CLASSES
    y = np.arange(n) % k
    rng.shuffle(y)
    paths = []
    for row, c in enumerate(y):
        pixels = rng.integers(0, 80, (40, 48, 3)).astype(np.uint8)
        pixels[..., c] += 150
        path = workdir / f"img_{seed}_{row}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    return pd.DataFrame({"path": paths}), y


@dataclass(frozen=True)
class ModelCase:
    """How to feed one registered model: its input kind, rows to fit, and small parameters."""

    build: Callable[[str, int, int, Path], tuple[pd.DataFrame, np.ndarray]]
    params: dict[str, Any] = field(default_factory=dict)
    n: int = 120


_TORCH_CF = {"epochs": 1, "n_factors": 4, "batch_size": 64, "device": "cpu"}
_ENCODER = {"epochs": 1, "batch_size": 8, "max_length": 24, "device": "cpu"}

#: One entry per registered model (by name). A model registered without one fails
#: ``test_every_model_has_a_case``.
MODEL_CASES: dict[str, ModelCase] = {
    "logreg": ModelCase(table_data),
    "rf": ModelCase(table_data, {"n_estimators": 8}),
    "et": ModelCase(table_data, {"n_estimators": 8}),
    "lgbm": ModelCase(table_data, {"n_estimators": 10, "num_leaves": 7, "min_child_samples": 5,
                                   "subsample": 0.8, "colsample_bytree": 0.8}),
    "hgb": ModelCase(table_data, {"max_iter": 10, "min_samples_leaf": 5}),
    "knn": ModelCase(table_data, {"n_neighbors": 5}),
    "catboost": ModelCase(table_data, {"iterations": 10, "depth": 3}),
    "xgboost": ModelCase(table_data, {"n_estimators": 10, "max_depth": 3}),
    "tabular_nn": ModelCase(table_data, {"epochs": 2, "layers": (16,), "batch_size": 32, "device": "cpu"}),
    "bag": ModelCase(table_data, {"model": "rf", "params": {"n_estimators": 4}, "n_bags": 2, "bootstrap": True}),
    "similarity_lgbm": ModelCase(phrase_data, {"n_estimators": 10, "num_leaves": 7, "min_child_samples": 5}),
    "cf_global_mean": ModelCase(ratings_data),
    "cf_biases": ModelCase(ratings_data, {"n_iter": 5}),
    "cf_mf": ModelCase(ratings_data, {"n_factors": 4, "n_iter": 3}),
    "cf_dot": ModelCase(ratings_data, _TORCH_CF),
    "cf_neural": ModelCase(ratings_data, {**_TORCH_CF, "hidden": (8,)}),
    "digit_cnn": ModelCase(pixel_data, {"epochs": 1, "channels": (4, 8), "batch_size": 16, "tta": 2,
                                        "device": "cpu"}, n=48),
    "timm_classifier": ModelCase(image_data, {"sizes": (32,), "epochs": 1, "freeze_epochs": 0, "batch_size": 6,
                                              "tta": 2, "device": "cpu"}, n=12),
    "hf_cross_encoder": ModelCase(phrase_data, _ENCODER, n=16),
    "hf_group_cross_encoder": ModelCase(phrase_data, {**_ENCODER, "batch_size": 2, "max_items": 4,
                                                      "max_length": 48}, n=16),
}

#: Models whose predictions may differ between two fits with the same seed, with the reason
#: their documentation gives. Empty: every model is deterministic on the CPU.
NONDETERMINISTIC: dict[str, str] = {}


#: Models that pickle their weights in float16 (a small CPU state dict): predictions after a
#: pickle round trip agree to this absolute tolerance; every other model's exactly.
PICKLE_ATOL: dict[str, float] = {"digit_cnn": 2e-2, "timm_classifier": 2e-2}


def _is_torch(name: str) -> bool:
    return name in LAZY_MODELS


def _model_task_cases() -> list:
    cases = []
    for name, cls in sorted(ALL_MODELS.items()):
        for task in cls.tasks:
            marks = [pytest.mark.slow] if _is_torch(name) else []
            cases.append(pytest.param(name, task, id=f"{name}-{task}", marks=marks))
    return cases


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("contract_data")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread for torch and the OpenMP/BLAS pools while this module runs: the data are tiny,
    and on a busy two-core machine extra threads only spin (HistGB took 10 s instead of 0.5)."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(before)


# ================================================================== 1. models

def test_every_model_has_a_case():
    """Registering a model without a data builder here is a failure, not a silent gap."""
    missing = sorted(set(ALL_MODELS) - set(MODEL_CASES))
    assert not missing, f"registered models without a MODEL_CASES entry: {missing}"
    stale = sorted(set(MODEL_CASES) - set(ALL_MODELS))
    assert not stale, f"MODEL_CASES entries for unregistered models: {stale}"
    assert set(list_models()) == set(ALL_MODELS)


def test_every_model_declares_known_tasks():
    for name, cls in ALL_MODELS.items():
        assert cls.tasks and set(cls.tasks) <= set(TASKS), name
        assert cls.registered_name == name


def _check_scores(scores, task: str, n: int, y) -> None:
    scores = np.asarray(scores)
    expected = {"binary": (n,), "regression": (n,), "multiclass": (n, int(np.max(y)) + 1),
                "multitarget": (n, N_TARGETS)}[task]
    assert scores.shape == expected
    assert np.issubdtype(scores.dtype, np.number) and np.isfinite(scores).all()
    if task in ("binary", "multiclass"):
        assert ((scores >= 0) & (scores <= 1)).all()
    if task == "multiclass":
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(("name", "task"), _model_task_cases())
def test_model_contract(name, task, workdir):
    case = MODEL_CASES[name]
    X, y = case.build(task, case.n, 0, workdir)
    X_new, _ = case.build(task, max(case.n // 4, 6), 1, workdir)

    model = make_model(name, case.params, task=task, seed=0)
    params = model.get_params(deep=False)
    assert params.get("task", task) == task
    assert not [k for k in vars(model) if k.endswith("_") and not k.startswith("_")], "learned state before fit"

    # The scikit-learn estimator contract: clone and get_params/set_params round-trip.
    twin = clone(model)
    assert type(twin) is type(model) and twin.get_params(deep=False) == params
    fresh = type(model)()
    assert fresh.set_params(**params) is fresh and fresh.get_params(deep=False) == params

    assert model.fit(X, y) is model
    scores = model.predict_scores(X_new)
    _check_scores(scores, task, len(X_new), y)
    # A fitted model clones to an unfitted one with the same parameters.
    assert clone(model).get_params(deep=False) == params
    # Rows are read by position: another index (a fold's rows) changes nothing.
    np.testing.assert_array_equal(model.predict_scores(X_new.set_axis(X_new.index + 1000)), scores)
    # The CV loop pickles fold models: a pickled model predicts the same.
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(restored.predict_scores(X_new), scores, rtol=0, atol=PICKLE_ATOL.get(name, 0))

    if name in NONDETERMINISTIC:
        return
    again = make_model(name, case.params, task=task, seed=0).fit(X, y)
    np.testing.assert_array_equal(again.predict_scores(X_new), scores,
                                  err_msg=f"{name}: two fits with seed 0 differ")


@pytest.mark.parametrize("name", ["rf", "et", "lgbm", "bag", "cf_mf"])
def test_seed_reaches_a_randomised_model(name, workdir):
    """make_model's seed is used: another seed gives other predictions (models with randomness)."""
    case = MODEL_CASES[name]
    task = ALL_MODELS[name].tasks[0]
    params = {**case.params, **({"subsample": 0.6} if name == "lgbm" else {})}
    X, y = case.build(task, case.n, 0, workdir)
    X_new, _ = case.build(task, case.n, 1, workdir)
    a = make_model(name, params, task=task, seed=0).fit(X, y).predict_scores(X_new)
    b = make_model(name, params, task=task, seed=1).fit(X, y).predict_scores(X_new)
    assert not np.array_equal(a, b)


def test_bag_refuses_an_inner_model_without_the_task(workdir):
    """``bag`` declares every task; its members are made by make_model, which refuses the
    tasks the bagged model does not declare."""
    X, y = table_data("multitarget", 60, 0, workdir)
    bag = make_model("bag", {"model": "lgbm", "n_bags": 1}, task="multitarget", seed=0)
    with pytest.raises(KagtoolsError, match="'lgbm' does not support multitarget"):
        bag.fit(X, y)


# ================================================================== 2. the model registry

_SUBPROCESS = """
import importlib, json, sys
import kagtools.core.model_registry as m
m.MODELS.names()
after_lookup = 'torch' in sys.modules
for mod in m.EAGER_MODULES:
    importlib.import_module(mod)
m.create_model('cf_biases')
m.make_model('lgbm', task='binary', seed=0)
after_eager = 'torch' in sys.modules
eager = {n: c.__module__ for n, c in m.MODELS._entries.items()}
by_module = {}
for mod in dict.fromkeys(m.LAZY_MODELS.values()):
    before = set(m.MODELS._entries)
    importlib.import_module(mod)
    by_module[mod] = sorted(set(m.MODELS._entries) - before)
print(json.dumps({"after_lookup": after_lookup, "after_eager": after_eager, "eager": eager,
                  "by_module": by_module}))
"""


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_looking_up_a_model_does_not_import_torch():
    code = "import kagtools.core.model_registry as m; m.MODELS.names(); import sys; print('torch' in sys.modules)"
    assert _python(code) == "False"


def test_lazy_index_matches_what_modules_register():
    """Eager modules register no torch model and never import torch; each lazy module registers
    exactly the names the index gives it; every registered model is eager or indexed."""
    got = json.loads(_python(_SUBPROCESS))
    assert got["after_lookup"] is False and got["after_eager"] is False
    eager = got["eager"]
    assert not set(eager) & set(LAZY_MODELS), "an indexed (lazy) model is registered by an eager module"
    assert set(eager.values()) <= set(EAGER_MODULES)
    for module, names in got["by_module"].items():
        assert names == sorted(n for n, mod in LAZY_MODELS.items() if mod == module), module
    registered = {n for n in ALL_MODELS if not n.startswith("_")}
    assert registered == set(eager) | set(LAZY_MODELS)
    for name, cls in ALL_MODELS.items():
        assert cls.__module__ in EAGER_MODULES or LAZY_MODELS.get(name) == cls.__module__, name


def test_unknown_model_suggests_the_closest_name():
    with pytest.raises(KagtoolsError, match=r"unknown model 'lgbmm' \(did you mean 'lgbm'\?\)"):
        get_model_class("lgbmm")


def test_registration_refuses_a_model_without_known_tasks():
    models = Registry("model", check=model_registry._check_model)

    class NoTasks(BaseEstimator):
        pass

    class EmptyTasks(BaseEstimator):
        tasks = ()

    class BadTask(BaseEstimator):
        tasks = ("binary", "ranking")

    class Good(BaseEstimator):
        tasks = ("regression",)

    with pytest.raises(KagtoolsError, match="declares no tasks"):
        models.add("no_tasks", NoTasks)
    with pytest.raises(KagtoolsError, match="declares no tasks"):
        models.add("empty_tasks", EmptyTasks)
    with pytest.raises(KagtoolsError, match="'ranking' is not one of"):
        models.add("bad_task", BadTask)
    assert models.names() == []
    assert models.register("good")(Good) is Good and models.get("good") is Good
    with pytest.raises(KagtoolsError, match="registered twice"):
        models.add("good", BadTask)
    assert set(MODELS.names()).isdisjoint({"no_tasks", "empty_tasks", "bad_task", "good"})


def test_make_model_refuses_an_undeclared_task():
    with pytest.raises(KagtoolsError, match="'cf_biases' does not support binary"):
        make_model("cf_biases", task="binary", seed=0)
    with pytest.raises(KagtoolsError, match="'hgb' does not support multitarget"):
        make_model("hgb", task="multitarget", seed=0)


class _RandomStateOnly(BaseEstimator):
    tasks = ("binary",)

    def __init__(self, random_state: int | None = None, task: str = "binary"):
        self.random_state = random_state
        self.task = task


class _Unseeded(BaseEstimator):
    tasks = ("regression",)

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha


@pytest.fixture
def scratch_models(monkeypatch):
    """MODELS with throwaway entries that vanish after the test (MODELS is fully loaded first,
    so the restored dict holds every real model)."""
    MODELS.load_all()
    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))
    MODELS.add("_contract_random_state", _RandomStateOnly)
    MODELS.add("_contract_unseeded", _Unseeded)
    return MODELS


def test_seed_goes_to_seed_or_random_state(scratch_models):
    lgbm = make_model("lgbm", task="regression", seed=11)
    assert lgbm.get_params()["seed"] == 11 and lgbm.task == "regression"
    assert seed_params(lgbm, 5) == {"seed": 5}
    rs = make_model("_contract_random_state", task="binary", seed=7)
    assert rs.random_state == 7 and seed_params(rs, 5) == {"random_state": 5}
    plain = make_model("_contract_unseeded", {"alpha": 2.0}, task="regression", seed=7)
    assert plain.get_params() == {"alpha": 2.0} and seed_params(plain, 5) == {}
    assert "_contract_random_state" not in list_models()  # private names are not listed
    assert model_registry.fold_seed(lgbm, 3, repeat=1, fold=2) == {"seed": 1005}


def test_scratch_models_left_no_trace():
    assert "_contract_random_state" not in MODELS._entries
    # Other test modules register private probes ("_..."); every public model is covered here.
    assert {n for n in MODELS.load_all() if not n.startswith("_")} == set(ALL_MODELS)


# ================================================================== 3. metrics

Y_BIN = np.array([0, 1, 1, 0, 1, 0, 1, 1, 0, 0])
P_BIN = np.array([0.2, 0.7, 0.4, 0.1, 0.9, 0.6, 0.8, 0.55, 0.3, 0.45])
Y_MC = np.array([0, 1, 2, 2, 1, 0, 2, 1, 0, 2])
P_MC = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.3, 0.4, 0.3], [0.5, 0.4, 0.1],
                 [0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.1, 0.7, 0.2], [0.3, 0.3, 0.4], [0.25, 0.35, 0.4]])
Y_REG = np.array([1.0, 2.5, 3.0, 4.2, 0.5, 2.0, 5.0, 3.3])
P_REG = np.array([1.4, 2.0, 3.5, 4.0, 0.9, 2.6, 4.1, 3.0])
Y_MT = np.column_stack([Y_REG, Y_REG[::-1] * 2])
P_MT = np.column_stack([P_REG, P_REG[::-1] * 2 + 0.5])

LAB_BIN = (P_BIN >= 0.5).astype(int)  # thresholded here, not by kagtools
LAB_MC = P_MC.argmax(axis=1)
PERFECT_BIN = np.where(Y_BIN == 1, 0.9, 0.1)
PERFECT_MC = np.eye(3)[Y_MC] * 0.8 + 0.2 / 3


def _mapk_by_hand(y, scores, k):
    total = 0.0
    for label, row in zip(y, scores, strict=True):
        ranked = sorted(range(len(row)), key=lambda c: (-row[c], c))[:k]
        total += 1 / (ranked.index(label) + 1) if label in ranked else 0.0
    return total / len(y)


@dataclass(frozen=True)
class MetricCase:
    """Known inputs of one metric: the value expected from scikit-learn/scipy directly, and a
    perfect prediction that must score better than ``pred``."""

    needs: str
    y: np.ndarray
    pred: np.ndarray
    expected: float
    perfect: np.ndarray


#: One entry per registered metric; a metric registered without one fails ``test_every_metric_has_a_case``.
METRIC_CASES: dict[str, MetricCase] = {
    "accuracy": MetricCase("label", Y_BIN, P_BIN, skm.accuracy_score(Y_BIN, LAB_BIN), PERFECT_BIN),
    "balanced_accuracy": MetricCase("label", Y_MC, P_MC, skm.balanced_accuracy_score(Y_MC, LAB_MC), PERFECT_MC),
    "f1": MetricCase("label", Y_BIN, P_BIN, skm.f1_score(Y_BIN, LAB_BIN), PERFECT_BIN),
    "f1_binary": MetricCase("label", Y_BIN, P_BIN, skm.f1_score(Y_BIN, LAB_BIN, average="binary"), PERFECT_BIN),
    "f1_macro": MetricCase("label", Y_MC, P_MC, skm.f1_score(Y_MC, LAB_MC, average="macro"), PERFECT_MC),
    "qwk": MetricCase("label", Y_MC, P_MC, skm.cohen_kappa_score(Y_MC, LAB_MC, weights="quadratic"), PERFECT_MC),
    "roc_auc": MetricCase("proba", Y_BIN, P_BIN, skm.roc_auc_score(Y_BIN, P_BIN), PERFECT_BIN),
    "log_loss": MetricCase("proba", Y_MC, P_MC, skm.log_loss(Y_MC, P_MC), PERFECT_MC),
    "map@3": MetricCase("proba", Y_MC, P_MC, _mapk_by_hand(Y_MC, P_MC, 3), PERFECT_MC),
    "rmse": MetricCase("value", Y_REG, P_REG, skm.root_mean_squared_error(Y_REG, P_REG), Y_REG),
    "mcrmse": MetricCase("value", Y_MT, P_MT, np.mean([skm.root_mean_squared_error(Y_MT[:, j], P_MT[:, j])
                                                       for j in range(2)]), Y_MT),
    "rmsle": MetricCase("value", Y_REG, P_REG, skm.root_mean_squared_log_error(Y_REG, P_REG), Y_REG),
    "mae": MetricCase("value", Y_REG, P_REG, float(np.mean(np.abs(Y_REG - P_REG))), Y_REG),
    "r2": MetricCase("value", Y_REG, P_REG, 1 - np.sum((Y_REG - P_REG) ** 2) / np.sum((Y_REG - Y_REG.mean()) ** 2),
                     Y_REG),
    "pearson": MetricCase("value", Y_REG, P_REG, np.corrcoef(Y_REG, P_REG)[0, 1], Y_REG),
    "spearman": MetricCase("value", Y_REG, P_REG, stats.spearmanr(Y_REG, P_REG).statistic, Y_REG),
}


def test_every_metric_has_a_case():
    registered = set(METRICS.names())
    assert registered == set(metrics_module.list_metrics())
    assert not registered - set(METRIC_CASES), f"metrics without a METRIC_CASES entry: {registered - set(METRIC_CASES)}"
    assert not set(METRIC_CASES) - registered, "METRIC_CASES entries for unregistered metrics"


@pytest.mark.parametrize("name", METRICS.names())
def test_metric_contract(name):
    case = METRIC_CASES[name]
    metric = get_metric(name)
    assert isinstance(metric, Metric) and metric.name == name
    assert metric.needs in NEEDS and metric.needs == case.needs
    value = metric(case.y, case.pred)
    assert isinstance(value, float) and np.isfinite(value)
    assert value == pytest.approx(case.expected, rel=1e-9, abs=1e-12)
    # The direction: a perfect prediction beats a worse one.
    best = metric(case.y, case.perfect)
    assert best != pytest.approx(value), "the case cannot tell the direction"
    assert metric.better(best, value) and not metric.better(value, best)
    assert metric.sign() == (1.0 if metric.greater_is_better else -1.0)
    assert metric.sign() * best > metric.sign() * value


@pytest.mark.parametrize("k", [1, 3])
def test_map_at_k(k):
    metric = get_metric(f"map@{k}")
    assert metric.greater_is_better and metric.needs == "proba"
    assert metric(Y_MC, P_MC) == pytest.approx(_mapk_by_hand(Y_MC, P_MC, k))
    if k == 1:  # MAP@1 is top-1 accuracy
        assert metric(Y_MC, P_MC) == pytest.approx(skm.top_k_accuracy_score(Y_MC, P_MC, k=1))
    assert metric(Y_MC, PERFECT_MC) == 1.0
    assert metric.better(metric(Y_MC, PERFECT_MC), metric(Y_MC, P_MC))


def test_unknown_metric_suggests_the_closest_name():
    with pytest.raises(KagtoolsError, match=r"unknown metric 'acuracy' \(did you mean 'accuracy'\?\).*rmse"):
        get_metric("acuracy")


def test_metric_registration_refuses_unknown_needs():
    metrics = Registry("metric", check=metrics_module._check_metric)
    with pytest.raises(KagtoolsError, match="needs 'labels' is not one of"):
        metrics.add("bad", Metric("bad", skm.accuracy_score, True, "labels"))
    assert metrics.names() == []


# ================================================================== 4. blenders

BLEND_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse", "multitarget": "mcrmse"}
#: (blender, task) pairs a blender refuses, with the reason: LightGBM fits one target.
BLEND_UNSUPPORTED = {("stack_lgbm", "multitarget"), ("stack_lgbm_features", "multitarget")}


def level1(task: str, m: int = 3, n: int = 160, seed: int = 0):
    """``m`` runs' level-1 predictions ``P`` (m x n x k) of varying quality, ``y`` and features ``X``."""
    rng = np.random.default_rng(seed)
    noise = np.array([0.5, 1.0, 2.0, 3.0, 4.0])[:m]
    X = pd.DataFrame({"f0": rng.normal(size=n), "f1": rng.normal(size=n)})
    if task == "binary":
        y = rng.integers(0, 2, n)
        P = 1 / (1 + np.exp(-((2 * y - 1)[None] + noise[:, None] * rng.normal(size=(m, n)))))[..., None]
    elif task == "multiclass":
        y = rng.integers(0, N_CLASSES, n)
        z = 2 * np.eye(N_CLASSES)[y][None] + noise[:, None, None] * rng.normal(size=(m, n, N_CLASSES))
        P = np.exp(z) / np.exp(z).sum(axis=2, keepdims=True)
    elif task == "regression":
        y = rng.uniform(1, 5, n)
        P = np.clip(y[None] + noise[:, None] * 0.3 * rng.normal(size=(m, n)), 0.1, None)[..., None]
    else:
        y = rng.uniform(1, 5, (n, N_TARGETS))
        P = np.clip(y[None] + noise[:, None, None] * 0.3 * rng.normal(size=(m, n, N_TARGETS)), 0.1, None)
    return P, y, X


def _blend_cases() -> list:
    return [pytest.param(name, task, id=f"{name}-{task}") for name in BLENDERS.names() for task in TASKS
            if task != Task.MULTILABEL]


@pytest.mark.parametrize(("method", "task"), _blend_cases())
def test_blender_contract(method, task):
    P, y, X = level1(task)
    blender = make_blender(method, task=task, metric=BLEND_METRIC[task], seed=0)
    assert blender.task == task and clone(blender).get_params() == blender.get_params()
    if (method, task) in BLEND_UNSUPPORTED:
        with pytest.raises(KagtoolsError, match=task):
            blender.fit(P, y, X)
        return
    assert blender.fit(P, y, X) is blender
    P_new, _, X_new = level1(task, n=40, seed=1)
    out = np.asarray(blender.predict(P_new, X_new))
    k = P.shape[2]
    assert out.shape == (40, k) and np.isfinite(out).all()
    if task in ("binary", "multiclass"):
        assert ((out >= 0) & (out <= 1)).all()
    if task == "multiclass":
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    w = np.asarray(blender.weights_)
    assert w.shape == (P.shape[0],) and (w >= 0).all() and w.sum() == pytest.approx(1.0)
    # Same seed, same blend.
    twin = make_blender(method, task=task, metric=BLEND_METRIC[task], seed=0).fit(P, y, X)
    np.testing.assert_array_equal(twin.predict(P_new, X_new), out)


def test_feature_stacker_needs_the_features():
    P, y, _ = level1("binary")
    with pytest.raises(KagtoolsError, match="needs the original features"):
        make_blender("stack_lgbm_features", task="binary", metric="roc_auc").fit(P, y)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression", "multitarget"])
def test_mean_blender_is_the_plain_mean(task):
    P, y, _ = level1(task)
    blender = make_blender("mean", task=task, metric=BLEND_METRIC[task]).fit(P, y)
    np.testing.assert_allclose(blender.predict(P), P.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(blender.weights_, 1 / P.shape[0])


# ================================================================== 5. splitters

N_SPLITS, N_REPEATS, N_ROWS, GROUP_SIZE = 4, 2, 120, 2


def _split_frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(N_ROWS // GROUP_SIZE), GROUP_SIZE)
    y = (rng.random(N_ROWS // GROUP_SIZE) < 0.3).astype(int)[group]  # a group shares its label
    return pd.DataFrame({"id": np.arange(N_ROWS) + 1000, "y": y, "g": group, "t": rng.permutation(N_ROWS)})


def _folds(name: str, seed: int = 7) -> pd.DataFrame:
    splitter = SPLITTERS.get(name)
    cv = {"splitter": name, "n_splits": N_SPLITS, "n_repeats": N_REPEATS, "seed": seed}
    if splitter.wants_y:
        cv["stratify"] = "y"
    if splitter.wants_groups:
        cv["group"] = "g"
    if name == "TimeSeriesSplit":
        cv["time"] = "t"
    spec = parse_spec({"slug": "contract", "task": "binary", "id_col": "id", "target_cols": "y",
                       "metric": {"name": "accuracy"}, "cv": cv})
    return make_folds(_split_frame(), spec)


@pytest.mark.parametrize("name", SPLITTERS.names())
def test_splitter_contract(name):
    splitter = SPLITTERS.get(name)
    train = _split_frame()
    table = _folds(name)
    assert list(table.columns) == ["id", "repeat", "fold"]
    assert len(table) == N_ROWS * N_REPEATS
    for r in range(N_REPEATS):
        rep = table[table["repeat"] == r].reset_index(drop=True)
        assert rep["id"].tolist() == train["id"].tolist()
        fold = rep["fold"].to_numpy()
        if name == "TimeSeriesSplit":
            # The earliest block is never validated; every later row exactly once, in time order.
            first = N_ROWS - N_SPLITS * (N_ROWS // (N_SPLITS + 1))
            by_time = fold[np.argsort(train["t"].to_numpy())]
            assert (by_time[:first] == -1).all() and (by_time[first:] >= 0).all()
            assert (np.diff(by_time) >= 0).all()
        else:
            assert set(fold) == set(range(N_SPLITS)), "every row validated exactly once per repeat"
        if splitter.wants_groups:
            assert (train.assign(fold=fold).groupby("g")["fold"].nunique() == 1).all(), "a group is split"
        if splitter.wants_y:
            # Each fold's positive share within one unit (a row, or a group) of the overall share.
            share = train["y"].mean()
            tolerance = (1 + (GROUP_SIZE if splitter.wants_groups else 1)) / (N_ROWS / N_SPLITS)
            for f in range(N_SPLITS):
                assert abs(train["y"][fold == f].mean() - share) <= tolerance, (name, f)
    pd.testing.assert_frame_equal(_folds(name), table)  # same seed, same folds
    if name != "TimeSeriesSplit":  # seeded splitters: another seed moves rows
        assert not _folds(name, seed=8)["fold"].equals(table["fold"])


def test_splitter_without_its_column_is_a_clear_error():
    for name in SPLITTERS.names():
        splitter = SPLITTERS.get(name)
        if not (splitter.wants_y or splitter.wants_groups):
            continue
        spec = parse_spec({"slug": "c", "task": "binary", "id_col": "id", "target_cols": "y",
                           "metric": "accuracy", "cv": {"splitter": name}})
        with pytest.raises(KagtoolsError, match=f"cv.splitter {name} needs"):
            make_folds(_split_frame(), spec)
    with pytest.raises(KagtoolsError, match=r"did you mean 'KFold'"):
        SPLITTERS.get("KFolds")
