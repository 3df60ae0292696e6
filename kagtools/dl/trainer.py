"""A lean Learner over plain torch: one-cycle training, lr_find, fine_tune, AMP, callbacks.

Usage::

    from kagtools.dl.trainer import Learner, EarlyStopping, BestCheckpoint, seed_everything
    seed_everything(42)
    learner = Learner(model, torch.nn.CrossEntropyLoss(), amp=True, grad_accum=2,
                      metric_fn=lambda out, y: (out.argmax(1) == y).mean())
    found = learner.lr_find(train_dl)                      # weights restored afterwards
    found.plot("reports/<slug>/lr_find.png")
    history = learner.fit_one_cycle(train_dl, 5, found.suggestion, valid_loader=valid_dl)
    probs = softmax(learner.predict(test_dl))              # outputs in loader order, np.ndarray

Batches are ``(inputs, targets)``; inputs may be a tensor (``model(x)``), a tuple of tensors
(``model(*x)``) or a mapping such as a tokenizer's output (``model(**x)``); everything is moved
to the device. ``loss_fn(outputs, targets)`` gets the model's raw output.

Trust in CV: the CV loop passes the *scored* fold as ``X_valid``. Early stopping or best-epoch
selection on that fold would overstate CV, so the adapters train a fixed number of one-cycle
epochs by default and, when early stopping is asked for, monitor an inner holdout carved from
the training fold (see :func:`inner_holdout`). ``valid_loader`` here is only ever reported on,
unless a callback (``EarlyStopping``, ``BestCheckpoint``) is given that monitors it.
"""

from __future__ import annotations

import copy
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kagtools.core.folds import inner_holdout

__all__ = [
    "Learner", "LRFinderResult", "TrainContext", "Callback", "EarlyStopping", "BestCheckpoint", "TensorBoardLogger",
    "StopTraining", "get_device", "seed_everything", "to_device", "set_trainable", "freeze_body",
    "inner_holdout",
]


# --------------------------------------------------------------------------- helpers


def get_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a :class:`torch.device`; ``None`` picks CUDA when present, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def to_device(obj: Any, device: torch.device) -> Any:
    """Move tensors inside ``obj`` (a tensor, tuple/list or mapping, nested) to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def _call(model: nn.Module, inputs: Any) -> Any:
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _split_batch(batch: Any) -> tuple[Any, Any]:
    # (inputs, targets) pairs; a bare tensor or mapping is inputs only (prediction loaders).
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    return batch, None


def set_trainable(module: nn.Module, trainable: bool) -> None:
    """Set ``requires_grad`` of every parameter of ``module``."""
    for p in module.parameters():
        p.requires_grad_(trainable)


def freeze_body(model: nn.Module, head: nn.Module, *, train_bn: bool = True) -> None:
    """Freeze everything but ``head``; with ``train_bn`` normalisation layers stay trainable (as
    fastai does), so a pretrained body adapts its statistics while its weights stay fixed."""
    set_trainable(model, False)
    set_trainable(head, True)
    if train_bn:
        for m in model.modules():
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)):
                set_trainable(m, True)


# --------------------------------------------------------------------------- callbacks


class StopTraining(Exception):
    """Raised by a callback to end ``fit_one_cycle`` early (the epoch's history is kept)."""


@dataclass(frozen=True)
class TrainContext:
    """What a callback sees: a read-only snapshot of the training state."""

    learner: Learner
    epoch: int
    n_epochs: int
    iteration: int
    lr: float
    train_loss: float | None = None
    valid_loss: float | None = None
    metric: float | None = None
    history: tuple[dict[str, Any], ...] = ()


class Callback:
    """Base class: override any hook; callbacks run in increasing ``order``."""

    order: int = 0

    def on_train_begin(self, ctx: TrainContext) -> None: ...
    def on_batch_end(self, ctx: TrainContext) -> None: ...
    def on_epoch_end(self, ctx: TrainContext) -> None: ...
    def on_train_end(self, ctx: TrainContext) -> None: ...


class EarlyStopping(Callback):
    """Stop when ``monitor`` ("valid_loss" or "metric") has not improved for ``patience`` epochs.

    Monitor an inner holdout (see :func:`inner_holdout`), never the fold that is scored.
    """

    order = 20

    def __init__(self, *, monitor: str = "valid_loss", mode: str = "min", patience: int = 3,
                 min_delta: float = 0.0):
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta

    def on_train_begin(self, ctx: TrainContext) -> None:
        self.best, self.wait = math.inf if self.mode == "min" else -math.inf, 0

    def on_epoch_end(self, ctx: TrainContext) -> None:
        value = getattr(ctx, self.monitor)
        if value is None:
            return
        if (value < self.best - self.min_delta) if self.mode == "min" else (value > self.best + self.min_delta):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            raise StopTraining(f"{self.monitor} did not improve for {self.patience} epochs")


class BestCheckpoint(Callback):
    """Keep the best epoch's weights in memory (on the CPU) and load them when training ends."""

    order = 10

    def __init__(self, *, monitor: str = "valid_loss", mode: str = "min"):
        self.monitor, self.mode = monitor, mode

    def on_train_begin(self, ctx: TrainContext) -> None:
        self.best, self.best_epoch, self.state = math.inf if self.mode == "min" else -math.inf, None, None

    def on_epoch_end(self, ctx: TrainContext) -> None:
        value = getattr(ctx, self.monitor)
        if value is None:
            return
        if (value < self.best) if self.mode == "min" else (value > self.best):
            self.best, self.best_epoch = value, ctx.epoch
            self.state = {k: v.detach().to("cpu", copy=True) for k, v in ctx.learner.model.state_dict().items()}

    def on_train_end(self, ctx: TrainContext) -> None:
        if self.state is not None:
            ctx.learner.model.load_state_dict(self.state)


class TensorBoardLogger(Callback):
    """Write the training curves of one fold to TensorBoard event files in ``log_dir``.

    Per step (batch): ``step/train_loss`` and ``step/lr``; per epoch: ``epoch/train_loss``,
    ``epoch/valid_loss``, ``epoch/metric`` and ``epoch/lr``. Steps and epochs continue across
    the trainings of one learner (``fine_tune``'s frozen and unfrozen phases). A learner adds
    one by itself when the command turned TensorBoard logging on
    (:func:`kagtools.core.tracking.tensorboard_logdir`).
    """

    order = 90

    def __init__(self, log_dir: str | Path):
        self.log_dir = Path(log_dir)
        self.step = self.epoch = 0
        self._writer = None

    def on_train_begin(self, ctx: TrainContext) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(str(self.log_dir))

    def on_batch_end(self, ctx: TrainContext) -> None:
        self.step += 1
        if ctx.train_loss is not None:
            self._writer.add_scalar("step/train_loss", ctx.train_loss, self.step)
        self._writer.add_scalar("step/lr", ctx.lr, self.step)

    def on_epoch_end(self, ctx: TrainContext) -> None:
        self.epoch += 1
        for name in ("train_loss", "valid_loss", "metric"):
            value = getattr(ctx, name)
            if value is not None:
                self._writer.add_scalar(f"epoch/{name}", value, self.epoch)
        self._writer.add_scalar("epoch/lr", ctx.lr, self.epoch)

    def on_train_end(self, ctx: TrainContext) -> None:
        if self._writer is not None:  # closed after each training: no writer thread outlives it
            self._writer.close()
            self._writer = None


# --------------------------------------------------------------------------- lr_find


@dataclass
class LRFinderResult:
    """An exponential learning-rate sweep: rates, smoothed losses and a suggested rate.

    ``suggestion`` is the middle of the loss "valley" (the span of the longest decreasing run of
    the smoothed loss); ``lr_min`` is a tenth of the rate at the minimum loss (fastai's older
    rule), kept for comparison.
    """

    lrs: list[float]
    losses: list[float]
    suggestion: float
    lr_min: float = float("nan")

    def plot(self, path: str | Path) -> Path:
        """Write loss against learning rate (log scale) as a PNG; returns the path."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self.lrs, self.losses)
        ax.set_xscale("log")
        ax.axvline(self.suggestion, color="tab:red", ls="--", label=f"suggestion {self.suggestion:.2e}")
        at = int(np.argmin(np.abs(np.log(np.asarray(self.lrs)) - math.log(self.suggestion))))
        ax.plot([self.lrs[at]], [self.losses[at]], "o", color="tab:red")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss (smoothed)")
        ax.legend()
        fig.tight_layout()
        tmp = path.with_name(path.name + ".tmp.png")
        fig.savefig(tmp, dpi=100)
        plt.close(fig)
        os.replace(tmp, path)
        return path


def _suggest(lrs: np.ndarray, losses: np.ndarray) -> tuple[float, float]:
    """(valley rate, a tenth of the rate at the minimum loss); see :class:`LRFinderResult`.

    The longest decreasing subsequence is robust to the noisy flat start of the sweep.
    """
    n = len(losses)
    lr_min = float(lrs[int(np.argmin(losses))]) / 10
    length, prev = np.ones(n, dtype=int), np.full(n, -1)
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and length[j] + 1 > length[i]:
                length[i], prev[i] = length[j] + 1, j
    start = end = int(np.argmax(length))
    while prev[start] >= 0:
        start = int(prev[start])
    return float(lrs[(start + end) // 2]), lr_min


# --------------------------------------------------------------------------- learner


class Learner:
    """Train, sweep and predict a torch model over ``(inputs, targets)`` data loaders.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(outputs, targets) -> scalar tensor``; soft (mixup) targets are the loss's concern
        (``nn.CrossEntropyLoss`` accepts class probabilities).
    device : str or torch.device, optional
        Defaults to CUDA when available, else the CPU.
    amp : bool
        Mixed precision on CUDA (bf16 when supported, else fp16 with a GradScaler).
    cpu_amp : bool
        bf16 autocast on a CPU with native bf16 instructions (AVX512-BF16 or AMX) too; weights stay
        float32. Off by default: measured only on the transformers cross-encoders (1.2-1.5x faster).
    grad_accum : int
        Optimiser step every ``grad_accum`` batches (the loss is divided accordingly).
    metric_fn : callable, optional
        ``metric_fn(outputs, targets) -> float`` on the validation outputs (NumPy arrays).
    progress : bool
        A tqdm bar per epoch with the running loss (off with ``KAGTOOLS_QUIET=1``).
    batch_tfm : callable, optional
        ``batch_tfm(inputs, targets) -> (inputs, targets)`` on training batches, on the device
        (timm's ``Mixup`` fits here).
    clip_grad : float, optional
        Clip the gradients' total norm to this before each optimiser step (after unscaling fp16).
    bn_eval : bool
        Keep every batch norm in eval mode while training (the pretrained running statistics):
        for tiny datasets and small batches, whose batch statistics would wreck them.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable, *, device: str | torch.device | None = None,
                 amp: bool = True, grad_accum: int = 1, metric_fn: Callable | None = None,
                 callbacks: Sequence[Callback] = (), progress: bool = True,
                 batch_tfm: Callable | None = None, clip_grad: float | None = None, bn_eval: bool = False,
                 cpu_amp: bool = False):
        if grad_accum < 1:
            raise ValueError("grad_accum must be >= 1")
        self.device = get_device(device)
        self.model = model.to(self.device)
        self.loss_fn = loss_fn
        self.grad_accum = grad_accum
        self.metric_fn = metric_fn
        self.callbacks = list(callbacks)
        self.progress = progress
        self.batch_tfm = batch_tfm
        self.clip_grad = clip_grad
        self.bn_eval = bn_eval
        self.amp_dtype = self._amp_dtype(amp, cpu_amp)
        self.history: list[dict[str, Any]] = []
        self.lr_trace: list[float] = []  # the first group's rate at every optimiser step (last fit)
        self._tb: TensorBoardLogger | None = None

    def _amp_dtype(self, amp: bool, cpu_amp: bool) -> torch.dtype | None:
        if not amp:
            return None
        if self.device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if self.device.type == "cpu" and cpu_amp and torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return torch.bfloat16
        return None

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

    # ------------------------------------------------------------------ training

    def _optimizer(self, lr_max: float, wd: float, param_groups) -> torch.optim.Optimizer:
        if param_groups is None:
            param_groups = [(self.model.parameters(), lr_max)]
        groups = []
        for params, lr in param_groups:
            params = [p for p in params if p.requires_grad]
            if params:
                groups.append({"params": params, "lr": lr})
        if not groups:
            raise ValueError("no trainable parameters")
        return torch.optim.AdamW(groups, lr=lr_max, weight_decay=wd)

    def _loss(self, inputs, targets) -> torch.Tensor:
        with self._autocast():
            loss = self.loss_fn(_call(self.model, inputs), targets)
        return loss.float()

    def fit_one_cycle(self, train_loader: Iterable, epochs: int, lr_max: float, *,
                      valid_loader: Iterable | None = None, wd: float = 0.01, pct_start: float = 0.25,
                      param_groups: Sequence[tuple[Iterable[nn.Parameter], float]] | None = None,
                      callbacks: Sequence[Callback] = ()) -> list[dict[str, Any]]:
        """Train ``epochs`` epochs under torch's ``OneCycleLR`` (cosine warm-up then annealing).

        Returns one dict per epoch: ``epoch, train_loss, valid_loss, metric, lr, seconds``.
        ``param_groups`` (``[(params, lr), ...]``) gives each group its own peak rate.
        """
        opt = self._optimizer(lr_max, wd, param_groups)
        steps_per_epoch = math.ceil(len(train_loader) / self.grad_accum)
        # OneCycleLR needs a warm-up and an annealing phase of at least one step each.
        total = max(epochs * steps_per_epoch, 4)
        pct = min(max(pct_start, 2 / total), 1 - 1 / total)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total, pct_start=pct)
        scaler = self._scaler()
        cbs = sorted([*self.callbacks, *callbacks, *self._tensorboard(callbacks)], key=lambda c: c.order)
        history: list[dict[str, Any]] = []
        self.lr_trace = []
        it = 0

        def fire(hook: str, epoch: int, **kw) -> None:
            ctx = TrainContext(self, epoch, epochs, it, opt.param_groups[0]["lr"], history=tuple(history), **kw)
            for cb in cbs:
                getattr(cb, hook)(ctx)

        fire("on_train_begin", 0)
        try:
            for epoch in range(epochs):
                start = time.perf_counter()
                self._train_mode()
                total, count = 0.0, 0
                opt.zero_grad(set_to_none=True)
                batches = self._bar(train_loader, f"epoch {epoch + 1}/{epochs}")
                n_batches = len(train_loader)
                for i, batch in enumerate(batches):
                    inputs, targets = to_device(_split_batch(batch), self.device)
                    if self.batch_tfm is not None:
                        inputs, targets = self.batch_tfm(inputs, targets)
                    loss = self._loss(inputs, targets)
                    scaler.scale(loss / self.grad_accum).backward()
                    if (i + 1) % self.grad_accum == 0 or i + 1 == n_batches:
                        if self.clip_grad:
                            scaler.unscale_(opt)
                            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad)
                        scaler.step(opt)
                        scaler.update()
                        opt.zero_grad(set_to_none=True)
                        self.lr_trace.append(opt.param_groups[0]["lr"])
                        if sched.last_epoch + 1 < sched.total_steps:
                            sched.step()
                        it += 1
                    total += loss.item()
                    count += 1
                    if hasattr(batches, "set_postfix"):
                        batches.set_postfix(loss=f"{total / count:.4f}", refresh=False)
                    fire("on_batch_end", epoch, train_loss=loss.item())
                valid_loss, metric = self.validate(valid_loader) if valid_loader is not None else (None, None)
                row = {"epoch": len(self.history) + 1, "train_loss": total / max(count, 1), "valid_loss": valid_loss,
                       "metric": metric, "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - start}
                history.append(row)
                self.history.append(row)
                self._report(row)
                fire("on_epoch_end", epoch, train_loss=row["train_loss"], valid_loss=row["valid_loss"],
                     metric=row["metric"])
        except StopTraining:
            pass
        last = history[-1] if history else {}
        fire("on_train_end", len(history) - 1, train_loss=last.get("train_loss"), valid_loss=last.get("valid_loss"),
             metric=last.get("metric"))
        return history

    def _tensorboard(self, callbacks: Sequence[Callback]) -> list[Callback]:
        """This learner's TensorBoard logger when the command turned TensorBoard on (one per
        learner, so one directory per fold) and no logger was given."""
        if any(isinstance(c, TensorBoardLogger) for c in (*self.callbacks, *callbacks)):
            return []
        if self._tb is None:
            from kagtools.core.tracking import tensorboard_logdir

            logdir = tensorboard_logdir(type(self.model).__name__)
            self._tb = TensorBoardLogger(logdir) if logdir is not None else None
        return [self._tb] if self._tb is not None else []

    def _train_mode(self) -> None:
        # A normalisation layer whose parameters are all frozen keeps its running statistics too
        # (eval mode): small batches would otherwise drift a pretrained body's statistics.
        self.model.train()
        for m in self.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and (self.bn_eval or (
                    m.affine and not any(p.requires_grad for p in m.parameters()))):
                m.eval()

    def fine_tune(self, train_loader: Iterable, epochs: int, base_lr: float, *,
                  layer_groups: Sequence[Sequence[nn.Parameter]], head: nn.Module,
                  freeze_epochs: int = 1, lr_mult: float = 100.0, valid_loader: Iterable | None = None,
                  wd: float = 0.01, pct_start: float = 0.25, train_bn: bool = True) -> list[dict[str, Any]]:
        """fastai's ``fine_tune``: train the head with the body frozen, then everything.

        ``freeze_epochs`` one-cycle epochs at ``base_lr`` with only ``head`` (and normalisation
        layers) trainable, then ``epochs`` epochs with all layers trainable and discriminative
        rates: ``layer_groups`` (body first, head last) get peak rates spaced geometrically from
        ``base_lr / 2 / lr_mult`` to ``base_lr / 2``. ``train_bn=False`` also freezes the body's
        batch norms (weights and running statistics) while frozen: better for tiny datasets.
        """
        history: list[dict[str, Any]] = []
        if freeze_epochs > 0:
            freeze_body(self.model, head, train_bn=train_bn)
            history += self.fit_one_cycle(train_loader, freeze_epochs, base_lr, valid_loader=valid_loader,
                                          wd=wd, pct_start=pct_start)
        set_trainable(self.model, True)
        if epochs > 0:
            top = base_lr / 2
            lrs = np.geomspace(top / lr_mult, top, num=len(layer_groups)) if len(layer_groups) > 1 else [top]
            groups = [(params, float(lr)) for params, lr in zip(layer_groups, lrs, strict=True)]
            history += self.fit_one_cycle(train_loader, epochs, top, valid_loader=valid_loader, wd=wd,
                                          pct_start=pct_start, param_groups=groups)
        return history

    def validate(self, loader: Iterable) -> tuple[float, float | None]:
        """Mean loss (weighted by batch size) and ``metric_fn`` over ``loader``."""
        outs, targs, total, n = [], [], 0.0, 0
        self.model.eval()
        with torch.inference_mode():
            for batch in loader:
                inputs, targets = to_device(_split_batch(batch), self.device)
                with self._autocast():
                    out = _call(self.model, inputs)
                    loss = self.loss_fn(out, targets)
                bs = len(targets) if hasattr(targets, "__len__") else 1
                total += float(loss) * bs
                n += bs
                if self.metric_fn is not None:
                    outs.append(out.float().cpu().numpy())
                    targs.append(targets.cpu().numpy())
        metric = float(self.metric_fn(np.concatenate(outs), np.concatenate(targs))) if outs else None
        return total / max(n, 1), metric

    # ------------------------------------------------------------------ lr_find

    def lr_find(self, train_loader: Iterable, *, start_lr: float = 1e-7, end_lr: float = 10,
                num_it: int = 100, wd: float = 0.01, beta: float = 0.98) -> LRFinderResult:
        """Exponential learning-rate sweep over up to ``num_it`` batches; weights are restored.

        Stops early once the smoothed loss exceeds four times its minimum (diverged).
        """
        state = copy.deepcopy(self.model.state_dict())
        opt = self._optimizer(start_lr, wd, None)
        scaler = self._scaler()
        mult = (end_lr / start_lr) ** (1 / max(num_it - 1, 1))
        lrs, losses, avg, best, i = [], [], 0.0, math.inf, 0
        self.model.train()
        try:
            while i < num_it:
                for batch in train_loader:
                    lr = start_lr * mult**i
                    for g in opt.param_groups:
                        g["lr"] = lr
                    inputs, targets = to_device(_split_batch(batch), self.device)
                    loss = self._loss(inputs, targets)
                    opt.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                    value = loss.item()
                    avg = beta * avg + (1 - beta) * value
                    smooth = avg / (1 - beta ** (i + 1))
                    if not math.isfinite(smooth):
                        raise StopTraining
                    lrs.append(lr)
                    losses.append(smooth)
                    best = min(best, smooth)
                    i += 1
                    if smooth > 4 * best or i >= num_it:
                        raise StopTraining
        except StopTraining:
            pass
        finally:
            self.model.load_state_dict(state)
        if len(lrs) < 3:
            raise ValueError("lr_find: too few batches to suggest a rate")
        suggestion, lr_min = _suggest(np.array(lrs), np.array(losses))
        return LRFinderResult(lrs=lrs, losses=losses, suggestion=suggestion, lr_min=lr_min)

    # ------------------------------------------------------------------ prediction

    def predict(self, loader: Iterable, *, tfm: Callable | None = None) -> np.ndarray:
        """Model outputs stacked in loader order (float32 NumPy); ``tfm`` transforms the inputs."""
        outs = []
        self.model.eval()
        with torch.inference_mode():
            for batch in loader:
                inputs = to_device(_split_batch(batch)[0], self.device)
                if tfm is not None:
                    inputs = tfm(inputs)
                with self._autocast():
                    out = _call(self.model, inputs)
                outs.append(out.float().cpu().numpy())
        return np.concatenate(outs) if outs else np.empty((0,), dtype=np.float32)

    # ------------------------------------------------------------------ progress

    def _bar(self, loader: Iterable, desc: str):
        if not self.progress or os.environ.get("KAGTOOLS_QUIET") == "1":
            return loader
        from tqdm.auto import tqdm

        return tqdm(loader, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)

    def _report(self, row: dict[str, Any]) -> None:
        if not self.progress or os.environ.get("KAGTOOLS_QUIET") == "1":
            return
        parts = [f"epoch {row['epoch']}", f"train_loss {row['train_loss']:.4f}"]
        parts += [f"{name} {row[name]:.4f}" for name in ("valid_loss", "metric") if row[name] is not None]
        parts.append(f"{row['seconds']:.1f}s")
        print("  ".join(parts), file=sys.stderr)
