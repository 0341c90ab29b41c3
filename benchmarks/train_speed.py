"""How fast does ``freqtail.train`` train, and what does BaSS as on-the-fly augmentation cost?

Prints:

1. **Trainer throughput** (images per second of training, evaluation excluded) of the full trainer —
   data loading, augmentation, objective, SGD — for ``--model`` (default small-cnn) on the embedded
   dataset, for ERM and PGD-AT (``--attack-steps``, default 3), with ``--steps`` optimiser steps per run.
2. **BaSS "augment" cost**, same runs with ``bass=augment, gamma=1`` (every image drawn from the
   BaSS copy: the worst case) against ``bass=None``: with the device pipeline, and with the loader
   pipeline at ``num_workers=0`` (data made in the training process, adding to every step) and
   ``--workers`` DataLoader workers (overlapping with compute). Both draw BaSS images from a copy of
   the dataset converted once in batches (``freqtail.train.data.BaSSMixture``), so the per-step
   cost is the same as without BaSS. Runs are interleaved and repeated ``--repeats`` times; the
   median is reported.
3. **Data cost**: microseconds to produce one training item in one process: no BaSS, the loader
   pipeline's BaSS mixture, and BaSS per image on the fly (``build_dataset(bass="augment")``, what
   folder datasets such as ImageNet use); items per second of the loader and device pipelines
   (:func:`compare_pipelines`); and the cost of the on-device batched ``BaSSModule`` on a batch
   relative to one training step.

With ``--compare-plain`` it prints instead the trainer's ERM throughput against a plain PyTorch
loop (:class:`PlainLoop`) on the same model, data, augmentation, batch size and optimiser
(:func:`compare_plain`: step-paired and whole runs, interleaved, ``--repeats`` rounds); with
``--json`` as one JSON object (``trainer_images_per_second``, ``plain_images_per_second``,
``trainer_vs_plain``, ...). ``--pipeline`` chooses the ``data_pipeline`` of both.
With ``--compare-pipelines`` it prints the items per second the loader and device pipelines make
(:func:`compare_pipelines`).
With ``--compare-execution`` it prints the trainer's throughput for ERM and PGD-AT eager, channels-last,
compiled and both (:func:`compare_execution`: steady-state steps, the compiling first steps left out,
interleaved rounds, ratios to eager per round).

Run: ``OMP_NUM_THREADS=1 python benchmarks/train_speed.py`` (CPU); on a GPU machine
``python benchmarks/train_speed.py --device cuda --model resnet18 --workers 8``;
``OMP_NUM_THREADS=1 python benchmarks/train_speed.py --compare-plain --json``;
``OMP_NUM_THREADS=1 python benchmarks/train_speed.py --compare-pipelines --json``;
``OMP_NUM_THREADS=1 python benchmarks/train_speed.py --compare-execution`` (on a GPU:
``--device cuda --model resnet18 --compare-execution``, with bf16 autocast as in section 1).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def _train_seconds(overrides: dict, steps: int, callbacks=()) -> float:
    """Seconds of the training part (evaluation excluded) of one trainer run of ``steps`` steps."""
    from freqtail.train import load_config
    from freqtail.workflows.training import TrainRequest, train_run

    config = load_config(overrides={**overrides, "steps": steps, "test_subset": 64, "progress": False})
    with tempfile.TemporaryDirectory() as folder:
        request = TrainRequest(config, Path(folder) / "run", log=lambda message: None, callbacks=callbacks)
        result = train_run(request)
    return sum(record["train_time"] for record in result.history)


def _run(overrides: dict, steps: int, callbacks=()) -> float:
    """Images per second of the training part of one trainer run of ``steps`` steps."""
    from freqtail.train import load_config

    batch = load_config(overrides=overrides).batch_size
    return steps * batch / _train_seconds(overrides, steps, callbacks)


class PlainLoop:
    """A plain PyTorch ERM loop as ``config`` would train: the honest reference for the trainer.

    The same model (the trainer's :func:`freqtail.models.build_model_from_spec` spec: architecture,
    default width, normalisation inside the model), data, batch size and optimiser (SGD with the
    config's learning rate, momentum and weight decay); ``model.train()``, then per step forward,
    cross-entropy, backward, step. The data mirror the trainer's pipeline
    (``resolve_data_pipeline``): ``device`` — the uint8 images on the device, a random permutation
    per epoch, and per batch a gather, ``F.pad`` (zeros or reflect, as ``pad_mode``), a random crop
    by advanced indexing and a random flip with ``torch.where`` (what the trainer's pipeline does,
    minus its per-sample seeding); ``loader`` — a shuffled one-process ``DataLoader`` over the
    trainer's training dataset (``build_train_data``: the same torchvision crop and flip per item,
    minus :class:`~freqtail.train.data.SeededItems`' per-sample seeding). Its random draws use a
    generator of its own.
    """

    def __init__(self, config, seed: int) -> None:
        import torch

        from freqtail.data import dataset_info
        from freqtail.models import build_model_from_spec, model_spec
        from freqtail.train.data import build_train_data
        from freqtail.train.pipeline import resolve_data_pipeline

        info = dataset_info(config.dataset)
        normalize = {"mean": list(info.mean), "std": list(info.std)}
        spec = model_spec(config.model, info.num_classes, info.image_size[0], 3, normalize=normalize)
        self.device = torch.device(config.device)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        torch.manual_seed(seed)
        self.model = build_model_from_spec(spec, with_front=False).to(self.device)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        self.model.train()
        self.batch_size = config.batch_size
        self.pad_mode = "constant" if config.pad_mode == "zeros" else "reflect"
        data = build_train_data(config)
        if resolve_data_pipeline(config) == "device":
            self.images = torch.as_tensor(data.images).to(self.device)  # uint8 (N, H, W, C)
            self.labels = torch.as_tensor(data.labels).to(self.device)
            self.loader = None
        else:
            generator = torch.Generator().manual_seed(seed)
            self.loader = torch.utils.data.DataLoader(
                data, batch_size=self.batch_size, shuffle=True, drop_last=True, generator=generator
            )
        self.batches = self._batches()

    def _device_epoch(self):
        import torch
        import torch.nn.functional as F

        d, g, b = self.device, self.generator, self.batch_size
        n_images, height, width, channels = self.images.shape
        order = torch.randperm(n_images, device=d, generator=g)
        for start in range(0, n_images - b + 1, b):
            index = order[start : start + b]
            x = F.pad(self.images[index].permute(0, 3, 1, 2), (4, 4, 4, 4), mode=self.pad_mode)
            dy, dx = torch.randint(0, 9, (2, b, 1), device=d, generator=g)
            rows = (dy + torch.arange(height, device=d))[:, None, :, None]
            cols = (dx + torch.arange(width, device=d))[:, None, None, :]
            n = torch.arange(b, device=d)[:, None, None, None]
            c = torch.arange(channels, device=d)[None, :, None, None]
            x = x[n, c, rows, cols]
            flip = torch.rand(b, 1, 1, 1, device=d, generator=g) < 0.5
            yield torch.where(flip, x.flip(3), x).float().div_(255), self.labels[index]

    def _batches(self):
        while True:
            if self.loader is None:
                yield from self._device_epoch()
            else:
                for x, y in self.loader:
                    yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def step(self) -> None:
        import torch.nn.functional as F

        x, y = next(self.batches)
        self.optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(self.model(x), y).backward()
        self.optimizer.step()

    def run(self, steps: int) -> float:
        """Images per second of ``steps`` steps, timed like the trainer's ``train_time`` (from before
        the first batch is drawn to after the last step)."""
        began = time.perf_counter()
        for _ in range(steps):
            self.step()
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        return steps * self.batch_size / (time.perf_counter() - began)


class _PairedSteps:
    """Trainer callback: after every trainer step, one :class:`PlainLoop` step; both are timed.

    A trainer step's time runs from the end of the previous call to the start of this one (so it
    holds all of the trainer's per-step work: data, step, accumulators, progress, callbacks'
    loop). The first step of each is left out (first-call costs).
    """

    def __init__(self, plain: PlainLoop) -> None:
        self.plain = plain
        self.trainer_seconds: list[float] = []
        self.plain_seconds: list[float] = []
        self.mark: float | None = None

    def on_step(self, trainer) -> None:
        now = time.perf_counter()
        if self.mark is not None:
            self.trainer_seconds.append(now - self.mark)
        self.plain.step()
        if self.plain.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        self.mark = time.perf_counter()
        self.plain_seconds.append(self.mark - now)


def compare_plain(overrides: dict, steps: int, rounds: int) -> dict:
    """The trainer's ERM against :class:`PlainLoop` on one thread, two ways.

    * **step-paired** (the headline): ``rounds`` trainer runs of ``steps`` steps, each trainer step
      followed by one plain step in the same process (:class:`_PairedSteps`), so that both see the
      same load of a shared machine; images per second = batch / the median step time over all
      runs, first steps left out; ``trainer_vs_plain`` = the median over the step pairs of
      ``plain step time / trainer step time`` (a pair shares the machine's load of the moment).
    * **whole runs**, interleaved (trainer, plain, trainer, plain, ...): ``rounds`` runs each of
      ``steps`` steps, images per second of the whole run (first step included); best and median.

    On CUDA the trainer's steps are not synchronised per step, so use the whole-run numbers there.
    """
    import torch

    from freqtail.train import load_config
    from freqtail.train.pipeline import resolve_data_pipeline

    overrides = {**overrides, "objective": "erm"}
    config = load_config(overrides={**overrides, "steps": steps})
    batch = config.batch_size
    _run(overrides, 3)  # first-call costs of the process, not counted
    PlainLoop(config, seed=0).run(3)
    trainer_seconds, plain_seconds, trainer_runs, plain_runs = [], [], [], []
    for round_number in range(rounds):
        pairs = _PairedSteps(PlainLoop(config, seed=round_number))
        _run(overrides, steps, callbacks=[pairs])
        trainer_seconds += pairs.trainer_seconds
        plain_seconds += pairs.plain_seconds[1:]  # pair k: trainer step k + 1, then plain step k + 1
    paired = statistics.median(p / t for t, p in zip(trainer_seconds, plain_seconds, strict=True))
    for round_number in range(rounds):
        trainer_runs.append(_run(overrides, steps))
        plain_runs.append(PlainLoop(config, seed=round_number).run(steps))
    trainer_rate = batch / statistics.median(trainer_seconds)
    plain_rate = batch / statistics.median(plain_seconds)
    best_t, best_p = max(trainer_runs), max(plain_runs)
    median_t, median_p = statistics.median(trainer_runs), statistics.median(plain_runs)
    return {
        "trainer_images_per_second": round(trainer_rate, 1),
        "plain_images_per_second": round(plain_rate, 1),
        "trainer_vs_plain": round(paired, 4),
        "statistic": (
            f"{rounds} step-paired runs of {steps} steps (first steps out): images per second from the "
            "median step times; trainer_vs_plain = the median over pairs of plain / trainer step time"
        ),
        "ratio_of_medians": round(trainer_rate / plain_rate, 4),
        "whole_runs": {
            "trainer_vs_plain_best": round(best_t / best_p, 4),
            "trainer_vs_plain_median": round(median_t / median_p, 4),
            "trainer_images_per_second": [round(v, 1) for v in trainer_runs],
            "plain_images_per_second": [round(v, 1) for v in plain_runs],
        },
        "data_pipeline": resolve_data_pipeline(config),
        "model": config.model,
        "batch_size": batch,
        "device": config.device,
        "threads": torch.get_num_threads(),
    }


#: Execution options compared by :func:`compare_execution` (config keys; freqtail.models.execution).
EXECUTIONS = {
    "eager": {},
    "channels-last": {"channels_last": True},
    "compiled": {"compile": True},
    "channels-last+compiled": {"channels_last": True, "compile": True},
}
#: Steps left out of a run's timing: they compile (torch.compile) or warm the allocator.
WARM_STEPS = 3


class _StepTimes:
    """Seconds between consecutive optimiser steps of one trainer run (an ``on_step`` callback),
    evaluation at epoch ends left out."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.mark: float | None = None

    def on_step(self, trainer) -> None:
        if trainer.dist.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        now = time.perf_counter()
        if self.mark is not None:
            self.seconds.append(now - self.mark)
        self.mark = now

    def on_epoch_end(self, trainer, record) -> None:
        self.mark = None


def compare_execution(base: dict, steps: int, rounds: int, attack_steps: int) -> dict:
    """Trainer images per second for ERM and PGD-AT with each of :data:`EXECUTIONS`.

    Each round runs every option once, in turn (interleaved, so all see the machine's load of the
    moment); a run's rate is ``batch / median step time`` over its steps after the first
    :data:`WARM_STEPS` (which compile); ``vs_eager`` is the median over rounds of the run's rate
    over the same round's eager rate. ``warmup_seconds``: the median training time not in the timed
    steps (the first steps: for the compiled options, mostly compilation).
    """
    import torch

    out: dict = {}
    for objective, extra in (("erm", {}), ("pgd-at", {"attack_steps": attack_steps})):
        rates: dict[str, list[float]] = {name: [] for name in EXECUTIONS}
        first: dict[str, list[float]] = {name: [] for name in EXECUTIONS}
        for _ in range(rounds):
            for name, options in EXECUTIONS.items():
                times = _StepTimes()
                settings = {**base, "objective": objective, **extra, **options, "eval_every": 10**6}
                total = _train_seconds(settings, steps + WARM_STEPS, callbacks=[times])
                steady = times.seconds[WARM_STEPS - 1 :]  # seconds[k]: step k + 2
                rates[name].append(base["batch_size"] / statistics.median(steady))
                first[name].append(total - sum(steady))
        out[objective] = {
            name: {
                "images_per_second": round(statistics.median(rates[name]), 1),
                "vs_eager": round(
                    statistics.median(r / e for r, e in zip(rates[name], rates["eager"], strict=True)), 3
                ),
                "warmup_seconds": round(statistics.median(first[name]), 2),
            }
            for name in EXECUTIONS
        }
    return {
        "execution": out,
        "statistic": (
            f"{rounds} interleaved rounds; per run batch / median step time of {steps} steps after "
            f"{WARM_STEPS} warm-up steps; vs_eager = median over rounds of the ratio to that round's eager"
        ),
        "model": base["model"],
        "batch_size": base["batch_size"],
        "device": base["device"],
        "amp": base.get("amp", "none"),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


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


def _pipeline_rate(config, pipeline: str, batches: int) -> float:
    """Training items per second that ``pipeline`` makes for ``config`` in this process: ``batches``
    batches of the trainer's own construction (``loader``: ``SeededItems`` in the trainer's
    ``DataLoader``; ``device``: ``DeviceTrainData.batches``), on ``config.device``."""
    import torch

    from freqtail.train.data import EpochSampler, SeededItems, build_train_data, train_loader
    from freqtail.train.device_data import build_device_train_data

    device = torch.device(config.device)
    if pipeline == "device":
        data = build_device_train_data(config, device)
    else:
        data = SeededItems(build_train_data(config), config.seed)
    sampler = EpochSampler(data, num_replicas=1, rank=0, seed=config.seed, drop_last=True)
    sampler.set_epoch(0)
    if pipeline == "device":
        stream = data.batches(sampler, config.batch_size, drop_last=True)
    else:
        stream = train_loader(data, sampler, config.batch_size, config, pin_memory=device.type == "cuda")
    stream = iter(stream)
    next(stream)  # first-call costs, not counted
    began = time.perf_counter()
    for _ in range(batches):
        x = next(stream)[0].to(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    del x
    return batches * config.batch_size / (time.perf_counter() - began)


def compare_pipelines(base: dict, batches: int, rounds: int) -> dict:
    """Items per second of the loader and device pipelines (median of ``rounds`` interleaved runs
    of ``batches`` batches each) for crop-flip with zeros padding, reflect padding and BaSS augment."""
    from freqtail.train import load_config

    settings = {
        "zeros": {},
        "reflect": {"pad_mode": "reflect"},
        "bass-augment-0.5": {"bass": "augment", "gamma": 0.5},
    }
    out = {}
    for name, changes in settings.items():
        config = load_config(overrides={**base, **changes})
        rates = {"loader": [], "device": []}
        for _ in range(rounds):
            for pipeline in rates:
                rates[pipeline].append(_pipeline_rate(config, pipeline, batches))
        loader, device = statistics.median(rates["loader"]), statistics.median(rates["device"])
        out[name] = {
            "loader_items_per_second": round(loader),
            "device_items_per_second": round(device),
            "device_vs_loader": round(device / loader, 2),
        }
    return {
        "pipelines": out,
        "statistic": f"median of {rounds} interleaved runs of {batches} batches",
        "batch_size": base["batch_size"],
        "device": base["device"],
        "num_workers": 0,
    }


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
    parser.add_argument(
        "--compare-plain", action="store_true", help="trainer ERM against a plain PyTorch loop only"
    )
    parser.add_argument(
        "--pipeline", choices=("auto", "device", "loader"), default="auto", help="data_pipeline of both"
    )
    parser.add_argument(
        "--compare-pipelines", action="store_true", help="items/s of the loader and device pipelines only"
    )
    parser.add_argument(
        "--compare-execution",
        action="store_true",
        help="trainer images/s eager, channels-last, compiled and both only",
    )
    parser.add_argument("--json", action="store_true", help="with --compare-*: one JSON object")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    if args.compare_execution:
        import json

        base = {"model": args.model, "device": args.device, "batch_size": args.batch_size}
        if args.device.startswith("cuda"):
            base["amp"] = "bf16"
        result = compare_execution(base, args.steps, args.repeats, args.attack_steps)
        if args.json:
            print(json.dumps(result))
            return
        print(
            f"torch {result['torch']}, {args.model}, batch {args.batch_size}, device {args.device}, "
            f"amp {result['amp']}, threads {result['threads']}; {result['statistic']}"
        )
        for objective, rows in result["execution"].items():
            for name, row in rows.items():
                print(
                    f"   {objective:7s} {name:24s} {row['images_per_second']:8.1f} images/s  "
                    f"{row['vs_eager']:5.2f}x eager  (first {WARM_STEPS} steps {row['warmup_seconds']:.1f} s)"
                )
        return
    if args.compare_plain or args.compare_pipelines:
        import json

        base = {"model": args.model, "device": args.device, "batch_size": args.batch_size}
        if args.compare_plain:
            result = compare_plain({**base, "data_pipeline": args.pipeline}, args.steps, args.repeats)
        else:
            result = compare_pipelines(base, args.steps, args.repeats)
        if args.json:
            print(json.dumps(result))
        else:
            for key, value in result.items():
                print(f"{key}: {value}")
        return

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
    for pipeline, workers in (("device", 0), ("loader", 0), ("loader", args.workers)):
        plain, bassed = [], []
        settings = {**base, "num_workers": workers, "data_pipeline": pipeline}
        for _ in range(args.repeats):
            plain.append(_run(settings, args.steps))
            bassed.append(_run({**settings, "bass": "augment", "gamma": 1.0}, args.steps))
        p, b = statistics.median(plain), statistics.median(bassed)
        print(
            f"   {pipeline} pipeline, num_workers={workers}: no BaSS {p:7.0f} img/s, BaSS {b:7.0f} img/s, "
            f"extra step time {100 * (p / b - 1):+.1f}%"
        )

    print("\n3. data cost in one process (embedded 32x32, crop + flip)")
    costs = {kind: _item_cost(kind) for kind in ("none", "mixture", "on-the-fly")}
    print(
        f"   no BaSS {costs['none']:.0f} us/item; BaSS from the converted copy (the loader pipeline) "
        f"{costs['mixture']:.0f} us/item; BaSS per image on the fly {costs['on-the-fly']:.0f} us/item"
    )
    pipelines = compare_pipelines(
        {"device": args.device, "batch_size": args.batch_size}, args.steps, args.repeats
    )["pipelines"]
    for name, rates in pipelines.items():
        print(
            f"   {name}: loader pipeline {rates['loader_items_per_second']} items/s, device pipeline "
            f"{rates['device_items_per_second']} items/s ({rates['device_vs_loader']}x)"
        )
    bass_ms, step_ms = _module_cost(args.model, args.device, args.batch_size)
    print(
        f"   on-device BaSSModule on a batch of {args.batch_size}: {bass_ms:.2f} ms "
        f"= {100 * bass_ms / step_ms:.1f}% of one ERM step ({step_ms:.1f} ms)"
    )


if __name__ == "__main__":
    main()
