"""Tests of freqtail.attacks against independent expectations.

* a 2-class linear model, whose exact L-inf worst case is known in closed form per example
  (``x - eps * sign(a)`` clipped to [0, 1], with ``a`` the gradient of the true-class margin);
* a small MLP trained here in a fraction of a second on a synthetic 4-class task, for the
  comparisons (PGD versus random noise, AutoAttack versus PGD);
* invariants: eps-ball and [0, 1], seeds, restarts, no parameter gradients, unchanged model mode.
"""

from __future__ import annotations

import io
import json
import math
import sys
import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from freqtail.attacks import (
    AttackResult,
    AutoAttackWarning,
    PGDConfig,
    autoattack,
    check_eps,
    gradient_masking_check,
    linf_distance,
    margin_loss,
    parse_eps,
    pgd,
    robust_accuracy,
)
from freqtail.attacks.masking_verdicts import FLAG_LARGE_EPS, FLAG_SQUARE, FLAG_ZERO_GRADIENT
from freqtail.errors import FreqtailError, InputError

TOLERANCE = 1e-6
SHAPE = (3, 4, 4)  # (C, H, W) of the linear-model images


# ---------------------------------------------------------------------------------------------
# Models and data
# ---------------------------------------------------------------------------------------------


class LinearClassifier(nn.Module):
    """logits = W flatten(quantise(x)) + b with hand-set W, b; ``quantise`` optional (gradient masking)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, quantise: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(torch.as_tensor(weight))
            self.linear.bias.copy_(torch.as_tensor(bias))
        self.quantise = quantise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.quantise:
            # uint8 rounding without a straight-through estimator: zero gradient everywhere.
            x = torch.floor(x * 255) / 255
        return self.linear(x.flatten(1))


def linear_problem(seed: int, n: int, eps: float):
    """Random 2-class linear model, images with pixels at and near the [0, 1] edges, exact answers.

    Returns (model, x, y, expected_robust) where expected_robust is computed in float64 numpy from
    the closed form, independently of the attack code. Images whose worst-case or clean margin is
    within 0.02 of zero are left out so that float32 rounding cannot decide them.
    """
    rng = np.random.default_rng(seed)
    d = int(np.prod(SHAPE))
    weight = rng.normal(0, 0.15, size=(2, d))
    bias = np.array([0.05, -0.05])
    xs, ys, robust = [], [], []
    while len(xs) < n:
        x = rng.uniform(0, 1, size=d)
        edge = rng.random(d)
        x[edge < 0.15] = 0.0
        x[edge > 0.85] = 1.0
        near = (edge > 0.4) & (edge < 0.5)
        x[near] = rng.uniform(0, eps / 2, size=near.sum())  # within eps of 0: clipping binds
        y = int(rng.integers(0, 2))
        a = weight[y] - weight[1 - y]
        c = bias[y] - bias[1 - y]
        clean_margin = a @ x + c
        worst = np.clip(x - eps * np.sign(a), 0.0, 1.0)
        worst_margin = a @ worst + c
        if min(abs(clean_margin), abs(worst_margin)) < 0.02:
            continue
        xs.append(x)
        ys.append(y)
        robust.append(clean_margin > 0 and worst_margin > 0)
    model = LinearClassifier(weight.astype(np.float32), bias.astype(np.float32)).eval()
    x = torch.tensor(np.stack(xs), dtype=torch.float32).reshape(n, *SHAPE)
    return model, x, torch.tensor(ys), np.array(robust)


def predictions(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(dim=1)


def assert_in_ball(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> None:
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert torch.isfinite(x_adv).all()
    assert float(linf_distance(x_adv, x).max()) <= eps + TOLERANCE
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


@pytest.fixture(scope="module")
def linear():
    return linear_problem(seed=3, n=64, eps=0.05) + (0.05,)


@pytest.fixture(scope="module")
def trained():
    """A 4-class MLP on 3x8x8 images near four prototypes, trained to 100% clean accuracy (~0.1 s)."""
    torch.manual_seed(0)
    prototypes = 0.5 + 0.04 * torch.randn(4, 3, 8, 8)
    generator = torch.Generator().manual_seed(1)

    def sample(n: int):
        y = torch.randint(0, 4, (n,), generator=generator)
        x = (prototypes[y] + (torch.rand(n, 3, 8, 8, generator=generator) - 0.5) * 0.4).clamp(0, 1)
        return x, y

    x_train, y_train = sample(512)
    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 64), nn.ReLU(), nn.Linear(64, 4))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        index = torch.randint(0, 512, (64,), generator=generator)
        loss = nn.functional.cross_entropy(model(x_train[index]), y_train[index])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    optimiser.zero_grad(set_to_none=True)
    x_test, y_test = sample(64)
    assert bool((predictions(model, x_test) == y_test).all())
    return model, x_test, y_test


# ---------------------------------------------------------------------------------------------
# eps
# ---------------------------------------------------------------------------------------------


def test_check_eps_accepts_unit_scale_and_refuses_255_scale():
    assert check_eps(8 / 255) == 8 / 255
    assert check_eps(0) == 0.0
    with pytest.raises(InputError) as err:
        check_eps(8)
    assert str(err.value) == "Eps 8 looks like it is on the 0..255 scale; use 8/255 = 0.0314."
    with pytest.raises(InputError, match=r"4/255 = 0\.0157"):
        check_eps(4.0)
    for bad in (-0.01, float("nan"), float("inf"), "0.1", True, None):
        with pytest.raises(InputError):
            check_eps(bad)


def test_parse_eps_reads_fractions_and_numbers():
    assert parse_eps("8/255") == pytest.approx(0.0313725490196, abs=1e-12)
    assert round(parse_eps("8/255"), 5) == 0.03137
    assert parse_eps(" 2 / 255 ") == pytest.approx(2 / 255)
    assert parse_eps("0.5") == 0.5
    assert parse_eps(0.25) == 0.25
    for bad in ("abc", "1/0", "8/255/2", "", "16"):
        with pytest.raises(InputError):
            parse_eps(bad)
    with pytest.raises(InputError, match="0..255 scale; use 16/255"):
        parse_eps("16")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("\uff18/255", "with ASCII digits"),  # a full-width 8: float() and Fraction() read it as 8
        ("\u0668/\u0662\u0665\u0665", "with ASCII digits"),  # Arabic-Indic 8/255
        ("1_0/255", "Could not read the eps '1_0/255'"),
        ("1e99999999", "Could not read the eps"),  # Fraction would build the integer 10**99999999
        ("-0", "must be >= 0, not '-0'"),
        ("-0/255", "must be >= 0, not '-0/255'"),  # zero to Fraction, which has no -0
        ("-0.0", "must be >= 0"),
        (-0.0, "must be >= 0, not -0"),
        ("-8/255", "must be >= 0"),
    ],
)
def test_parse_eps_refuses_other_digits_and_negative_zero(text, words):
    with pytest.raises(InputError, match=words) as info:
        parse_eps(text, "eps")
    assert "\n" not in str(info.value)
    assert parse_eps("+8/255") == parse_eps("8/255") == float(Fraction(8, 255)) and parse_eps("0") == 0.0


def test_attacks_refuse_bad_budgets_and_inputs(trained):
    model, x, y = trained
    with pytest.raises(InputError, match="0..255"):
        pgd(model, x, y, eps=8, step_size=2 / 255, steps=1)
    with pytest.raises(InputError, match="0..255"):
        autoattack(model, x, y, eps=8)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        pgd(model, x * 255, y, eps=0.01, step_size=0.01, steps=1)
    with pytest.raises(InputError, match="labels"):
        pgd(model, x, y[:-1], eps=0.01, step_size=0.01, steps=1)
    with pytest.raises(InputError, match="integer"):
        pgd(model, x, y.float(), eps=0.01, step_size=0.01, steps=1)
    with pytest.raises(InputError, match="class indices"):
        pgd(model, x, y + 4, eps=0.01, step_size=0.01, steps=1)
    with pytest.raises(InputError, match="loss"):
        pgd(model, x, y, eps=0.01, step_size=0.01, steps=1, loss="mse")
    with pytest.raises(InputError, match="NaN"):
        pgd(model, torch.full_like(x, float("nan")), y, eps=0.01, step_size=0.01, steps=1)
    with pytest.raises(InputError, match="restarts"):
        PGDConfig(restarts=0)
    with pytest.raises(InputError, match="version"):
        autoattack(model, x, y, eps=0.01, version="plus")


# ---------------------------------------------------------------------------------------------
# PGD
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["ce", "cw"])
@pytest.mark.parametrize("random_start", [True, False])
def test_pgd_matches_exact_linear_worst_case(linear, loss, random_start):
    model, x, y, expected, eps = linear
    assert 0.4 <= expected.mean() <= 0.6  # the problem is not trivial
    x_adv = pgd(
        model, x, y, eps=eps, step_size=eps / 4, steps=20, loss=loss, random_start=random_start, generator=0
    )
    assert_in_ball(x_adv, x, eps)
    robust = (predictions(model, x) == y) & (predictions(model, x_adv) == y)
    np.testing.assert_array_equal(robust.numpy(), expected)


def test_pgd_reaches_the_clipped_corner_on_robust_linear_examples(linear):
    """For a linear margin, the loss-maximising point is the clipped corner itself."""
    model, x, y, expected, eps = linear
    x_adv = pgd(model, x, y, eps=eps, step_size=eps / 4, steps=20, loss="cw", generator=0)
    weight = model.linear.weight.detach().double().numpy()
    for i in np.flatnonzero(expected):
        a = weight[y[i]] - weight[1 - y[i]]
        corner = np.clip(x[i].double().numpy().ravel() - eps * np.sign(a), 0, 1)
        np.testing.assert_allclose(x_adv[i].double().numpy().ravel(), corner, atol=1e-6)


def test_robust_accuracy_counts_match_the_closed_form(linear):
    model, x, y, expected, eps = linear
    config = PGDConfig(eps=eps, step_size=eps / 4, steps=20, loss="cw")
    assert robust_accuracy(model, (x, y), config, batch_size=10, generator=0) == (int(expected.sum()), len(y))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=7)
    assert robust_accuracy(model, loader, config, generator=0) == (int(expected.sum()), len(y))
    clean = int((predictions(model, x) == y).sum())
    assert robust_accuracy(model, (x, y)) == (clean, len(y))
    assert robust_accuracy(model, (x, y), config, max_examples=20, batch_size=8, generator=0) == (
        int(expected[:20].sum()),
        20,
    )

    def result_attack(model, images, labels):
        return config.run(model, images, labels, generator=0)

    assert robust_accuracy(model, (x, y), result_attack) == (int(expected.sum()), len(y))
    with pytest.raises(InputError, match="no images"):
        robust_accuracy(model, [])


@pytest.mark.parametrize("loss", ["ce", "cw"])
def test_pgd_beats_random_noise_of_the_same_budget(trained, loss):
    model, x, y = trained
    eps = 0.03
    generator = torch.Generator().manual_seed(5)
    signs = torch.randint(0, 2, x.shape, generator=generator).float() * 2 - 1
    noise_accuracy = float((predictions(model, (x + eps * signs).clamp(0, 1)) == y).float().mean())
    x_adv = pgd(model, x, y, eps=eps, step_size=eps / 4, steps=20, loss=loss, generator=0)
    assert_in_ball(x_adv, x, eps)
    pgd_accuracy = float((predictions(model, x_adv) == y).float().mean())
    assert noise_accuracy >= 0.9
    assert pgd_accuracy <= noise_accuracy - 0.3


def test_pgd_seeds_reproduce_and_differ(trained):
    model, x, y = trained
    kwargs = dict(eps=0.02, step_size=0.005, steps=3)
    first = pgd(model, x, y, generator=123, **kwargs)
    assert torch.equal(first, pgd(model, x, y, generator=123, **kwargs))
    assert torch.equal(first, pgd(model, x, y, generator=torch.Generator().manual_seed(123), **kwargs))
    assert not torch.equal(first, pgd(model, x, y, generator=124, **kwargs))
    torch.manual_seed(7)
    global_first = pgd(model, x, y, **kwargs)
    torch.manual_seed(7)
    assert torch.equal(global_first, pgd(model, x, y, **kwargs))


def test_pgd_eps_zero_returns_the_input(trained):
    model, x, y = trained
    x_adv = pgd(model, x, y, eps=0, step_size=0.01, steps=5)
    assert torch.equal(x_adv, x) and x_adv.data_ptr() != x.data_ptr()


def test_pgd_stays_in_ball_at_the_image_edges(trained):
    model, _, y = trained
    generator = torch.Generator().manual_seed(2)
    x = torch.rand(64, 3, 8, 8, generator=generator)
    x[:, 0] = 0.0
    x[:, 1] = 1.0
    x[:, 2, :4] = 1e-3
    for eps in (1 / 255, 8 / 255, 0.3):
        assert_in_ball(pgd(model, x, y, eps=eps, step_size=eps / 2, steps=5, restarts=2, generator=1), x, eps)


def test_restarts_only_improve_and_keep_the_first_success(trained):
    model, x, y = trained
    eps = 0.025
    one = pgd(model, x, y, eps=eps, step_size=eps / 4, steps=2, restarts=1, generator=9)
    five = pgd(model, x, y, eps=eps, step_size=eps / 4, steps=2, restarts=5, generator=9)
    fooled_one = predictions(model, one) != y
    fooled_five = predictions(model, five) != y
    assert bool((fooled_five | ~fooled_one).all())  # every image fooled by one restart stays fooled
    assert int(fooled_five.sum()) > int(fooled_one.sum())  # and later restarts find more
    assert torch.equal(five[fooled_one], one[fooled_one])  # the first success is what is kept


def test_an_adversarial_iterate_is_kept_even_if_later_steps_lose_it(trained):
    """With one seed, a j-step run is a prefix of a k-step run: what it fooled must stay fooled, unchanged."""
    model, x, y = trained
    eps = 0.03
    kwargs = dict(eps=eps, step_size=eps, loss="ce", generator=4)  # huge steps: the path oscillates
    short = pgd(model, x, y, steps=2, **kwargs)
    long = pgd(model, x, y, steps=12, **kwargs)
    fooled_short = predictions(model, short) != y
    assert int(fooled_short.sum()) > 0
    assert bool((predictions(model, long)[fooled_short] != y[fooled_short]).all())
    assert torch.equal(long[fooled_short], short[fooled_short])


def test_unfooled_examples_keep_at_least_the_clean_loss(trained):
    model, x, y = trained
    x_adv = pgd(model, x, y, eps=0.01, step_size=0.0025, steps=5, loss="cw", generator=0)
    robust = predictions(model, x_adv) == y
    with torch.no_grad():
        assert bool((margin_loss(model(x_adv), y)[robust] >= margin_loss(model(x), y)[robust] - 1e-6).all())


def test_clean_misclassified_images_are_returned_unchanged(linear):
    model, x, y, _, eps = linear
    wrong = predictions(model, x) != y
    assert int(wrong.sum()) > 0
    x_adv = pgd(model, x, y, eps=eps, step_size=eps / 4, steps=5, generator=0)
    assert torch.equal(x_adv[wrong], x[wrong])


def test_pgd_takes_no_parameter_gradients_and_keeps_the_mode(trained):
    model, x, y = trained
    for parameter in model.parameters():
        assert parameter.grad is None
    with torch.no_grad():  # the attack still differentiates w.r.t. the input
        x_adv = pgd(model, x, y, eps=0.03, step_size=0.01, steps=3, generator=0)
    assert not torch.equal(x_adv, x)
    assert all(parameter.grad is None for parameter in model.parameters())
    assert not model.training
    model.train()
    try:
        with pytest.warns(UserWarning, match="training mode"):
            pgd(model, x, y, eps=0.03, step_size=0.01, steps=1, generator=0)
        assert model.training
    finally:
        model.eval()


def test_gradient_attacks_refuse_inference_mode_with_a_sentence(trained):
    model, x, y = trained
    with torch.inference_mode():
        with pytest.raises(InputError, match="inference_mode"):
            pgd(model, x, y, eps=0.03, step_size=0.01, steps=1)
        with pytest.raises(InputError, match="inference_mode"):
            autoattack(model, x, y, eps=0.03)
        with pytest.raises(InputError, match="inference_mode"):
            gradient_masking_check(model, x, y, eps=0.03)


def test_pgd_never_returns_nan_for_a_nan_model(trained):
    model, x, y = trained

    def nan_model(images):
        return model(images) * float("nan")

    x_adv = pgd(nan_model, x, y, eps=0.03, step_size=0.01, steps=3, generator=0)
    assert_in_ball(x_adv, x, 0.03)


def test_pgd_config_records_exact_settings_and_runs(trained):
    model, x, y = trained
    config = PGDConfig(eps="8/255", step_size="2/255", steps=10, loss="cw", restarts=2)
    record = config.to_dict()
    assert record["eps"] == 8 / 255 and record["eps_255"] == 8.0 and record["step_size_255"] == 2.0
    assert record["name"] == config.name == "pgd-10-cw-r2"
    assert PGDConfig().name == "pgd-20-ce" and PGDConfig().eps == 8 / 255
    json.dumps(record)
    result = config.run(model, x, y, generator=0)
    assert isinstance(result, AttackResult) and result.name == "pgd-10-cw-r2"
    assert torch.equal(result.x_adv, config(model, x, y, generator=0))
    expected_robust = (predictions(model, x) == y) & (predictions(model, result.x_adv) == y)
    assert torch.equal(result.robust_correct, expected_robust)
    summary = result.to_dict()
    assert summary["robust_correct"] == int(expected_robust.sum()) and summary["total"] == len(y)
    json.dumps(summary)


def test_bass_front_end_to_end_attack(natural_crops):
    """The end-to-end threat model: eps on raw pixels, gradients through the straight-through BaSS."""
    from freqtail.images import uint8_to_float
    from freqtail.models import FreqtailModel, bass_front

    x = uint8_to_float(natural_crops(16, per_photo=2, seed=4))
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 5))
    model = FreqtailModel(backbone, front=bass_front(round_mode="straight-through")).eval()
    y = predictions(model, x)
    probe = x.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(nn.functional.cross_entropy(model(probe), y), probe)
    assert bool((gradient.flatten(1).abs().amax(dim=1) > 0).all())
    eps = 2 / 255
    x_adv = pgd(model, x, y, eps=eps, step_size=eps / 4, steps=10, generator=0)
    assert_in_ball(x_adv, x, eps)  # the RAW perturbation is within eps
    with torch.no_grad():
        assert float(margin_loss(model(x_adv), y).mean()) > float(margin_loss(model(x), y).mean())


# ---------------------------------------------------------------------------------------------
# AutoAttack
# ---------------------------------------------------------------------------------------------


def test_autoattack_fast_is_labelled_and_no_weaker_than_pgd(trained):
    model, x, y = trained
    x, y, eps = x[:16], y[:16], 0.02
    result = autoattack(model, x, y, eps=eps, version="fast", seed=0)
    assert result.name == "autoattack-fast" and result.params["name"] == "autoattack-fast"
    assert result.params["attacks"] == ["apgd-ce", "apgd-t"]
    assert result.params["package"] == "pyautoattack 0.2.0"
    assert result.params["target_classes"] == 3
    assert_in_ball(result.x_adv, x, eps)
    robust = (predictions(model, x) == y) & (predictions(model, result.x_adv) == y)
    assert torch.equal(result.robust_correct, robust)
    x_pgd = pgd(model, x, y, eps=eps, step_size=eps / 4, steps=20, generator=0)
    pgd_accuracy = float((predictions(model, x_pgd) == y).float().mean())
    assert pgd_accuracy < 1.0  # the comparison is not vacuous
    assert result.robust_accuracy <= pgd_accuracy + 1 / 16  # tolerance: one image of 16
    again = autoattack(model, x, y, eps=eps, version="fast", seed=0)
    assert torch.equal(again.x_adv, result.x_adv)


@pytest.mark.slow
def test_autoattack_standard_runs_all_four_attacks(trained, tmp_path):
    model, x, y = trained
    x, y, eps = x[:8], y[:8], 0.02
    log = tmp_path / "aa.log"
    state = torch.random.get_rng_state()
    messages: list[str] = []
    result = autoattack(model, x, y, eps=eps, log_path=log, on_message=messages.append)
    assert torch.equal(torch.random.get_rng_state(), state)  # the package's reseeding is undone
    # the console's view (on_message): the batch, each attack of the ensemble as it starts, in order,
    # and the robust accuracy after it; the same lines as the log's
    assert messages[0] == f"autoattack-standard: batch 1/1 (8 images), eps {eps:.6f}"
    started = [m.removeprefix("running ") for m in messages if m.startswith("running ")]
    assert started == ["apgd-ce", "apgd-t", "fab-t", "square"][: len(started)] and started
    assert any(m.startswith("robust accuracy after APGD-CE: ") for m in messages)
    assert all(m in log.read_text() for m in messages)
    assert result.name == "autoattack-standard"
    assert result.params["attacks"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert_in_ball(result.x_adv, x, eps)
    text = log.read_text()
    assert "robust accuracy after APGD-CE" in text and "SQUARE" in text
    x_pgd = pgd(model, x, y, eps=eps, step_size=eps / 4, steps=20, generator=0)
    assert result.robust_accuracy <= float((predictions(model, x_pgd) == y).float().mean()) + 1 / 8


def test_autoattack_keeps_the_package_sanity_checks_visible(trained, tmp_path):
    model, x, y = trained
    probabilities = nn.Sequential(model, nn.Softmax(dim=1)).eval()
    log = tmp_path / "checks.log"
    with pytest.warns(AutoAttackWarning, match="probability distribution"):
        result = autoattack(probabilities, x[:4], y[:4], eps=0.01, version="fast", log_path=log)
    assert any("probability distribution" in message for message in result.check_warnings)
    assert "probability distribution" in log.read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("error", AutoAttackWarning)
        assert autoattack(model, x[:4], y[:4], eps=0.01, version="fast").check_warnings == []


def test_autoattack_resumes_from_saved_batches(trained, tmp_path):
    model, x, y = trained
    x, y, eps = x[:12], y[:12], 0.02
    calls = {"count": 0}

    class Counting(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, images):
            calls["count"] += 1
            return self.inner(images)

    counting = Counting().eval()
    state = tmp_path / "state"
    full = autoattack(counting, x, y, eps=eps, version="fast", batch_size=4, state_path=state)
    full_calls = calls["count"]
    saved = sorted(path.name for path in state.glob("batch-*.npy"))
    assert saved == ["batch-00000.npy", "batch-00001.npy", "batch-00002.npy"]
    (state / "batch-00001.npy").unlink()  # as if interrupted during the second batch
    calls["count"] = 0
    resumed = autoattack(counting, x, y, eps=eps, version="fast", batch_size=4, state_path=state)
    assert torch.equal(resumed.x_adv, full.x_adv)
    assert torch.equal(resumed.robust_correct, full.robust_correct)
    assert 0 < calls["count"] < full_calls
    plain = autoattack(model, x, y, eps=eps, version="fast", batch_size=4)
    assert torch.equal(plain.x_adv, full.x_adv)
    with pytest.raises(InputError, match="belongs to other images or settings"):
        autoattack(model, x, y, eps=0.03, version="fast", batch_size=4, state_path=state)


def test_autoattack_refuses_too_few_classes(linear):
    model, x, y, _, _ = linear
    with pytest.raises(InputError, match="at least 4 classes"):
        autoattack(model, x, y, eps=0.01)


def test_autoattack_eps_zero_returns_the_input(trained):
    model, x, y = trained
    result = autoattack(model, x[:4], y[:4], eps=0.0)
    assert torch.equal(result.x_adv, x[:4]) and result.name == "autoattack-standard"


# ---------------------------------------------------------------------------------------------
# Gradient-masking check
# ---------------------------------------------------------------------------------------------


def masking_problem(quantise: bool):
    """Linear 2-class images whose exact worst case at eps 8/255 fools about half; optional masking.

    The margin is ``a . (x - 0.5)``: images are 0.5 plus small noise, moved along ``sign(a)`` to
    clean margins spread from 0.3 to 1.7 times the worst-case drop ``eps * |a|_1``.
    """
    eps = 8 / 255
    rng = np.random.default_rng(11)
    d = int(np.prod(SHAPE))
    weight = rng.normal(0, 0.15, size=(2, d))
    a = weight[0] - weight[1]
    c = -0.5 * a.sum()
    budget = eps * np.abs(a).sum()  # margin drop of the exact worst case (no clipping: x in [0.25, 0.75])
    xs = []
    for target in np.linspace(0.3, 1.7, 24) * budget:
        x = 0.5 + rng.uniform(-0.15, 0.15, size=d)
        x = x + (target - (a @ x + c)) / np.abs(a).sum() * np.sign(a)
        assert x.min() >= 0.25 and x.max() <= 0.75
        xs.append(x)
    x = torch.tensor(np.stack(xs), dtype=torch.float32).reshape(-1, *SHAPE)
    bias = np.array([c / 2, -c / 2], np.float32)
    model = LinearClassifier(weight.astype(np.float32), bias, quantise=quantise).eval()
    y = torch.zeros(len(xs), dtype=torch.long)
    # Independent expectations: everything is correct clean; about half fall at eps; all at eps 0.5.
    margins = x.flatten(1).double().numpy() @ a + c
    assert (margins > 0).all() and 8 <= int((margins < budget).sum()) <= 16
    assert (margins - 0.25 * np.abs(a).sum() < 0).all()  # at eps 0.5 clipping leaves >= 0.25 per pixel
    return model, x, y, eps


#: The masking problem has 24 images; the tests lower the verdict's minimum to fit it.
JUDGE_24 = {"min_judged": 20}


def test_masking_check_does_not_flag_an_honest_linear_model():
    model, x, y, eps = masking_problem(quantise=False)
    report = gradient_masking_check(model, x, y, eps=eps, square_queries=300, large_eps_steps=20, **JUDGE_24)
    assert not report.masked and report.flags == [] and report.state == "no-sign"
    assert report.considered == 24 and report.square_only == [] and report.zero_gradient == 0
    assert report.large_eps_still_correct == 0
    assert 8 <= report.pgd_fooled <= 16
    assert report.summary.startswith("No sign of gradient masking on 24 correctly classified of 24")
    json.dumps(report.to_dict())


def test_masking_check_flags_a_quantised_zero_gradient_model():
    model, x, y, eps = masking_problem(quantise=True)
    report = gradient_masking_check(model, x, y, eps=eps, square_queries=300, large_eps_steps=20, **JUDGE_24)
    assert report.masked and report.state == "possible-masking"
    assert FLAG_SQUARE in report.flags and FLAG_ZERO_GRADIENT in report.flags
    assert report.zero_gradient == 24
    assert len(report.square_only) > report.allowed_count
    assert report.pgd_fooled < report.square_fooled
    assert report.summary.startswith("Possible gradient masking")
    assert "PGD misses" in report.summary
    assert report.to_dict()["masked"] is True
    # Without a BaSS front the advice is generic: no straight-through, no end-to-end.
    assert "straight-through" not in report.summary and "end-to-end" not in report.summary
    assert "AutoAttack standard" in report.summary
    fronted = gradient_masking_check(
        model, x, y, eps=eps, square_queries=300, large_eps_steps=20, bass_front=True, **JUDGE_24
    )
    assert fronted.masked and fronted.flags == report.flags
    assert "BaSS front" in fronted.summary and "end-to-end with differentiable" in fronted.summary
    assert "straight-through" in fronted.summary


def test_masking_check_on_too_few_images_gives_no_verdict():
    """The quantised model masks gradients, but 24 judged images (minimum 50) are too few to say so."""
    model, x, y, eps = masking_problem(quantise=True)
    report = gradient_masking_check(model, x, y, eps=eps, square_queries=300, large_eps_steps=20)
    assert report.state == "too-few-images" and report.minimum == 50 and report.considered == 24
    assert not report.masked and not report.judged and report.flags == []
    assert report.pgd_fooled is None and report.square_only is None  # the probes did not run
    assert report.summary.startswith("Too few images to judge: 24 correctly classified of 24 checked")
    assert "at least 50" in report.summary and "masking" not in report.summary.lower()
    json.dumps(report.to_dict())
    # Wrong predictions do not count: half the labels flipped leaves 12 judged of 24.
    flipped = y.clone()
    flipped[::2] = 1
    few = gradient_masking_check(
        model, x, flipped, eps=eps, square_queries=10, large_eps_steps=2, min_judged=13
    )
    assert few.considered == 12 and few.total == 24 and few.state == "too-few-images"


def test_masking_check_shows_progress_over_its_three_probes(monkeypatch):
    """On a terminal a bar over the three probes (elsewhere lines, freqtail.progress)."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    model, x, y, eps = masking_problem(quantise=False)
    gradient_masking_check(
        model, x, y, eps=eps, square_queries=20, large_eps_steps=2, progress=True, **JUDGE_24
    )
    err = terminal.getvalue()
    assert "gradient-masking check" in err and "3/3" in err


def test_masking_check_large_eps_probe_flags_a_model_that_never_changes_its_mind():
    """A model whose gradient exists but is useless far from x: constant prediction beyond a tiny ball."""
    _, x, y, eps = masking_problem(quantise=False)

    def saturated(images):
        small = 1e-3 * images.flatten(1).sum(dim=1)
        return torch.stack([5.0 + small, torch.full_like(small, -5.0)], dim=1)

    report = gradient_masking_check(
        saturated, x, y, eps=eps, square_queries=50, large_eps_steps=10, **JUDGE_24
    )
    assert FLAG_LARGE_EPS in report.flags
    assert report.large_eps_still_correct == 24


def test_masking_check_validates_options():
    model, x, y, eps = masking_problem(quantise=False)
    with pytest.raises(FreqtailError, match="larger than eps"):
        gradient_masking_check(model, x, y, eps=0.1, large_eps=0.05)
    with pytest.raises(FreqtailError, match="fraction"):
        gradient_masking_check(model, x, y, eps=eps, tolerance=2)
    with pytest.raises(FreqtailError, match="minimum number of judged images"):
        gradient_masking_check(model, x, y, eps=eps, min_judged=0)
    assert math.isclose(check_eps(0.5), 0.5)


# ---------------------------------------------------------------------------------------------
# Band-restricted PGD
# ---------------------------------------------------------------------------------------------


def plain_band_mask(h: int, w: int, boundary: int, band: str) -> np.ndarray:
    """(H, W) 0/1 mask on the centred spectrum, written from the definition: band = floor(distance to
    (H // 2, W // 2)); lfc keeps bands < boundary, hfc the rest."""
    du = np.arange(h)[:, None] - h // 2
    dv = np.arange(w)[None, :] - w // 2
    bands = np.floor(np.sqrt(du**2 + dv**2) + 1e-9).astype(int)  # exact: d2 is an integer, far from .999
    keep = bands < boundary
    return (keep if band == "lfc" else ~keep).astype(np.float64)


def plain_projection(delta: np.ndarray, boundary: int, band: str) -> np.ndarray:
    """float64 numpy P_band of (..., H, W): mask the centred spectrum of every channel, invert."""
    h, w = delta.shape[-2:]
    spectrum = np.fft.fftshift(np.fft.fft2(delta), axes=(-2, -1))
    masked = spectrum * plain_band_mask(h, w, boundary, band)
    return np.real(np.fft.ifft2(np.fft.ifftshift(masked, axes=(-2, -1))))


def out_of_band_energy(delta: np.ndarray, boundary: int, band: str) -> np.ndarray:
    """Per image (N,): energy of (N, C, H, W) ``delta`` outside the band (the other band's projection)."""
    other = "hfc" if band == "lfc" else "lfc"
    return (plain_projection(delta, boundary, other) ** 2).reshape(len(delta), -1).sum(axis=1)


@pytest.mark.parametrize("size", [(8, 8), (7, 9), (6, 5)])
@pytest.mark.parametrize("band", ["lfc", "hfc"])
def test_band_projection_is_the_plain_fft_mask(size, band):
    from freqtail.attacks import band_projection
    from freqtail.spectrum import num_bands

    generator = torch.Generator().manual_seed(1)
    delta = torch.randn(2, 3, *size, generator=generator, dtype=torch.float64)
    for boundary in range(num_bands(*size) + 1):
        projected = band_projection(delta, boundary, band)
        assert projected.shape == delta.shape and projected.dtype == delta.dtype
        expected = plain_projection(delta.numpy(), boundary, band)
        np.testing.assert_allclose(projected.numpy(), expected, atol=1e-12)
        # An orthogonal projection: idempotent, and the two bands add up to the identity.
        np.testing.assert_allclose(band_projection(projected, boundary, band).numpy(), expected, atol=1e-12)
        other = "hfc" if band == "lfc" else "lfc"
        total = projected + band_projection(delta, boundary, other)
        np.testing.assert_allclose(total.numpy(), delta.numpy(), atol=1e-12)


def test_band_pgd_at_the_extreme_boundaries_is_plain_pgd_or_no_perturbation(trained):
    """3x8x8 images: K = floor(hypot(4, 4)) = 5, bands 0..5, so b = 6 = K + 1 is past the last band.
    b = 0: HFC keeps every band (plain PGD), LFC none (the clean images); b = K + 1: the reverse."""
    from freqtail.attacks import band_pgd, band_projection

    model, x, y = trained
    settings = {"eps": 8 / 255, "step_size": 2 / 255, "steps": 10, "generator": 0}
    plain = pgd(model, x, y, **settings)
    assert not torch.equal(plain, x)
    for band, boundary in (("hfc", 0), ("lfc", 6)):
        assert torch.equal(band_pgd(model, x, y, boundary_band=boundary, band=band, **settings), plain)
        # The identity is what the FFT mask gives too (to float error).
        torch.testing.assert_close(band_projection(x - 0.5, boundary, band), x - 0.5)
        from freqtail.spectrum import high_pass, low_pass

        mask_path = (high_pass if band == "hfc" else low_pass)(x - 0.5, boundary)
        torch.testing.assert_close(mask_path, x - 0.5, atol=1e-6, rtol=0)
    for band, boundary in (("lfc", 0), ("hfc", 6)):
        assert torch.equal(band_pgd(model, x, y, boundary_band=boundary, band=band, **settings), x)


@pytest.mark.parametrize("band", ["lfc", "hfc"])
def test_band_pgd_without_clamping_stays_in_the_band(trained, band):
    """Far from 0 and 1 and with a budget the steps cannot reach, no clamp binds: delta = P_band(...).

    Why no clamp binds: with P the band projection of an H x W channel keeping m of its H * W
    frequencies, |(P s)_i| <= ||row i of P||_2 ||s||_2 = sqrt(m / (H W)) * sqrt(H W) = sqrt(m) for any
    sign vector s; without a random start delta_t = alpha * P(s_1 + ... + s_t), so
    |delta_t| <= t * alpha * sqrt(m) <= 3 * (1/255) * sqrt(64) = 0.094 < eps = 0.1, and the images of
    ``trained`` lie within [0.1, 0.9], so x + delta stays inside (0, 1).
    """
    from freqtail.attacks import band_pgd

    model, x, y = trained
    assert float(x.min()) > 0.1 and float(x.max()) < 0.9
    eps, boundary = 0.1, 3
    x_adv = band_pgd(
        model,
        x,
        y,
        eps=eps,
        step_size=1 / 255,
        steps=3,
        boundary_band=boundary,
        band=band,
        random_start=False,
    )
    delta = (x_adv - x).double().numpy()
    assert np.abs(delta).max() < 3 * 8 / 255 + 1e-6  # the bound above
    energy = (delta**2).reshape(len(delta), -1).sum(axis=1)
    moved = energy > 0
    assert moved.sum() >= len(delta) // 2  # the attack did perturb most images
    # Outside the band: only the float32 rounding of x + delta (measured: 3e-12 of the energy at most).
    assert (out_of_band_energy(delta, boundary, band)[moved] <= 1e-9 * energy[moved]).all()


def linear_band_problem(n: int = 24, seed: int = 5):
    """2-class linear model on 3x8x8 images with pixels at 0 and 1, every image correctly classified.

    For two classes the input gradient of the cross-entropy is ``p_other * (w_other - w_true)``, so
    PGD's step direction is the constant ``sign(w_other - w_true)``; the iteration can then be replayed
    exactly in float64 without the model.
    """
    rng = np.random.default_rng(seed)
    d = 3 * 8 * 8
    weight = rng.normal(0, 0.05, size=(2, d)).astype(np.float32)
    bias = np.zeros(2, dtype=np.float32)
    xs, ys = [], []
    while len(xs) < n:
        x = rng.uniform(0, 1, size=d)
        edge = rng.random(d)
        x[edge < 0.2] = 0.0
        x[edge > 0.8] = 1.0
        y = int(rng.integers(0, 2))
        if (weight[y] - weight[1 - y]) @ x > 0.2:  # clean margin: correct, and never saturated
            xs.append(x)
            ys.append(y)
    model = LinearClassifier(weight, bias).eval()
    images = torch.tensor(np.stack(xs), dtype=torch.float32).reshape(n, 3, 8, 8)
    return model, images, torch.tensor(ys), weight.astype(np.float64)


@pytest.mark.parametrize("band", ["lfc", "hfc"])
def test_band_pgd_follows_the_documented_iteration_and_cuts_only_what_the_clamps_remove(band):
    """The returned perturbation is one iterate of the documented iteration (replayed in float64):

        delta_0 = C(P(u)),  delta_{t+1} = C(P(delta_t + alpha * sign(g))),
        C(p) = clip(x + clamp(p, -eps, eps), 0, 1) - x,

    and its energy outside the band is at most the energy the final clamps removed:
    ||P_out(delta)||^2 = ||P_out(delta - p)||^2 <= ||delta - p||^2, p = P(...) in the band."""
    from freqtail.attacks import band_pgd

    model, x, y, weight = linear_band_problem()
    eps, alpha, steps, boundary, seed = 0.05, 0.02, 6, 3, 7
    x_adv = band_pgd(
        model, x, y, eps=eps, step_size=alpha, steps=steps, boundary_band=boundary, band=band, generator=seed
    )
    assert_in_ball(x_adv, x, eps)
    delta = (x_adv - x).double().numpy()

    # Replay: the same uniform draw as the attack (float32, one draw for the whole batch).
    unit = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    u = ((unit * 2 - 1) * eps).double().numpy()
    x64 = x.double().numpy()
    labels = y.numpy()
    direction = np.sign(weight[1 - labels] - weight[labels]).reshape(x64.shape)

    def clamps(p):
        return np.clip(x64 + np.clip(p, -eps, eps), 0.0, 1.0) - x64

    iterates = [(np.zeros_like(x64), np.zeros_like(x64))]  # (delta, p): the clean image, p = 0
    p = plain_projection(u, boundary, band)
    iterates.append((clamps(p), p))
    for _ in range(steps):
        p = plain_projection(iterates[-1][0] + alpha * direction, boundary, band)
        iterates.append((clamps(p), p))

    ratios = []
    for i in range(len(x64)):
        errors = [np.abs(delta[i] - d[i]).max() for d, _ in iterates]
        t = int(np.argmin(errors))
        assert errors[t] < 1e-5, (i, min(errors))  # it is an iterate of the documented iteration
        replayed, p = iterates[t]
        removed = float(((replayed[i] - p[i]) ** 2).sum())
        outside = float(out_of_band_energy(delta[i : i + 1], boundary, band)[0])
        assert outside <= removed + 1e-9
        if removed > 0:
            ratios.append(outside / removed)
    # The clamps do bind here (pixels at 0 and 1, projected steps beyond eps), so the bound is tested.
    assert len(ratios) >= len(x64) // 2
    assert max(ratios) < 1.0


def test_band_pgd_config_records_the_band_and_the_iteration(trained):
    from freqtail.attacks import BAND_ITERATION, BandPGDConfig, band_pgd

    model, x, y = trained
    config = BandPGDConfig(band="lfc", boundary_band=3, eps="8/255", step_size="2/255", steps=5)
    record = config.to_dict()
    assert config.name == record["name"] == "pgd-5-ce-lfc" and config.bands == record["bands"] == "band<3"
    assert record["band"] == "lfc" and record["boundary_band"] == 3 and record["iteration"] == BAND_ITERATION
    assert record["eps_255"] == 8.0 and record["attack"] == "pgd"
    assert BandPGDConfig(band="hfc", boundary_band=7).bands == "band>=7"
    json.dumps(record)
    result = config.run(model, x, y, generator=0)
    direct = band_pgd(
        model, x, y, eps=8 / 255, step_size=2 / 255, steps=5, boundary_band=3, band="lfc", generator=0
    )
    assert torch.equal(result.x_adv, direct) and result.name == "pgd-5-ce-lfc"
    expected_robust = (predictions(model, x) == y) & (predictions(model, direct) == y)
    assert torch.equal(result.robust_correct, expected_robust)


def test_band_pgd_bad_input_is_one_sentence(trained):
    from freqtail.attacks import BandPGDConfig, band_pgd

    model, x, y = trained
    base = {"eps": 8 / 255, "step_size": 2 / 255, "steps": 2}
    for kwargs, words in (
        ({"band": "mid", "boundary_band": 3}, "must be one of lfc, hfc"),
        ({"band": "lfc", "boundary_band": 7}, "for 8x8 images must be an integer from 0 to 6, not 7"),
        ({"band": "hfc", "boundary_band": -1}, "from 0 to 6"),
        ({"band": "hfc", "boundary_band": 2.5}, "from 0 to 6"),
    ):
        with pytest.raises(InputError) as err:
            band_pgd(model, x, y, **base, **kwargs)
        assert words in str(err.value) and str(err.value).count(". ") == 0
    with pytest.raises(InputError):
        BandPGDConfig(band="low", boundary_band=3)
    with pytest.raises(InputError):
        band_pgd(model, x, y, eps=8, step_size=2 / 255, steps=2, band="lfc", boundary_band=3)


# ---------------------------------------------------------------------------------------------
# Fooled images leave the batch (drop_fooled)
# ---------------------------------------------------------------------------------------------


class PerImage(nn.Module):
    """Runs ``net`` on one image at a time: each image's logits and gradient are the same bits in
    any batch by construction (no kernel sees two images), so the shortcut must change no bit."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.net(image[None]) for image in x])


def batch_sizes_of(model: nn.Module) -> tuple[list[int], object]:
    """A list that records the batch size of every forward call of ``model``, and the hook's handle."""
    sizes: list[int] = []
    handle = model.register_forward_pre_hook(lambda _module, inputs: sizes.append(int(inputs[0].shape[0])))
    return sizes, handle


@pytest.fixture(scope="module")
def fooled_at_different_steps(trained):
    """The trained MLP run image by image, and its 64 images with 4 labels made wrong (clean-fooled)."""
    net, x, y = trained
    y = y.clone()
    y[:4] = (y[:4] + 1) % 4
    return PerImage(net).eval(), x, y


SHORTCUT = {"eps": 0.03, "step_size": 0.03 / 4, "steps": 8}


@pytest.mark.parametrize("loss", ["ce", "cw"])
def test_dropping_fooled_images_changes_no_result(fooled_at_different_steps, loss):
    model, x, y = fooled_at_different_steps
    for restarts in (1, 3):
        settings = dict(SHORTCUT, loss=loss, restarts=restarts, generator=5)
        kept = pgd(model, x, y, drop_fooled=False, **settings)
        dropped = pgd(model, x, y, **settings)
        assert torch.equal(dropped, kept)
        fooled = int((predictions(model, kept) != y).sum())
        assert 4 < fooled < len(y)  # some fooled by the attack, some robust: both paths are used


def test_band_pgd_drops_fooled_images_without_changing_a_result(fooled_at_different_steps):
    from freqtail.attacks import band_pgd

    model, x, y = fooled_at_different_steps
    settings = dict(SHORTCUT, boundary_band=2, band="hfc", generator=2)
    kept = band_pgd(model, x, y, drop_fooled=False, **settings)
    assert torch.equal(band_pgd(model, x, y, **settings), kept)
    assert int((predictions(model, kept) != y).sum()) > 4


def test_fooled_images_really_leave_the_batch(fooled_at_different_steps):
    """Forward batch sizes with the shortcut: N (clean), then at step t the images no run of t - 1
    steps fooled (counted independently, from runs without the shortcut: a shorter run's fooled
    images are a longer run's fooled at the same step). Without it, every step sees all it began with."""
    model, x, y = fooled_at_different_steps
    n, steps = len(y), SHORTCUT["steps"]
    settings = dict(SHORTCUT, generator=5)
    clean_fooled = int((predictions(model, x) != y).sum())
    fooled_after = [
        int((predictions(model, pgd(model, x, y, drop_fooled=False, **dict(settings, steps=k))) != y).sum())
        for k in range(steps)
    ]
    sizes, handle = batch_sizes_of(model)
    try:
        pgd(model, x, y, **settings)
        dropped = list(sizes)
        sizes.clear()
        pgd(model, x, y, drop_fooled=False, **settings)
        kept = list(sizes)
    finally:
        handle.remove()
    assert dropped == [n, n - clean_fooled] + [n - f for f in fooled_after]
    assert len(set(dropped[1:])) >= 4  # images fooled at several different steps
    assert kept == [n] + [n - clean_fooled] * (steps + 1)
    assert sum(dropped) < sum(kept)


def test_a_model_in_training_mode_keeps_the_whole_batch(fooled_at_different_steps):
    model, x, y = fooled_at_different_steps
    sizes, handle = batch_sizes_of(model)
    model.train()
    try:
        with pytest.warns(UserWarning, match="training mode"):
            pgd(model, x, y, **SHORTCUT, generator=5)
    finally:
        model.eval()
        handle.remove()
    assert len(set(sizes[1:])) == 1 and len(sizes) == SHORTCUT["steps"] + 2


def test_dropping_fooled_images_keeps_small_cnn_bit_identical():
    """A real conv net with batch norm (eval mode), trained for 40 steps on 3x16x16 images near four
    prototypes (~0.5 s): the same bits either way, with images fooled at many different steps."""
    from freqtail.models import create_model

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    prototypes = 0.5 + 0.1 * torch.randn(4, 3, 16, 16, generator=generator)

    def sample(n: int):
        y = torch.randint(0, 4, (n,), generator=generator)
        return (prototypes[y] + (torch.rand(n, 3, 16, 16, generator=generator) - 0.5) * 0.6).clamp(0, 1), y

    model = create_model("small-cnn", 4, image_size=16, width=4)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        images, labels = sample(32)
        loss = nn.functional.cross_entropy(model(images), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    x, y = sample(32)
    settings = dict(eps=0.01, step_size=0.0025, steps=10, generator=0)
    sizes, handle = batch_sizes_of(model)
    try:
        dropped = pgd(model, x, y, **settings)
    finally:
        handle.remove()
    assert torch.equal(dropped, pgd(model, x, y, drop_fooled=False, **settings))
    assert len(set(sizes[1:])) >= 5  # images left the batch at several steps
    assert 0 < int((predictions(model, dropped) == y).sum()) < len(y)


def test_drop_fooled_must_be_a_bool(trained):
    from freqtail.attacks import band_pgd

    model, x, y = trained
    with pytest.raises(InputError, match="drop_fooled must be True or False"):
        pgd(model, x, y, eps=0.03, step_size=0.01, steps=1, drop_fooled=1)
    with pytest.raises(InputError, match="drop_fooled must be True or False"):
        band_pgd(model, x, y, eps=0.03, step_size=0.01, steps=1, boundary_band=2, band="hfc", drop_fooled=0)
