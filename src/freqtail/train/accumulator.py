"""Per-epoch sums of a training epoch on one rank (loss, correct predictions, images, loss terms)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from freqtail import distributed as D


@dataclass
class Accumulator:
    """Per-epoch sums on this rank: loss * n, correct, n, and each loss term * n.

    During an epoch the sums are float64 tensors on the training device (no host synchronisation
    per step); :meth:`as_list` reads them out. float64 keeps integer counts exact and makes a
    resumed partial epoch continue the same sums bit for bit.
    """

    loss: Any = 0.0
    correct: Any = 0.0
    count: float = 0.0
    terms: dict[str, Any] = field(default_factory=dict)

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, terms: dict) -> None:
        """Add one batch: ``loss`` (scalar mean), ``logits`` (N, K), labels ``y`` (N,), scalar ``terms``."""
        n = int(y.shape[0])
        self.loss = self.loss + loss.detach().double() * n
        self.correct = self.correct + (logits.detach().argmax(dim=1) == y).sum().double()
        self.count += n
        for name, value in terms.items():
            self.terms[name] = self.terms.get(name, 0.0) + value.detach().double() * n

    def as_list(self, names: Sequence[str]) -> list[float]:
        return [
            float(self.loss),
            float(self.correct),
            float(self.count),
            *(float(self.terms.get(n, 0.0)) for n in names),
        ]

    @classmethod
    def from_list(cls, values: Sequence[float], names: Sequence[str]) -> Accumulator:
        return cls(values[0], values[1], values[2], dict(zip(names, values[3:], strict=True)))

    def reduced(self, context: D.DistContext) -> Accumulator:
        """The sums over all ranks (float64 ``all_reduce``), terms in sorted order."""
        names = sorted(self.terms)
        return Accumulator.from_list(D.all_reduce_sum(self.as_list(names), context), names)

    def to_json(self) -> dict[str, Any]:
        return {
            "loss": float(self.loss),
            "correct": float(self.correct),
            "count": float(self.count),
            "terms": {name: float(value) for name, value in self.terms.items()},
        }

    @classmethod
    def from_json(cls, saved: dict[str, Any]) -> Accumulator:
        return cls(saved["loss"], saved["correct"], saved["count"], dict(saved["terms"]))
