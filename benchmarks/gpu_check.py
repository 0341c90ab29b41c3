"""One GPU check, ready to run: every fast path of freqtail measured side by side on one device.

Writes ``OUT/gpu_check.json`` (every number, the environment, each check's status) and
``OUT/gpu_check.md`` (the same as tables, with the goals below), and prints the Markdown:

1. the CUDA-only tests (``pytest -m cuda``);
2. BaSS images/s (float32 tensor path) at 32x32 and 224x224, and the ratio to an FFT round trip;
3. ResNet-18 at 32x32 (``--model``): images/s of ERM and PGD-AT (10 steps) training steps in eager
   float32, bf16 autocast + channels-last, and compiled (``torch.compile``);
4. the on-device data pipeline against the DataLoader pipeline (items/s of an epoch's batches);
5. a one-process ``torchrun`` training smoke run (NCCL on CUDA, gloo on the CPU);
6. AutoAttack-fast (APGD-CE + APGD-T) on 256 images;
7. peak GPU memory (``torch.cuda.max_memory_allocated``).

Goals reported against (GPU): BaSS >= 1 million images/s at 32x32; a PGD-AT-10 epoch within 2x of 11
forward+backward passes per image at the measured bf16 speed; the device pipeline >= 1.5x the
DataLoader on ERM.

Run on one GPU (about 8 minutes at most): ``python benchmarks/gpu_check.py --out gpu-check``.
On the CPU, the same checks, smaller (under 3 minutes; a test runs it):
``python benchmarks/gpu_check.py --device cpu --quick --out /tmp/gpu-check``. Every check records
its own failure instead of stopping the others; the exit status is 1 when any check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------- helpers
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(fn, count: int, repeats: int, device: torch.device) -> float:
    """Best-of-``repeats`` items per second of ``fn()`` processing ``count`` items (one warm-up call)."""
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return count / best


class Check:
    """One named check: runs, records its numbers or its failure, and its time."""

    def __init__(self, report: dict, name: str) -> None:
        self.report, self.name = report, name

    def __enter__(self) -> dict:
        self.start = time.perf_counter()
        self.entry = {"status": "ok"}
        return self.entry

    def __exit__(self, kind, error, tb) -> bool:
        self.entry["seconds"] = round(time.perf_counter() - self.start, 2)
        if error is not None:
            self.entry["status"] = "failed"
            self.entry["error"] = f"{type(error).__name__}: {error}"
            self.entry["traceback"] = "".join(traceback.format_exception(kind, error, tb))[-2000:]
        self.report["checks"][self.name] = self.entry
        print(f"[{self.entry['seconds']:7.1f} s] {self.name}: {self.entry['status']}", file=sys.stderr)
        return True  # the other checks still run


# ----------------------------------------------------------------------------------------------- checks
def check_cuda_tests(entry: dict, quick: bool) -> None:
    # Only the test files that mark a test cuda: collecting the whole suite imports every test module
    # (about 25 s on a loaded CPU) to select the same tests.
    marked = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").glob("test_*.py")
        if "mark.cuda" in path.read_text(encoding="utf-8")
    )
    # -n 0: in this process (the suite's own two pytest-xdist workers would share the one GPU).
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-n",
        "0",
        "-m",
        "cuda",
        "-p",
        "no:cacheprovider",
        *marked,
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.strip().splitlines() if line.strip()]
    entry["command"] = " ".join(command[2:])
    entry["summary"] = lines[-1] if lines else ""
    entry["returncode"] = done.returncode
    if done.returncode not in (0, 5):  # 5: no test collected
        raise RuntimeError(f"pytest -m cuda failed: {entry['summary']}")


def check_bass(entry: dict, device: torch.device, quick: bool) -> None:
    from freqtail.bass import balance_spectrum_tensor

    for side, batch in ((32, 256 if quick else 8192), (224, 8 if quick else 256)):
        x = torch.rand(batch, 3, side, side, device=device)

        def bass(x=x):
            balance_spectrum_tensor(x)

        def round_trip(x=x):
            torch.fft.irfft2(torch.fft.rfft2(x), s=x.shape[-2:])

        repeats = 2 if quick else 5
        bass_rate = _rate(bass, batch, repeats, device)
        fft_rate = _rate(round_trip, batch, repeats, device)
        entry[f"{side}"] = {
            "batch": batch,
            "bass_images_per_second": round(bass_rate, 1),
            "fft_round_trip_images_per_second": round(fft_rate, 1),
            "bass_vs_fft_time": round(fft_rate / bass_rate, 3),
        }
    entry["goal"] = "BaSS >= 1,000,000 images/s at 32x32 (GPU)"
    entry["goal_met"] = entry["32"]["bass_images_per_second"] >= 1e6 if device.type == "cuda" else None


def _training_step(model, objective: str, amp: bool, device: torch.device):
    """One optimiser step of ERM or PGD-AT (10 steps of 2/255 within 8/255) on a fixed batch."""
    import torch.nn.functional as F

    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if amp
        else torch.autocast(device.type, enabled=False)
    )

    def step(x, y):
        if objective == "pgd-at":
            model.eval()
            delta = torch.empty_like(x).uniform_(-8 / 255, 8 / 255)
            for _ in range(10):
                delta.requires_grad_(True)
                with autocast:
                    loss = F.cross_entropy(model((x + delta).clamp(0, 1)), y)
                (grad,) = torch.autograd.grad(loss, delta)
                delta = (delta.detach() + 2 / 255 * grad.sign()).clamp(-8 / 255, 8 / 255)
            x = (x + delta).clamp(0, 1).detach()
            model.train()
        with autocast:
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def check_training(entry: dict, device: torch.device, quick: bool, model_name: str) -> None:
    from freqtail.models import FreqtailModel, create_model
    from freqtail.models.execution import ExecutionOptions, prepare_model

    batch = 32 if quick else 512
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    modes = {
        "eager_float32": (ExecutionOptions(), False),
        "bf16_channels_last": (ExecutionOptions(channels_last=True), True),
        "compiled": (ExecutionOptions(compile=True), False),
    }
    for objective in ("erm", "pgd-at"):
        for mode, (options, amp) in modes.items():
            torch.manual_seed(0)
            owner = FreqtailModel(create_model(model_name, 10)).to(device).train()
            model = prepare_model(owner, options)
            step = _training_step(model, objective, amp, device)
            rate = _rate(lambda step=step: step(x, y), batch, 2 if quick else 3, device)
            entry[f"{objective}_{mode}_images_per_second"] = round(rate, 1)
    entry["model"], entry["batch"] = model_name, batch
    # Forward+backward passes of one PGD-AT-10 step: 10 attack passes + 1 training pass.
    bf16_erm = entry["erm_bf16_channels_last_images_per_second"]
    bf16_at = entry["pgd-at_bf16_channels_last_images_per_second"]
    entry["pgd_at_time_vs_11_passes_bf16"] = round(bf16_erm / (11 * bf16_at), 3)
    entry["goal"] = "a PGD-AT-10 epoch within 2x of 11 forward+backward passes per image at bf16 speed (GPU)"
    entry["goal_met"] = entry["pgd_at_time_vs_11_passes_bf16"] <= 2 if device.type == "cuda" else None


def check_pipelines(entry: dict, device: torch.device, quick: bool) -> None:
    from freqtail.train import load_config
    from freqtail.train.data import EpochSampler, SeededItems, build_train_data, train_loader
    from freqtail.train.device_data import build_device_train_data

    batch = 128
    config = load_config(
        overrides={"dataset": "embedded", "batch_size": batch, "train_subset": 1024 if quick else None}
    )
    device_data = build_device_train_data(config, device)
    order = list(range(len(device_data)))[: (len(device_data) // batch) * batch]

    def device_epoch():
        for start in range(0, len(order), batch):
            images, _, _ = device_data.batch(0, order[start : start + batch])
        _sync(device)

    items = SeededItems(build_train_data(config), config.seed)
    sampler = EpochSampler(items, num_replicas=1, rank=0, seed=config.seed, drop_last=True)
    workers = 0 if quick else min(8, os.cpu_count() or 1)
    loader = train_loader(
        items, sampler, batch, config.replace(num_workers=workers), pin_memory=device.type == "cuda"
    )

    def loader_epoch():
        for images, *_ in loader:
            images.to(device, non_blocking=True)
        _sync(device)

    repeats = 1 if quick else 3
    device_rate = _rate(device_epoch, len(order), repeats, device)
    loader_rate = _rate(loader_epoch, len(order), repeats, device)
    entry.update(
        images=len(order),
        loader_workers=workers,
        device_items_per_second=round(device_rate, 1),
        loader_items_per_second=round(loader_rate, 1),
        device_vs_loader=round(device_rate / loader_rate, 2),
        goal="the device pipeline >= 1.5x the DataLoader pipeline on ERM",
        goal_met=device_rate >= 1.5 * loader_rate,
    )


def check_torchrun(entry: dict, device: torch.device, quick: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
            "-m", "freqtail.cli", "train", "--device", device.type, "--steps", "4", "--batch-size", "32",
            "--set", "train_subset=128", "--set", "test_subset=64", "--no-progress",
            "--out", str(Path(folder) / "run"),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=dict(os.environ))
        entry["command"] = " ".join(command[2:])
        entry["backend"] = "nccl" if device.type == "cuda" else "gloo"
        entry["returncode"] = done.returncode
        entry["last_line"] = (done.stdout.strip().splitlines() or [""])[-1]
        if done.returncode != 0:
            raise RuntimeError(f"torchrun training failed: {done.stderr.strip()[-500:]}")


def check_autoattack(entry: dict, device: torch.device, quick: bool) -> None:
    from freqtail.attacks import autoattack
    from freqtail.models import FreqtailModel, create_model

    n = 16 if quick else 256
    torch.manual_seed(0)
    model = FreqtailModel(create_model("small-cnn" if quick else "resnet18", 10)).to(device).eval()
    x = torch.rand(n, 3, 32, 32, device=device)
    with torch.no_grad():
        y = model(x).argmax(1)  # labels the model gets right, so every image is attacked
    start = time.perf_counter()
    result = autoattack(model, x, y, eps=8 / 255, version="fast", batch_size=n)
    _sync(device)
    entry.update(
        images=n,
        seconds_attack=round(time.perf_counter() - start, 2),
        clean_accuracy=float(result.clean_accuracy),
        robust_accuracy=float(result.robust_accuracy),
    )


# ----------------------------------------------------------------------------------------------- report
def markdown(report: dict) -> str:
    checks = report["checks"]
    lines = [
        "# freqtail GPU check",
        "",
        f"Device: {report['device_name']} ({report['device']}); torch {report['torch']}; "
        f"{'quick' if report['quick'] else 'full'} run; {report['total_seconds']} s in all.",
        "",
        "| check | status | seconds | numbers |",
        "| --- | --- | ---: | --- |",
    ]
    for name, entry in checks.items():
        numbers = {
            k: v for k, v in entry.items() if k not in ("status", "seconds", "traceback", "goal", "goal_met")
        }
        shown = "; ".join(f"{k}: {v}" for k, v in numbers.items())
        lines.append(f"| {name} | {entry['status']} | {entry['seconds']} | {shown} |")
    lines += ["", "Goals:", ""]
    for entry in checks.values():
        if "goal" in entry:
            met = {True: "met", False: "NOT met", None: "not measured (needs a GPU)"}[entry.get("goal_met")]
            lines.append(f"- {entry['goal']}: {met}.")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes (the CPU test run)")
    parser.add_argument("--model", default="resnet18", help="architecture of the training check")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; use --device cpu --quick for the CPU run.", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    report = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "CPU",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "quick": args.quick,
        "threads": torch.get_num_threads(),
        "checks": {},
    }
    began = time.perf_counter()
    model = "small-cnn" if (args.quick and device.type == "cpu" and args.model == "resnet18") else args.model
    with Check(report, "cuda tests (pytest -m cuda)") as entry:
        check_cuda_tests(entry, args.quick)
    with Check(report, "BaSS speed") as entry:
        check_bass(entry, device, args.quick)
    with Check(report, "training speed (ERM, PGD-AT-10)") as entry:
        check_training(entry, device, args.quick, model)
    with Check(report, "device pipeline vs DataLoader") as entry:
        check_pipelines(entry, device, args.quick)
    with Check(report, "torchrun smoke run") as entry:
        check_torchrun(entry, device, args.quick)
    with Check(report, "AutoAttack-fast") as entry:
        check_autoattack(entry, device, args.quick)
    with Check(report, "peak GPU memory") as entry:
        entry["peak_gib"] = (
            round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if device.type == "cuda" else None
        )
    report["total_seconds"] = round(time.perf_counter() - began, 1)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (out / "gpu_check.md").write_text(text)
    print(text)
    failed = [name for name, entry in report["checks"].items() if entry["status"] != "ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
