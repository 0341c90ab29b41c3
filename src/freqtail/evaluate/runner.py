"""Run evaluation suites under threat models and return one record per number.

An :class:`~freqtail.evaluate.request.EvaluationRequest` checks the caller's choices when it is
built; ``plan_evaluation(request, target)`` checks them against the evaluated model and data (the
threat models that apply, the class count, the band boundary's range, the -C folders) before any
attack starts;
``run_evaluation(plan, model)`` runs it; :func:`evaluate_model` does both.

Each threat model's view of the model is prepared once with the plan's execution options
(channels-last, ``torch.compile``: :mod:`freqtail.models.execution`), and every record's ``settings``
says which (``execution``), so numbers measured with different options stay apart.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

import freqtail.evaluate.corruption_eval as ce
from freqtail import __version__
from freqtail.attacks import autoattack
from freqtail.attacks.common import correctness
from freqtail.attacks.masking import (
    STATE_NOT_RUN,
    VERDICT_WORDS,
    MaskingCheckConfig,
    gradient_masking_check,
)
from freqtail.checks import check_int
from freqtail.data import build_dataset, canonical_name, dataset_info
from freqtail.data.corruptions import CORRUPTIONS
from freqtail.data.subsets import SubsetChoice, choose_subset, dataset_labels
from freqtail.distributed import DistContext, all_reduce_counts, barrier, broadcast_json
from freqtail.errors import CheckpointError, ConfigError, InputError
from freqtail.evaluate.records import PerImage, Record, RecordId
from freqtail.evaluate.request import EvaluationRequest, EvaluationTarget
from freqtail.evaluate.results import eps_label, utc_now
from freqtail.evaluate.sharding import (
    batch_seed,
    gather_outcomes,
    global_batches,
    rank_batches,
)
from freqtail.evaluate.suites import (
    BAND_SUITES,
    ROBUST_SUITES,
    SUITE_SPECS,
    AttackConfig,
    AutoAttackSuiteConfig,
    Budget,
    SuiteSpec,
    resolve_budget,
)
from freqtail.evaluate.threat_models import resolve_threat_models, threat_model_setup
from freqtail.models.execution import EAGER, prepare_model
from freqtail.spectrum import DEFAULT_RATIO, num_bands, summarize

SEED_RULE = "global batch b uses seed numpy.random.SeedSequence([seed, b]) (independent of process count)"
#: Where a given boundary of the band suites came from (``settings["boundary_source"]``).
GIVEN_BOUNDARY = "given (band_boundary / --band-boundary)"
MASKING_RECORD = "gradient-masking"


def masking_verdict(report, record: str, indices: Sequence[int], created: str) -> dict[str, Any]:
    """The verdict of one gradient-masking check, as every robust record of that check stores it.

    Keys: ``state`` (:func:`freqtail.attacks.masking.verdict_state`), ``words`` (the state in words),
    ``checked`` (True), ``masked`` (state is "possible-masking"), ``judged`` (correctly classified
    images judged), ``images`` (images checked), ``minimum`` (fewest judged images for a verdict),
    ``flags``, ``summary``, ``indices`` (test-set indices of the checked images), ``record`` (id of
    the check's own record), ``check`` (a random id unique to this run of the check, so that two
    checks of one record id in the same second stay apart) and ``created`` (when the check ran).
    """
    return {
        "state": report.state,
        "words": VERDICT_WORDS[report.state],
        "checked": True,
        "masked": report.masked,
        "judged": int(report.considered),
        "images": int(report.total),
        "minimum": int(report.minimum),
        "flags": list(report.flags),
        "summary": report.summary,
        "indices": [int(i) for i in indices],
        "record": record,
        "check": uuid.uuid4().hex[:16],
        "created": created,
    }


def not_run_verdict(reason: str = "no check was run for this number") -> dict[str, Any]:
    """The verdict stored when no gradient-masking check ran (same keys as :func:`masking_verdict`)."""
    return {
        "state": STATE_NOT_RUN,
        "words": VERDICT_WORDS[STATE_NOT_RUN],
        "checked": False,
        "masked": False,
        "judged": None,
        "images": 0,
        "minimum": None,
        "flags": [],
        "summary": f"Gradient-masking check not run ({reason}).",
        "indices": [],
        "record": None,
        "created": utc_now(),
    }


@dataclass
class EvaluationPlan:
    """An evaluation checked before it starts: the request, its target and what they resolve to.

    Attributes:
        request: the caller's :class:`~freqtail.evaluate.request.EvaluationRequest`.
        target: the evaluated model's :class:`~freqtail.evaluate.request.EvaluationTarget`.
        dataset, num_classes, image_size: the test data.
        threat_models: the threat models that run, in order (the request's choice resolved against
            how the model was trained).
        budget: L-inf budget of the robust suites.
        band_boundary: the boundary band of the band suites, or None to measure it per threat model.
        corruption_sources: ``{threat model: CorruptionSource | None}`` (None = generate it).
        test_sets: the test sets built so far ``{None: raw, "dataset": BaSS-converted}``.
    """

    request: EvaluationRequest
    target: EvaluationTarget
    dataset: str
    num_classes: int
    image_size: tuple[int, int]
    threat_models: list[str]
    budget: Budget
    band_boundary: int | None = None
    corruption_sources: dict[str, ce.CorruptionSource | None] = field(default_factory=dict)
    test_sets: dict[str | None, Any] = field(default_factory=dict)

    @property
    def suites(self) -> tuple[str, ...]:
        return self.request.suites


def _test_set(plan: EvaluationPlan, data_bass: str | None):
    """The test split the threat model uses (cached in ``plan.test_sets``)."""
    if data_bass not in plan.test_sets:
        plan.test_sets[data_bass] = build_dataset(
            plan.dataset, "test", plan.target.data_root, bass=data_bass, strength=plan.target.bass_strength
        )
    dataset = plan.test_sets[data_bass]
    if len(dataset) == 0:
        raise InputError(f"The {plan.dataset} test set holds no images; there is nothing to evaluate.")
    return dataset


def plan_evaluation(request: EvaluationRequest, target: EvaluationTarget) -> EvaluationPlan:
    """Check a request against what it evaluates and return the plan (no attack runs here).

    The request's own values were checked when it was built; here come the checks that need the
    target: threat models that apply to how the model was trained, the class count, AutoAttack's
    class minimum, the band boundary's range for the image size, an empty test set, the -C folders.

    Raises:
        FreqtailError subclasses, each one sentence: a threat model that does not apply, a
        class-count mismatch, an empty test set, a missing -C folder, a band boundary outside the
        bands or given without a band suite.
    """
    suites = request.suites
    threat_models = resolve_threat_models(request.threat_model, target.training_bass, target.has_front)
    dataset = target.dataset
    for prebuilt in target.test_sets.values():
        if len(prebuilt) == 0:
            raise InputError(f"The {dataset} test set holds no images; there is nothing to evaluate.")
    if None in target.test_sets:
        reference = target.test_sets[None]
        dataset = getattr(reference, "name", dataset)
        num_classes = int(getattr(reference, "num_classes", len(reference.classes)))
        image_size = tuple(reference[0][0].shape[-2:])
    else:
        dataset = canonical_name(dataset)
        info = dataset_info(dataset)
        num_classes, image_size = info.num_classes, tuple(info.image_size)
    if target.model_classes is not None and int(target.model_classes) != num_classes:
        raise CheckpointError(
            f"The model has {target.model_classes} output classes but the {dataset} test set has "
            f"{num_classes}; evaluate it on the dataset it was trained on."
        )
    if num_classes < 4 and {"aa", "aa-fast"} & set(suites):
        raise InputError(
            f"AutoAttack's targeted attacks need at least 4 classes and {dataset} has {num_classes}; "
            "use the pgd20 and cw suites instead."
        )
    budget = resolve_budget(image_size, request.eps, request.step_size, target.training_budget)
    band_boundary = request.band_boundary
    if band_boundary is not None:
        if not set(BAND_SUITES) & set(suites):
            raise ConfigError(
                "A band boundary (--band-boundary) applies only to the band suites "
                f"{' and '.join(BAND_SUITES)}; add one of them or leave the boundary out."
            )
        band_boundary = check_int(
            band_boundary,
            f"The band boundary (--band-boundary) for {image_size[0]}x{image_size[1]} images",
            minimum=0,
            maximum=num_bands(*image_size),
            error=ConfigError,
        )
    plan = EvaluationPlan(
        request=request,
        target=target,
        dataset=dataset,
        num_classes=num_classes,
        image_size=image_size,
        threat_models=threat_models,
        budget=budget,
        band_boundary=band_boundary,
        test_sets=dict(target.test_sets),
    )
    if "corruptions" in suites:
        corruption = request.corruption
        if corruption.generate and target.work_dir is None:
            raise ConfigError(
                "Generating -C sets needs a folder to write them to (work_dir / the run folder)."
            )
        for name in threat_models:
            plan.corruption_sources[name] = ce.resolve_corruption_source(
                ce.ORDER_OF_THREAT_MODEL[name],
                dataset=dataset,
                num_classes=num_classes,
                image_size=image_size,
                corruptions=None if corruption.corruptions is None else list(corruption.corruptions),
                severities=None if corruption.severities is None else list(corruption.severities),
                c_root=corruption.c_root,
                bc_root=corruption.bc_root,
                data_root=target.data_root,
                generate_dir=(target.work_dir / "corrupted") if corruption.generate else None,
            )
    return plan


def _loader(plan: EvaluationPlan, dataset, batches: list[tuple[int, np.ndarray]]):
    """``(global batch number, images, labels)`` for this rank's batches."""
    if not batches:
        return
    loader = DataLoader(
        dataset, batch_sampler=[batch.tolist() for _, batch in batches], num_workers=plan.request.num_workers
    )
    for (number, _), (images, labels) in zip(batches, loader, strict=True):
        yield number, images, torch.as_tensor(labels, dtype=torch.long)


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


def _check_logits(model: torch.nn.Module, images: torch.Tensor, plan: EvaluationPlan) -> None:
    with torch.no_grad():
        logits = model(images[:2])
    if logits.ndim != 2 or logits.shape[1] != plan.num_classes:
        raise CheckpointError(
            f"The model returns {tuple(logits.shape)} logits for a batch of {plan.dataset} images, which has "
            f"{plan.num_classes} classes; the checkpoint does not match the dataset."
        )


class _Evaluation:
    """One evaluation in progress: runs the suites of one threat model at a time."""

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
        # Threat model -> the band suites' boundary facts (settings keys), set by measure_boundary.
        self.boundaries: dict[str, dict[str, Any]] = {}

    # -- shared pieces ------------------------------------------------------------------------------
    def _bar(self, total: int, desc: str):
        return tqdm(total=total, desc=desc, unit="batch", disable=not self.progress, dynamic_ncols=True)

    def _base(self, setup, suite: str, metric: str, variant: str, data: dict, settings: dict) -> Record:
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
        )

    def _data(self, setup, choice: SubsetChoice) -> dict:
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

    def _labels(self, dataset) -> np.ndarray | None:
        """The test set's labels (read once per dataset; None when not at hand)."""
        key = id(dataset)
        if key not in self._label_cache:
            self._label_cache[key] = dataset_labels(dataset)
        return self._label_cache[key]

    def choose(self, dataset) -> SubsetChoice:
        """The evaluated images of a test set: ``plan.request.n`` of them by the one subset rule."""
        return choose_subset(
            dataset, self.plan.request.n, self.plan.request.subset_seed, labels=self._labels(dataset)
        )

    def _emit(self, record: Record) -> None:
        stored = record.to_dict()
        self.records.append(stored)
        if self.on_record is not None and self.context.is_main:
            self.on_record(stored)

    def _skipped(self, record: Record) -> bool:
        return self.skip is not None and self.skip(str(record.id), record.fingerprint)

    def measure_boundary(self, setup, dataset, choice: SubsetChoice) -> dict[str, Any]:
        """The band suites' boundary for one threat model: given, or measured once on its evaluated images.

        Measured on rank 0 (the 80/20 boundary over the corner bands of the evaluated test images this
        threat model attacks, with :func:`freqtail.spectrum.summarize`; the inscribed-band boundary is
        recorded beside it) and sent to the other ranks, so every rank attacks the same band.

        Returns:
            settings keys: ``boundary_band`` (int), ``boundary_source`` (words, with the image count),
            and when measured ``boundary_band_inscribed`` (int or None), ``boundary_ratio`` and
            ``boundary_lfc_share`` (the share of non-DC power below the boundary, 4 decimals).
        """
        name = str(setup.name)
        if name in self.boundaries:
            return self.boundaries[name]
        plan = self.plan
        if plan.band_boundary is not None:
            facts: dict[str, Any] | None = {
                "boundary_band": plan.band_boundary,
                "boundary_source": GIVEN_BOUNDARY,
            }
        else:
            facts = self._measured_boundary(setup, dataset, choice) if self.context.is_main else None
            facts = broadcast_json(facts, self.context)
        self.boundaries[name] = facts
        return facts

    def _boundary_band(self, setup) -> int:
        """The band suites' boundary band of a threat model (after :meth:`measure_boundary`)."""
        return int(self.boundaries[str(setup.name)]["boundary_band"])

    def _measured_boundary(self, setup, dataset, choice: SubsetChoice) -> dict[str, Any]:
        plan = self.plan
        batches = list(enumerate(global_batches(choice.indices, plan.request.batch_size)))
        images = (x for _, x, _ in _loader(plan, dataset, batches))
        summary = summarize(images, ratio=DEFAULT_RATIO, device=self.context.device, progress=self.progress)
        which = "BaSS-converted" if setup.data_bass else "raw"
        return {
            "boundary_band": int(summary.boundary_band),
            "boundary_band_inscribed": None
            if summary.boundary_band_inscribed is None
            else int(summary.boundary_band_inscribed),
            "boundary_ratio": float(DEFAULT_RATIO),
            "boundary_lfc_share": round(float(summary.lfc_power_share), 4),
            "boundary_source": (
                f"measured: 80/20 boundary (corner bands, freqtail.spectrum.summarize) of the "
                f"{len(choice.indices)} evaluated test images ({which})"
            ),
        }

    # -- suites ---------------------------------------------------------------------------------------
    def _counts(
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
        with self._bar(len(batches), desc) as bar:
            for number, images, labels in _loader(self.plan, dataset, batches):
                images, labels = images.to(device), labels.to(device)
                clean_ok, robust_ok, messages = attack(setup.model, images, labels, number)
                clean += int(clean_ok.sum())
                robust += int(robust_ok.sum())
                total += int(labels.shape[0])
                outcomes.append((number, torch.as_tensor(robust_ok).detach().cpu().numpy().astype(bool)))
                warnings_seen.extend(messages)
                bar.update(1)
        summed = all_reduce_counts([clean, robust, total], self.context)
        mask = gather_outcomes(outcomes, len(indices), batch_size, self.context)
        return int(summed[0]), int(summed[1]), int(summed[2]), list(dict.fromkeys(warnings_seen)), mask

    def _config(self, spec: SuiteSpec, setup) -> AttackConfig:
        """What a suite runs under this threat model (the band suites at its boundary band)."""
        boundary = self._boundary_band(setup) if spec.band is not None else None
        return spec.config(self.plan.budget, boundary, self.plan.num_classes)

    def _attack_fn(self, spec: SuiteSpec, setup, state_key: str):
        """``attack(model, x, y, batch number) -> (clean_ok, robust_ok, warnings)`` of a suite."""
        plan = self.plan
        config = self._config(spec, setup)
        if config is None:

            def clean(model, x, y, number):
                ok, _ = correctness(model, x, x, y)
                return ok, ok, []

            return clean
        if isinstance(config, AutoAttackSuiteConfig):
            state_root = None
            if plan.target.work_dir is not None:
                state_root = (
                    plan.target.work_dir / "autoattack" / f"{setup.name}-{config.version}-{state_key}"
                )

            def run_aa(model, x, y, number):
                result = autoattack(
                    model,
                    x,
                    y,
                    eps=config.eps,
                    version=config.version,
                    seed=batch_seed(plan.request.seed, number),
                    batch_size=max(1, x.shape[0]),
                    state_path=None if state_root is None else state_root / f"batch-{number:05d}",
                    log_path=None if state_root is None else state_root / f"rank-{self.context.rank}.log",
                )
                return result.clean_correct, result.robust_correct, result.check_warnings

            return run_aa

        def run_pgd(model, x, y, number):
            generator = torch.Generator(device=x.device).manual_seed(batch_seed(plan.request.seed, number))
            x_adv = config(model, x, y, generator=generator)
            clean_ok, robust_ok = correctness(model, x, x_adv, y)
            return clean_ok, robust_ok, []

        return run_pgd

    def _settings(self, spec: SuiteSpec, setup) -> dict:
        """A suite's ``settings``: its attack config's own record, the budget, seed and batch size."""
        plan = self.plan
        config = self._config(spec, setup)
        if config is None:
            return {"attack": None, "batch_size": plan.request.batch_size}
        common = {
            **plan.budget.to_dict(),
            "seed": plan.request.seed,
            "seed_rule": SEED_RULE,
            "batch_size": plan.request.batch_size,
            "norm": "Linf",
        }
        facts = self.boundaries[str(setup.name)] if spec.band is not None else {}
        return {**config.to_dict(), **common, "budget_source": plan.budget.source, **facts}

    def _variant(self, spec: SuiteSpec, setup) -> str:
        boundary = self._boundary_band(setup) if spec.band is not None else None
        return spec.variant(eps_label(self.plan.budget.eps), boundary)

    def _planned(self, suite: str, setup, choice: SubsetChoice) -> Record:
        """The record a sample suite will have (identity, settings, data), before it runs."""
        spec = SUITE_SPECS[suite]
        return self._base(
            setup,
            suite,
            spec.metric,
            self._variant(spec, setup),
            self._data(setup, choice),
            self._settings(spec, setup),
        )

    def run_suite(self, suite: str, setup, dataset, choice: SubsetChoice, masking: dict | None) -> None:
        spec = SUITE_SPECS[suite]
        record = self._planned(suite, setup, choice)
        if self._skipped(record):
            return
        began = time.perf_counter()
        attack = self._attack_fn(spec, setup, record.fingerprint)
        clean, robust, total, messages, mask = self._counts(
            setup, dataset, choice.indices, f"{setup.name} {spec.metric}", attack
        )
        record = record.replace(
            correct=robust,
            total=total,
            accuracy=robust / total,
            clean_correct=clean,
            clean_accuracy=clean / total,
            check_warnings=messages,
            seconds=round(time.perf_counter() - began, 3),
            created=utc_now(),
            per_image=PerImage.of_mask(mask),
        )
        if spec.robust:
            # A copy of the whole verdict: a later check replacing the masking record changes nothing here.
            record.gradient_masking = dict(masking) if masking is not None else not_run_verdict()
        self._emit(record)

    def run_masking(self, setup, dataset, choice: SubsetChoice) -> dict:
        """The gradient-masking check on ``masking_n`` of the evaluated images (rank 0 only).

        The images are drawn from the evaluated subset by the same seeded, class-stratified rule.

        Returns:
            the verdict every robust record of this threat model stores (``gradient_masking``): see
            :func:`masking_verdict`.
        """
        plan = self.plan
        if plan.request.masking.images == 0:
            return not_run_verdict("masking_n = 0")
        chosen = choice.within(plan.request.masking.images, self._labels(dataset))
        config = MaskingCheckConfig(
            eps=plan.budget.eps,
            step_size=plan.budget.step_size,
            square_queries=plan.request.masking.queries,
            seed=plan.request.seed,
            min_judged=plan.request.masking.min_judged,
            bass_front=setup.front is not None,
        )
        data = self._data(setup, chosen)
        record = self._base(
            setup, "masking", MASKING_RECORD, f"eps={eps_label(plan.budget.eps)}", data, config.to_settings()
        )
        if not self.context.is_main:
            # Other ranks never write records; rank 0 holds the verdict.
            return {"checked": True, "record": str(record.id), "state": None, "indices": data["indices"]}
        began = time.perf_counter()
        images, labels = [], []
        for _, x, y in _loader(plan, dataset, [(0, chosen.indices)]):
            images.append(x)
            labels.append(y)
        x = torch.cat(images).to(self.context.device)
        y = torch.cat(labels).to(self.context.device)
        report = gradient_masking_check(setup.model, x, y, **config.kwargs(), progress=self.progress)
        record = record.replace(
            total=int(report.total),
            seconds=round(time.perf_counter() - began, 3),
            created=utc_now(),
            extras={
                "report": report.to_dict(),
                "state": report.state,
                "masked": report.masked,
                "flags": list(report.flags),
                "summary": report.summary,
            },
        )
        verdict = masking_verdict(report, str(record.id), data["indices"], record.created)
        self._emit(record)
        return verdict

    def run_corruptions(self, setup, choice: SubsetChoice | None) -> None:
        """The corruption suite of one threat model; ``choice`` = the evaluated test images (None: the
        suite runs alone, so they are chosen here from the raw test set's labels)."""
        plan = self.plan
        order = ce.ORDER_OF_THREAT_MODEL[setup.name]
        source = plan.corruption_sources.get(setup.name)
        if choice is None and (source is None or source.origin == "generated"):
            choice = self.choose(_test_set(plan, None))
        if source is None:
            indices = choice.indices
            if self.context.is_main:
                source = ce.generate_corruption_source(
                    order,
                    dataset=plan.dataset,
                    data_root=plan.target.data_root,
                    indices=indices,
                    generate_dir=plan.target.work_dir / "corrupted",
                    corruptions=plan.request.corruption.corruptions,
                    severities=plan.request.corruption.severities,
                    seed=plan.request.corruption.seed,
                    bass_strength=plan.target.bass_strength,
                    progress=self.progress,
                )
            barrier(self.context)
            if source is None:  # other ranks: the folder rank 0 wrote
                levels = plan.request.corruption.severities or [1, 2, 3, 4, 5]
                folder = ce.generated_folder(
                    plan.target.work_dir / "corrupted",
                    plan.dataset,
                    order,
                    indices,
                    levels,
                    plan.request.corruption.seed,
                    plan.target.bass_strength,
                )
                names = plan.request.corruption.corruptions or list(CORRUPTIONS)
                source = ce.CorruptionSource(order, folder, "generated", names, levels, {})
            plan.corruption_sources[setup.name] = source
        settings = {
            "attack": None,
            "batch_size": plan.request.batch_size,
            **source.to_dict(),
        }
        generated = source.origin == "generated"
        data = {
            "dataset": plan.dataset,
            "split": "test",
            "bass": "dataset" if order == ce.BASS_THEN_CORRUPT else None,
            "bass_strength": plan.target.bass_strength if order != ce.ORDER_NONE else None,
            "corruption_order": order,
            "n_requested": plan.request.n,
            "subset_seed": plan.request.subset_seed,
        }
        record = self._base(setup, "corruptions", SUITE_SPECS["corruptions"].metric, order, data, settings)
        if self._skipped(record):
            return
        began = time.perf_counter()
        n = None if generated else plan.request.n
        table, cells, masks = ce.corruption_outcomes(
            setup.model,
            source,
            n=n,
            subset_seed=plan.request.subset_seed,
            batch_size=plan.request.batch_size,
            context=self.context,
            progress=self.progress,
            desc=f"{setup.name} corruptions ({order})",
        )
        if generated:
            # A generated set holds exactly the evaluated test images, in order, and all are counted.
            record.data.update(choice.to_dict(), indices_of="test set (the images the -C files hold)")
        else:
            record.data.update(cells.to_dict(), indices_of="each corruption file (same positions in all)")
        counted = ce.corruption_table_record(table)
        record = record.replace(
            correct=counted.pop("correct"),
            total=counted.pop("total"),
            accuracy=counted.pop("accuracy"),
            extras={"order": order, **counted},
            seconds=round(time.perf_counter() - began, 3),
            created=utc_now(),
            per_image=PerImage.of_cells(cells.n, masks),
        )
        self._emit(record)


def run_evaluation(
    plan: EvaluationPlan,
    model: torch.nn.Module,
    *,
    context: DistContext | None = None,
    progress: bool = False,
    on_record: Callable[[dict], None] | None = None,
    skip: Callable[[str, str], bool] | None = None,
) -> list[dict]:
    """Run a plan on a model; return the records (see :mod:`freqtail.evaluate.results`).

    Args:
        plan: from :func:`plan_evaluation`.
        model: a :class:`freqtail.models.FreqtailModel` (or any classifier of [0, 1] images); each
            threat model gets its own view (with or without the BaSS front) sharing its weights,
            prepared once with ``plan.request.execution`` (with channels-last, ``model``'s weights are
            converted to that layout in place).
        context: the process's rank, world size and device
            (:func:`freqtail.distributed.init_distributed`); None = one process on the model's device.
        progress: a progress bar per attack (rank 0 only).
        on_record: called on rank 0 with each finished record (e.g. to merge it into results.json at
            once, so an interrupted evaluation keeps what it finished).
        skip: ``skip(record id, fingerprint) -> bool``; True skips a record (e.g. already in
            results.json with the same fingerprint). The gradient-masking check is skipped with the
            robust suites it serves.

    Returns:
        the records of this process (rank 0 has the gradient-masking records too).
    """
    if context is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        context = DistContext(0, 1, device)
    model = model.to(context.device)
    evaluation = _Evaluation(plan, model, context, progress, on_record, skip)
    for name in plan.threat_models:
        setup = threat_model_setup(model, name, bass_strength=plan.target.bass_strength)
        setup = replace(setup, model=prepare_model(setup.model, plan.request.execution))
        sample_suites = [s for s in plan.suites if s != "corruptions"]
        dataset = choice = None
        if sample_suites:
            dataset = _test_set(plan, setup.data_bass)
            choice = evaluation.choose(dataset)
            first = next(_loader(plan, dataset, [(0, choice.indices[:2])]))[1].to(context.device)
            _check_logits(setup.model, first, plan)
            if set(BAND_SUITES) & set(plan.suites):
                evaluation.measure_boundary(setup, dataset, choice)
        masking = None
        robust = [s for s in plan.suites if s in ROBUST_SUITES]
        if robust:
            pending = [
                s for s in robust if not (skip and skip(*_probe_identity(evaluation, s, setup, choice)))
            ]
            if pending:
                masking = evaluation.run_masking(setup, dataset, choice)
        for suite in plan.suites:
            if suite == "corruptions":
                evaluation.run_corruptions(setup, choice)
            else:
                evaluation.run_suite(suite, setup, dataset, choice, masking)
    return evaluation.records


def _probe_identity(evaluation: _Evaluation, suite: str, setup, choice: SubsetChoice) -> tuple[str, str]:
    """(id, fingerprint) a suite's record will have, without running it."""
    record = evaluation._planned(suite, setup, choice)
    return str(record.id), record.fingerprint


def evaluate_model(
    model: torch.nn.Module,
    request: EvaluationRequest,
    target: EvaluationTarget,
    *,
    context: DistContext | None = None,
    progress: bool = False,
    on_record: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Plan and run an evaluation in one call: :func:`plan_evaluation` then :func:`run_evaluation`.

    Example:
        >>> request = EvaluationRequest(suites="clean,pgd20", n=200, threat_model="both")
        >>> records = evaluate_model(model, request, EvaluationTarget("embedded", training_bass="dataset"))
        >>> [(r["threat_model"], r["metric"], r["accuracy"], r["total"]) for r in records]
    """
    plan = plan_evaluation(request, target)
    return run_evaluation(plan, model, context=context, progress=progress, on_record=on_record)
