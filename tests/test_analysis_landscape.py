"""Loss landscapes on LFC / HFC (paper §3.1; Li et al. 2018): directions, grid values, restoration, resume."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from freqtail.analysis import LandscapeResult, filter_normalized_direction, grid_coordinates, loss_landscape
from freqtail.errors import InputError
from freqtail.spectrum import high_pass, low_pass


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 3),
    )
    # Non-trivial running statistics, so that eval mode matters.
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.2, 0.2)
        net[1].running_var.uniform_(0.5, 2.0)
        net[1].weight.uniform_(0.5, 1.5)
        net[1].bias.uniform_(-0.1, 0.1)
    return net


@pytest.fixture()
def data():
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(12, 3, 8, 8, generator=generator)
    labels = torch.arange(12) % 3
    return images, labels


def test_filter_normalized_direction_matches_filter_norms_and_zeroes_bn_and_biases():
    net = tiny_net()
    direction = filter_normalized_direction(net, torch.Generator().manual_seed(3))
    assert list(direction) == [name for name, _ in net.named_parameters()]
    for name, weight in net.named_parameters():
        d = direction[name]
        assert d.shape == weight.shape and d.dtype == weight.dtype
        if weight.ndim <= 1:  # conv/linear biases, batch-norm weight and bias
            assert torch.count_nonzero(d) == 0, name
        else:
            for i in range(weight.shape[0]):
                assert float(d[i].norm()) == pytest.approx(float(weight[i].detach().norm()), rel=1e-5), (
                    name,
                    i,
                )
    assert torch.count_nonzero(direction["1.weight"]) == 0 and torch.count_nonzero(direction["0.bias"]) == 0
    again = filter_normalized_direction(net, torch.Generator().manual_seed(3))
    assert all(torch.equal(direction[k], again[k]) for k in direction)


def test_grid_coordinates_are_symmetric_with_an_exact_zero():
    alphas = grid_coordinates(21, 1.0)
    assert alphas[10] == 0.0 and alphas[0] == -1.0 and alphas[-1] == 1.0
    np.testing.assert_allclose(np.diff(alphas), 0.1)
    assert grid_coordinates(1, 2.0).tolist() == [0.0]


def test_centre_equals_the_models_loss_and_weights_are_restored_exactly(data):
    images, labels = data
    net = tiny_net()
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = loss_landscape(net, (images, labels), boundary_band=2, grid=3, span=0.5, seed=5)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN statistics
    assert net.training and net[1].training  # training flags restored

    with torch.no_grad():
        reference = copy.deepcopy(net).eval()
        lfc_loss = F.cross_entropy(reference(low_pass(images, 2)).double(), labels).item()
        hfc_loss = F.cross_entropy(reference(high_pass(images, 2)).double(), labels).item()
        lfc_acc = (reference(low_pass(images, 2)).argmax(1) == labels).double().mean().item()
    assert result.loss_lfc[1, 1] == pytest.approx(lfc_loss, rel=1e-5)
    assert result.loss_hfc[1, 1] == pytest.approx(hfc_loss, rel=1e-5)
    assert result.acc_lfc[1, 1] == pytest.approx(lfc_acc)
    assert result.center() == {
        "loss_lfc": result.loss_lfc[1, 1],
        "loss_hfc": result.loss_hfc[1, 1],
        "acc_lfc": result.acc_lfc[1, 1],
        "acc_hfc": result.acc_hfc[1, 1],
    }


def test_an_off_centre_point_is_the_loss_of_the_hand_moved_weights(data):
    images, labels = data
    net = tiny_net()
    result = loss_landscape(net, (images, labels), boundary_band=3, grid=3, span=0.8, seed=7)
    generator = torch.Generator().manual_seed(7)
    first = filter_normalized_direction(net, generator)
    second = filter_normalized_direction(net, generator)
    moved = copy.deepcopy(net).eval()
    with torch.no_grad():
        for name, p in moved.named_parameters():  # alpha = alphas[0] = -0.8, beta = betas[2] = 0.8
            p.add_(-0.8 * first[name] + 0.8 * second[name])
        expected = F.cross_entropy(moved(high_pass(images, 3)).double(), labels).item()
    assert result.loss_hfc[0, 2] == pytest.approx(expected, rel=1e-5)
    assert result.loss_hfc[0, 2] != pytest.approx(result.loss_hfc[2, 0], rel=1e-6)  # orientation matters


def test_weights_are_restored_when_the_grid_fails_midway(data):
    images, labels = data
    net = tiny_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    bad_labels = labels.clone()
    bad_labels[-1] = 7  # not a class: the first forward pass at the first grid point raises
    with pytest.raises(InputError, match="not a class"):
        loss_landscape(net, (images, bad_labels), boundary_band=2, grid=3)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


class Interrupting(nn.Module):
    """The tiny net, counting its forward passes and raising KeyboardInterrupt (Ctrl-C) at call ``stop``."""

    def __init__(self, stop: int | None = None):
        super().__init__()
        self.net = tiny_net()
        self.stop, self.calls = stop, 0

    def forward(self, x):
        self.calls += 1
        if self.stop is not None and self.calls >= self.stop:
            raise KeyboardInterrupt
        return self.net(x)


def test_an_interrupted_grid_keeps_its_points_and_resumes_bit_for_bit(data, tmp_path):
    images, labels = data
    partial = tmp_path / "landscape.partial.npz"
    saved_file = tmp_path / "landscape.partial.rank0.npz"  # one process is rank 0
    settings = {"boundary_band": 2, "grid": 3, "span": 0.5, "partial_path": partial}
    fresh = loss_landscape(Interrupting(), (images, labels), **{**settings, "partial_path": None})

    # One forward pass per part and point (12 images, batch 256): Ctrl-C in the 10th pass, the HFC
    # pass of the 5th point, after 4 whole points.
    interrupted = Interrupting(stop=10)
    before = {k: v.clone() for k, v in interrupted.state_dict().items()}
    with pytest.raises(KeyboardInterrupt):
        loss_landscape(interrupted, (images, labels), **settings)
    assert all(torch.equal(before[k], v) for k, v in interrupted.state_dict().items())
    with np.load(saved_file) as saved:  # all 4 points kept, none of the 5th
        assert np.flatnonzero(saved["done"]).tolist() == [0, 1, 2, 3]
        np.testing.assert_array_equal(saved["loss_lfc"][:4], fresh.loss_lfc.ravel()[:4])

    resuming = Interrupting()
    resumed = loss_landscape(resuming, (images, labels), **settings)
    assert resuming.calls == 2 * 5  # the 5 points left, LFC and HFC
    assert not saved_file.exists()
    for key in ("loss_lfc", "loss_hfc", "acc_lfc", "acc_hfc"):
        np.testing.assert_array_equal(getattr(resumed, key), getattr(fresh, key))  # exact, not close
    assert resumed.world_size == 1

    # Different settings never reuse a partial grid, and the stale file goes once the grid is done.
    with pytest.raises(KeyboardInterrupt):
        loss_landscape(Interrupting(stop=10), (images, labels), **settings)
    other = Interrupting()
    loss_landscape(other, (images, labels), **{**settings, "span": 0.6})
    assert other.calls == 2 * 9 and not saved_file.exists()


def test_save_load_round_trip_and_json(data, tmp_path):
    images, labels = data
    result = loss_landscape(tiny_net(), (images, labels), grid=3, span=0.5, seed=2)
    assert 0 <= result.boundary_band <= 6  # measured on the same images
    loaded = LandscapeResult.load(result.save(tmp_path / "landscape.npz"))
    for key in ("alphas", "betas", "loss_lfc", "loss_hfc", "acc_lfc", "acc_hfc"):
        np.testing.assert_array_equal(getattr(loaded, key), getattr(result, key))
    assert (loaded.boundary_band, loaded.seed, loaded.span) == (result.boundary_band, 2, 0.5)
    data_dict = json.loads(json.dumps(result.to_dict(grids=True), allow_nan=False))
    assert len(data_dict["loss_lfc"]) == 3 and data_dict["center"]["loss_lfc"] == result.loss_lfc[1, 1]
    # The images used are recorded: n of them by the one subset rule (subset seed, not direction seed).
    from freqtail.data.subsets import stratified_subset

    subset = loss_landscape(tiny_net(), (images, labels), grid=1, seed=2, n=5, subset_seed=4).to_dict()
    assert subset["indices"] == stratified_subset(labels.numpy(), 5, seed=4).tolist()
    assert subset["subset_seed"] == 4 and subset["num_images"] == 5
    assert data_dict["indices"] == list(range(12)) and data_dict["subset"] == "all"
    # world_size: recorded (one process here) and read as 1 from files written before it existed.
    assert data_dict["world_size"] == 1 and loaded.world_size == 1
    with np.load(tmp_path / "landscape.npz") as archive:
        older = {key: archive[key] for key in archive.files if key != "world_size"}
    np.savez(tmp_path / "older.npz", **older)
    assert LandscapeResult.load(tmp_path / "older.npz").world_size == 1
    result.world_size = 3
    assert LandscapeResult.load(result.save(tmp_path / "three.npz")).world_size == 3


class Exploding(nn.Module):
    """Finite logits at the trained weight, infinite ones once the weight moves far enough."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, 1))

    def forward(self, x):
        scale = torch.where(self.weight.abs().sum() > 1.5, torch.tensor(float("inf")), torch.tensor(1.0))
        return torch.stack([x.mean(dim=(1, 2, 3)), -x.mean(dim=(1, 2, 3))], 1) * scale


def test_non_finite_points_are_marked_and_never_stored_as_nan(data, tmp_path):
    images, labels = data
    result = loss_landscape(Exploding(), (images, labels % 2), boundary_band=2, grid=5, span=1.0)
    assert result.nonfinite_lfc.any() and not result.nonfinite_lfc[2, 2]
    assert np.all(np.isfinite(result.loss_lfc)) and np.all(np.isfinite(result.loss_hfc))
    assert result.to_dict()["nonfinite_points"] > 0


class NoWeights(nn.Module):
    def forward(self, x):
        return torch.stack([x.mean(dim=(1, 2, 3)), -x.mean(dim=(1, 2, 3))], 1)


def test_a_model_without_parameters_has_a_flat_landscape(data):
    images, labels = data
    result = loss_landscape(NoWeights(), (images, labels % 2), boundary_band=2, grid=3)
    expected = F.cross_entropy(NoWeights()(low_pass(images, 2)).double(), labels % 2).item()
    np.testing.assert_allclose(result.loss_lfc, np.full((3, 3), expected), rtol=1e-12)


def test_bad_input_sentences(data, tmp_path):
    images, labels = data
    net = tiny_net()
    with pytest.raises(InputError, match="grid"):
        loss_landscape(net, (images, labels), grid=0)
    with pytest.raises(InputError, match="span"):
        loss_landscape(net, (images, labels), span=-1)
    with pytest.raises(InputError, match="seed"):
        loss_landscape(net, (images, labels), seed=1.5)
    with pytest.raises(InputError, match="boundary band"):
        loss_landscape(net, (images, labels), boundary_band=40)
    np.savez(tmp_path / "other.npz", something=np.zeros(3))
    with pytest.raises(InputError, match="not a freqtail loss landscape"):
        LandscapeResult.load(tmp_path / "other.npz")
