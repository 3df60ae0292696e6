"""The batch size to train with: the largest that fits GPU memory, or the fastest on a CPU
(where memory is rarely the limit); see :func:`find_batch_size`. :func:`accumulation_steps`
says how many batches to accumulate to reach the effective batch the schedule was tuned for.

The step is injected (``step(batch_size)``), and so is the memory check (``memory_check``,
e.g. :class:`SimulatedMemory`): the out-of-memory logic is tested on a CPU.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from kagtools.errors import KagtoolsError

__all__ = ["Probe", "BatchSizeResult", "SimulatedMemory", "find_batch_size", "accumulation_steps",
           "training_step", "is_out_of_memory", "free_memory"]


@dataclass
class Probe:
    """One batch size tried: whether it fitted and (throughput search) its samples per second."""

    batch_size: int
    fits: bool
    samples_per_s: float | None = None


@dataclass
class BatchSizeResult:
    """The batch size found, how it was chosen (``memory`` or ``throughput``), every size tried,
    and the suggestion for ``target`` effective samples per optimiser step."""

    largest: int
    mode: str
    probes: list[Probe] = field(default_factory=list)
    target: int | None = None

    @property
    def batch_size(self) -> int:
        """The batch size to train with: the one found, or fewer to reach ``target`` exactly."""
        return math.ceil(self.target / self.grad_accum) if self.target else self.largest

    @property
    def grad_accum(self) -> int:
        return accumulation_steps(self.largest, self.target) if self.target else 1

    @property
    def params(self) -> dict[str, int]:
        """The model parameters to pass (``--params``)."""
        return {"batch_size": self.batch_size, "grad_accum": self.grad_accum}


def accumulation_steps(batch_size: int, target: int) -> int:
    """Batches to accumulate per optimiser step so that ``batch_size`` reaches ``target``
    samples per step (at least 1)."""
    if batch_size < 1 or target < 1:
        raise ValueError("batch_size and target must be >= 1")
    return max(1, math.ceil(target / batch_size))


def is_out_of_memory(exc: BaseException) -> bool:
    """A CUDA (or CPU allocator) out-of-memory error, which a smaller batch would avoid."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_memory() -> None:
    """Release what a failed step left: Python garbage, then the CUDA caching allocator's blocks."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class SimulatedMemory:
    """A memory check for tests and planning: a step of ``batch_size`` needs ``fixed_bytes +
    batch_size * bytes_per_sample``; over ``limit_bytes`` it raises ``torch.cuda.OutOfMemoryError``
    as CUDA would."""

    def __init__(self, limit_bytes: int, *, bytes_per_sample: int, fixed_bytes: int = 0):
        self.limit_bytes, self.bytes_per_sample, self.fixed_bytes = limit_bytes, bytes_per_sample, fixed_bytes

    def __call__(self, batch_size: int) -> None:
        need = self.fixed_bytes + batch_size * self.bytes_per_sample
        if need > self.limit_bytes:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (simulated): tried to allocate {need} bytes "
                                              f"of {self.limit_bytes}")


def find_batch_size(step: Callable[[int], Any], *, mode: str = "memory", start: int = 1, max_batch: int = 4096,
                    target: int | None = None, n_steps: int = 3, min_seconds: float = 0.5,
                    min_gain: float = 0.05, patience: int = 2,
                    memory_check: Callable[[int], None] | None = None,
                    free: Callable[[], None] = free_memory) -> BatchSizeResult:
    """Search powers of two from ``start`` up to ``max_batch``.

    Parameters
    ----------
    step : callable
        ``step(batch_size)``: one training step (forward, backward, optimiser) on that many rows.
    mode : {"memory", "throughput"}
        ``memory``: the largest size whose step does not run out of memory. ``throughput``: the
        size with the most samples per second (at least ``n_steps`` steps and ``min_seconds``,
        timed after a warm-up step); the search stops after ``patience`` sizes in a row that gain
        less than ``min_gain`` over the best so far.
    target : int, optional
        Samples per optimiser step wanted; the result suggests gradient accumulation.
    memory_check : callable, optional
        ``memory_check(batch_size)`` before each step; raises an out-of-memory error when the
        step would not fit (:class:`SimulatedMemory`).
    """
    if mode not in ("memory", "throughput"):
        raise ValueError(f"mode must be 'memory' or 'throughput', not {mode!r}")
    probes: list[Probe] = []
    bs, stalled = max(1, int(start)), 0
    while bs <= max_batch:
        try:
            if memory_check is not None:
                memory_check(bs)
            step(bs)
            rate = None
            if mode == "throughput":
                began, done = time.perf_counter(), 0
                while done < n_steps or time.perf_counter() - began < min_seconds:
                    step(bs)
                    done += 1
                rate = bs * done / max(time.perf_counter() - began, 1e-9)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            del exc  # its traceback holds the failed step's tensors
            free()
            probes.append(Probe(bs, False))
            break
        free()
        probes.append(Probe(bs, True, rate))
        if mode == "throughput":
            best = max((p.samples_per_s for p in probes[:-1]), default=0.0)
            stalled = stalled + 1 if rate < best * (1 + min_gain) else 0
            if stalled >= patience:
                break
        bs *= 2
    fitted = [p for p in probes if p.fits]
    if not fitted:
        raise KagtoolsError(f"batch size {start} does not fit in memory; use a smaller model or image size")
    best = fitted[-1] if mode == "memory" else max(fitted, key=lambda p: p.samples_per_s)
    return BatchSizeResult(largest=best.batch_size, mode=mode, probes=probes, target=target)


def training_step(learner, inputs: torch.Tensor, targets: torch.Tensor) -> Callable[[int], None]:
    """``step(batch_size)``: one real training step of ``learner`` (its loss, batch transform,
    mixed precision and an AdamW optimiser, whose state takes memory too) on the first
    ``batch_size`` rows (repeated when there are fewer)."""
    from kagtools.dl.trainer import to_device

    params = [p for p in learner.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-6)

    def step(batch_size: int) -> None:
        idx = torch.arange(batch_size) % len(targets)
        x, y = to_device((inputs[idx], targets[idx]), learner.device)
        if learner.batch_tfm is not None:
            x, y = learner.batch_tfm(x, y)
        learner._train_mode()
        try:
            loss = learner._loss(x, y)
            loss.backward()
            opt.step()
        finally:
            opt.zero_grad(set_to_none=True)
        if learner.device.type == "cuda":
            torch.cuda.synchronize()

    return step
