"""The finders on the command line (lr-find, find-batch-size), the batch-size search under a
simulated GPU memory limit, and TensorBoard event files of a deep-learning fold."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")

from test_digit_recognizer import _digits  # noqa: E402 - the synthetic digits, one definition

from kagtools.core import tracking  # noqa: E402
from kagtools.dl.batch_size import (  # noqa: E402
    SimulatedMemory,
    accumulation_steps,
    find_batch_size,
    training_step,
)

MIRROR = Path(os.environ["KAGTOOLS_DATA_DIR"]) / "digit-recognizer"
pytestmark = pytest.mark.usefixtures("one_torch_thread")
MB = 2**20


def test_batch_size_under_a_simulated_memory_limit_is_the_largest_power_of_two():
    freed, seen = [], []
    res = find_batch_size(seen.append, memory_check=SimulatedMemory(100 * MB, bytes_per_sample=MB),
                          free=lambda: freed.append(1), target=256)
    assert res.mode == "memory" and res.largest == 64  # 128 MB > 100 MB
    assert [p.batch_size for p in res.probes] == [1, 2, 4, 8, 16, 32, 64, 128] and not res.probes[-1].fits
    assert seen == [1, 2, 4, 8, 16, 32, 64] and len(freed) == 8  # memory freed after every try, OOM included
    assert (res.batch_size, res.grad_accum) == (64, 4)
    # The fixed cost (weights, optimiser state) counts too; a target that is not a multiple is met exactly.
    res = find_batch_size(lambda bs: None, memory_check=SimulatedMemory(100 * MB, bytes_per_sample=MB,
                                                                        fixed_bytes=60 * MB), target=100)
    assert res.largest == 32 and (res.batch_size, res.grad_accum) == (25, 4)
    assert accumulation_steps(64, 256) == 4 and accumulation_steps(64, 32) == 1 and accumulation_steps(48, 100) == 3
    with pytest.raises(Exception, match="does not fit"):
        find_batch_size(lambda bs: None, memory_check=SimulatedMemory(MB, bytes_per_sample=2 * MB))


def test_real_training_step_under_a_simulated_limit_and_other_errors_propagate():
    from kagtools.models import create_model

    X, y = _digits(64)
    est = create_model("digit_cnn", channels=(4, 8, 16), batch_size=32, augment=True)
    learner, images, targets = est.learner_for(X, y)
    before = {k: v.clone() for k, v in learner.model.state_dict().items()}
    res = find_batch_size(training_step(learner, images, targets), max_batch=512,
                          memory_check=SimulatedMemory(300 * MB, bytes_per_sample=2 * MB), target=256)
    assert res.largest == 128 and res.params == {"batch_size": 128, "grad_accum": 2}
    assert any(not torch_equal(before[k], v) for k, v in learner.model.state_dict().items())  # steps really ran

    def broken(bs):
        raise ValueError("not a memory problem")

    with pytest.raises(ValueError):
        find_batch_size(broken)


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_tensorboard_events_of_a_fold_are_written_and_readable(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    monkeypatch.delenv("KAGTOOLS_NO_TRACK", raising=False)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from kagtools.models import create_model

    X, y = _digits(96)
    tracking.configure(tmp_path, "syn")
    try:
        with tracking.fold_scope("digit_cnn", 0, 1):  # what the fold engine enters around a fold
            create_model("digit_cnn", epochs=2, channels=(4, 8, 16), batch_size=32, early_stopping=2,
                         tta=1).fit(X, y)
        create_model("digit_cnn", epochs=1, channels=(4, 8, 16), batch_size=32, tta=1).fit(X, y)  # no fold
        roots = sorted((tmp_path / "runs" / "syn" / "tensorboard").rglob("events.out.tfevents.*"))
        dirs = {p.parent.relative_to(tmp_path / "runs" / "syn" / "tensorboard").parts for p in roots}
        assert {(d[0], d[2]) for d in dirs} == {("digit_cnn", "fold-0-1"), ("ImageModel", "fit")}
        fold = next(p.parent for p in roots if p.parent.name == "fold-0-1")
        acc = EventAccumulator(str(fold)).Reload()
        tags = set(acc.Tags()["scalars"])
        assert {"step/train_loss", "step/lr", "epoch/train_loss", "epoch/valid_loss", "epoch/metric",
                "epoch/lr"} <= tags
        steps = acc.Scalars("step/train_loss")
        assert len(steps) >= 4 and [s.step for s in steps] == list(range(1, len(steps) + 1))
        assert len(acc.Scalars("epoch/lr")) == 2 and all(np.isfinite(s.value) for s in steps)
    finally:
        tracking.configure(tmp_path, enabled=False)
    # Tracking off: no TensorBoard files.
    create_model("digit_cnn", epochs=1, channels=(4, 8, 16), batch_size=32, tta=1).fit(X, y)
    assert len(list((tmp_path / "runs").rglob("events.out.tfevents.*"))) == len(roots)


@pytest.mark.skipif(not (MIRROR / "train.csv").is_file(), reason="no digit-recognizer mirror")
def test_lr_find_and_find_batch_size_on_the_digits_smoke_profile(tmp_path, capsys):
    from kagtools.cli.main import main

    data = tmp_path / "data"
    data.mkdir()
    pd.read_csv(MIRROR / "train.csv", nrows=600).to_csv(data / "train.csv", index=False)
    pd.read_csv(MIRROR / "test.csv", nrows=20).to_csv(data / "test.csv", index=False)
    pd.read_csv(MIRROR / "sample_submission.csv", nrows=20).to_csv(data / "sample_submission.csv", index=False)
    common = ["--data-dir", str(data), "--workdir", str(tmp_path / "work"), "--no-track"]
    assert main(["lr-find", "digit-recognizer", "--model", "digit_cnn", "--profile", "smoke", "--num-it", "40",
                 *common]) == 0
    out = capsys.readouterr().out
    png = tmp_path / "work" / "reports" / "digit-recognizer" / "lr_find_digit_cnn.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and "suggested lr" in out and '--params \'{"lr":' in out
    assert main(["find-batch-size", "digit-recognizer", "--model", "digit_cnn", "--profile", "smoke",
                 "--max-batch", "32", "--target-batch", "64", *common]) == 0
    out = capsys.readouterr().out
    assert "throughput" in out and "grad_accum" in out and '"batch_size": ' in out
    assert main(["lr-find", "digit-recognizer", "--model", "rf", *common]) == 2
    assert main(["lr-find", "digit-recognizer", "--model", "digit_cnn", "--profile", "nope", *common]) == 2
