"""One evaluation in progress: what every suite shares (the plan, the process, the records so far).

:class:`EvaluationSession` builds a suite's record before it runs (identity, settings, data,
fingerprint), picks the evaluated images by the one subset rule, counts an attack over this rank's
global batches (exact integer sums across ranks, per-image outcomes gathered in global-batch
order) and hands each finished record on. The suites themselves are
:mod:`~freqtail.evaluate.sample_suites`, :mod:`~freqtail.evaluate.masking_suite` and
:mod:`~freqtail.evaluate.corruption_suite`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from freqtail import __version__
from freqtail.data.subsets import SubsetChoice, choose_subset, dataset_labels
from freqtail.distributed import DistContext, all_reduce_counts
from freqtail.environment import measurement_environment
from freqtail.evaluate.plan import EvaluationPlan, load_batches
from freqtail.evaluate.records import Record, RecordId
from freqtail.evaluate.sharding import gather_outcomes, global_batches, rank_batches
from freqtail.execution_options import EAGER
from freqtail.progress import progress_bar, silent


def _fingerprinted(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a record's fingerprint covers: all of them, except eager execution.

    Records written before execution options existed ran eagerly and have no ``execution`` key;
    leaving the eager default out keeps their fingerprints, so ``--resume`` does not measure them
    again, while numbers measured channels-last or compiled get fingerprints of their own.
    """
    if settings.get("execution") == EAGER.to_dict():
        return {k: v for k, v in settings.items() if k != "execution"}
    return dict(settings)


def _fingerprint(parts: Mapping[str, Any]) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class EvaluationSession:
    """One evaluation in progress (see the module docstring).

    Attributes:
        plan: the :class:`~freqtail.evaluate.plan.EvaluationPlan` being run.
        model: the evaluated model, on ``context.device``.
        context: this process's rank, world size and device.
        progress: progress bars (rank 0 only).
        records: the records finished so far (dicts, as ``results.json`` stores them).
        boundaries: threat model -> the band suites' boundary facts (settings keys).
    """

    def __init__(
        self,
        plan: EvaluationPlan,
        model: torch.nn.Module,
        context: DistContext,
        progress: bool,
        on_record: Callable[[dict], None] | None,
        skip: Callable[[str, str], bool] | None,
    ) -> None:
        self.plan = plan
        self.model = model
        self.context = context
        self.progress = progress and context.is_main
        self.on_record = on_record
        self.skip = skip
        self.records: list[dict] = []
        self._label_cache: dict[int, np.ndarray | None] = {}
        self.boundaries: dict[str, dict[str, Any]] = {}
        self._bar: Any = None  # the running suite's progress (for say)

    def bar(self, total: int, desc: str):
        """The progress of ``total`` batches of one suite (:func:`freqtail.progress.progress_bar`: a bar on
        a terminal, else a line per finished batch at most every 10 s; nothing on other ranks)."""
        if not self.context.is_main:
            return silent(total=total)
        return progress_bar(total=total, desc=desc, unit="batch", enabled=self.progress)

    def say(self, message: str) -> None:
        """A message within the running suite (AutoAttack's attacks), shown as its progress is."""
        if self._bar is not None:
            self._bar.write(message)

    def base_record(self, setup, suite: str, metric: str, variant: str, data: dict, settings: dict) -> Record:
        """A record of ``suite`` before it runs: identity, settings, data, checkpoint, fingerprint."""
        plan = self.plan
        settings = {
            **settings,
            "execution": plan.request.execution.to_dict(),
        }  # every record states how it ran
        fingerprint = _fingerprint(
            {
                "checkpoint": plan.target.checkpoint.get("digest"),
                "data": data,
                "settings": _fingerprinted(settings),
                "threat_model": setup.to_dict(),
            }
        )
        return Record(
            id=RecordId(plan.target.checkpoint_tag, setup.name.value, metric, variant),
            suite=suite,
            metric=metric,
            threat_model=setup.name.value,
            threat_model_setup=setup.to_dict(),
            settings=settings,
            data=data,
            checkpoint=dict(plan.target.checkpoint),
            world_size=self.context.world_size,
            fingerprint=fingerprint,
            version=__version__,
            environment=measurement_environment(self.context.device),
        )

    def data_of(self, setup, choice: SubsetChoice) -> dict:
        """The ``data`` of a record: the test data and exactly which images (``indices``)."""
        plan = self.plan
        return {
            "dataset": plan.dataset,
            "split": "test",
            "bass": setup.data_bass,
            "bass_strength": plan.target.bass_strength if setup.data_bass else None,
            "data_root": plan.target.data_root,
            **choice.to_dict(),
        }

    def labels(self, dataset) -> np.ndarray | None:
        """The test set's labels (read once per dataset; None when not at hand)."""
        key = id(dataset)
        if key not in self._label_cache:
            self._label_cache[key] = dataset_labels(dataset)
        return self._label_cache[key]

    def choose(self, dataset) -> SubsetChoice:
        """The evaluated images of a test set: ``plan.request.n`` of them by the one subset rule."""
        return choose_subset(
            dataset, self.plan.request.n, self.plan.request.subset_seed, labels=self.labels(dataset)
        )

    def emit(self, record: Record) -> None:
        stored = record.to_dict()
        self.records.append(stored)
        if self.on_record is not None and self.context.is_main:
            self.on_record(stored)

    def skipped(self, record: Record) -> bool:
        return self.skip is not None and self.skip(str(record.id), record.fingerprint)

    def counts(
        self, setup, dataset, indices, desc: str, attack
    ) -> tuple[int, int, int, list[str], np.ndarray]:
        """Run ``attack(model, x, y, batch number) -> (clean_ok, robust_ok, warnings)`` over this rank's
        batches of the test-set ``indices`` and sum ``(clean correct, robust correct, total)`` over ranks.

        The last element is ``robust_ok`` of every image of ``indices``, in their order, gathered from
        every rank (:func:`freqtail.evaluate.sharding.gather_outcomes`)."""
        batch_size = self.plan.request.batch_size
        batches = rank_batches(global_batches(indices, batch_size), self.context)
        clean = robust = total = 0
        warnings_seen: list[str] = []
        outcomes: list[tuple[int, np.ndarray]] = []
        device = self.context.device
        with self.bar(len(batches), desc) as bar:
            self._bar = bar
            for number, images, labels in load_batches(self.plan, dataset, batches):
                images, labels = images.to(device), labels.to(device)
                clean_ok, robust_ok, messages = attack(setup.model, images, labels, number)
                clean += int(clean_ok.sum())
                robust += int(robust_ok.sum())
                total += int(labels.shape[0])
                outcomes.append((number, torch.as_tensor(robust_ok).detach().cpu().numpy().astype(bool)))
                warnings_seen.extend(messages)
                bar.update(1)
            self._bar = None
        summed = all_reduce_counts([clean, robust, total], self.context)
        mask = gather_outcomes(outcomes, len(indices), batch_size, self.context)
        return int(summed[0]), int(summed[1]), int(summed[2]), list(dict.fromkeys(warnings_seen)), mask
