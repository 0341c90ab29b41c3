"""Tests for freqtail.models: registry, architectures (shapes, parameter counts), wrappers and specs.

Parameter counts are checked twice: against the counts published for each architecture (with a
small tolerance) and exactly against closed-form counts written here from the papers' layer lists.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch import nn

from freqtail.errors import ConfigError, InputError
from freqtail.models import (
    NORMALIZATIONS,
    FreqtailModel,
    Normalize,
    build_model_from_spec,
    count_parameters,
    create_model,
    model_entry,
    model_names,
    model_spec,
    register_model,
)

REQUIRED_NAMES = {
    "resnet18",
    "preact-resnet18",
    "wrn-34-10",
    "wrn-40-2",
    "resnext29-32x4d",
    "densenet-bc",
    "resnet50",
    "small-cnn",
}


@pytest.fixture(scope="module")
def cifar_models():
    """Each registered model built once for 10 classes (wrn-34-10 alone takes ~0.5 s to build)."""
    torch.manual_seed(0)
    return {name: create_model(name, 10).eval() for name in sorted(REQUIRED_NAMES)}


# ---- closed-form parameter counts, written from the architecture descriptions -------------------


def _conv(c_in, c_out, k=3, groups=1):
    return k * k * c_in * c_out // groups


def _bn(c):
    return 2 * c


def _fc(c_in, classes):
    return c_in * classes + classes


def _preact_count(stem_out, widths, blocks, classes, in_channels=3):
    """Pre-activation network (PreAct-ResNet, WRN): BN-ReLU-conv-BN-ReLU-conv blocks, 1x1 projections."""
    total = _conv(in_channels, stem_out)
    c_in = stem_out
    for index, width in enumerate(widths):
        for block in range(blocks):
            stride = 2 if (index > 0 and block == 0) else 1
            total += _bn(c_in) + _conv(c_in, width) + _bn(width) + _conv(width, width)
            if stride != 1 or c_in != width:
                total += _conv(c_in, width, k=1)
            c_in = width
    return total + _bn(c_in) + _fc(c_in, classes)


def _resnet18_cifar_count(classes):
    total = _conv(3, 64) + _bn(64)
    c_in = 64
    for index, width in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if (index > 0 and block == 0) else 1
            total += _conv(c_in, width) + _bn(width) + _conv(width, width) + _bn(width)
            if stride != 1 or c_in != width:
                total += _conv(c_in, width, k=1) + _bn(width)
            c_in = width
    return total + _fc(c_in, classes)


def _resnext29_count(classes, cardinality, base_width):
    total = _conv(3, 64) + _bn(64)
    c_in = 64
    for index, planes in enumerate((64, 128, 256)):
        inner = math.floor(planes * base_width / 64) * cardinality
        for block in range(3):
            stride = 2 if (index > 0 and block == 0) else 1
            total += _conv(c_in, inner, k=1) + _bn(inner)
            total += _conv(inner, inner, groups=cardinality) + _bn(inner)
            total += _conv(inner, 4 * planes, k=1) + _bn(4 * planes)
            if stride != 1 or c_in != 4 * planes:
                total += _conv(c_in, 4 * planes, k=1) + _bn(4 * planes)
            c_in = 4 * planes
    return total + _fc(c_in, classes)


def _densenet_bc_count(classes, depth=100, k=12):
    layers = (depth - 4) // 6
    c = 2 * k
    total = _conv(3, c)
    for block in range(3):
        for _ in range(layers):
            total += _bn(c) + _conv(c, 4 * k, k=1) + _bn(4 * k) + _conv(4 * k, k)
            c += k
        if block < 2:
            total += _bn(c) + _conv(c, c // 2, k=1)
            c //= 2
    return total + _bn(c) + _fc(c, classes)


def _small_cnn_count(classes, width=32, in_channels=3, norm="batch"):
    widths = (in_channels, width, 2 * width, 4 * width, 8 * width)
    # BatchNorm and GroupNorm both learn a scale and a shift per channel; without a norm the
    # convolutions have a bias (one per channel) instead
    convs = sum(
        _conv(a, b) + (b if norm == "none" else _bn(b)) for a, b in zip(widths[:-1], widths[1:], strict=True)
    )
    return convs + _fc(8 * width, classes)


CLOSED_FORM_COUNTS = {
    "resnet18": _resnet18_cifar_count(10),
    "preact-resnet18": _preact_count(64, (64, 128, 256, 512), 2, 10),
    "wrn-34-10": _preact_count(16, (160, 320, 640), 5, 10),
    "wrn-40-2": _preact_count(16, (32, 64, 128), 6, 10),
    "resnext29-32x4d": _resnext29_count(10, cardinality=4, base_width=32),
    "densenet-bc": _densenet_bc_count(10),
    "small-cnn": _small_cnn_count(10),
}

# Published counts (10 classes unless stated): ResNet-18 / PreAct-ResNet-18 CIFAR 11.17 M; WRN-34-10
# 46.16 M (TRADES/RobustBench); WRN-40-2 2.2 M (WRN paper; 2.24 M in AugMix's code); ResNeXt-29 in
# AugMix's code (cardinality 4, width 32) 6.8 M; DenseNet-BC-100-12 0.8 M (DenseNet paper, 0.769 M).
PUBLISHED_COUNTS_M = {
    "resnet18": (11.17, 0.005),
    "preact-resnet18": (11.17, 0.005),
    "wrn-34-10": (46.16, 0.005),
    "wrn-40-2": (2.24, 0.01),
    "resnext29-32x4d": (6.8, 0.01),
    "densenet-bc": (0.77, 0.01),
}


def test_registry_includes_the_required_names():
    assert REQUIRED_NAMES <= set(model_names())
    assert set(model_names()) <= set(model_names(include_aliases=True))


@pytest.mark.parametrize("name", sorted(CLOSED_FORM_COUNTS))
def test_parameter_count_matches_closed_form(cifar_models, name):
    assert count_parameters(cifar_models[name]) == CLOSED_FORM_COUNTS[name]


@pytest.mark.parametrize("name", sorted(PUBLISHED_COUNTS_M))
def test_parameter_count_matches_published(cifar_models, name):
    published, rel_tol = PUBLISHED_COUNTS_M[name]
    assert count_parameters(cifar_models[name]) / 1e6 == pytest.approx(published, rel=rel_tol)


def test_resnet50_imagenet_count_and_224_forward():
    model = create_model("resnet50", 1000, image_size=224).eval()
    # torchvision documents 25,557,032 parameters for ResNet-50.
    assert count_parameters(model) == 25_557_032
    assert model.conv1.kernel_size == (7, 7) and isinstance(model.maxpool, nn.MaxPool2d)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 224, 224)).shape == (1, 1000)


def test_resnet50_cifar_stem_for_small_images():
    small = create_model("resnet50", 10, image_size=32)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert isinstance(small.maxpool, nn.Identity)
    # Only the stem and the classifier differ from the ImageNet network.
    imagenet = create_model("resnet50", 10, image_size=224)
    assert count_parameters(imagenet) - count_parameters(small) == _conv(3, 64, k=7) - _conv(3, 64)
    assert create_model("resnet50", 10, image_size=64).conv1.kernel_size == (3, 3)
    assert create_model("resnet50", 10, image_size=32, stem="imagenet").conv1.kernel_size == (7, 7)


def _last_stage_size(model, stage, x):
    seen = []

    def record(module, inputs, output):
        seen.append(tuple(output.shape[-2:]))  # returns None: the output is left unchanged

    handle = stage.register_forward_hook(record)
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return seen[0]


def test_cifar_stems_keep_resolution(cifar_models):
    """A CIFAR stem has no stride or pooling: 32 px reaches the last stage at 32 / 2**(stages - 1)."""
    x = torch.rand(2, 3, 32, 32)
    assert _last_stage_size(cifar_models["resnet18"], cifar_models["resnet18"].layer4, x) == (4, 4)
    assert _last_stage_size(cifar_models["preact-resnet18"], cifar_models["preact-resnet18"].layer4, x) == (
        4,
        4,
    )
    assert _last_stage_size(cifar_models["wrn-40-2"], cifar_models["wrn-40-2"].block3, x) == (8, 8)
    assert _last_stage_size(cifar_models["resnext29-32x4d"], cifar_models["resnext29-32x4d"].stage3, x) == (
        8,
        8,
    )
    assert _last_stage_size(cifar_models["densenet-bc"], cifar_models["densenet-bc"].dense3, x) == (8, 8)


@pytest.mark.parametrize("name", sorted(REQUIRED_NAMES - {"wrn-34-10"}))
def test_output_shape_at_32(cifar_models, name):
    with torch.no_grad():
        logits = cifar_models[name](torch.rand(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()


@pytest.mark.slow
def test_wrn_34_10_forward_once(cifar_models):
    with torch.no_grad():
        logits = cifar_models["wrn-34-10"](torch.rand(1, 3, 32, 32))
    assert logits.shape == (1, 10) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ["resnet18", "preact-resnet18", "wrn-40-2", "small-cnn", "resnet50"])
def test_output_shape_at_64_tiny_imagenet(name):
    model = create_model(name, 200, image_size=64).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 64, 64)).shape == (2, 200)


def test_cifar_model_runs_at_224(cifar_models):
    with torch.no_grad():
        assert cifar_models["resnet18"](torch.rand(1, 3, 224, 224)).shape == (1, 10)


@pytest.mark.parametrize("name", ["small-cnn", "resnet18", "resnext29-32x4d", "densenet-bc"])
def test_grey_inputs(name):
    model = create_model(name, 3, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 32, 32)).shape == (2, 3)


def test_small_cnn_options_and_tiny_inputs():
    model = create_model("small-cnn", 5, width=8).eval()
    assert count_parameters(model) == _small_cnn_count(5, width=8)
    with torch.no_grad():  # odd and very small sizes still reach the classifier
        assert model(torch.rand(2, 3, 7, 5)).shape == (2, 5)


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_small_cnn_norm_option(norm):
    model = create_model("small-cnn", 5, width=4, norm=norm)
    assert count_parameters(model) == _small_cnn_count(5, width=4, norm=norm)
    kinds = {type(m) for m in model.modules()}
    assert (nn.BatchNorm2d in kinds) == (norm == "batch") and (nn.GroupNorm in kinds) == (norm == "group")
    assert model_entry("small-cnn").options == {"width": 32, "norm": "batch"}
    groups = [m.num_groups for m in model.modules() if isinstance(m, nn.GroupNorm)]
    assert groups == ([4, 8, 8, 8] if norm == "group" else [])  # gcd(channels, 8) for 4, 8, 16, 32


@pytest.mark.parametrize("norm", ["group", "none"])
def test_small_cnn_without_batchnorm_does_not_mix_images_of_a_batch(norm):
    torch.manual_seed(0)
    model = create_model("small-cnn", 5, width=4, norm=norm).train()  # training mode: no running stats
    x = torch.rand(6, 3, 32, 32)
    together = model(x)
    halves = torch.cat([model(x[:3]), model(x[3:])])
    torch.testing.assert_close(halves, together, rtol=0, atol=1e-5)
    batchnorm = create_model("small-cnn", 5, width=4).train()
    assert not torch.allclose(torch.cat([batchnorm(x[:3]), batchnorm(x[3:])]), batchnorm(x), atol=1e-3)


def test_small_cnn_bad_norm_is_a_config_error():
    with pytest.raises(ConfigError, match="small-cnn norm must be one of batch, group, none, not 'layer'"):
        create_model("small-cnn", 10, norm="layer")


def test_names_are_case_and_separator_insensitive_and_aliases_work():
    assert model_entry("WRN_34_10").name == "wrn-34-10"
    assert model_entry("PreActResNet18").name == "preact-resnet18"
    assert model_entry("densenet-bc-100-12").name == "densenet-bc"
    assert isinstance(create_model("ResNet-18", 10), type(create_model("resnet18", 10)))


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError) as info:
        create_model("resnet1000", 10)
    message = str(info.value)
    assert "resnet1000" in message
    assert all(name in message for name in REQUIRED_NAMES)


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="has no option 'width'"):
        create_model("resnet18", 10, width=3)
    with pytest.raises(ConfigError, match="num_classes"):
        create_model("small-cnn", 0)
    with pytest.raises(ConfigError, match="in_channels"):
        create_model("small-cnn", 10, in_channels=True)
    with pytest.raises(ConfigError, match="stem"):
        create_model("resnet50", 10, stem="big")
    with pytest.raises(ConfigError, match="cardinality"):
        create_model("resnext29", 10, cardinality=0)
    with pytest.raises(ConfigError, match="drop_rate"):
        create_model("wrn-40-2", 10, drop_rate="high")
    with pytest.raises(ConfigError, match="depth"):
        create_model("densenet-bc", 10, depth=99)


def test_register_model_rejects_duplicates_and_bad_factories():
    with pytest.raises(ValueError, match="already registered"):
        register_model("resnet18")(lambda num_classes, *, image_size, in_channels: nn.Identity())
    with pytest.raises(ValueError, match="must accept"):
        register_model("no-options-model")(lambda num_classes: nn.Identity())


def test_count_parameters_counts_shared_once_and_trainable_only():
    shared = nn.Linear(3, 4)  # 3 * 4 + 4 = 16
    frozen = nn.Linear(4, 2)  # 4 * 2 + 2 = 10
    frozen.requires_grad_(False)
    model = nn.Sequential(shared, nn.ReLU(), shared, frozen)
    model.register_buffer("not_a_parameter", torch.zeros(100))
    assert count_parameters(model) == 26
    assert count_parameters(model, trainable_only=True) == 16


# ---- wrappers ------------------------------------------------------------------------------------


class ScaleFront(nn.Module):
    """Stand-in front with no parameters but a persistent buffer: x -> 0.5 * x."""

    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.tensor(0.5))

    def forward(self, x):
        return x * self.scale


def test_normalize_is_exact_on_a_constant_image():
    mean, std = NORMALIZATIONS["cifar10"]
    model = FreqtailModel(nn.Identity(), normalize="cifar10")
    out = model(torch.full((2, 3, 4, 5), 0.5))
    for channel in range(3):
        expected = (0.5 - mean[channel]) / std[channel]
        assert torch.allclose(out[:, channel], torch.full((2, 4, 5), expected), atol=1e-6)
    # Front first, then normalisation: 0.8 -> 0.4 -> (0.4 - 0.25) / 0.5 = 0.3.
    fronted = FreqtailModel(nn.Identity(), normalize=((0.25,), (0.5,)), front=ScaleFront())
    assert torch.allclose(fronted(torch.full((1, 3, 2, 2), 0.8)), torch.full((1, 3, 2, 2), 0.3))


def test_normalize_rejects_bad_values_and_shapes():
    with pytest.raises(ConfigError, match="positive"):
        Normalize((0.5, 0.5, 0.5), (0.2, 0.0, 0.2))
    with pytest.raises(ConfigError, match="same length"):
        Normalize((0.5, 0.5), (0.2, 0.2, 0.2))
    with pytest.raises(ConfigError, match="finite"):
        Normalize((0.5, float("nan"), 0.5), (0.2, 0.2, 0.2))
    with pytest.raises(ConfigError, match="Unknown normalisation"):
        FreqtailModel(nn.Identity(), normalize="mnist")
    with pytest.raises(InputError, match=r"\(N, 3, H, W\)"):
        Normalize(*NORMALIZATIONS["imagenet"])(torch.rand(1, 1, 4, 4))
    with pytest.raises(InputError):
        FreqtailModel(nn.Identity())(torch.rand(3, 4, 4))


def test_front_on_and_off_share_weights():
    torch.manual_seed(0)
    model = FreqtailModel(
        create_model("small-cnn", 10, width=4), normalize="cifar10", front=ScaleFront()
    ).eval()
    plain = model.without_front()
    assert plain.front is None and model.front is not None
    assert plain.backbone is model.backbone and plain.normalize is model.normalize
    assert not plain.training
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(plain(x), model.backbone(model.normalize(x)))
        assert torch.equal(model(x), plain(0.5 * x))
        model.backbone.fc.bias.add_(1.0)  # a weight change is seen through both
        assert torch.equal(model(x), plain(0.5 * x))
    refronted = plain.with_front(ScaleFront())
    with torch.no_grad():
        assert torch.equal(refronted(x), model(x))


def test_state_dict_keys_are_stable_and_exclude_the_front():
    torch.manual_seed(0)
    backbone = create_model("small-cnn", 10, width=4)
    expected_keys = ["backbone." + key for key in backbone.state_dict()]
    variants = [
        FreqtailModel(backbone),
        FreqtailModel(backbone, normalize="cifar10"),
        FreqtailModel(backbone, normalize="cifar10", front=ScaleFront()),
        FreqtailModel(backbone, front=ScaleFront()).without_front(),
    ]
    for variant in variants:
        assert list(variant.state_dict()) == expected_keys
    # Nested under another module (as in DistributedDataParallel), the front is still left out.
    nested = nn.Sequential(variants[2]).state_dict()
    assert list(nested) == ["0." + key for key in expected_keys]
    # Copies (e.g. an EMA model) keep the behaviour.
    assert list(copy.deepcopy(variants[2]).state_dict()) == expected_keys


def test_weights_load_across_front_variants():
    torch.manual_seed(0)
    with_front = FreqtailModel(create_model("small-cnn", 10, width=4), front=ScaleFront()).eval()
    torch.manual_seed(1)
    without = FreqtailModel(create_model("small-cnn", 10, width=4)).eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert not torch.equal(with_front.without_front()(x), without(x))
    without.load_state_dict(with_front.state_dict())  # strict
    with torch.no_grad():
        assert torch.equal(with_front.without_front()(x), without(x))
    torch.manual_seed(2)
    target = FreqtailModel(create_model("small-cnn", 10, width=4), front=ScaleFront()).eval()
    target.front.scale.fill_(0.25)  # the front keeps its own state, whatever is loaded
    result = target.load_state_dict(without.state_dict())
    assert not result.missing_keys and not result.unexpected_keys
    assert target.front.scale.item() == 0.25
    with torch.no_grad():
        assert torch.equal(target(x), without(0.25 * x))


def test_gradients_reach_the_input_through_the_wrapped_model():
    torch.manual_seed(0)
    model = FreqtailModel(create_model("small-cnn", 10, width=4), normalize="cifar10", front=ScaleFront())
    model.eval()
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    nn.functional.cross_entropy(model(x), torch.tensor([1, 7])).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert (x.grad.abs().flatten(1).sum(1) > 0).all()
    assert model.backbone.fc.weight.grad is not None


def test_real_bass_front_passes_gradients():
    bass = pytest.importorskip("freqtail.bass")
    from freqtail.models import bass_front

    front = bass_front(strength=1.0)
    assert isinstance(front, bass.BaSSModule)
    model = FreqtailModel(create_model("small-cnn", 10, width=4), normalize="cifar10", front=front).eval()
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    nn.functional.cross_entropy(model(x), torch.tensor([0, 3])).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert list(model.state_dict()) == list(model.without_front().state_dict())


# ---- specs ---------------------------------------------------------------------------------------


def _shapes(module):
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


@pytest.mark.parametrize("name", ["resnet18", "wrn-40-2", "small-cnn"])
def test_spec_round_trip_through_json(name):
    spec = model_spec(name, 7, 32, 3, "cifar100", None)
    restored = json.loads(json.dumps(spec))
    assert restored == spec
    model = build_model_from_spec(restored)
    reference = FreqtailModel(create_model(name, 7), normalize="cifar100")
    assert _shapes(model) == _shapes(reference)
    assert model.normalize.mean_values == NORMALIZATIONS["cifar100"][0]
    assert model.front is None


def test_spec_keeps_options_and_sizes():
    spec = json.loads(
        json.dumps(model_spec("small-cnn", 4, 64, 1, ((0.5,), (0.25,)), None, options={"width": 8}))
    )
    model = build_model_from_spec(spec)
    assert count_parameters(model) == _small_cnn_count(4, width=8, in_channels=1)
    assert spec["normalize"] == {"mean": [0.5], "std": [0.25]}
    with torch.no_grad():
        assert model.eval()(torch.rand(2, 1, 64, 64)).shape == (2, 4)


def test_spec_bass_front_is_built_with_its_options(monkeypatch):
    built = []

    def fake_bass_front(**options):
        built.append(options)
        return ScaleFront()

    monkeypatch.setattr("freqtail.models.spec.bass_front", fake_bass_front)
    spec = json.loads(json.dumps(model_spec("small-cnn", 10, bass_front=0.5)))
    assert spec["bass_front"] == {"strength": 0.5, "round_mode": "straight-through"}
    model = build_model_from_spec(spec)
    assert isinstance(model.front, ScaleFront)
    assert built == [{"strength": 0.5, "round_mode": "straight-through"}]
    assert build_model_from_spec(spec, with_front=False).front is None
    assert _shapes(model) == _shapes(build_model_from_spec(model_spec("small-cnn", 10)))
    assert model_spec("small-cnn", 10, bass_front=True)["bass_front"]["strength"] == 1.0
    assert model_spec("small-cnn", 10, bass_front=False)["bass_front"] is None


def test_bad_specs_are_config_errors():
    good = model_spec("small-cnn", 10)
    with pytest.raises(ConfigError, match="not a freqtail model spec"):
        build_model_from_spec({"name": "small-cnn"})
    with pytest.raises(ConfigError, match="version"):
        build_model_from_spec({**good, "version": 99})
    with pytest.raises(ConfigError, match="malformed"):
        build_model_from_spec({key: value for key, value in good.items() if key != "options"})
    with pytest.raises(ConfigError, match="Unknown model"):
        build_model_from_spec({**good, "name": "vgg16"})
    with pytest.raises(ConfigError, match="has no option"):
        model_spec("resnet18", 10, options={"widen_factor": 4})
    with pytest.raises(ConfigError, match="JSON"):
        model_spec("small-cnn", 10, options={"width": object()})
    with pytest.raises(ConfigError, match="strength"):
        model_spec("small-cnn", 10, bass_front=2.0)


@pytest.mark.parametrize(("in_channels", "normalize"), [(1, "cifar10"), (3, ((0.5, 0.5), (0.2, 0.2)))])
def test_model_spec_refuses_normalisation_of_another_channel_count(in_channels, normalize):
    with pytest.raises(ConfigError, match=f"but the model takes {in_channels} input channel"):
        model_spec("small-cnn", 4, 32, in_channels, normalize, None, options={"width": 4})
    one_for_all = model_spec("small-cnn", 4, 32, in_channels, ((0.5,), (0.25,)), None, options={"width": 4})
    assert one_for_all["normalize"] == {"mean": [0.5], "std": [0.25]}
