"""``lr-find`` and ``find-batch-size``: the learning rate and the batch size of a deep-learning
model, measured on the competition's training set."""

from __future__ import annotations

import time

from kagtools.cli.options import add_common, command, int_at_least, json_object_arg, open_ctx
from kagtools.errors import KagtoolsError

__all__ = ["cmd_lr_find", "cmd_find_batch_size"]


def _model_options(p) -> None:
    add_common(p)
    p.add_argument("--model", required=True, help="a deep-learning model, e.g. digit_cnn or timm_classifier")
    p.add_argument("--profile", help="start from the parameters the pipeline's profile gives the model "
                                     "(e.g. smoke, cpu, gpu)")
    p.add_argument("--params", help="JSON parameters over the profile's, e.g. '{\"batch_size\": 64}'")
    p.add_argument("--rows", type=int_at_least(2), default=5000, help="training rows used (default: 5000)")


def _model_params(ctx, model: str, profile: str | None, params: str | None) -> dict:
    """The profile's parameters of ``model`` (its first entry in the pipeline), then ``--params``."""
    base: dict = {}
    if profile:
        from kagtools.workflow.pipeline import pipeline_models

        entries = [p for m, p in pipeline_models(ctx.spec, profile).values() if m == model]
        if not entries:
            raise KagtoolsError(f"profile '{profile}' of {ctx.spec.slug} does not train '{model}'")
        base = dict(entries[0])
    return {**base, **json_object_arg(params)}


def _lr_find_options(p) -> None:
    _model_options(p)
    p.add_argument("--num-it", type=int_at_least(5), default=100, help="batches in the sweep (default: 100)")


@command("lr-find", "the learning-rate sweep of a deep-learning model: reports/<slug>/lr_find_<model>.png",
         example="kagtools lr-find digit-recognizer --model digit_cnn --profile smoke", options=_lr_find_options)
def cmd_lr_find(args) -> None:
    from kagtools.workflow.lr_find import lr_find_report

    start = time.perf_counter()
    ctx = open_ctx(args)
    params = _model_params(ctx, args.model, args.profile, args.params)
    result, path = lr_find_report(ctx, args.model, params, max_rows=args.rows, num_it=args.num_it)
    print(f"lr_find {args.model} on {min(args.rows, len(ctx.training_set.y))} rows, {len(result.lrs)} batches: "
          f"suggested lr {result.suggestion:.2e} (loss valley; min loss / 10: {result.lr_min:.2e})")
    print(f"use it: --params '{{\"lr\": {result.suggestion:.2g}}}'")
    print(f"plot: {path}  ({time.perf_counter() - start:.1f}s)")


def _batch_options(p) -> None:
    _model_options(p)
    p.add_argument("--target-batch", type=int_at_least(1),
                   help="samples per optimiser step wanted (default: the model's batch_size x grad_accum)")
    p.add_argument("--max-batch", type=int_at_least(1), default=4096, help="largest size tried (default: 4096)")


@command("find-batch-size", "the largest batch that fits GPU memory (the fastest on a CPU), and the "
         "gradient accumulation to reach a target batch",
         example="kagtools find-batch-size digit-recognizer --model digit_cnn --target-batch 256",
         options=_batch_options)
def cmd_find_batch_size(args) -> None:
    from kagtools.core.engine import encode_target
    from kagtools.core.table import format_table
    from kagtools.dl.batch_size import find_batch_size, training_step
    from kagtools.models import create_model

    start = time.perf_counter()
    ctx = open_ctx(args)
    params = _model_params(ctx, args.model, args.profile, args.params)
    est = create_model(args.model, **params)
    if not hasattr(est, "learner_for"):
        raise KagtoolsError(f"model '{args.model}' has no batch-size probe (the image models have: "
                            f"digit_cnn, timm_classifier)")
    if "task" in est.get_params():
        est.set_params(task=ctx.spec.task)
    tset = ctx.training_set
    y, _ = encode_target(ctx.spec, tset.y)
    n = min(len(y), args.rows)
    learner, images, targets = est.learner_for(tset.X.iloc[:n], y[:n])
    mode = "memory" if learner.device.type == "cuda" else "throughput"
    target = args.target_batch or int(getattr(est, "batch_size", 1)) * int(getattr(est, "grad_accum", 1) or 1)
    max_batch = min(args.max_batch, n) if mode == "throughput" else args.max_batch
    print(f"find-batch-size {args.model} on {learner.device} ({mode}): powers of two up to {max_batch}", flush=True)
    # On a CPU sizes below 8 are never the fastest: start there (the first steps pay warm-up costs).
    res = find_batch_size(training_step(learner, images, targets), mode=mode, target=target,
                          start=1 if mode == "memory" else min(8, n), max_batch=max_batch)
    rows = [{"batch": p.batch_size, "fits": "yes" if p.fits else "out of memory",
             "samples/s": "-" if p.samples_per_s is None else f"{p.samples_per_s:.0f}"} for p in res.probes]
    print(format_table(rows, ["batch", "fits", "samples/s"]))
    how = "largest that fits" if mode == "memory" else "fastest"
    print(f"{how}: batch {res.largest}; for {target} samples per step: batch_size {res.batch_size} x "
          f"grad_accum {res.grad_accum} = {res.batch_size * res.grad_accum}")
    print(f"use it: --params '{{\"batch_size\": {res.batch_size}, \"grad_accum\": {res.grad_accum}}}'  "
          f"({time.perf_counter() - start:.1f}s)")
