"""U.S. Patent Phrase to Phrase Matching: a similarity-features booster and a cross-encoder.

Each row gives the model its anchor, target and the official title of its CPC context (from
``cpc_context_titles.csv``): the cross-encoder reads ``anchor [SEP] target [SEP] title``; the
classical model reads similarity features of the phrase pair (TF-IDF cosines, token overlap,
edit distances, a frozen MiniLM cosine), the same measures relative to the other targets of
the anchor (annotators scored an anchor's targets side by side), and the context as a
category. No feature reads the score, so all are computed once on train and test together.

Folds are grouped by anchor (see the spec): every test anchor is in train, so a random split
would score the models on anchors they were trained on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kagtools.core.data import CompetitionData, read_csv, require_columns
from kagtools.core.engine import TrainingSet
from kagtools.core.spec import CompetitionSpec
from kagtools.errors import KagtoolsError
from kagtools.features.phrases import sentence_embeddings, similarity_features

__all__ = ["features", "context_titles", "anchor_overlap", "eda_notes", "PROFILES", "MODELS", "default_profile"]

TEXT_COLS = ("anchor", "target", "title")
# Measures made relative to the anchor's other targets (deviation from their mean, rank).
RELATIVE = ("emb_cos", "tfidf_char", "token_set", "lev")

_LGBM = {"n_estimators": 300, "learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 40,
         "subsample": 0.8, "colsample_bytree": 0.7, "reg_lambda": 1.0}

# The cross-encoder reads an anchor with many of its targets at once (hf_group_cross_encoder):
# ~4x fewer tokens per row than a pair cross-encoder, so a CPU affords several epochs over
# every row. Measured on fold 0 (all training rows, MiniLM): pair cross-encoder 1 epoch 0.708;
# group cross-encoder 6 epochs 0.738 (lr 2e-4; 1e-4: 0.733, 4e-4: 0.726), no dropout 0.741,
# and the mean logit over 8 seeded target orders at prediction (tta) 0.750. Five folds:
# BENCHMARKS.md. The variants tried and dropped, with their scores: docs/patent.md.
_GROUP = {"epochs": 6, "batch_size": 8, "lr": 2e-4, "max_items": 24, "dropout": 0.0, "backbone_dropout": 0.0,
          "tta": 8}

PROFILES: dict[str, dict[str, tuple[str, dict]]] = {
    # A few trees and one cross-encoder epoch on a slice: checks the flow, not the score.
    "smoke": {
        "similarity_lgbm": ("similarity_lgbm", {**_LGBM, "n_estimators": 50}),
        "cross_encoder": ("hf_group_cross_encoder", {**_GROUP, "epochs": 1, "max_items": 8, "tta": 2}),
    },
    # What a CPU can afford: MiniLM, 6 epochs over every training row (~10 min a fold on 2 cores).
    "cpu": {
        "similarity_lgbm": ("similarity_lgbm", _LGBM),
        "cross_encoder": ("hf_group_cross_encoder", _GROUP),
    },
    # The score on a GPU: the group cross-encoder for longer, and the pair cross-encoder.
    "gpu": {
        "similarity_lgbm": ("similarity_lgbm", _LGBM),
        "cross_encoder": ("hf_group_cross_encoder", {**_GROUP, "epochs": 10}),
        "pair_cross_encoder": ("hf_cross_encoder", {"epochs": 4, "batch_size": 64, "lr": 5e-5}),
    },
    # A GPU with the hub (or the model in a local folder): the course's deberta-v3-small.
    "gpu_deberta": {
        "similarity_lgbm": ("similarity_lgbm", _LGBM),
        "cross_encoder": ("hf_group_cross_encoder", {**_GROUP, "model_name": "microsoft/deberta-v3-small",
                                                     "epochs": 8, "lr": 5e-5, "layer_decay": 0.85}),
        "pair_cross_encoder": ("hf_cross_encoder", {"model_name": "microsoft/deberta-v3-small", "epochs": 4,
                                                    "batch_size": 32, "lr": 3e-5, "layer_decay": 0.85}),
    },
}
MODELS = PROFILES["cpu"]


def default_profile() -> str:
    """``gpu`` where CUDA is available, else ``cpu``."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def context_titles(data: CompetitionData, spec: CompetitionSpec) -> pd.Series:
    """CPC code -> official title, from the spec's ``context_titles`` file."""
    path = data.data_dir / spec.file("context_titles")
    table = read_csv(path)
    require_columns(table, ["code", "title"], str(path))
    return table.set_index("code")["title"].astype(str)


def _frame(rows: pd.DataFrame, titles: pd.Series, where: str) -> pd.DataFrame:
    title = rows["context"].map(titles)
    if title.isna().any():
        code = rows["context"][title.isna()].iloc[0]
        raise KagtoolsError(f"{where}: context {code!r} has no title in the context_titles file")
    return pd.DataFrame({"anchor": rows["anchor"].astype(str), "target": rows["target"].astype(str),
                         "context": rows["context"].astype(str), "title": title.astype(str)})


def features(data: CompetitionData, spec: CompetitionSpec) -> TrainingSet:
    """Text columns for the cross-encoder, similarity features for the booster, one frame."""
    titles = context_titles(data, spec)
    train = data.train.reset_index(drop=True)
    test = data.test.reset_index(drop=True)
    full = pd.concat([_frame(train, titles, "train.csv"), _frame(test, titles, "test.csv")], ignore_index=True)
    phrases = pd.Index(pd.concat([full["anchor"], full["target"]]).unique())
    emb = sentence_embeddings(list(phrases))
    pos_a, pos_b = phrases.get_indexer(full["anchor"]), phrases.get_indexer(full["target"])
    sims = similarity_features(full["anchor"], full["target"], embeddings=(emb[pos_a], emb[pos_b]))
    # How close the target is to the context's own title (a phrase can match only in context).
    title_index = pd.Index(full["title"].unique())
    title_emb = sentence_embeddings(list(title_index), max_length=64)[title_index.get_indexer(full["title"])]
    sims["emb_cos_title"] = np.einsum("ij,ij->i", emb[pos_b], title_emb)
    group = full["anchor"]
    for col in RELATIVE:
        by = sims[col].groupby(group)
        sims[f"{col}_dev"] = sims[col] - by.transform("mean")
        sims[f"{col}_rank"] = by.rank(pct=True)
    sims["anchor_rows"] = group.map(group.value_counts()).astype(float)
    sims["target_rows"] = full["target"].map(full["target"].value_counts()).astype(float)
    X = pd.concat([full, sims], axis=1)
    X["context"] = X["context"].astype("category")
    X["section"] = X["context"].astype(str).str[0].astype("category")
    n = len(train)
    return TrainingSet(
        X=X.iloc[:n].reset_index(drop=True), y=train[spec.target], ids=train[spec.id_col],
        X_test=X.iloc[n:].reset_index(drop=True), test_ids=test[spec.id_col], name="patent-v1",
    )


def anchor_overlap(data: CompetitionData) -> dict[str, float]:
    """Evidence for grouping folds by anchor: how many test anchors and rows are seen in train."""
    train_anchors = set(data.train["anchor"])
    test = data.test
    return {
        "train_anchors": float(data.train["anchor"].nunique()),
        "rows_per_anchor": float(len(data.train) / data.train["anchor"].nunique()),
        "test_anchors_in_train": float(test["anchor"].drop_duplicates().isin(train_anchors).mean()),
        "test_rows_with_train_anchor": float(test["anchor"].isin(train_anchors).mean()),
    }


def eda_notes(data: CompetitionData, spec: CompetitionSpec) -> list[str]:
    """Lines for the EDA report: why folds are grouped by anchor, and scores by CPC section."""
    o = anchor_overlap(data)
    train = data.train
    lines = [
        f"anchors: {o['train_anchors']:.0f} in train, {o['rows_per_anchor']:.0f} rows each; "
        f"{o['test_anchors_in_train']:.0%} of test anchors (and {o['test_rows_with_train_anchor']:.0%} of test rows) "
        f"are in train: a random split validates on trained anchors, so folds are grouped by anchor",
    ]
    by = train.groupby(train["context"].str[0])[spec.target]
    table = pd.DataFrame({"rows": by.size(), "mean": by.mean(), "exact (1.0)": by.apply(lambda s: (s == 1).mean())})
    lines.append("score by CPC section: " + "; ".join(
        f"{sec} n={int(r['rows'])} mean={r['mean']:.3f} exact={r['exact (1.0)']:.1%}" for sec, r in table.iterrows()))
    return lines
