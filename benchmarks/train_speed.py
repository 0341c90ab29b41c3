"""How fast does ``freqtail.train`` train, and what does BaSS as on-the-fly augmentation cost?

Prints:

1. **Trainer throughput** (images per second of training, evaluation excluded) of the full trainer —
   data loading, augmentation, objective, SGD — for ``--model`` (default small-cnn) on the embedded
   dataset, for ERM and PGD-AT (``--attack-steps``, default 3), with ``--steps`` optimiser steps per run.
2. **BaSS "augment" cost**, same runs with ``bass=augment, gamma=1`` (every image drawn from the
   BaSS copy: the worst case) against ``bass=None``, with ``num_workers=0`` (data made in the
   training process, adding to every step) and ``--workers`` DataLoader workers (overlapping with
   compute). The trainer draws BaSS images from a copy of the dataset converted once in batches
   (``freqtail.train.data.BaSSMixture``), so the per-step cost is the same as without BaSS. Runs are
   interleaved and repeated ``--repeats`` times; the median is reported.
3. **Per-image data cost**: microseconds to produce one training item in one process: no BaSS,
   the trainer's BaSS mixture, and BaSS per image on the fly (``build_dataset(bass="augment")``,
   what folder datasets such as ImageNet use); and the cost of the on-device batched
   ``BaSSModule`` on a batch relative to one training step.

Run: ``OMP_NUM_THREADS=1 python benchmarks/train_speed.py`` (CPU); on a GPU machine
``python benchmarks/train_speed.py --device cuda --model resnet18 --workers 8``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def _run(overrides: dict, steps: int) -> float:
    """Images per second of the training part of one trainer run of ``steps`` steps."""
    from freqtail.train import load_config
    from freqtail.train.trainer import train

    config = load_config(overrides={**overrides, "steps": steps, "test_subset": 64, "progress": False})
    with tempfile.TemporaryDirectory() as folder:
        result = train(config, Path(folder) / "run", log=lambda message: None)
    seconds = sum(record["train_time"] for record in result.history)
    return steps * config.batch_size / seconds


def _item_cost(kind: str, n: int = 2000) -> float:
    """Microseconds per training item (embedded, crop + flip) in this process.

    ``kind``: "none" (no BaSS), "mixture" (the trainer's bass=augment: pre-converted images,
    gamma = 1) or "on-the-fly" (``build_dataset(bass="augment")``: BaSS per image, gamma = 1).
    """
    import torch

    from freqtail.data import build_dataset
    from freqtail.train import load_config
    from freqtail.train.data import SeededItems, build_train_data

    if kind == "on-the-fly":
        base = build_dataset("embedded", "train", bass="augment", gamma=1.0, augment=True)
    else:
        base = build_train_data(load_config(overrides={"bass": "augment" if kind == "mixture" else None}))
    items = SeededItems(base, 0)
    keys = [(0, i) for i in torch.randperm(len(items))[:n].tolist()]
    items[keys[0]]
    began = time.perf_counter()
    for key in keys:
        items[key]
    return (time.perf_counter() - began) / n * 1e6


def _module_cost(model_name: str, device: str, batch: int, repeats: int = 20) -> tuple[float, float]:
    """(ms per BaSSModule call on a batch, ms per ERM training step) on ``device``."""
    import torch

    from freqtail.bass import BaSSModule
    from freqtail.models import create_model

    torch.manual_seed(0)
    model = create_model(model_name, 16).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 16, (batch,), device=device)
    bass = BaSSModule(round_mode="straight-through")

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    def timed(fn):
        fn()
        sync()
        began = time.perf_counter()
        for _ in range(repeats):
            fn()
        sync()
        return (time.perf_counter() - began) / repeats * 1e3

    with torch.no_grad():
        bass_ms = timed(lambda: bass(x))
    return bass_ms, timed(step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="small-cnn")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--attack-steps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}")
    base = {
        "model": args.model,
        "device": args.device,
        "batch_size": args.batch_size,
        "robust_eval_examples": 0,
    }
    if args.device.startswith("cuda"):
        base["amp"] = "bf16"

    print(
        f"\n1. trainer throughput, {args.model}, batch {args.batch_size}, {args.steps} steps, embedded data"
    )
    for objective, extra in (("erm", {}), ("pgd-at", {"attack_steps": args.attack_steps})):
        rate = statistics.median(
            _run({**base, "objective": objective, **extra}, args.steps) for _ in range(2)
        )
        label = objective if objective == "erm" else f"{objective} ({args.attack_steps} steps)"
        print(f"   {label:22s} {rate:8.0f} images/s")

    print(f"\n2. BaSS augment (gamma = 1) against no BaSS, ERM, median of {args.repeats} interleaved runs")
    for workers in (0, args.workers):
        plain, bassed = [], []
        for _ in range(args.repeats):
            plain.append(_run({**base, "num_workers": workers}, args.steps))
            bassed.append(_run({**base, "num_workers": workers, "bass": "augment", "gamma": 1.0}, args.steps))
        p, b = statistics.median(plain), statistics.median(bassed)
        print(
            f"   num_workers={workers}: no BaSS {p:7.0f} img/s, BaSS {b:7.0f} img/s, "
            f"extra step time {100 * (p / b - 1):+.1f}%"
        )

    print("\n3. per-item data cost in one process (embedded 32x32, crop + flip)")
    costs = {kind: _item_cost(kind) for kind in ("none", "mixture", "on-the-fly")}
    print(
        f"   no BaSS {costs['none']:.0f} us/item; BaSS from the converted copy (the trainer) "
        f"{costs['mixture']:.0f} us/item; BaSS per image on the fly {costs['on-the-fly']:.0f} us/item"
    )
    bass_ms, step_ms = _module_cost(args.model, args.device, args.batch_size)
    print(
        f"   on-device BaSSModule on a batch of {args.batch_size}: {bass_ms:.2f} ms "
        f"= {100 * bass_ms / step_ms:.1f}% of one ERM step ({step_ms:.1f} ms)"
    )


if __name__ == "__main__":
    main()
