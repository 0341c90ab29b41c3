"""``freqtail.distributed.process_group``: the group is left by the call that joined it, and only by it.

Two gloo ranks are forked from the test process (a fork costs milliseconds, a torchrun start seconds).
"""

from __future__ import annotations

import multiprocessing
import os
import socket

import torch.distributed as dist

from freqtail.distributed import process_group


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
    port = _free_port()
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
