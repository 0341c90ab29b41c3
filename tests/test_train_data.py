"""The trainer's data plumbing: per-sample seeding, the epoch sampler, BaSS mixture, fixed subsets."""
# ruff: noqa: F811  (pytest fixtures imported from test_train_support are parameters here)

from __future__ import annotations

import torch

from freqtail.data import build_dataset
from freqtail.train import load_config
from freqtail.train.data import BaSSMixture, EpochSampler, SeededItems, build_train_data, fixed_subset
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
