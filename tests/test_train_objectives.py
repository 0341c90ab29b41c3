"""Objectives against hand-computed values on a linear model with fixed weights (numpy formulas)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from freqtail.attacks import pgd
from freqtail.train.objectives import (
    ERM,
    MART,
    PGDAT,
    TRADES,
    AugMixJSD,
    jsd_consistency,
    linf_ascent,
    mart_terms,
    plain_forward,
    trades_terms,
)
from freqtail.train.rng import per_sample_noise

EPS, STEP = 8 / 255, 2 / 255


def _linear_model(seed=0, classes=3, shape=(1, 2, 2)):
    torch.manual_seed(seed)
    d = int(np.prod(shape))
    model = nn.Sequential(nn.Flatten(), nn.Linear(d, classes)).double()
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(classes, d, dtype=torch.float64))
        model[1].bias.copy_(torch.randn(classes, dtype=torch.float64))
    return model


def _batch(seed=1, n=4, shape=(1, 2, 2)):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *shape), generator=g, dtype=torch.float64) * 0.9 + 0.05
    y = torch.tensor([0, 1, 2, 1][:n])
    return x, y


def _np_params(model):
    return model[1].weight.detach().numpy(), model[1].bias.detach().numpy()


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _ce(z, y):
    p = _softmax(z)
    return -np.log(p[np.arange(len(y)), y])


def _project(v, x, eps):
    return np.clip(np.clip(v, x - eps, x + eps), 0.0, 1.0)


def test_erm_loss_is_mean_cross_entropy():
    model = _linear_model()
    x, y = _batch()
    w, b = _np_params(model)
    out = ERM()(plain_forward(model), model, x, y)
    z = x.reshape(4, -1).numpy() @ w.T + b
    assert out.loss.item() == pytest.approx(_ce(z, y.numpy()).mean(), rel=1e-12)


def test_pgd_at_one_step_matches_the_hand_computed_signed_gradient():
    model = _linear_model()
    x, y = _batch()
    w, b = _np_params(model)
    out = PGDAT(EPS, STEP, steps=1, random_start=False)(plain_forward(model), model, x, y)
    xf = x.reshape(4, -1).numpy()
    p = _softmax(xf @ w.T + b)
    grad = (p - np.eye(3)[y.numpy()]) @ w  # d CE / d x for a linear model
    expected = _project(xf + STEP * np.sign(grad), xf, EPS)
    np.testing.assert_allclose(out.x_adv.reshape(4, -1).numpy(), expected, atol=1e-15)
    z_adv = expected @ w.T + b
    assert out.loss.item() == pytest.approx(_ce(z_adv, y.numpy()).mean(), rel=1e-12)
    assert torch.equal(out.logits.argmax(1), torch.from_numpy(z_adv.argmax(1)))


def test_pgd_at_examples_stay_in_the_eps_ball_and_unit_interval():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 5))
    x = torch.rand(16, 3, 8, 8)
    x[:4] = 0.0  # black and white images push against [0, 1]
    x[4:8] = 1.0
    y = torch.randint(0, 5, (16,))
    seeds = torch.arange(16, dtype=torch.int64) + 100
    objective = PGDAT(EPS, 3 * STEP, steps=5, random_start=True)
    x_adv = objective(plain_forward(model), model, x, y, seeds).x_adv
    assert float((x_adv - x).abs().max()) <= EPS + 1e-7
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert float((x_adv - x).abs().max()) > 0.5 * EPS  # it did move
    again = objective(plain_forward(model), model, x, y, seeds).x_adv
    assert torch.equal(x_adv, again)  # per-sample seeds: same starts, same examples


def test_training_attack_perturbs_images_the_evaluation_attack_leaves_alone():
    """freqtail.attacks.pgd returns a clean-misclassified image unchanged (evaluation semantics);
    the training inner maximisation still perturbs it (Madry's last iterate)."""
    model = _linear_model()
    x, y = _batch()
    z = model(x)
    wrong = z.argmin(dim=1)  # labels the model certainly gets wrong
    evaluated = pgd(model.eval(), x, wrong, eps=EPS, step_size=STEP, steps=3, random_start=False)
    assert torch.equal(evaluated, x)
    trained = PGDAT(EPS, STEP, steps=3, random_start=False)(plain_forward(model), model, x, wrong).x_adv
    assert float((trained - x).abs().amax()) == pytest.approx(min(3 * STEP, EPS))


def test_trades_terms_match_numpy():
    g = torch.Generator().manual_seed(5)
    nat, adv = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    natural, robust = trades_terms(nat, adv, y)
    p, q = _softmax(nat.double().numpy()), _softmax(adv.double().numpy())
    assert natural.item() == pytest.approx(_ce(nat.double().numpy(), y.numpy()).mean(), rel=1e-5)
    assert robust.item() == pytest.approx((p * (np.log(p) - np.log(q))).sum(1).mean(), rel=1e-5)
    assert trades_terms(nat, nat, y)[1].item() == pytest.approx(0.0, abs=1e-7)


def _np_mart(nat, adv, y):
    p, q = _softmax(nat), _softmax(adv)
    n = len(y)
    others = q.copy()
    others[np.arange(n), y] = -1.0
    runner = others.argmax(1)
    boosted = _ce(adv, y) - np.log(1.0001 - q[np.arange(n), runner] + 1e-12)
    kl = (p * (np.log(p) - np.log(q + 1e-12))).sum(1)
    weighted = (kl * (1.0000001 - p[np.arange(n), y])).sum() / n
    return boosted.mean(), weighted


def test_mart_terms_match_numpy():
    g = torch.Generator().manual_seed(6)
    nat, adv = (
        torch.randn(6, 4, generator=g, dtype=torch.float64),
        torch.randn(6, 4, generator=g, dtype=torch.float64),
    )
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    boosted, weighted = mart_terms(nat, adv, y)
    expected_boosted, expected_weighted = _np_mart(nat.numpy(), adv.numpy(), y.numpy())
    assert boosted.item() == pytest.approx(expected_boosted, rel=1e-5)
    assert weighted.item() == pytest.approx(expected_weighted, rel=1e-5)


def test_trades_objective_one_step_by_hand():
    model = _linear_model(seed=2)
    x, y = _batch(seed=3)
    w, b = _np_params(model)
    seeds = torch.tensor([11, 12, 13, 14])
    out = TRADES(EPS, STEP, steps=1, beta=6.0)(plain_forward(model), model, x, y, seeds)
    xf = x.reshape(4, -1).numpy()
    noise = per_sample_noise(seeds, (1, 2, 2), "normal").reshape(4, -1).double().numpy()
    start = _project(xf + 0.001 * noise, xf, EPS)
    p = _softmax(xf @ w.T + b)
    q = _softmax(start @ w.T + b)
    x1 = _project(start + STEP * np.sign((q - p) @ w), xf, EPS)  # d KL(p || q(z)) / dz = W^T (q - p)
    np.testing.assert_allclose(out.x_adv.reshape(4, -1).numpy(), x1, atol=1e-15)
    q1 = _softmax(x1 @ w.T + b)
    natural = _ce(xf @ w.T + b, y.numpy()).mean()
    robust = (p * (np.log(p) - np.log(q1))).sum(1).mean()
    assert out.terms["natural"].item() == pytest.approx(natural, rel=1e-6)
    assert out.terms["robust"].item() == pytest.approx(robust, rel=1e-6)
    assert out.loss.item() == pytest.approx(natural + 6.0 * robust, rel=1e-6)


def test_mart_objective_one_step_by_hand():
    model = _linear_model(seed=4)
    x, y = _batch(seed=5)
    w, b = _np_params(model)
    seeds = torch.tensor([21, 22, 23, 24])
    out = MART(EPS, STEP, steps=1, beta=5.0)(plain_forward(model), model, x, y, seeds)
    xf = x.reshape(4, -1).numpy()
    noise = per_sample_noise(seeds, (1, 2, 2), "normal").reshape(4, -1).double().numpy()
    start = _project(xf + 0.001 * noise, xf, EPS)
    grad = (_softmax(start @ w.T + b) - np.eye(3)[y.numpy()]) @ w
    x1 = _project(start + STEP * np.sign(grad), xf, EPS)
    np.testing.assert_allclose(out.x_adv.reshape(4, -1).numpy(), x1, atol=1e-15)
    boosted, weighted = _np_mart(xf @ w.T + b, x1 @ w.T + b, y.numpy())
    assert out.terms["boosted_ce"].item() == pytest.approx(boosted, rel=1e-6)
    assert out.terms["weighted_kl"].item() == pytest.approx(weighted, rel=1e-6)
    assert out.loss.item() == pytest.approx(boosted + 5.0 * weighted, rel=1e-6)


def test_zero_steps_without_random_start_is_the_clean_image():
    model = _linear_model()
    x, y = _batch()
    for objective in (PGDAT(EPS, STEP, 0, random_start=False), MART(EPS, STEP, 0, random_start=False)):
        assert torch.equal(objective(plain_forward(model), model, x, y).x_adv, x)
    start = x + 0.5
    assert torch.equal(
        linf_ascent(lambda z: z.sum(), x, start, eps=EPS, step_size=STEP, steps=0), (x + EPS).clamp(max=1)
    )


def test_jsd_is_zero_for_identical_predictions_and_positive_otherwise():
    g = torch.Generator().manual_seed(7)
    z = torch.randn(5, 4, generator=g, dtype=torch.float64)
    assert jsd_consistency(z, z.clone(), z + 3.0).item() == pytest.approx(
        0.0, abs=1e-12
    )  # softmax shift-invariant
    other = torch.randn(5, 4, generator=g, dtype=torch.float64)
    value = jsd_consistency(z, other, z).item()
    ps = [_softmax(a.numpy()) for a in (z, other, z)]
    m = np.clip(sum(ps) / 3, 1e-7, 1)
    expected = sum((p * (np.log(p) - np.log(m))).sum(1).mean() for p in ps) / 3
    assert value > 0 and value == pytest.approx(expected, rel=1e-9)


def test_augmix_objective_is_clean_ce_plus_lambda_jsd():
    model = _linear_model()
    x, y = _batch()
    g = torch.Generator().manual_seed(8)
    a1 = torch.rand(x.shape, generator=g, dtype=torch.float64)
    a2 = torch.rand(x.shape, generator=g, dtype=torch.float64)
    out = AugMixJSD(12.0)(plain_forward(model), model, (x, a1, a2), y)
    w, b = _np_params(model)
    zs = [t.reshape(4, -1).numpy() @ w.T + b for t in (x, a1, a2)]
    ps = [_softmax(z) for z in zs]
    m = np.clip(sum(ps) / 3, 1e-7, 1)
    jsd = sum((p * (np.log(p) - np.log(m))).sum(1).mean() for p in ps) / 3
    ce = _ce(zs[0], y.numpy()).mean()
    assert out.loss.item() == pytest.approx(ce + 12.0 * jsd, rel=1e-9)
    assert torch.equal(out.logits, model(x))


def test_attack_bn_mode_is_restored_after_crafting():
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.LazyLinear(3))
    model(torch.rand(2, 3, 6, 6))
    model.train()
    x = torch.rand(4, 3, 6, 6)
    before = model[1].running_mean.clone()
    PGDAT(EPS, STEP, steps=2, random_start=False, attack_bn="eval").attack.craft(
        model, x, None, lambda z: model(z).sum(), "uniform"
    )
    assert model.training and torch.equal(model[1].running_mean, before)  # eval mode while crafting
