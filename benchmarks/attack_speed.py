"""How fast is PGD, and how close is one PGD step to one forward+backward pass?

Prints, for each model on the chosen device (32x32 RGB inputs, 10 classes, eval mode, random
weights — speed does not depend on training):

* seconds per 1,000 images for PGD-20 (eps 8/255, step 2/255, CE, random start), i.e. the whole
  attack including its clean and final forward passes;
* the cost of one PGD step, ``(time(PGD-20) - time(PGD-0)) / 20`` on the same batch, against one
  forward+backward pass of that batch that differentiates the input only (``torch.autograd.grad``
  w.r.t. the images: the work a PGD step cannot avoid) and against a training-style
  ``loss.backward()`` that also computes every parameter gradient. Goal: step / input-only
  forward+backward within 1.10.

Models: ``small-cnn`` always; ``resnet18`` on a GPU (or with ``--models``). Run
``OMP_NUM_THREADS=1 python benchmarks/attack_speed.py`` (``--quick`` for a shorter run, ``--json``
for machine-readable output, ``--device cuda`` on a GPU).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
import torch.nn.functional as F

from freqtail.attacks import pgd


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(fns: dict, repeats: int, device: torch.device) -> dict:
    """Best-of-``repeats`` wall time of each function, timed in turn so all see the same load."""
    for fn in fns.values():  # warm-up (allocator, cuDNN autotuning, lazy imports)
        fn()
    synchronize(device)
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def build(name: str, device: torch.device) -> torch.nn.Module:
    from freqtail.models import create_model

    return create_model(name, 10).to(device).eval()


def measure(name: str, device: torch.device, batch_size: int, repeats: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = build(name, device)
    x = torch.rand(batch_size, 3, 32, 32, device=device)
    with torch.no_grad():  # labels = predictions: every image is attacked (PGD skips misclassified ones)
        y = model(x).argmax(dim=1)
    eps, step_size = 8 / 255, 2 / 255

    def attack(n_steps: int):
        return lambda: pgd(model, x, y, eps=eps, step_size=step_size, steps=n_steps, generator=0)

    def input_forward_backward():
        probe = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(probe), y), probe)

    def training_forward_backward():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    times = best_seconds(
        {
            "pgd": attack(steps),
            "pgd0": attack(0),
            "fwd_bwd_input": input_forward_backward,
            "fwd_bwd_training": training_forward_backward,
        },
        repeats,
        device,
    )
    model.zero_grad(set_to_none=True)
    step = (times["pgd"] - times["pgd0"]) / steps
    return {
        "model": name,
        "device": str(device),
        "batch_size": batch_size,
        "steps": steps,
        "pgd_seconds_per_1000_images": times["pgd"] / batch_size * 1000,
        "pgd_step_ms": step * 1000,
        "fwd_bwd_input_ms": times["fwd_bwd_input"] * 1000,
        "fwd_bwd_training_ms": times["fwd_bwd_training"] * 1000,
        "step_over_fwd_bwd_input": step / times["fwd_bwd_input"],
        "step_over_fwd_bwd_training": step / times["fwd_bwd_training"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=None, help="default: small-cnn (+ resnet18 on a GPU)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 128 on CPU, 512 on GPU")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 repeats, smaller CPU batch")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    models = args.models or (["small-cnn", "resnet18"] if gpu else ["small-cnn"])
    batch_size = args.batch_size or (512 if gpu else (64 if args.quick else 128))
    repeats = 2 if args.quick else args.repeats
    if gpu:
        torch.backends.cudnn.benchmark = True
    rows = [measure(name, device, batch_size, repeats, args.steps) for name in models]
    hardware = torch.cuda.get_device_name(device) if gpu else platform.processor() or platform.machine()
    if args.json:
        print(json.dumps({"hardware": hardware, "threads": torch.get_num_threads(), "rows": rows}, indent=2))
        return
    print(f"PGD-{args.steps} speed on {hardware} ({device}, {torch.get_num_threads()} threads)")
    header = (
        f"{'model':<10} {'batch':>5} {'s/1000 img':>10} {'step ms':>8} {'f+b in ms':>9} "
        f"{'f+b tr ms':>9} {'step/f+b in':>11} {'step/f+b tr':>11}"
    )
    print(header)
    for row in rows:
        print(
            f"{row['model']:<10} {row['batch_size']:>5} {row['pgd_seconds_per_1000_images']:>10.2f} "
            f"{row['pgd_step_ms']:>8.1f} {row['fwd_bwd_input_ms']:>9.1f} {row['fwd_bwd_training_ms']:>9.1f} "
            f"{row['step_over_fwd_bwd_input']:>11.3f} {row['step_over_fwd_bwd_training']:>11.3f}"
        )


if __name__ == "__main__":
    main()
