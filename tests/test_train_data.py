"""The trainer's data plumbing: per-sample seeding, the epoch sampler, BaSS mixture, fixed subsets."""
# ruff: noqa: F811  (pytest fixtures imported from test_train_support are parameters here)

from __future__ import annotations

import numpy as np
import pytest
import torch

from freqtail.data import build_dataset
from freqtail.data.subsets import proportional_subset
from freqtail.errors import ConfigError
from freqtail.train import load_config
from freqtail.train.data import (
    BaSSMixture,
    EpochSampler,
    SeededItems,
    build_train_data,
    build_val_data,
    fixed_subset,
)
from test_train_support import tiny_root  # noqa: F401


def test_seeded_items_are_pure_functions_of_epoch_and_index(tiny_root):
    items = SeededItems(build_dataset("embedded", "train", tiny_root, augment=True), seed=3)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = items[(2, 5)]
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
    items[(0, 7)]
    again = items[(2, 5)]
    assert torch.equal(first[0], again[0]) and first[1:] == again[1:]
    other_epoch = items[(3, 5)]
    assert not torch.equal(first[0], other_epoch[0]) or first[2] != other_epoch[2]
    assert first[2] != items[(2, 6)][2]  # per-sample noise seeds differ


def test_epoch_sampler_shards_one_permutation_and_skips(tiny_root):
    data = SeededItems(build_dataset("embedded", "train", tiny_root), seed=0)
    single = EpochSampler(data, num_replicas=1, rank=0, seed=0, drop_last=False)
    ranks = [EpochSampler(data, num_replicas=2, rank=r, seed=0, drop_last=False) for r in (0, 1)]
    for sampler in (single, *ranks):
        sampler.set_epoch(4)
    order = [index for _, index in single]
    assert sorted(order) == list(range(96))
    assert [index for _, index in ranks[0]] == order[0::2] and [index for _, index in ranks[1]] == order[1::2]
    assert all(epoch == 4 for epoch, _ in single)
    single.set_epoch(4, skip=10)
    assert [index for _, index in single] == order[10:] and len(single) == 86
    single.set_epoch(5)
    assert [index for _, index in single] != order


def test_bass_mixture_gives_the_same_images_as_the_on_the_fly_transform(tiny_root):
    original = build_dataset("embedded", "train", tiny_root, augment=True)
    converted = build_dataset("embedded", "train", tiny_root, bass="dataset", augment=True)
    mixture = BaSSMixture(original, converted, gamma=0.5)
    on_the_fly = build_dataset("embedded", "train", tiny_root, bass="augment", gamma=0.5, augment=True)
    chosen = 0
    for index in range(40):
        torch.manual_seed(index)
        ours = mixture[index][0]
        torch.manual_seed(index)
        assert torch.equal(ours, on_the_fly[index][0]), index
        torch.manual_seed(index)
        chosen += bool(torch.rand(1) < 0.5)  # the draw that picked the BaSS image
    assert 8 < chosen < 32  # both kinds of image were compared
    config = load_config(overrides={"data_root": str(tiny_root), "bass": "augment", "gamma": 0.5})
    assert isinstance(build_train_data(config), BaSSMixture)


def test_fixed_subset_is_stable_and_keeps_attributes(tiny_root):
    data = build_dataset("embedded", "test", tiny_root)
    a, b = fixed_subset(data, 10, 0, 1), fixed_subset(data, 10, 0, 1)
    assert a.indices == b.indices and len(a) == 10 and a.indices == sorted(a.indices)
    assert a.num_classes == 4 and a.image_size == (32, 32)
    assert fixed_subset(data, 10, 1, 1).indices != a.indices
    assert fixed_subset(data, 1000, 0, 1) is data


def test_stratified_choice_by_hand():
    labels = [0] * 6 + [1] * 3 + [2] * 1
    # 4 places: floor(4 * 6 / 10) = 2, floor(4 * 3 / 10) = 1, floor(4 * 1 / 10) = 0; one place left,
    # remainders 24 % 10 = 4, 12 % 10 = 2, 4 % 10 = 4: the tie between labels 0 and 2 goes to 0
    chosen = proportional_subset(labels, 4, seed=1)
    assert chosen == sorted(chosen) and len(set(chosen)) == 4
    assert [sum(labels[i] == c for i in chosen) for c in (0, 1, 2)] == [3, 1, 0]
    assert proportional_subset(labels, 4, seed=1) == chosen
    assert {tuple(proportional_subset(labels, 4, seed=s)) for s in range(10)} != {tuple(chosen)}
    assert proportional_subset(labels, 10, seed=0) == list(range(10))
    assert proportional_subset(labels, 0, seed=0) == []


def _indices(dataset) -> list[int]:
    """Positions in the full train split of a (nested) Subset."""
    positions = list(range(len(dataset)))
    while hasattr(dataset, "indices"):
        positions = [dataset.indices[p] for p in positions]
        dataset = dataset.dataset
    return positions


def test_selection_val_holds_out_a_stratified_part_of_the_train_split(tiny_root):
    config = load_config(
        overrides={"data_root": str(tiny_root), "selection": "val", "val_subset": 10, "bass": "dataset"}
    )
    train, val = build_train_data(config), build_val_data(config)
    assert len(train) == 86 and len(val) == 10 and val.num_classes == 4
    held_out = _indices(val)
    trained = _indices(train)
    assert set(held_out).isdisjoint(trained) and set(held_out) | set(trained) == set(range(96))
    labels = np.repeat(np.arange(4), 24)  # the tiny set: 24 train images per class, in class order
    # 10 of 96 over four classes of 24: 2 each, the two places left to labels 0 and 1
    assert [int((labels[held_out] == c).sum()) for c in range(4)] == [3, 3, 2, 2]
    # validation items: the BaSS-converted train images with the test transform (no augmentation)
    converted = build_dataset("embedded", "train", tiny_root, bass="dataset")
    for position, index in enumerate(held_out):
        image, label = val[position]
        assert torch.equal(image, converted[index][0]) and label == labels[index]
    assert build_val_data(config.replace(selection="test", val_subset=None)) is None
    subset = build_train_data(config.replace(train_subset=20))
    assert len(subset) == 20 and set(_indices(subset)).isdisjoint(held_out)
    with pytest.raises(ConfigError, match="val_subset 96 must be smaller than the 96 training images"):
        build_train_data(config.replace(val_subset=96))


def test_augmix_bass_twin_is_restricted_like_the_base(tiny_root):
    config = load_config(
        overrides={
            "data_root": str(tiny_root),
            "objective": "augmix-bass",
            "selection": "val",
            "val_subset": 8,
            "train_subset": 30,
        }
    )
    data = build_train_data(config)
    assert data.bass_branch and len(data) == len(data.bass_base) == 30
    assert _indices(data.base) == _indices(data.bass_base)
    converted = build_dataset("embedded", "train", tiny_root, bass="dataset").images
    assert np.array_equal(data.bass_base.dataset.dataset.images, converted)  # the BaSS twin
    assert not np.array_equal(data.base.dataset.dataset.images, converted)
