"""``--gpus``, ``--jobs`` and ``--nproc-per-cell``: the rule (hand-computed cases) and the command's
refusals (one sentence, exit 2, before anything starts)."""

from __future__ import annotations

import pytest
import torch

from freqtail.errors import ConfigError
from freqtail.workflows.grid_devices import DevicePlan, group_gpus, parse_gpu_ids, plan_devices
from test_grid_support import one_sentence_error


def test_gpu_lists_parse_in_the_order_given():
    assert parse_gpu_ids("0") == (0,)
    assert parse_gpu_ids("3,1, 2") == (3, 1, 2)
    assert parse_gpu_ids("10,0") == (10, 0)


@pytest.mark.parametrize(
    "text, words",
    [
        ("", ("empty",)),
        ("0,,1", ("''", "no GPU id")),
        ("0,a", ("'a'", "no GPU id")),
        ("1.5", ("'1.5'", "no GPU id")),
        ("0,-1", ("-1", "negative")),
        ("0,1,0", ("GPU 0 twice",)),
    ],
)
def test_bad_gpu_lists_are_one_sentence(text, words):
    with pytest.raises(ConfigError) as caught:
        parse_gpu_ids(text)
    message = str(caught.value)
    assert message.endswith(".") and "\n" not in message
    for word in words:
        assert word in message


def test_gpus_are_grouped_in_order_by_the_processes_per_cell():
    assert group_gpus((0, 1, 2, 3), 1) == ((0,), (1,), (2,), (3,))
    assert group_gpus((0, 1, 2, 3), 2) == ((0, 1), (2, 3))
    assert group_gpus((3, 2, 1, 0, 5, 4), 3) == ((3, 2, 1), (0, 5, 4))
    with pytest.raises(ConfigError, match="3 GPUs, which do not split into groups of --nproc-per-cell 2"):
        group_gpus((0, 1, 2), 2)


def test_jobs_default_to_one_per_gpu_group_and_may_be_fewer():
    # 4 GPUs in pairs: 2 cells at once; launcher 2 sees the physical GPUs 2 and 3.
    plan = plan_devices("0,1,2,3", None, 2, 4)
    assert plan == DevicePlan(((0, 1), (2, 3)), jobs=2, nproc_per_cell=2)
    assert plan.environment(0) == {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert plan.environment(1) == {"CUDA_VISIBLE_DEVICES": "2,3"}
    # one GPU per cell: as many cells at once as GPUs listed
    assert plan_devices("1,3", None, 1, 4) == DevicePlan(((1,), (3,)), jobs=2, nproc_per_cell=1)
    # fewer jobs than groups: the first groups, in order
    assert plan_devices("0,1,2", 2, 1, 3) == DevicePlan(((0,), (1,)), jobs=2, nproc_per_cell=1)
    assert plan_devices("0,1,2", 2, 1, 3).describe() == [
        "Devices: launcher 1 gets GPU 0; launcher 2 gets GPU 1; each cell trains in its launcher process."
    ]


def test_without_gpus_every_process_sees_every_device():
    assert plan_devices(None, None, 1, 0) == DevicePlan((), jobs=1, nproc_per_cell=1)
    plan = plan_devices(None, 3, 2, 0)
    assert plan == DevicePlan((), jobs=3, nproc_per_cell=2)
    assert plan.environment(2) == {}
    assert plan_devices(None, 2, 1, 0).describe() == []


def test_ids_index_an_inherited_cuda_visible_devices():
    # CUDA_VISIBLE_DEVICES=4,5,6,7 already: PyTorch's GPU 1 is the physical GPU 5.
    plan = plan_devices("1,3", None, 1, 4)
    assert plan.environment(0, "4,5,6,7") == {"CUDA_VISIBLE_DEVICES": "5"}
    assert plan.environment(1, "4,5,6,7") == {"CUDA_VISIBLE_DEVICES": "7"}
    assert plan.environment(0, "GPU-aa, GPU-bb") == {"CUDA_VISIBLE_DEVICES": "GPU-bb"}
    assert plan.environment(0, "") == {"CUDA_VISIBLE_DEVICES": "1"}


@pytest.mark.parametrize(
    "gpus, jobs, nproc, count, words",
    [
        ("0", None, 1, 0, ("asks for 1 GPU,", "torch.cuda.device_count() is 0")),
        ("0,1", None, 1, 0, ("asks for 2 GPUs",)),
        ("0,2", None, 1, 2, ("names GPU 2", "sees 2 GPUs here (ids 0 to 1)")),
        ("0,1,2,3", 3, 2, 4, ("--jobs 3", "2 GPU groups", "at most --jobs 2")),
        ("0", 2, 1, 1, ("--jobs 2", "1 GPU group ", "at most --jobs 1")),
        ("0,1", None, 0, 2, ("--nproc-per-cell must be a positive integer",)),
        (None, 0, 1, 0, ("--jobs must be a positive integer",)),
    ],
)
def test_impossible_plans_are_refused_in_one_sentence(gpus, jobs, nproc, count, words):
    with pytest.raises(ConfigError) as caught:
        plan_devices(gpus, jobs, nproc, count)
    message = str(caught.value)
    assert message.endswith(".") and "\n" not in message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize(
    "options, words",
    [
        # one GPU more than this machine has (0 here): refused before any cell starts
        (["--gpus", str(torch.cuda.device_count())], ("--gpus",)),
        (["--gpus", "0,0"], ("GPU 0 twice",)),
        (["--gpus", "x"], ("'x'", "no GPU id")),
        (["--nproc-per-cell", "0"], ("--nproc-per-cell",)),
    ],
)
def test_the_commands_refuse_bad_device_options_before_anything_starts(tmp_path, capsys, options, words):
    out = tmp_path / "x"
    for argv in (
        ["reproduce", "t1", "--scale", "smoke", "--out", str(out), *options],
        ["grid", "run", str(tmp_path / "grid.yaml"), "--out", str(out), *options],
    ):
        (tmp_path / "grid.yaml").write_text("set: {epochs: 1}\naxes: {seed: [0, 1]}\n")
        _, printed = one_sentence_error(capsys, argv, *words)
        assert "started" not in printed
        assert not out.exists()
