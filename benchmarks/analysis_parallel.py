"""How well do the sharded analyses use several processes?

Runs the same work once with one process and once with ``--nproc`` processes (default 2) under
``python -m freqtail.train.torchrun`` (gloo on the CPU, one thread per process), and prints, per
analysis, the seconds of the analysis call itself (after the process group is up and the model and
images are built, between two barriers: process start-up is not the analyses' work) and the speed-up
of K processes over one (goal >= 1.7x for 2 processes on 2 cores). Beside it, the CPU seconds of the
busiest process (``time.process_time`` up to the closing barrier): a machine loaded by other work
stretches wall times but hardly CPU times, so their ratio shows how evenly the work is shared (the
speed-up an otherwise idle machine would reach, were nothing else limiting it):

* sensitivity: :func:`freqtail.analysis.frequency_sensitivity` on ``--n`` images (boundary given);
* landscape: :func:`freqtail.analysis.loss_landscape` on a ``--grid`` x ``--grid`` grid;
* heat map: :func:`freqtail.analysis.fourier_heatmap` on ``--heat-n`` images;
* corrupt: :func:`freqtail.data.corrupted_sets.write_corrupted_set` of ``--n`` images, four
  corruptions x five severities (20 units, shared by estimated cost; frost builds its textures,
  0.2-0.3 s, in the one process its units go to).

Each analysis also checks that the K-process result equals the one-process result (printed as
``same``), so the speed-up is measured on the same work.

Run: ``python benchmarks/analysis_parallel.py`` (``--quick`` for a shorter run; ``--only corrupt``
for one analysis; ``--repeat 3`` alternates the two runs three times, printing each pair, so both
sides see the same machine load). Another checkout's library is measured with ``PYTHONPATH`` set to
its ``src`` (the processes inherit it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from freqtail.analysis import fourier_heatmap, frequency_sensitivity, loss_landscape
from freqtail.data.corrupted_sets import write_corrupted_set
from freqtail.distributed import all_gather_json, barrier, init_distributed, shutdown
from freqtail.models import FreqtailModel, create_model
from freqtail.sample_photos import photo_crops

CORRUPTIONS = ("gaussian_noise", "motion_blur", "frost", "saturate")
ANALYSES = ("sensitivity", "landscape", "heatmap", "corrupt")


def _work(args: argparse.Namespace):
    """The model, images and the four analyses as functions returning comparable arrays."""
    torch.manual_seed(0)
    backbone = create_model("small-cnn", 10, image_size=32, width=args.width)
    model = FreqtailModel(backbone, normalize="cifar10").eval()
    crops = photo_crops(32, max(1, -(-args.n // 8)), seed=0)[: args.n]
    images = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255).contiguous()
    labels = torch.arange(images.shape[0]) % 10
    out = Path(args.scratch)

    def sensitivity(context):
        result = frequency_sensitivity(
            model, (images, labels), boundary_band=5, batch_size=64, context=context
        )
        return result.mean_sorted_magnitude

    def landscape(context):
        result = loss_landscape(
            model, (images[:64], labels[:64]), boundary_band=5, grid=args.grid, batch_size=64, context=context
        )
        return result.loss_lfc

    def heatmap(context):
        result = fourier_heatmap(model, (images[: args.heat_n], labels[: args.heat_n]), context=context)
        return result.error_rate

    def corrupt(context):
        target = out / f"c-{context.world_size}"
        write_corrupted_set(
            crops, labels.numpy(), target, corruptions=CORRUPTIONS, progress=False, context=context
        )
        barrier(context)
        return np.concatenate([np.load(target / f"{name}.npy").reshape(-1) for name in CORRUPTIONS])

    work = {"sensitivity": sensitivity, "landscape": landscape, "heatmap": heatmap, "corrupt": corrupt}
    return {name: work[name] for name in args.only or ANALYSES}


def worker(args: argparse.Namespace) -> None:
    """One process of a run: time every analysis between barriers (wall time, and the CPU time of the
    busiest process); rank 0 saves times and results."""
    context = init_distributed("cpu")
    try:
        times, results = {}, {}
        for name, analysis in _work(args).items():
            barrier(context)
            start, cpu_start = time.perf_counter(), time.process_time()
            value = analysis(context)
            cpu = time.process_time() - cpu_start  # before the barrier: a process waiting there is idle
            barrier(context)
            times[name] = time.perf_counter() - start
            times[f"{name}:cpu"] = max(all_gather_json(cpu, context))
            results[name] = np.asarray(value, dtype=np.float64)
        if context.is_main:
            np.savez(Path(args.scratch) / f"results-{context.world_size}.npz", **results)
            (Path(args.scratch) / f"times-{context.world_size}.json").write_text(json.dumps(times))
    finally:
        shutdown(context)


def launch(args: argparse.Namespace, nproc: int) -> dict[str, float]:
    command = [
        sys.executable, "-m", "freqtail.train.torchrun", "--standalone", "--nnodes", "1",
        "--nproc-per-node", str(nproc), __file__, "--worker", "--scratch", args.scratch,
        "--n", str(args.n), "--grid", str(args.grid), "--heat-n", str(args.heat_n),
        "--width", str(args.width), *(f"--only={name}" for name in args.only or ()),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(command, check=True, env=env)
    return json.loads((Path(args.scratch) / f"times-{nproc}.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nproc", type=int, default=2, help="processes of the sharded run (default 2)")
    parser.add_argument("--n", type=int, default=512, help="sensitivity images (default 512)")
    parser.add_argument("--grid", type=int, default=7, help="landscape points per axis (default 7)")
    parser.add_argument("--heat-n", type=int, default=16, help="heat-map images (default 16)")
    parser.add_argument("--width", type=int, default=32, help="small-cnn width (default 32)")
    parser.add_argument("--quick", action="store_true", help="less work")
    parser.add_argument(
        "--only", action="append", choices=ANALYSES, help="run only this analysis (repeatable; default all)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="alternate the two runs this many times")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.n, args.grid, args.heat_n = 128, 5, 4
    if args.worker:
        worker(args)
        return
    print(f"1 vs {args.nproc} processes (gloo, 1 thread each, {os.cpu_count()} cores on this machine):")
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="freqtail-parallel-") as scratch:
            args.scratch = scratch
            one, many = launch(args, 1), launch(args, args.nproc)
            with (
                np.load(Path(scratch) / "results-1.npz") as a,
                np.load(Path(scratch) / f"results-{args.nproc}.npz") as b,
            ):
                same = {name: bool(np.allclose(a[name], b[name], rtol=1e-6, atol=0)) for name in a.files}
        for name in same:
            cpu_one, cpu_many = one[f"{name}:cpu"], many[f"{name}:cpu"]
            print(
                f"  {name:12s} {one[name]:7.2f} s vs {many[name]:7.2f} s: {one[name] / many[name]:.2f}x "
                f"(goal >= 1.7x for 2), results {'same' if same[name] else 'DIFFERENT'}; CPU seconds of the "
                f"busiest process {cpu_one:.2f} vs {cpu_many:.2f}: {cpu_one / cpu_many:.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
