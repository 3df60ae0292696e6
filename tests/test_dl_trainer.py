"""Units of the deep-learning trainer on tiny synthetic tensors (CPU, a few seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch.utils.data import DataLoader, TensorDataset

from kagtools.dl.trainer import (
    BestCheckpoint,
    Callback,
    EarlyStopping,
    Learner,
    freeze_body,
    get_device,
    inner_holdout,
    seed_everything,
    set_trainable,
)

torch.set_num_threads(1)


def _regression(n=256, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    w = torch.randn(d, 1, generator=g)
    return X, X @ w + 0.01 * torch.randn(n, 1, generator=g)


def _loader(X, y, bs, shuffle=False):
    return DataLoader(TensorDataset(X, y), batch_size=bs, shuffle=shuffle)


class _Net(nn.Module):
    def __init__(self, d=8):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d, 16), nn.BatchNorm1d(16), nn.ReLU())
        self.head = nn.Linear(16, 1)

    def forward(self, x):
        return self.head(self.body(x))


def test_get_device_and_seed():
    assert get_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert get_device("cpu") == torch.device("cpu")
    seed_everything(3)
    a = torch.rand(3)
    seed_everything(3)
    assert torch.equal(a, torch.rand(3))


def test_one_cycle_schedule_shape_and_training_reduces_loss():
    seed_everything(0)
    X, y = _regression()
    learner = Learner(nn.Linear(8, 1), nn.MSELoss(), progress=False)
    hist = learner.fit_one_cycle(_loader(X, y, 16, shuffle=True), 4, 0.05, valid_loader=_loader(X, y, 64),
                                 pct_start=0.25)
    lrs = np.array(learner.lr_trace)
    assert len(lrs) == 4 * 16  # one step per batch
    peak = int(np.argmax(lrs))
    assert abs(peak - 0.25 * len(lrs)) <= 2  # warm-up ends at pct_start
    assert lrs[0] == pytest.approx(0.05 / 25, rel=1e-3)  # torch's default div_factor
    assert lrs.max() == pytest.approx(0.05, rel=1e-3)
    assert np.all(np.diff(lrs[: peak + 1]) >= 0) and np.all(np.diff(lrs[peak:]) <= 0)
    assert lrs[-1] < 1e-4
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    assert hist[-1]["valid_loss"] < 0.1 * hist[0]["train_loss"]


def test_lr_find_sane_suggestion_restores_weights_and_plots(tmp_path):
    seed_everything(0)
    X, y = _regression(n=512)
    model = nn.Linear(8, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    found = Learner(model, nn.MSELoss(), progress=False).lr_find(_loader(X, y, 16, shuffle=True), num_it=100)
    assert 1e-4 < found.suggestion < 1.0
    assert len(found.lrs) == len(found.losses) and 3 <= len(found.lrs) <= 100
    assert np.all(np.diff(found.lrs) > 0)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    png = found.plot(tmp_path / "reports" / "lr_find.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_freeze_unfreeze_changes_trainable_parameters():
    net = _Net()
    n_all = sum(p.numel() for p in net.parameters())
    freeze_body(net, net.head)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias", "body.1.weight", "body.1.bias"}  # head + batch norm
    freeze_body(net, net.head, train_bn=False)
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == 17
    set_trainable(net, True)
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == n_all


def test_fine_tune_trains_head_first_then_everything_with_discriminative_rates():
    seed_everything(0)
    X, y = _regression()
    net = _Net()
    learner = Learner(net, nn.MSELoss(), progress=False)
    linear0 = net.body[0].weight.detach().clone()
    head0 = net.head.weight.detach().clone()
    seen = []

    class Spy(Callback):
        def on_train_begin(self, ctx):
            opt_lrs = sorted({round(lr, 9) for lr in self._lrs(ctx)})
            seen.append((sum(p.requires_grad for p in ctx.learner.model.parameters()), opt_lrs))

        def _lrs(self, ctx):
            return [ctx.lr]

    learner.callbacks.append(Spy())
    learner.fine_tune(_loader(X, y, 32), 1, 0.01, layer_groups=[list(net.body.parameters()),
                                                                list(net.head.parameters())],
                      head=net.head, freeze_epochs=1, lr_mult=10)
    # Frozen phase first (head + BN trainable: 4 tensors), then all 6 tensors.
    assert [s[0] for s in seen] == [4, 6]
    assert not torch.equal(net.body[0].weight, linear0)  # the body trained after unfreezing
    assert not torch.equal(net.head.weight, head0)
    # Discriminative rates: the body's peak is lr_mult times lower than the head's.
    learner2 = Learner(_Net(), nn.MSELoss(), progress=False)
    opt = learner2._optimizer(1.0, 0.0, [(learner2.model.body.parameters(), 0.001),
                                         (learner2.model.head.parameters(), 0.01)])
    assert [g["lr"] for g in opt.param_groups] == [0.001, 0.01]


def test_frozen_phase_leaves_body_weights_unchanged():
    seed_everything(0)
    X, y = _regression()
    net = _Net()
    w0 = net.body[0].weight.detach().clone()
    learner = Learner(net, nn.MSELoss(), progress=False)
    learner.fine_tune(_loader(X, y, 32), 0, 0.01, layer_groups=[list(net.parameters())], head=net.head,
                      freeze_epochs=1)
    assert torch.equal(net.body[0].weight, w0)


def test_grad_accumulation_matches_larger_batch():
    X, y = _regression(n=64)
    models = []
    for bs, accum in [(8, 1), (4, 2)]:
        seed_everything(1)
        model = nn.Linear(8, 1)
        Learner(model, nn.MSELoss(), grad_accum=accum, progress=False).fit_one_cycle(_loader(X, y, bs), 2, 0.01)
        models.append(model)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_clip_grad_bounds_the_gradient_norm_of_every_step():
    X, y = _regression(n=64)
    norms: dict = {}

    def record(opt, args, kwargs):
        grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    for clip in (None, 0.05):
        seen: list[float] = []
        handle = register_optimizer_step_pre_hook(record)
        try:
            seed_everything(1)
            Learner(nn.Linear(8, 1), nn.MSELoss(), clip_grad=clip, progress=False).fit_one_cycle(_loader(X, y, 16), 1, 0.01)
        finally:
            handle.remove()
        norms[clip] = seen
    assert len(norms[0.05]) == 4 and min(norms[None]) > 0.05
    assert max(norms[0.05]) <= 0.05 + 1e-6


def test_tuple_and_dict_inputs_and_predict_order():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 1)

        def forward(self, a, b=None, **_):
            return self.lin(torch.cat([a, b], dim=1))

    X = torch.arange(20, dtype=torch.float32).reshape(10, 2)
    y = X.sum(1, keepdim=True)

    class DictDS(torch.utils.data.Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return {"a": X[i, :1], "b": X[i, 1:]}, y[i]

    model = Two()
    learner = Learner(model, nn.MSELoss(), progress=False)
    learner.fit_one_cycle(DataLoader(DictDS(), batch_size=4), 1, 1e-3)
    tuple_loader = DataLoader(TensorDataset(X[:, :1], X[:, 1:], y), batch_size=3,
                              collate_fn=lambda b: ((torch.stack([r[0] for r in b]), torch.stack([r[1] for r in b])),
                                                    torch.stack([r[2] for r in b])))
    out_tuple = learner.predict(tuple_loader)
    out_dict = learner.predict(DataLoader(DictDS(), batch_size=4))
    np.testing.assert_allclose(out_tuple, out_dict, rtol=1e-6)
    with torch.no_grad():
        np.testing.assert_allclose(out_tuple, model.lin(X).numpy(), rtol=1e-6)


def test_early_stopping_and_best_checkpoint_on_inner_holdout():
    seed_everything(0)
    X, y = _regression(n=200)
    tr, ho = inner_holdout(len(X), frac=0.2, seed=0)
    assert len(set(tr) & set(ho)) == 0 and len(tr) + len(ho) == 200
    # A huge constant rate makes the loss oscillate, so early stopping must fire.
    learner = Learner(nn.Linear(8, 1), nn.MSELoss(), progress=False,
                      callbacks=[BestCheckpoint(), EarlyStopping(patience=2)])
    hist = learner.fit_one_cycle(_loader(X[tr], y[tr], 16), 30, 5.0, valid_loader=_loader(X[ho], y[ho], 64),
                                 pct_start=0.01)
    assert len(hist) < 30
    best = min(h["valid_loss"] for h in hist)
    final, _ = learner.validate(_loader(X[ho], y[ho], 64))
    assert final == pytest.approx(best, rel=1e-5)  # the best epoch's weights were loaded back


def test_metric_is_reported_per_epoch():
    seed_everything(0)
    X = torch.randn(128, 4)
    y = (X[:, 0] > 0).long()
    learner = Learner(nn.Linear(4, 2), nn.CrossEntropyLoss(), progress=False,
                      metric_fn=lambda out, t: (out.argmax(1) == t).mean())
    hist = learner.fit_one_cycle(_loader(X, y, 16), 3, 0.1, valid_loader=_loader(X, y, 64))
    assert hist[-1]["metric"] > 0.9


# ----------------------------------------------------------------------------- vision helpers


def test_label_smoothing_and_mixup_change_the_loss_as_expected():
    from kagtools.dl.images import classification_loss, mixup_fn

    logits = torch.tensor([[8.0, 0.0, 0.0], [0.0, 8.0, 0.0]])
    y = torch.tensor([0, 1])
    plain, smooth = classification_loss(0.0, False)(logits, y), classification_loss(0.2, False)(logits, y)
    assert smooth > plain + 0.5  # a confident right answer is penalised by smoothing
    uniform = torch.zeros(2, 3)
    torch.testing.assert_close(classification_loss(0.2, False)(uniform, y), classification_loss(0.0, False)(uniform, y))

    seed_everything(0)
    mix = mixup_fn(4, mixup=0.4)
    x = torch.rand(6, 1, 4, 4)
    yy = torch.tensor([0, 1, 2, 3, 0, 1])
    xm, ym = mix(x.clone(), yy)
    lam = float(ym[0, 0])  # sample 0 (class 0) is mixed with the last sample (class 1)
    torch.testing.assert_close(xm, lam * x + (1 - lam) * x.flip(0))
    out = torch.randn(6, 4)
    mixed_loss = classification_loss(0.0, True)(out, ym)
    expected = lam * nn.functional.cross_entropy(out, yy) + (1 - lam) * nn.functional.cross_entropy(out, yy.flip(0))
    torch.testing.assert_close(mixed_loss, expected)
    assert mixup_fn(4) is None


def test_tta_averages_softmax_over_views_and_identity_first():
    from scipy.special import softmax

    from kagtools.dl.images import affine_resample, tta_predict, tta_thetas

    views = tta_thetas(4, flip=True)
    torch.testing.assert_close(views[0], torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))
    seed_everything(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))
    learner = Learner(net, nn.CrossEntropyLoss(), progress=False)
    images = torch.randint(0, 256, (10, 3, 12, 12), dtype=torch.uint8)
    loader = DataLoader(TensorDataset(images), batch_size=4, collate_fn=lambda b: torch.stack([r[0] for r in b]))
    got = tta_predict(learner, loader, 8, views, lambda logits: softmax(logits, axis=1))
    with torch.no_grad():
        each = [torch.softmax(net(affine_resample(images, v.expand(10, 2, 3), 8)), 1).numpy() for v in views]
    np.testing.assert_allclose(got, np.mean(each, axis=0), rtol=1e-5, atol=1e-6)
    # A horizontally flipped view is the mirror image.
    flipped = affine_resample(images, views[1].expand(10, 2, 3), 12)
    np.testing.assert_allclose(flipped.numpy(), (images.float() / 255).flip(-1).numpy(), atol=1e-6)


def test_augment_batch_shapes_and_range():
    from kagtools.dl.images import AugmentConfig, augment_batch

    x = torch.randint(0, 256, (5, 3, 40, 40), dtype=torch.uint8)
    out = augment_batch(x, 32, AugmentConfig(), generator=torch.Generator().manual_seed(0))
    assert out.shape == (5, 3, 32, 32) and out.dtype == torch.float32
    assert 0 <= float(out.min()) and float(out.max()) <= 1


def test_cpu_amp_is_bf16_only_when_asked_and_the_cpu_has_it():
    net = nn.Linear(4, 1)
    assert Learner(net, nn.MSELoss(), device="cpu").amp_dtype is None  # convnets: float32 on CPU
    assert Learner(net, nn.MSELoss(), device="cpu", amp=False, cpu_amp=True).amp_dtype is None
    learner = Learner(net, nn.MSELoss(), device="cpu", cpu_amp=True)
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert learner.amp_dtype == (torch.bfloat16 if native else None)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    learner.fit_one_cycle(DataLoader(TensorDataset(x, y), batch_size=16), 2, 1e-2)
    assert net.weight.dtype == torch.float32  # weights stay float32 under autocast
    assert learner.predict(DataLoader(TensorDataset(x), batch_size=16)).dtype == np.float32
