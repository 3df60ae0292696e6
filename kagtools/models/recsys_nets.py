"""Collaborative filtering in torch: ``cf_dot`` (dot product with biases) and ``cf_neural``
(embeddings through an MLP), on the shared trainer. Registered lazily (see
:data:`kagtools.core.model_registry.MODELS`): importing it imports torch."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from kagtools.dl.trainer import Learner, get_device, seed_everything
from kagtools.models import register_model
from kagtools.models.recsys import CFModel

__all__ = ["DotProductBias", "EmbeddingMLP", "DotProduct", "NeuralCF"]


class _TorchCF(CFModel):
    """Base for the torch models: index 0 of every embedding is "unknown" (zeros, never trained).

    The network sees ``(user, item, session)`` codes shifted by one, so an unseen user or item
    contributes a zero vector and a zero bias: its prediction falls back to the known biases.
    """

    @property
    def parallel_folds(self) -> bool:
        """Folds in parallel processes on the CPU (each trains on one thread); one at a time on a GPU."""
        return get_device(self.device).type == "cpu"

    def _network(self, n_users: int, n_items: int, n_sessions: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def _inputs(self, u, i, s) -> torch.Tensor:
        s = np.full(len(u), -1) if s is None else s
        return torch.as_tensor(np.stack([u, i, s], axis=1) + 1, dtype=torch.long)

    def _fit(self, u, i, s, y):
        seed_everything(self.seed)
        n_s = len(self.sessions_) if s is not None else 0
        net = self._network(len(self.users_), len(self.items_), n_s)
        with torch.no_grad():  # start at the mean rating: the offset is the sigmoid's inverse there
            lo, hi = self.y_range
            p = np.clip((self.mean_ - lo) / (hi - lo), 0.05, 0.95)
            net.biases.offset.fill_(float(np.log(p / (1 - p))))
        data = TensorDataset(self._inputs(u, i, s), torch.tensor(y, dtype=torch.float32))
        # Whole batches per index list: far faster than collating single rows.
        sampler = BatchSampler(RandomSampler(data, generator=torch.Generator().manual_seed(self.seed)),
                               self.batch_size, drop_last=False)
        loader = DataLoader(data, sampler=sampler, batch_size=None)
        learner = Learner(net, torch.nn.functional.mse_loss, device=self.device, progress=False)
        threads = torch.get_num_threads()
        if learner.device.type == "cpu":
            # Batches of a few hundred embedding lookups are too small to split: extra threads only spin.
            torch.set_num_threads(1)
        try:
            self.history_ = learner.fit_one_cycle(loader, self.epochs, self.lr_max, wd=self.wd)
        finally:
            torch.set_num_threads(threads)
        self.net_ = net.cpu().eval()

    def _predict(self, u, i, s) -> np.ndarray:
        x = self._inputs(u, i, s)
        with torch.inference_mode():
            out = [self.net_(chunk) for chunk in torch.split(x, 65536)]
        return torch.cat(out).double().numpy() if out else np.zeros(0)

    @property
    def item_embeddings_(self) -> tuple[np.ndarray, np.ndarray]:
        """``(item ids, item factors)`` for similarity search and plots."""
        return self.items_.index.to_numpy(), self.net_.items.weight.detach().numpy()[1:]


def _sigmoid_range(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return torch.sigmoid(x) * (hi - lo) + lo


def _embedding(n: int, dim: int, scale: float = 0.01) -> nn.Embedding:
    """``n`` known ids plus row 0 for unknown ones (zeros, no gradient)."""
    emb = nn.Embedding(n + 1, dim, padding_idx=0)
    nn.init.normal_(emb.weight, 0, scale)
    with torch.no_grad():
        emb.weight[0].zero_()
    return emb


class _BiasTerms(nn.Module):
    """User, item and session biases plus a global offset (the logit of the mean rating)."""

    def __init__(self, n_users: int, n_items: int, n_sessions: int):
        super().__init__()
        self.user_bias, self.item_bias = _embedding(n_users, 1, 0.0), _embedding(n_items, 1, 0.0)
        self.session_bias = _embedding(n_sessions, 1, 0.0)
        self.offset = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.user_bias(x[:, 0])[:, 0] + self.item_bias(x[:, 1])[:, 0]
                + self.session_bias(x[:, 2])[:, 0] + self.offset)


class DotProductBias(nn.Module):
    """fastai's collab model: ``sigmoid_range(user . item + biases)``."""

    def __init__(self, n_users: int, n_items: int, n_sessions: int, n_factors: int, y_range: tuple[float, float]):
        super().__init__()
        self.users, self.items = _embedding(n_users, n_factors), _embedding(n_items, n_factors)
        self.biases = _BiasTerms(n_users, n_items, n_sessions)
        self.y_range = y_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dot = (self.users(x[:, 0]) * self.items(x[:, 1])).sum(1)
        return _sigmoid_range(dot + self.biases(x), *self.y_range)


class EmbeddingMLP(nn.Module):
    """fastai's EmbeddingNN: concatenated user and item embeddings through an MLP, plus biases."""

    def __init__(self, n_users: int, n_items: int, n_sessions: int, n_factors: int, hidden: tuple[int, ...],
                 dropout: float, y_range: tuple[float, float]):
        super().__init__()
        self.users, self.items = _embedding(n_users, n_factors), _embedding(n_items, n_factors)
        self.biases = _BiasTerms(n_users, n_items, n_sessions)
        layers, width = [], 2 * n_factors
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.mlp = nn.Sequential(*layers, nn.Linear(width, 1))
        self.y_range = y_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.mlp(torch.cat([self.users(x[:, 0]), self.items(x[:, 1])], dim=1))[:, 0]
        return _sigmoid_range(z + self.biases(x), *self.y_range)


@register_model("cf_dot")
class DotProduct(_TorchCF):
    """Torch dot-product collaborative filtering with biases, a sigmoid onto ``y_range``.

    Parameters
    ----------
    n_factors : int
        Embedding size.
    epochs, lr_max, wd, batch_size : training: one-cycle epochs, peak rate, AdamW weight decay.
    y_range : tuple of float
        The sigmoid's range; a little wider than the stars so 0.5 and 5 are reachable.
    device : str or None
        ``None``: CUDA when available, else the CPU.
    """

    def __init__(self, *, user_col: str = "userId", item_col: str = "movieId", session_col: str | None = None,
                 n_factors: int = 50, epochs: int = 5, lr_max: float = 5e-3, wd: float = 0.1,
                 batch_size: int = 512, y_range: tuple[float, float] = (0.0, 5.5), device: str | None = None,
                 seed: int = 0, task: str = "regression"):
        self.user_col = user_col
        self.item_col = item_col
        self.session_col = session_col
        self.n_factors = n_factors
        self.epochs = epochs
        self.lr_max = lr_max
        self.wd = wd
        self.batch_size = batch_size
        self.y_range = y_range
        self.device = device
        self.seed = seed
        self.task = task

    def _network(self, n_users, n_items, n_sessions):
        return DotProductBias(n_users, n_items, n_sessions, self.n_factors, tuple(self.y_range))


@register_model("cf_neural")
class NeuralCF(_TorchCF):
    """Neural collaborative filtering: concatenated user and item embeddings through an MLP.

    Parameters as :class:`DotProduct`, plus ``hidden`` (MLP widths) and ``dropout``.
    """

    def __init__(self, *, user_col: str = "userId", item_col: str = "movieId", session_col: str | None = None,
                 n_factors: int = 32, hidden: tuple[int, ...] = (64,), dropout: float = 0.2, epochs: int = 5,
                 lr_max: float = 3e-3, wd: float = 0.1, batch_size: int = 512,
                 y_range: tuple[float, float] = (0.0, 5.5), device: str | None = None, seed: int = 0,
                 task: str = "regression"):
        self.user_col = user_col
        self.item_col = item_col
        self.session_col = session_col
        self.n_factors = n_factors
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.lr_max = lr_max
        self.wd = wd
        self.batch_size = batch_size
        self.y_range = y_range
        self.device = device
        self.seed = seed
        self.task = task

    def _network(self, n_users, n_items, n_sessions):
        return EmbeddingMLP(n_users, n_items, n_sessions, self.n_factors, tuple(self.hidden), self.dropout,
                            tuple(self.y_range))
