"""What a number was measured with: thread count, library versions, device. One owner for that record.

float sums change order with the torch thread count and with library versions, so two machines'
numbers may differ by a few points for reasons no setting shows; every evaluation record states them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torchvision

from freqtail import __version__
from freqtail.formatting import count

#: The keys of an environment record, in the order they are written and shown.
KEYS = ("freqtail", "torch", "torchvision", "torch_threads", "device")


def measurement_environment(device: torch.device | str) -> dict[str, Any]:
    """``{"freqtail", "torch", "torchvision": version strings, "torch_threads": int, "device": "cpu"
    or "cuda:0 (NVIDIA H100 80GB HBM3)"}`` for work done now on ``device``."""
    device = torch.device(device)
    name = str(device)
    if device.type == "cuda":
        name += f" ({torch.cuda.get_device_name(device)})"
    return {
        "freqtail": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": name,
    }


def environment_text(environment: Mapping[str, Any] | None) -> str:
    """One line for people: "freqtail 0.1.0, torch 2.14.1, torchvision 0.29.1, 1 torch thread, cpu";
    "not recorded" for records written before environments were."""
    if not environment:
        return "not recorded"
    threads = environment.get("torch_threads")
    parts = [
        f"{name} {environment[name]}"
        for name in ("freqtail", "torch", "torchvision")
        if environment.get(name)
    ]
    if threads is not None:
        parts.append(count(threads, "torch thread"))
    if environment.get("device"):
        parts.append(str(environment["device"]))
    return ", ".join(parts) or "not recorded"


def measured_with(records: Sequence[Mapping[str, Any]]) -> str:
    """One sentence naming what stored records (``results.json`` entries) were measured with, e.g.
    "Measured with freqtail 0.1.0, torch 2.14.1, torchvision 0.29.1, 1 torch thread, cpu."; where they
    differ, each environment with its number of records."""
    counts: dict[str, int] = {}
    for record in records:
        text = environment_text(record.get("environment"))
        counts[text] = counts.get(text, 0) + 1
    if not counts:
        return ""
    if len(counts) == 1:
        return f"Measured with {next(iter(counts))}."
    parts = [f"{text} ({count(n, 'number')})" for text, n in counts.items()]
    return "Measured with: " + "; ".join(parts) + "."
