"""Seeds and random-number-generator states for reproducible, resumable training.

Every random choice of a run is a pure function of the run's seed and *where* it happens:
the order of an epoch's samples of ``(seed, epoch)``, the augmentation of one sample of
``(seed, epoch, index)`` (on the device: the rule of :mod:`freqtail.train.device_data`), an
attack's random start of ``(seed, epoch, index)``. So a resumed run draws exactly what the
uninterrupted run drew, whatever the number of DataLoader workers or (for the data) processes.
"""

from __future__ import annotations

import base64
import random
from typing import Any

import numpy as np
import torch

#: Streams derived from one run seed; the number is mixed into the seed so streams never collide.
STREAMS = {
    "init": 1,
    "sampler": 2,
    "sample": 3,
    "epoch": 5,
    "eval": 6,
    "subset": 7,
    "loader": 8,
    "val": 9,
    "augment": 10,
}


def derive_seeds(seed: int, stream: str, *keys: int, count: int = 1) -> list[int]:
    """``count`` independent 63-bit seeds for one stream and position (one hash, ~10 us).

    Uses numpy's ``SeedSequence`` (a well-mixed hash), so nearby inputs give unrelated seeds.
    """
    entropy = [int(seed), STREAMS[stream], *(int(k) for k in keys)]
    words = np.random.SeedSequence(entropy).generate_state(count, dtype=np.uint64) >> np.uint64(1)
    return [int(word) for word in words]


def derive_seed(seed: int, stream: str, *keys: int) -> int:
    """A 63-bit seed for one stream and position, e.g. ``derive_seed(0, "sampler")``."""
    return derive_seeds(seed, stream, *keys)[0]


def capture_rng_state() -> dict[str, Any]:
    """The global RNG states (torch CPU and CUDA, numpy, Python) as JSON-ready values."""
    state: dict[str, Any] = {
        "torch_cpu": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii"),
        "torch_cuda": [],
        "numpy": None,
        "python": None,
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda"] = [
            base64.b64encode(s.numpy().tobytes()).decode("ascii") for s in torch.cuda.get_rng_state_all()
        ]
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 - capturing the legacy global state
    state["numpy"] = [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]
    version, internal, gauss = random.getstate()
    state["python"] = [version, list(internal), gauss]
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states only where CUDA is in use)."""

    def tensor(text: str) -> torch.Tensor:
        return torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype=np.uint8).copy())

    torch.set_rng_state(tensor(state["torch_cpu"]))
    cuda = state.get("torch_cuda") or []
    if cuda and torch.cuda.is_available():
        for index, text in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(tensor(text), index)
    if state.get("numpy"):
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    if state.get("python"):
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and Python's ``random`` with one integer."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeding the legacy global state
    random.seed(seed)


def per_sample_noise(seeds: torch.Tensor, shape: tuple[int, ...], kind: str = "uniform") -> torch.Tensor:
    """One noise tensor per sample, each drawn from its own generator: float32 (N, *shape) on CPU.

    Args:
        seeds: int64 (N,) per-sample seeds (from :func:`derive_seed`).
        shape: shape of one sample's noise, e.g. (C, H, W).
        kind: ``"uniform"`` (U[-1, 1)) or ``"normal"`` (N(0, 1)).

    A sample's noise depends on its seed only, not on the batch it lands in, so a run draws the
    same attack starts with any batch split (1 or N processes) and after a resume.
    """
    out = torch.empty((len(seeds), *shape), dtype=torch.float32)
    generator = torch.Generator()
    for row, seed in enumerate(seeds.tolist()):
        generator.manual_seed(int(seed))
        if kind == "uniform":
            torch.rand(shape, generator=generator, out=out[row])
        else:
            torch.randn(shape, generator=generator, out=out[row])
    if kind == "uniform":
        out.mul_(2).sub_(1)
    return out
