"""What does each paper table cost at paper scale on this device? Measured speeds, extrapolated.

For each family (t1, t3, t4, fig3) the benchmark reads the paper-scale cells
(``GridSpec.family``) and measures, once per distinct ``(model, objective, attack steps, image size,
batch size)`` of their presets:

* **seconds per training step**: the real model (``model_spec`` -> ``build_model_from_spec`` ->
  ``prepare_model``, wrapped in ``Branches`` as the trainer does for one process), the real objective
  (``build_objective``: its PGD / TRADES / MART attack steps, AugMix's three branches) and SGD with
  the preset's settings, on synthetic tensors of the right shape (uniform images in [0, 1], random
  labels; three AugMix views): a warm-up on the same shapes (the objective with one attack step),
  then the fastest of ``--steps`` timed steps (default 3), on a measurement batch of ``--batch``
  images (default 4; 0 = the preset's own batch), scaled linearly to the preset's batch. A CPU still
  gets faster per image as the batch grows (here ResNet-18 PGD-AT took about 0.95 s per image at
  batch 2 and 0.45 s at 4 to 8), so the numbers are upper bounds, by up to about 2x; a step of 128
  images of WRN-34-10 with PGD-10 would take minutes to measure on this CPU. On a GPU measure with
  ``--batch 0``;
* **seconds per evaluated image**: one forward (eval mode, no gradient) and one forward-backward to
  the input (eval mode: one attack step) per image, on the same measurement batch.

The extrapolation, stated plainly (per cell, everything in the preset):

* training: ``epochs x steps per epoch`` steps (``train images // batch``, CIFAR 50,000 training
  images; Restricted-ImageNet: 203 ImageNet classes x 1,281 images, ImageNet-1k's mean per class,
  about 260,000 — the presets and the data registry state no count, so this is an estimate), plus the
  evaluation after every ``eval_every`` epochs: a clean pass over the test images (CIFAR 10,000;
  Restricted-ImageNet 203 x 50 = 10,150) and PGD-``robust_eval_steps`` on ``robust_eval_examples``;
* the grid's evaluation, per threat model that applies (2 for a BaSS-dataset model: domain and
  end-to-end; the BaSS front's own cost is left out), on every test image: clean 1 forward; PGD-20 20
  attack steps and 2 forwards; AutoAttack standard for an image classified correctly (fraction c) 100
  APGD-CE steps, and for an image it does not break (fraction r) also T x 100 APGD-T and T x 100 FAB-T
  steps (T = min(9, classes - 1) targets) and 5,000 Square forwards; c and r are the paper's published
  Clean and AA accuracies of the cell (0.85 and 0.50 where none is published); the gradient-masking
  check of the robust suites 100 images x 1,000 Square forwards; corruptions 19 corruptions x 5
  severities x the test images, 1 forward each.

The CPU runs on ``--threads`` threads (default 1): on a machine shared with other work, two threads
wait on each other and the same step measured 1x to 5x apart, where one thread stayed within 3%;
a 2-core CPU used by this alone is then up to about 2x faster than the hours printed.

Prints per family one line per cell (training and evaluation hours) and the table's total in
device-hours, with the device name, the thread count and the machine's load. Run:
``python benchmarks/grid_cost.py`` (all families, a few minutes on a 2-core CPU), ``--quick``
(measurement batch 2, for a first look), ``--families t1,t4``, ``--device cuda --batch 0`` on a GPU,
``--json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from freqtail.data import dataset_info
from freqtail.data.corruptions import CORRUPTIONS, SEVERITIES
from freqtail.evaluate.threat_model_names import applicable_threat_models
from freqtail.models import ExecutionOptions, build_model_from_spec, model_spec, prepare_model
from freqtail.paper import published_row
from freqtail.train.build import build_optimizer
from freqtail.train.config import TrainConfig
from freqtail.train.objectives import Branches, build_objective
from freqtail.workflows.grid_spec import GridSpec
from freqtail.workflows.grid_table import published_key

FAMILIES = ("t1", "t3", "t4", "fig3")
#: Training and test images of each dataset at paper scale (see the module docstring).
RESTRICTED_IMAGENET_CLASSES = 203  # the ImageNet classes inside freqtail's 9 Restricted-ImageNet ranges
DATASET_SIZES = {
    "cifar10": (50_000, 10_000),
    "cifar100": (50_000, 10_000),
    "restricted-imagenet": (RESTRICTED_IMAGENET_CLASSES * 1_281, RESTRICTED_IMAGENET_CLASSES * 50),
}
#: AutoAttack standard (Croce & Hein 2020): iterations of APGD-CE, APGD-T and FAB-T, Square's queries.
APGD_STEPS, TARGETED_STEPS, SQUARE_QUERIES = 100, 100, 5_000
#: The gradient-masking check of the robust suites: images x Square queries.
MASKING_FORWARDS = 100 * 1_000
#: Clean and AA fractions assumed where the paper publishes none for a cell.
DEFAULT_CLEAN, DEFAULT_ROBUST = 0.85, 0.50


@dataclass(frozen=True)
class StepKey:
    """What the cost of one training step depends on."""

    model: str
    objective: str
    attack_steps: int
    image_size: int
    batch_size: int

    @classmethod
    def of(cls, config: TrainConfig) -> StepKey:
        steps = config.attack_steps if config.adversarial else 0
        size = dataset_info(config.dataset).image_size[0]
        return cls(config.model, config.objective_name, steps, size, config.batch_size)

    def label(self) -> str:
        attack = f" {self.attack_steps} attack steps" if self.attack_steps else ""
        return f"{self.model} {self.objective}{attack} {self.image_size}px batch {self.batch_size}"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_model(config: TrainConfig, device: torch.device) -> torch.nn.Module:
    """The model the trainer builds for ``config`` (fresh weights; no BaSS front), in train mode."""
    info = dataset_info(config.dataset)
    normalize = config.normalize
    if normalize == "dataset":
        normalize = {"mean": list(info.mean), "std": list(info.std)}
    spec = model_spec(
        config.model,
        info.num_classes,
        info.image_size[0],
        3,
        normalize=normalize,
        options=config.model_options,
    )
    model = build_model_from_spec(spec, with_front=False).to(device)
    execution = ExecutionOptions(channels_last=config.channels_last, compile=config.compile)
    return prepare_model(model, execution)


def _inputs(config: TrainConfig, batch: int, device: torch.device):
    info = dataset_info(config.dataset)
    size = info.image_size[0]
    generator = torch.Generator().manual_seed(0)

    def images() -> torch.Tensor:
        return torch.rand(batch, 3, size, size, generator=generator).to(device)

    labels = torch.randint(0, info.num_classes, (batch,), generator=generator).to(device)
    views = (images(), images(), images()) if config.objective_name == "augmix" else images()
    return views, labels


def step_seconds_per_image(config: TrainConfig, batch: int, steps: int, device: torch.device) -> float:
    """Seconds of one training step per image of ``config`` (objective, backward, SGD step)."""
    model = build_model(config, device)
    forward = Branches(model)
    objective = build_objective(config)
    optimizer = build_optimizer(config, model.parameters())
    inputs, labels = _inputs(config, batch, device)

    def step() -> None:
        out = objective(forward, model, inputs, labels, None)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()

    model.train()
    # Warm-up (allocator, oneDNN / cuDNN choices) on the same shapes at a fraction of the cost: the
    # objective with one attack step where it has attack steps.
    warm = build_objective(config.replace(attack_steps=1)) if config.adversarial else objective
    out = warm(forward, model, inputs, labels, None)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    optimizer.zero_grad(set_to_none=True)  # no update: the timed step starts from the fresh weights
    _sync(device)
    fastest = math.inf
    for _ in range(steps):  # the fastest: the least disturbed by other work on a shared machine
        started = time.perf_counter()
        step()
        _sync(device)
        fastest = min(fastest, time.perf_counter() - started)
    return fastest / batch


def eval_seconds_per_image(config: TrainConfig, batch: int, device: torch.device) -> tuple[float, float]:
    """``(one forward, one forward-backward to the input)`` per image in eval mode: a clean image and
    one attack step."""
    model = build_model(config, device).eval()
    x, labels = _inputs(config.replace(objective="erm"), batch, device)

    def forward() -> None:
        with torch.no_grad():
            model(x)

    def attack_step() -> None:
        z = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(z), labels, reduction="sum"), z)
        grad.sign()

    timings = []
    for work in (forward, attack_step):
        work()  # warm-up
        _sync(device)
        started = time.perf_counter()
        work()
        _sync(device)
        timings.append((time.perf_counter() - started) / batch)
    return timings[0], timings[1]


def _published_fractions(config: TrainConfig) -> tuple[float, float, bool]:
    """``(clean, AA)`` accuracy as fractions from the paper for this cell, and whether they are published."""
    key = published_key(config.comparable())
    if key is None or key.table not in ("table1", "table3"):
        return DEFAULT_CLEAN, DEFAULT_ROBUST, False
    row = published_row(key.table, method=key.method, model=key.model, dataset=key.dataset, bass=key.bass)
    clean, robust = row.values.get("Clean"), row.values.get("AA")
    if clean is None or robust is None:
        return DEFAULT_CLEAN, DEFAULT_ROBUST, False
    return clean / 100, robust / 100, True


def cell_cost(config: TrainConfig, suites: tuple[str, ...], step_s: float, fwd: float, attack: float) -> dict:
    """Seconds of training and of evaluating one paper-scale cell (the module docstring's model)."""
    train_n, test_n = DATASET_SIZES[config.dataset]
    if config.train_subset is not None:
        train_n = min(train_n, config.train_subset)
    if config.test_subset is not None:
        test_n = min(test_n, config.test_subset)
    per_epoch = train_n // config.batch_size if config.drop_last else math.ceil(train_n / config.batch_size)
    total_steps = config.steps if config.steps is not None else config.epochs * per_epoch
    epochs = math.ceil(total_steps / per_epoch)
    evaluations = len(set(range(config.eval_every, epochs + 1, config.eval_every)) | {epochs})
    robust_n = min(config.robust_eval_examples, test_n)
    during = evaluations * (test_n * fwd + robust_n * (config.robust_eval_steps * attack + 2 * fwd))
    train = total_steps * config.batch_size * step_s + during

    classes = dataset_info(config.dataset).num_classes
    targets = min(9, classes - 1)
    clean, robust, published = _published_fractions(config)
    per_image = {
        "clean": fwd,
        "pgd20": 20 * attack + 2 * fwd,
        "aa": fwd
        + clean * APGD_STEPS * attack
        + robust * (2 * targets * TARGETED_STEPS * attack + SQUARE_QUERIES * fwd),
        "corruptions": len(CORRUPTIONS) * len(SEVERITIES) * fwd,
    }
    threat_models = len(applicable_threat_models(config.bass))
    evaluation = sum(per_image[suite] * test_n for suite in suites)
    if any(suite in ("pgd20", "aa") for suite in suites):
        evaluation += MASKING_FORWARDS * fwd
    return {
        "train_hours": train / 3600,
        "eval_hours": threat_models * evaluation / 3600,
        "steps": total_steps,
        "threat_models": threat_models,
        "published_fractions": published,
    }


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(families: list[str], batch: int, steps: int, device: torch.device, log=print) -> dict:
    step_cache: dict[StepKey, float] = {}
    eval_cache: dict[tuple[str, int], tuple[float, float]] = {}
    out: dict = {"families": {}}
    started = time.perf_counter()
    for family in families:
        spec = GridSpec.family(family)
        rows, total = [], 0.0
        for cell in spec.cells():
            config = cell.config
            key = StepKey.of(config)
            measured_batch = batch or config.batch_size
            if key not in step_cache:
                step_cache[key] = step_seconds_per_image(config, measured_batch, steps, device)
                log(f"  measured {key.label()}: {step_cache[key] * config.batch_size:.2f} s per step")
            eval_key = (config.model, key.image_size)
            if eval_key not in eval_cache:
                eval_cache[eval_key] = eval_seconds_per_image(config, measured_batch, device)
            fwd, attack = eval_cache[eval_key]
            cost = cell_cost(config, spec.suites, step_cache[key], fwd, attack)
            total += cost["train_hours"] + cost["eval_hours"]
            rows.append({"cell": cell.name, "step": key.label(), **cost})
        out["families"][family] = {"suites": list(spec.suites), "cells": rows, "total_hours": total}
    out["measure_seconds"] = time.perf_counter() - started
    out["steps_per_image"] = {key.label(): seconds for key, seconds in step_cache.items()}
    out["eval_per_image"] = {
        f"{model} {size}px": {"forward": f, "attack_step": a} for (model, size), (f, a) in eval_cache.items()
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated (default all)")
    parser.add_argument(
        "--batch", type=int, default=4, help="measurement batch (default 4; 0 = the preset's batch)"
    )
    parser.add_argument(
        "--steps", type=int, default=3, help="timed steps after the warm-up, the fastest counts (default 3)"
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1: steady on a shared machine)"
    )
    parser.add_argument("--quick", action="store_true", help="measurement batch 2: a first look")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    families = [name.strip() for name in args.families.split(",") if name.strip()]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown families {', '.join(unknown)}; choose from {', '.join(FAMILIES)}")
    if args.batch < 0 or args.steps < 1 or args.threads < 1:
        parser.error("--batch must be 0 or more, --steps and --threads at least 1")
    torch.set_num_threads(args.threads)
    batch = 2 if args.quick else args.batch
    device = torch.device(args.device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    machine = (
        f"{_device_name(device)} ({device.type}); {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}; load average {load:.1f} when started"
    )
    log = (lambda _line: None) if args.json else print
    log(f"Device: {machine}")
    log(
        f"Measurement batch {batch or 'the preset batch'}; the fastest of {args.steps} timed step(s) after "
        "one warm-up."
    )
    result = measure(families, batch, args.steps, device, log=log)
    result["machine"] = machine
    result["threads"] = args.threads
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for family, table in result["families"].items():
        print(f"\n{family} (suites {', '.join(table['suites'])}): {len(table['cells'])} cells")
        for row in table["cells"]:
            assumed = "aa" in table["suites"] and not row["published_fractions"]
            note = " (AA: c, r assumed)" if assumed else ""
            print(
                f"  {row['cell']:44s} train {row['train_hours']:9.1f} h  eval {row['eval_hours']:8.1f} h"
                f"  ({row['steps']} steps; {row['threat_models']} threat model(s)){note}"
            )
        print(
            f"  total {table['total_hours']:.0f} device-hours ({table['total_hours'] / 24:.0f} device-days)"
        )
    print(f"\nMeasured in {result['measure_seconds']:.0f} s.")


if __name__ == "__main__":
    main()
