"""What an evaluation is asked to do: one frozen request, checked once when it is built.

:class:`EvaluationRequest` holds every choice a caller makes (``freqtail evaluate``'s options, or a
library caller's arguments): the suites, the threat-model choice, which images, the budget, the
gradient-masking check, the corruption sets, how the model runs. Each value is checked in
``__post_init__`` (one sentence naming the option) and stored in its parsed form: suites as their
names, budgets as floats on the [0, 1] scale (:func:`freqtail.attacks.parse_eps`, never re-read from
text), corruption names and severities as lists. What depends on the evaluated model and data (the
band boundary's range, a class-count mismatch, the -C folders) is checked by
:func:`freqtail.evaluate.plan_evaluation`, which joins the request with an
:class:`EvaluationTarget`.

Every default has its home here (the masking check's Square queries and minimum in
:mod:`freqtail.attacks.masking_verdicts`); the command line takes its defaults from these fields.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from freqtail.attacks.eps import parse_eps
from freqtail.attacks.masking_verdicts import DEFAULT_SQUARE_QUERIES, MIN_JUDGED_IMAGES
from freqtail.checks import check_int, check_optional_int, check_seed
from freqtail.data.corruptions.names import parse_corruptions, parse_severities
from freqtail.errors import ConfigError
from freqtail.evaluate.budgets import Budget
from freqtail.evaluate.suite_names import parse_suites
from freqtail.evaluate.threat_model_names import check_threat_model_choice
from freqtail.execution_options import ExecutionOptions, as_execution_options

#: Images of the gradient-masking check, drawn from the evaluated images (0 skips the check).
MASKING_IMAGES = 100


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # frozen dataclasses store their parsed values this way


@dataclass(frozen=True)
class MaskingOptions:
    """The gradient-masking check that runs with the robust suites.

    Attributes:
        images: images of the check, chosen from the evaluated ones by the subset rule (0 = skip,
            recorded as "not-run").
        queries: Square queries of the check.
        min_judged: fewest correctly classified images the check judges on; below it the verdict is
            "too-few-images".
    """

    images: int = MASKING_IMAGES
    queries: int = DEFAULT_SQUARE_QUERIES
    min_judged: int = MIN_JUDGED_IMAGES

    def __post_init__(self) -> None:
        check_int(self.images, "The masking image count --masking-n", minimum=0, error=ConfigError)
        check_int(self.queries, "The Square query count --masking-queries", minimum=1, error=ConfigError)
        check_int(self.min_judged, "The masking minimum --masking-min", minimum=1, error=ConfigError)


@dataclass(frozen=True)
class CorruptionOptions:
    """Where the corruption suite's -C sets come from and which cells it evaluates.

    Attributes:
        c_root: a -C folder of raw test images (``freqtail corrupt``), None = the dataset's default.
        bc_root: a BaSS-then-corrupt folder for the domain threat model.
        generate: generate missing sets from the evaluated images into the work folder (resumable).
        corruptions: corruption names (categories expanded), None = all present.
        severities: severities 1..5, None = all present.
        seed: seed of generated sets.
    """

    c_root: str | None = None
    bc_root: str | None = None
    generate: bool = False
    corruptions: tuple[str, ...] | None = None
    severities: tuple[int, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("c_root", "bc_root"):
            value = getattr(self, name)
            _set(self, name, None if value is None else os.fspath(value))
        if self.corruptions is not None:
            given = self.corruptions
            parsed = parse_corruptions(given if isinstance(given, str) else ",".join(map(str, given)))
            _set(self, "corruptions", tuple(parsed))
        if self.severities is not None:
            given = self.severities
            parsed = parse_severities(given if isinstance(given, str) else ",".join(map(str, given)))
            _set(self, "severities", tuple(parsed))
        check_seed(self.seed, "The corruption seed", error=ConfigError)


@dataclass(frozen=True)
class EvaluationRequest:
    """Everything a caller chooses about an evaluation (see the module docstring).

    Attributes:
        suites: ``"clean,pgd20,pgd20-lfc,pgd20-hfc,cw,aa,aa-fast,corruptions"``, ``all`` or a list;
            stored as the tuple of suite names (:func:`freqtail.evaluate.parse_suites`).
        threat_model: ``"auto"`` (every one that applies), ``"both"`` or one threat model's name.
        n: a seeded, class-stratified subset of n test images (None = all), the same images the
            analyses take for the same ``n`` and ``subset_seed``.
        eps, step_size: the L-inf budget on the [0, 1] scale (``"8/255"`` or a float; None = the
            run's training budget, else the paper's for the image size; the step defaults to eps / 4).
        batch_size: images per batch (and per global batch across processes).
        seed: attack seed; subset_seed: seed of the subset.
        masking: :class:`MaskingOptions`.
        corruption: :class:`CorruptionOptions`.
        band_boundary: the boundary band b of the band suites (None = each threat model's measured
            80/20 boundary); checked by the plan, against the image size's bands.
        num_workers: data-loader workers for folder datasets.
        execution: :class:`~freqtail.models.ExecutionOptions` (or a mapping of them); None = eager.
        resume: skip numbers already stored with identical settings (same fingerprint).
    """

    suites: tuple[str, ...] | str = ("clean",)
    threat_model: str = "auto"
    n: int | None = None
    eps: float | None = None
    step_size: float | None = None
    batch_size: int = 128
    seed: int = 0
    subset_seed: int = 0
    masking: MaskingOptions = field(default_factory=MaskingOptions)
    corruption: CorruptionOptions = field(default_factory=CorruptionOptions)
    band_boundary: int | None = None
    num_workers: int = 0
    execution: ExecutionOptions = field(default_factory=ExecutionOptions)
    resume: bool = False

    def __post_init__(self) -> None:
        _set(self, "suites", tuple(parse_suites(self.suites)))
        _set(self, "threat_model", check_threat_model_choice(self.threat_model))
        if self.eps is not None:
            _set(self, "eps", parse_eps(self.eps))
        if self.step_size is not None:
            _set(self, "step_size", parse_eps(self.step_size, "step size"))
            if self.step_size == 0:
                raise ConfigError(
                    "The step size --step-size must be positive (0 leaves every attack at its random "
                    "start); give one such as 2/255."
                )
        check_optional_int(self.n, "The image count --n", minimum=1, error=ConfigError)
        check_int(self.batch_size, "The batch size --batch-size", minimum=1, error=ConfigError)
        check_seed(self.seed, "The seed --seed", error=ConfigError)
        check_seed(self.subset_seed, "The subset seed --subset-seed", error=ConfigError)
        check_int(self.num_workers, "The worker count --num-workers", minimum=0, error=ConfigError)
        if isinstance(self.masking, Mapping):
            _set(self, "masking", MaskingOptions(**self.masking))
        if isinstance(self.corruption, Mapping):
            _set(self, "corruption", CorruptionOptions(**self.corruption))
        _set(self, "execution", as_execution_options(self.execution))

    @classmethod
    def of(cls, **options: Any) -> EvaluationRequest:
        """A request from flat keyword options: the request's own fields, plus ``masking_n``,
        ``masking_queries``, ``masking_min`` and ``c_root``, ``bc_root``, ``generate_c``,
        ``corruptions``, ``severities``, ``corruption_seed`` for the nested options.

        Raises:
            ConfigError: an unknown option (one sentence naming it).
        """
        nested = {
            "masking_n": ("masking", "images"),
            "masking_queries": ("masking", "queries"),
            "masking_min": ("masking", "min_judged"),
            "c_root": ("corruption", "c_root"),
            "bc_root": ("corruption", "bc_root"),
            "generate_c": ("corruption", "generate"),
            "corruptions": ("corruption", "corruptions"),
            "severities": ("corruption", "severities"),
            "corruption_seed": ("corruption", "seed"),
        }
        own = {f.name for f in fields(cls)}
        top: dict[str, Any] = {}
        parts: dict[str, dict[str, Any]] = {"masking": {}, "corruption": {}}
        for key, value in options.items():
            if key in nested:
                group, name = nested[key]
                if value is not None:
                    parts[group][name] = value
            elif key in own:
                top[key] = value
            else:
                raise ConfigError(f"Unknown evaluation option {key!r}.")
        return cls(
            masking=MaskingOptions(**parts["masking"]),
            corruption=CorruptionOptions(**parts["corruption"]),
            **top,
        )


@dataclass
class EvaluationTarget:
    """What is evaluated: the model's training facts and where its data and results live.

    Attributes:
        dataset: registered dataset name (its test split is evaluated).
        data_root: the dataset folder (None for the default place).
        training_bass, has_front, bass_strength: how the model was trained with BaSS (they decide
            which threat models apply and how ``domain`` test data is converted).
        training_budget: the budget of an adversarially trained run (used when the request gives
            none), else None.
        work_dir: folder for generated -C sets and AutoAttack progress (resumable); None = neither.
        checkpoint: facts recorded with every number; checkpoint_tag: the first part of record ids.
        model_classes: the model's number of classes when known (checked against the dataset).
        test_sets: prebuilt test sets ``{None: raw, "dataset": BaSS-converted}`` (optional).
    """

    dataset: str
    data_root: str | None = None
    training_bass: str | None = None
    has_front: bool = False
    bass_strength: float = 1.0
    training_budget: Budget | None = None
    work_dir: Path | None = None
    checkpoint: dict[str, Any] = field(default_factory=dict)
    checkpoint_tag: str = "model"
    model_classes: int | None = None
    test_sets: dict[str | None, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.data_root is not None:
            self.data_root = os.fspath(self.data_root)
        if self.work_dir is not None:
            self.work_dir = Path(self.work_dir)
        self.bass_strength = float(self.bass_strength)
        self.checkpoint = dict(self.checkpoint or {})
        self.test_sets = dict(self.test_sets or {})
