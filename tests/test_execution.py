"""Execution options (freqtail.models.execution): channels-last and torch.compile give eager float32's
numbers within the tolerances the module states, and the weights keep their plain owner and keys."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from freqtail.attacks import PGDConfig, robust_accuracy
from freqtail.errors import ConfigError
from freqtail.execution_options import as_execution_options
from freqtail.models import EAGER, ExecutionOptions, FreqtailModel, create_model, prepare_model

CHANNELS_LAST = ExecutionOptions(channels_last=True)
#: The tolerances freqtail.models.execution states (relative to the largest magnitude).
LOGITS_CHANNELS_LAST = 1e-5
LOGITS_COMPILED = 1e-4
GRADIENTS = 1e-4


def _model(name, **options):
    torch.manual_seed(0)
    return FreqtailModel(create_model(name, 10, **options), normalize="cifar10").eval()


@pytest.fixture(scope="module")
def photos():
    """64 natural 32x32 crops as float (N, 3, H, W) in [0, 1]."""
    from freqtail.sample_photos import photo_crops

    return torch.from_numpy(photo_crops(32, 4, seed=0)).permute(0, 3, 1, 2).float() / 255


def _logits_and_gradient(model, x, y):
    """Logits and the input gradient of the summed cross-entropy."""
    x = x.clone().requires_grad_(True)
    logits = model(x)
    (gradient,) = torch.autograd.grad(F.cross_entropy(logits.float(), y, reduction="sum"), x)
    return logits.detach(), gradient


def _relative(a, b):
    """max |a - b| over the largest |b|."""
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def _relative_l2(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


def test_options_are_checked_in_one_sentence():
    assert EAGER.eager and not CHANNELS_LAST.eager
    assert CHANNELS_LAST.to_dict() == {"channels_last": True, "compile": False}
    assert as_execution_options(None) is EAGER
    assert as_execution_options({"compile": True}) == ExecutionOptions(compile=True)
    with pytest.raises(ConfigError, match="channels_last must be true or false"):
        ExecutionOptions(channels_last="yes")
    with pytest.raises(ConfigError, match="Unknown execution option 'fast'"):
        as_execution_options({"fast": True})


def test_eager_options_leave_the_model_as_it_is():
    model = _model("small-cnn", width=4)
    assert prepare_model(model) is model
    assert prepare_model(model, EAGER) is model


@pytest.mark.parametrize("name, options", [("small-cnn", {"width": 8}), ("resnet18", {})])
def test_channels_last_gives_eager_logits_and_input_gradients(photos, name, options):
    model = _model(name, **options)
    x = photos[:32]
    y = torch.arange(32) % 10
    logits, gradient = _logits_and_gradient(model, x, y)
    plain_state = {k: v.clone() for k, v in model.state_dict().items()}

    prepared = prepare_model(copy.deepcopy(model), CHANNELS_LAST)
    fast_logits, fast_gradient = _logits_and_gradient(prepared, x, y)

    conv = next(m for m in prepared.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    assert fast_gradient.shape == x.shape
    assert _relative(fast_logits, logits) <= LOGITS_CHANNELS_LAST
    if name == "small-cnn":
        assert _relative(fast_gradient, gradient) <= GRADIENTS
    else:
        # A deep network has ReLU inputs within float32 rounding of 0; which side they fall on
        # depends on the summation order, so float32 gradients differ from float64 locally whatever
        # the layout. Channels-last may add such flips, not more: its error against float64 stays
        # within 1.5 x eager float32's own (measured: 1.78e-3 and 1.73e-3 relative L2).
        exact = copy.deepcopy(model).double()
        _, exact_gradient = _logits_and_gradient(exact, x.double(), y)
        eager_error = _relative_l2(gradient, exact_gradient)
        assert _relative_l2(fast_gradient, exact_gradient) <= 1.5 * eager_error + 1e-6
    # The owner keeps its keys and values: a checkpoint loads into a plain model and back.
    assert prepared.state_dict().keys() == plain_state.keys()
    for key, value in prepared.state_dict().items():
        assert torch.equal(value, plain_state[key]), key
    plain = _model(name, **options)
    plain.load_state_dict(prepared.state_dict())
    prepared.load_state_dict(plain.state_dict())


@pytest.mark.parametrize(
    "name, options, images",
    [("small-cnn", {"width": 8}, 64), pytest.param("resnet18", {}, 16, marks=pytest.mark.slow)],
)
def test_channels_last_pgd20_counts_agree_with_eager(photos, name, options, images):
    # Labels are the model's own predictions, so clean accuracy is 100% and PGD-20 at 8/255 leaves a
    # part of them (small-cnn 43 of 64, resnet18 5 of 16; two PGD-20 runs of a ResNet-18 are the test's
    # whole cost): a count that could move. Sign steps may go apart where a gradient component is within
    # rounding of 0 (module docstring): one image allowed.
    x = photos[:images]
    model = _model(name, **options)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    attack = PGDConfig(eps=8 / 255, step_size=2 / 255, steps=20)
    correct, total = robust_accuracy(model, (x, y), attack, generator=0)
    prepared = prepare_model(copy.deepcopy(model), CHANNELS_LAST)
    fast_correct, fast_total = robust_accuracy(prepared, (x, y), attack, generator=0)
    assert total == fast_total == images
    assert 0 < correct < total
    assert abs(fast_correct - correct) <= 1


def test_prepared_model_follows_train_and_eval_and_wraps_its_runner():
    model = _model("small-cnn", width=4, norm="group")
    prepared = prepare_model(model, CHANNELS_LAST)
    assert not prepared.training
    prepared.train()
    assert model.training and all(m.training for m in model.modules())
    prepared.eval()
    assert not model.training
    seen = []
    hook = model.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )

    class Pairs(torch.nn.Module):  # a wrapper in DistributedDataParallel's place
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *xs):
            return tuple(self.inner(x) for x in xs)

    wrapped = prepare_model(model, CHANNELS_LAST, wrap=Pairs)
    first, second = wrapped(torch.rand(2, 3, 8, 8), torch.rand(3, 3, 8, 8))
    assert first.shape == (2, 10) and second.shape == (3, 10)
    assert seen == [True, True]  # the owner receives channels-last inputs through the wrapper
    hook.remove()
    assert prepare_model(model, EAGER, wrap=Pairs).inner is model


def test_a_failing_compiler_is_one_sentence():
    import torch._inductor.config as inductor

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten())
    prepared = prepare_model(model, ExecutionOptions(compile=True))
    with inductor.patch({"cpp.cxx": ("/nonexistent/c++",), "fx_graph_cache": False}):
        with pytest.raises(ConfigError, match=r"^torch\.compile could not compile the model \(") as err:
            prepared(torch.rand(2, 3, 8, 8))
    assert "\n" not in str(err.value) and str(err.value).endswith("leave out --compile).")


@pytest.mark.slow
def test_compiled_model_gives_eager_numbers_and_keeps_plain_keys(photos):
    model = _model("small-cnn", width=8)
    x, y = photos[:32], torch.arange(32) % 10
    logits, gradient = _logits_and_gradient(model, x, y)
    prepared = prepare_model(copy.deepcopy(model), ExecutionOptions(channels_last=True, compile=True))
    fast_logits, fast_gradient = _logits_and_gradient(prepared, x, y)
    assert _relative(fast_logits, logits) <= LOGITS_COMPILED
    assert _relative(fast_gradient, gradient) <= GRADIENTS
    with torch.no_grad():  # another batch size and no gradient: the same numbers
        assert _relative(prepared(x[:5]), logits[:5]) <= LOGITS_COMPILED
    keys = list(prepared.state_dict())
    assert keys == list(model.state_dict()) and not any("_orig_mod" in k for k in keys)
    with torch.no_grad():
        y_own = model(photos).argmax(dim=1)
    attack = PGDConfig(eps=8 / 255, step_size=2 / 255, steps=20)
    correct, _ = robust_accuracy(model, (photos, y_own), attack, generator=0)
    fast_correct, _ = robust_accuracy(prepared, (photos, y_own), attack, generator=0)
    assert 0 < correct < 64 and abs(fast_correct - correct) <= 1
