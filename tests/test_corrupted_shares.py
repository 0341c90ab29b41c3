"""How the units of a corrupted set are shared among processes (freqtail.data.corrupted_parts):
longest processing time first by estimated cost, frost's textures built only where frost units go."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from freqtail.data import corrupted_parts as P
from freqtail.data.corruptions import CORRUPTIONS
from freqtail.data.corruptions.textures import frost_sheets

BENCHMARK_CORRUPTIONS = ["gaussian_noise", "motion_blur", "frost", "saturate"]


def _loads(shares, costs, kinds, setups):
    """Each share's cost, with the setup of each kind it holds paid once."""
    return [
        sum(costs[k] for k in share) + sum(setups.get(kind, 0.0) for kind in {kinds[k] for k in share})
        for share in shares
    ]


def test_lpt_by_hand():
    # LPT, not the optimum: 5 then 4 then 3 on the lighter each time gives 8 and 10 (the best split is
    # 5 + 4 against 3 + 3 + 3, 9 each)
    assert P.lpt_shares([5, 4, 3, 3, 3], 2) == [[0, 3], [1, 2, 4]]
    # one by one, both processes would pay kind f's setup of 4 (loads 8 and 8); as a bundle, f's two
    # items cost 1 + 1 + 4 = 6 on one process and the two items of 3 go to the other (6 and 6)
    assert P.lpt_shares([3, 3, 1, 1], 2, ["a", "a", "f", "f"], {"f": 4}) == [[2, 3], [0, 1]]
    # the bundle would cost 5 on one process; one by one costs 3 on each: kept one by one
    assert P.lpt_shares([1, 1, 1, 1], 2, ["f"] * 4, {"f": 1}) == [[0, 2], [1, 3]]
    # ties go to the lowest rank; more processes than items leave some without work
    assert P.lpt_shares([2, 2, 2], 4) == [[0], [1], [2], []]
    assert P.lpt_shares([7, 1], 1) == [[0, 1]]


@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
def test_lpt_invariants_on_random_costs(world_size):
    rng = np.random.default_rng(world_size)
    for _ in range(30):
        n = int(rng.integers(0, 25))
        costs = [float(x) for x in rng.exponential(1.0, n)]
        kinds = [str(x) for x in rng.choice(["a", "b", "c"], n)]
        setups = {"b": float(rng.uniform(0, 3))}
        shares = P.lpt_shares(costs, world_size, kinds, setups)
        assert len(shares) == world_size
        assert sorted(itertools.chain(*shares)) == list(range(n))  # every item exactly once
        assert all(share == sorted(share) for share in shares)
        assert P.lpt_shares(list(costs), world_size, list(kinds), dict(setups)) == shares  # deterministic
        loads = _loads(shares, costs, kinds, setups)
        if n:
            # list scheduling's bound, with at most min(world_size, items of b) setups of b paid
            paid = sum(costs) + min(world_size, kinds.count("b")) * setups["b"]
            largest = max(c + setups.get(kind, 0.0) for c, kind in zip(costs, kinds, strict=True))
            assert max(loads) <= paid / world_size + largest + 1e-9


def test_units_shared_by_cost_each_once_in_plan_order():
    assert set(P.IMAGE_COST_US) == set(CORRUPTIONS) and set(P.SETUP_COST_US) <= set(CORRUPTIONS)
    units = P.plan_units(BENCHMARK_CORRUPTIONS, [1, 2, 3, 4, 5], n=1024, step=400)
    shape = (32, 32, 3)
    assert P.share_units(units, 1, shape) == [units]
    for world_size in (2, 3, 4):
        shares = P.share_units(units, world_size, shape)
        assert sorted(units.index(u) for share in shares for u in share) == list(range(len(units)))
        for share in shares:
            assert share == sorted(share, key=units.index)  # each in the plan's order
        assert P.share_units(list(units), world_size, shape) == shares  # every process computes the same
        costs = [P.unit_cost(u, shape) for u in units]
        kinds = [u.corruption for u in units]
        setups = dict(P.SETUP_COST_US)
        loads = _loads([[units.index(u) for u in share] for share in shares], costs, kinds, setups)
        largest = max(costs) + setups["frost"]
        assert max(loads) <= (sum(costs) + world_size * setups["frost"]) / world_size + largest
        # frost's units (cheap, behind a 0.4 s setup) all on one process: its textures built once
        assert sum(any(u.corruption == "frost" for u in share) for share in shares) == 1
    # the benchmark's 20 units of 1,024 images on 2 processes: within 4% of each other
    units = P.plan_units(BENCHMARK_CORRUPTIONS, [1, 2, 3, 4, 5], n=1024, step=5461)
    shares = P.share_units(units, 2, shape)
    loads = _loads(
        [[units.index(u) for u in share] for share in shares],
        [P.unit_cost(u, shape) for u in units],
        [u.corruption for u in units],
        P.SETUP_COST_US,
    )
    assert max(loads) <= 1.04 * min(loads)
    # a unit's cost grows with its images and their pixels
    unit = units[0]
    assert P.unit_cost(unit, (64, 64, 3)) == 4 * P.unit_cost(unit, shape)


def test_a_process_without_frost_units_never_builds_the_textures(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    units = P.plan_units(["gaussian_noise", "frost"], [1, 2], n=8, step=4)
    shares = P.share_units(units, 2, images.shape[1:])
    with_frost = [share for share in shares if any(u.corruption == "frost" for u in share)]
    without = [share for share in shares if share not in with_frost]
    assert len(with_frost) == 1 and len(without) == 1 and without[0]
    frost_sheets.cache_clear()
    assert P.write_units(without[0], images, tmp_path, seed=0) == len(without[0])
    assert frost_sheets.cache_info().misses == 0  # never built
    assert P.write_units(with_frost[0], images, tmp_path, seed=0) == len(with_frost[0])
    assert frost_sheets.cache_info().misses == 1  # built once for its four units
    assert P.missing_units(units, tmp_path, images.shape[1:]) == []
