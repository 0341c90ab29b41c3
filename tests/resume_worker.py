"""A Fourier heat map or a frequency sensitivity computed by every process of a torchrun group, with
partial files (tests/test_analysis_resume.py).

    python -m freqtail.train.torchrun --standalone --nnodes 1 --nproc-per-node 2 tests/resume_worker.py
    heatmap|sensitivity OUT [--pause SECONDS]

Every rank writes ``OUT/pid.rank<r>`` (its process id) before the analysis and ``OUT/result.rank<r>.npz``
after it. The partial files are ``OUT/<analysis>.partial.rank<r>.npz``. ``--pause`` sleeps that long
before every forward pass, so that a test can kill a rank in the middle of its units; it changes no
value. The model and images are the landscape worker's (tests/landscape_worker.py).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from torch import nn

from freqtail.analysis import fourier_heatmap, frequency_sensitivity
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=("heatmap", "sensitivity"))
    parser.add_argument("out", type=Path)
    parser.add_argument("--pause", type=float, default=0.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    context = init_distributed("cpu")
    (args.out / f"pid.rank{context.rank}").write_text(str(os.getpid()))
    model = build_model()
    if args.pause:
        model.register_forward_pre_hook(lambda module, inputs: time.sleep(args.pause))
    result = analyse(args.kind, model, args.out / f"{args.kind}.partial.npz", context)
    result.save(args.out / f"result.rank{context.rank}.npz")
    shutdown(context)


if __name__ == "__main__":
    main()
