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

Models: ``small-cnn`` always; ``resnet18`` on a GPU (or with ``--models``).

``--peers`` (the speed goal against torchattacks): a small-cnn adversarially trained here with
freqtail's PGD-AT objective (eps 8/255, step 2/255, 5 steps, Adam 1e-3, batch 128, ``--epochs``
epochs on the embedded dataset's 6,400 training images; about a minute per epoch on one thread),
then PGD-20 on its first ``--peer-images`` test images, timed three ways in turn: freqtail's
:func:`~freqtail.attacks.pgd` (fooled images leave the batch), the same with ``drop_fooled=False``,
and :func:`torchattacks_pgd`, torchattacks' published PGD loop written out here (torchattacks is
not a freqtail dependency): uniform start in the eps-ball clipped to [0, 1], 20 steps of
``x + alpha * sign(grad mean CE)`` projected onto the ball and [0, 1], every image for every step,
the last iterate returned. Printed for the true labels and for labels = the model's predictions
(every image attacked), with each attack's robust accuracy. Goal: torchattacks' time / freqtail's
>= 1.5 on the true labels.

Run ``OMP_NUM_THREADS=1 python benchmarks/attack_speed.py`` (``--quick`` for a shorter run, ``--json``
for machine-readable output, ``--device cuda`` on a GPU, ``--peers`` for the comparison).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
import torch.nn.functional as F

from freqtail.attacks import pgd
from freqtail.data.embedded import build_embedded_arrays
from freqtail.models import create_model
from freqtail.train.objectives import PGDAT

#: The budget of the peer comparison: the paper's CIFAR PGD-20 (and the PGD-AT training budget).
EPS, STEP_SIZE = 8 / 255, 2 / 255
#: Steps of the PGD-AT attack that trains the peer comparison's model.
TRAINING_ATTACK_STEPS = 5
#: The goal: torchattacks' PGD-20 time over freqtail's on the adversarially trained model.
PEER_GOAL = 1.5


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
    return create_model(name, 10).to(device).eval()


def torchattacks_pgd(
    model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, alpha: float, steps: int
) -> torch.Tensor:
    """torchattacks' ``PGD`` (v3) as published: float (N, C, H, W) in [0, 1] -> the last iterate.

    Uniform start in the eps-ball clipped to [0, 1]; each step ``x + alpha * sign(grad)`` of the
    batch-mean cross-entropy, then the projection onto ``[x - eps, x + eps]`` and [0, 1]. Every
    image is attacked for every step.
    """
    images, labels = images.clone().detach(), labels.clone().detach()
    adv = images + torch.empty_like(images).uniform_(-eps, eps)
    adv = torch.clamp(adv, min=0, max=1).detach()
    for _ in range(steps):
        adv.requires_grad = True
        cost = F.cross_entropy(model(adv), labels)
        grad = torch.autograd.grad(cost, adv, retain_graph=False, create_graph=False)[0]
        adv = adv.detach() + alpha * grad.sign()
        delta = torch.clamp(adv - images, min=-eps, max=eps)
        adv = torch.clamp(images + delta, min=0, max=1).detach()
    return adv


def adversarially_trained(
    device: torch.device, epochs: int
) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """small-cnn (16 classes) trained with freqtail's PGD-AT objective; its model and float test set.

    Returns the model in eval mode, test images float (1600, 3, 32, 32) in [0, 1] and labels (1600,).
    """
    arrays = build_embedded_arrays()

    def tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.from_numpy(arrays[f"{split}_images"]).permute(0, 3, 1, 2).float().div(255)
        return images.contiguous().to(device), torch.from_numpy(arrays[f"{split}_labels"]).to(device)

    x_train, y_train = tensors("train")
    torch.manual_seed(0)
    model = create_model("small-cnn", 16).to(device)
    objective = PGDAT(eps=EPS, step_size=STEP_SIZE, steps=TRAINING_ATTACK_STEPS)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(y_train), generator=order).split(128):
            batch = batch.to(device)
            output = objective(lambda *xs: tuple(model(x) for x in xs), model, x_train[batch], y_train[batch])
            optimiser.zero_grad(set_to_none=True)
            output.loss.backward()
            optimiser.step()
    model.eval()
    model.zero_grad(set_to_none=True)
    return (model, *tensors("test"))


def compare_with_torchattacks(device: torch.device, images: int, repeats: int, epochs: int) -> dict:
    """PGD-20 on the adversarially trained small-cnn: freqtail (with and without dropping fooled
    images) against :func:`torchattacks_pgd`, for the true labels and for labels = predictions."""
    began = time.perf_counter()
    model, x_test, y_test = adversarially_trained(device, epochs)
    training_seconds = time.perf_counter() - began
    x = x_test[torch.randperm(len(y_test), generator=torch.Generator().manual_seed(1))[:images]]
    y_true = y_test[torch.randperm(len(y_test), generator=torch.Generator().manual_seed(1))[:images]]
    with torch.no_grad():
        predicted = model(x).argmax(dim=1)
    settings = dict(eps=EPS, step_size=STEP_SIZE, steps=20)
    rows = {}
    for name, y in (("true labels", y_true), ("labels = predictions", predicted)):
        outputs = {}

        def run(key, fn, outputs=outputs):
            def timed():
                outputs[key] = fn()

            return timed

        times = best_seconds(
            {
                "freqtail": run("freqtail", lambda y=y: pgd(model, x, y, generator=0, **settings)),
                "freqtail_whole_batch": run(
                    "freqtail_whole_batch",
                    lambda y=y: pgd(model, x, y, generator=0, drop_fooled=False, **settings),
                ),
                "torchattacks": run(
                    "torchattacks", lambda y=y: torchattacks_pgd(model, x, y, EPS, STEP_SIZE, 20)
                ),
            },
            repeats,
            device,
        )
        with torch.no_grad():
            clean = model(x).argmax(dim=1) == y
            robust = {
                key: int((clean & (model(adv).argmax(dim=1) == y)).sum()) for key, adv in outputs.items()
            }
            adversarial_accuracy = int((model(outputs["torchattacks"]).argmax(dim=1) == y).sum())
        rows[name] = {
            "images": images,
            "clean_correct": int(clean.sum()),
            "robust_correct": robust,
            "torchattacks_accuracy_on_its_examples": adversarial_accuracy,
            "identical_with_and_without_dropping": bool(
                torch.equal(outputs["freqtail"], outputs["freqtail_whole_batch"])
            ),
            "seconds": {key: round(value, 3) for key, value in times.items()},
            "torchattacks_over_freqtail": round(times["torchattacks"] / times["freqtail"], 2),
            "torchattacks_over_freqtail_whole_batch": round(
                times["torchattacks"] / times["freqtail_whole_batch"], 2
            ),
        }
    return {
        "model": f"small-cnn, PGD-AT {epochs} epoch(s) on the embedded dataset",
        "training_seconds": round(training_seconds, 1),
        "goal": f"torchattacks / freqtail >= {PEER_GOAL:g} on the true labels",
        "met": rows["true labels"]["torchattacks_over_freqtail"] >= PEER_GOAL,
        "rows": rows,
    }


def print_peers(report: dict) -> None:
    print(
        f"\nPGD-20 against torchattacks' loop on {report['model']} "
        f"(trained in {report['training_seconds']} s)"
    )
    print(
        f"{'labels':<21} {'images':>6} {'clean':>5} {'freqtail s':>10} {'whole-batch s':>13} "
        f"{'torchattacks s':>14} {'ta/ft':>6} {'ta/whole':>8} {'robust ft/ta':>12} {'identical':>9}"
    )
    for name, row in report["rows"].items():
        seconds, robust = row["seconds"], row["robust_correct"]
        print(
            f"{name:<21} {row['images']:>6} {row['clean_correct']:>5} {seconds['freqtail']:>10.2f} "
            f"{seconds['freqtail_whole_batch']:>13.2f} {seconds['torchattacks']:>14.2f} "
            f"{row['torchattacks_over_freqtail']:>6.2f} "
            f"{row['torchattacks_over_freqtail_whole_batch']:>8.2f} "
            f"{robust['freqtail']:>5}/{robust['torchattacks']:<6} "
            f"{str(row['identical_with_and_without_dropping']):>9}"
        )
    print(f"goal {report['goal']}: {'met' if report['met'] else 'NOT met'}")


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
    parser.add_argument("--peers", action="store_true", help="also compare with torchattacks' PGD loop")
    parser.add_argument("--epochs", type=int, default=2, help="PGD-AT epochs of the --peers model")
    parser.add_argument("--peer-images", type=int, default=256, help="test images attacked with --peers")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    models = args.models or (["small-cnn", "resnet18"] if gpu else ["small-cnn"])
    batch_size = args.batch_size or (512 if gpu else (64 if args.quick else 128))
    repeats = 2 if args.quick else args.repeats
    if gpu:
        torch.backends.cudnn.benchmark = True
    rows = [measure(name, device, batch_size, repeats, args.steps) for name in models]
    peers = compare_with_torchattacks(device, args.peer_images, repeats, args.epochs) if args.peers else None
    hardware = torch.cuda.get_device_name(device) if gpu else platform.processor() or platform.machine()
    if args.json:
        report = {"hardware": hardware, "threads": torch.get_num_threads(), "rows": rows}
        print(json.dumps(report if peers is None else {**report, "peers": peers}, indent=2))
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
    if peers is not None:
        print_peers(peers)


if __name__ == "__main__":
    main()
