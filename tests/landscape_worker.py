"""A loss landscape computed by every process of a torchrun group (tests/test_landscape_distributed.py).

    python -m freqtail.train.torchrun --standalone --nnodes 1 --nproc-per-node 2 tests/landscape_worker.py OUT
    [--pause SECONDS]

Every rank writes ``OUT/pid.rank<r>`` (its process id) before the landscape, and after it
``OUT/result.rank<r>.npz`` (the landscape it returned) and ``OUT/computed.rank<r>.json`` (how many
grid points it evaluated, counted by a hook on the model's forward passes). The partial files are
``OUT/landscape.partial.rank<r>.npz``. ``--pause`` sleeps that long before every forward pass, so
that a test can kill a rank in the middle of its points; it changes no value.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from torch import nn

from freqtail.analysis import loss_landscape
from freqtail.distributed import init_distributed, shutdown

GRID = 5
SPAN = 0.6
SEED = 3
IMAGES = 16
BATCH = 8  # two batches per pass: 4 forward passes per grid point (LFC and HFC)
FORWARDS_PER_POINT = 2 * (IMAGES // BATCH)


def build_model() -> nn.Module:
    """A tiny conv net with batch norm whose running statistics matter (eval mode)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 3),
    )
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.2, 0.2)
        net[1].running_var.uniform_(0.5, 2.0)
    return net


def build_data() -> tuple[torch.Tensor, torch.Tensor]:
    """16 random 8x8 RGB images in [0, 1] and their labels (3 classes)."""
    generator = torch.Generator().manual_seed(1)
    return torch.rand(IMAGES, 3, 8, 8, generator=generator), torch.arange(IMAGES) % 3


def landscape(model: nn.Module, partial_path: Path | None = None, context=None):
    """The landscape every caller of the test computes (boundary measured on the images)."""
    return loss_landscape(
        model,
        build_data(),
        grid=GRID,
        span=SPAN,
        seed=SEED,
        batch_size=BATCH,
        partial_path=partial_path,
        context=context,
    )


def main(argv: list[str] | None = None) -> None:
    """The worker's command line (``sys.argv`` when ``argv`` is None): ``OUT [--pause SECONDS]``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--pause", type=float, default=0.0)
    args = parser.parse_args(argv)
    context = init_distributed("cpu")
    rank = context.rank
    (args.out / f"pid.rank{rank}").write_text(str(os.getpid()))
    model = build_model()
    forwards = [0]

    def count(module, inputs):
        forwards[0] += 1
        if args.pause:
            time.sleep(args.pause)

    model.register_forward_pre_hook(count)
    result = landscape(model, args.out / "landscape.partial.npz", context)
    result.save(args.out / f"result.rank{rank}.npz")
    computed = {"points": forwards[0] // FORWARDS_PER_POINT, "forwards": forwards[0]}
    (args.out / f"computed.rank{rank}.json").write_text(json.dumps(computed))
    shutdown(context)


if __name__ == "__main__":
    main()
