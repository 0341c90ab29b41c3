"""A Fourier heat map or a frequency sensitivity computed by every process of a torchrun group, with
partial files (tests/test_analysis_resume.py).

    python -m freqtail.train.torchrun --standalone --nnodes 1 --nproc-per-node 2 tests/resume_worker.py
    heatmap|sensitivity OUT [--hold-after N]

Every rank writes ``OUT/pid.rank<r>`` (its process id) before the analysis and ``OUT/result.rank<r>.npz``
after it. The partial files are ``OUT/<analysis>.partial.rank<r>.npz``. ``--hold-after N`` makes rank 1,
after its N-th unit, write its partial file and wait there for good (rank 0 goes on to the end of its
share and waits in the gather): a known point in the middle of the work, where a test kills rank 1,
with no race against the ranks' speed; it changes no value. The model and images are the landscape
worker's (tests/landscape_worker.py).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from torch import nn

from freqtail.analysis import _partials, fourier_heatmap, frequency_sensitivity
from freqtail.distributed import init_distributed, shutdown
from landscape_worker import build_data, build_model

#: Heat map: 16 images of 8x8 in passes of 16, so every block is one of the 34 frequencies.
HEATMAP_BATCH = 16
#: Sensitivity: 16 images in global batches of 2, 8 units.
SENSITIVITY_BATCH = 2


def analyse(kind: str, model: nn.Module, partial_path: Path | None = None, context=None):
    """The analysis every caller of the test computes (the sensitivity measures its 80/20 boundary)."""
    if kind == "heatmap":
        return fourier_heatmap(
            model,
            build_data(),
            eps=2.0,
            batch_size=HEATMAP_BATCH,
            seed=5,
            partial_path=partial_path,
            context=context,
        )
    return frequency_sensitivity(
        model, build_data(), batch_size=SENSITIVITY_BATCH, partial_path=partial_path, context=context
    )


def hold_rank_one_after(units: int) -> None:
    """Rank 1 writes its partial file after its ``units``-th unit and then waits to be killed."""
    original, done = _partials.PartialWriter.unit_done, [0]

    def unit_done(self, seconds: float) -> None:
        original(self, seconds)
        done[0] += 1
        if os.environ.get("RANK") == "1" and done[0] == units:
            self.flush()
            while True:
                time.sleep(0.05)

    _partials.PartialWriter.unit_done = unit_done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=("heatmap", "sensitivity"))
    parser.add_argument("out", type=Path)
    parser.add_argument("--hold-after", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    context = init_distributed("cpu")
    (args.out / f"pid.rank{context.rank}").write_text(str(os.getpid()))
    model = build_model()
    if args.hold_after:
        hold_rank_one_after(args.hold_after)
    result = analyse(args.kind, model, args.out / f"{args.kind}.partial.npz", context)
    result.save(args.out / f"result.rank{context.rank}.npz")
    shutdown(context)


if __name__ == "__main__":
    main()
