"""``freqtail.distributed.process_group``: the group is left by the call that joined it, and only by it.

Two gloo ranks are forked from the test process (a fork costs milliseconds, a torchrun start seconds);
the backend's threads end when the group is left, whatever is imported after joining (fresh Pythons).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys

import torch.distributed as dist

from forked import free_port
from freqtail.distributed import process_group


def _rank(rank: int, port: int, results) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank)
    )
    seen = []
    with process_group("cpu") as outer:
        seen.append((outer.rank, outer.world_size, dist.is_initialized()))
        with process_group("cpu") as inner:  # a command run inside a script that joined already
            seen.append((inner.rank, inner.world_size, dist.is_initialized()))
        seen.append(dist.is_initialized())  # the inner block left the group to its owner
        gathered = [None, None]
        dist.all_gather_object(gathered, rank)  # and the group still works
        seen.append(gathered)
    seen.append(dist.is_initialized())  # the outer block joined it, and left it
    results.put((rank, seen))


def test_a_nested_block_keeps_the_group_and_the_block_that_joined_it_leaves_it():
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    port = free_port()
    ranks = [context.Process(target=_rank, args=(rank, port, results)) for rank in range(2)]
    for process in ranks:
        process.start()
    seen = dict(results.get(timeout=120) for _ in ranks)
    for process in ranks:
        process.join(timeout=60)
    assert [process.exitcode for process in ranks] == [0, 0]
    for rank in range(2):
        assert seen[rank] == [(rank, 2, True), (rank, 2, True), True, [0, 1], False]
    assert not dist.is_initialized()  # the test process itself never joined


#: One rank of a group of two that joins, imports torchvision (as a command does after joining: it
#: imports torch._dynamo), runs a collective, leaves, and prints the names of its threads.
_RANK_THAT_IMPORTS_TORCHVISION_AFTER_JOINING = """
import json, sys
from pathlib import Path
from freqtail.distributed import all_reduce_counts, init_distributed, shutdown
assert "torch._dynamo" not in sys.modules and "torchvision" not in sys.modules
context = init_distributed("cpu")
import torchvision
all_reduce_counts([1], context)
shutdown(context)
print(json.dumps([task.joinpath("comm").read_text().strip() for task in Path("/proc/self/task").iterdir()]))
"""


def test_leaving_the_group_ends_the_backends_threads_even_if_torch_dynamo_came_after(tmp_path):
    # Fresh Pythons (a fork of this process has torch._dynamo imported already). The gloo backend of
    # a group that existed when torch._dynamo was first imported used to outlive the group, its
    # threads alive until the process's exit, where they sometimes aborted it.
    port = free_port()
    ranks = [
        subprocess.Popen(
            [sys.executable, "-c", _RANK_THAT_IMPORTS_TORCHVISION_AFTER_JOINING],
            env=dict(
                os.environ,
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(port),
                RANK=str(rank),
                WORLD_SIZE="2",
                LOCAL_RANK=str(rank),
                LOCAL_WORLD_SIZE="2",
                OMP_NUM_THREADS="1",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    for process in ranks:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        threads = json.loads(out)
        assert not [name for name in threads if "gloo" in name], threads
