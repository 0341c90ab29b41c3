""":class:`RunFolder`: a trained run opened for evaluation and explanation, its settings resolved once.

Opening a run reads its checkpoint once and decides, in one place, everything the evaluation and the
analyses need to know about it (:class:`RunSettings`): the dataset analysed and its folder, how the
model was trained with BaSS (mode, strength, a BaSS front), its augmentation preset, and therefore
which threat models apply. The folder then hands out the model as each threat model sees it, the
test data of each threat model, and reads and merges ``results.json`` under a lock, so that several
evaluations of one run at once never lose a record.

Files are named by :mod:`freqtail.runs.layout`; results are the records of
:mod:`freqtail.evaluate.results`, merged by :class:`~freqtail.workflows.results_store.ResultsStore`.
A run folder may come from someone else: what evaluation and the analyses read and write there
(results, their lock, ``eval-cache/``, analyses, ``figures/``) must not lead out of it
(:func:`_check_contained`), as the checkpoint it loads must not (:mod:`freqtail.train.checkpoint`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from freqtail.attacks.eps import parse_eps
from freqtail.data import build_dataset, canonical_name, dataset_info
from freqtail.errors import CheckpointError, ConfigError
from freqtail.evaluate.budgets import Budget
from freqtail.evaluate.request import EvaluationRequest, EvaluationTarget
from freqtail.evaluate.threat_model_names import (
    DOMAIN,
    ThreatModel,
    applicable_threat_models,
    trained_with_bass,
)
from freqtail.evaluate.threat_models import resolve_threat_models, threat_model_setup
from freqtail.io import check_writable_folder
from freqtail.models import model_spec
from freqtail.models.external import from_robustbench, robustbench_weights
from freqtail.runs.containment import inside, tree_inside
from freqtail.runs.layout import ANALYSES, RunLayout
from freqtail.train.config import ADVERSARIAL_OBJECTIVES
from freqtail.workflows.results_store import ResultsStore
from freqtail.workflows.run_model import is_bare_weights, load_model_from_run


@dataclass(frozen=True)
class RunSettings:
    """What evaluation and explanation need to know about a run, resolved once.

    Attributes:
        dataset: canonical name of the dataset analysed (the run's own unless asked otherwise).
        data_root: its folder (the run's own when the dataset is the run's; None = default place).
        trained_on: the run's own dataset (None when the checkpoint does not say).
        bass: the training data's BaSS mode: None, ``"augment"`` or ``"dataset"``.
        bass_strength: the BaSS strength the run was trained with (0 is a strength, not "unset").
        gamma: the BaSS probability of ``bass="augment"`` runs, else None.
        augmentation: the run's augmentation preset (None = the dataset's default); test images use
            its deterministic part.
        front: the BaSS front recorded in the model spec (trained with BaSS inside), else None.
        objective: the training objective (``erm``, ``pgd-at``, ...), None when unknown.
        bass_branch: AugMix with BaSS on one branch.
        training_budget: the L-inf budget an adversarially trained run (pgd-at, trades, mart) was
            trained at, read once from its config; None for every other run (the ``eps`` key of an
            ERM or AugMix config is an unused default).
        config: the run's whole training configuration (None for files from elsewhere).
    """

    dataset: str
    data_root: str | None
    trained_on: str | None
    bass: str | None
    bass_strength: float
    gamma: float | None
    augmentation: str | None
    front: dict[str, Any] | None
    objective: str | None
    bass_branch: bool
    training_budget: Budget | None = None
    config: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def has_front(self) -> bool:
        return self.front is not None

    @property
    def same_dataset(self) -> bool:
        """The analysed dataset is the one the run was trained on."""
        return self.trained_on is not None and self.trained_on == self.dataset

    @property
    def bass_model(self) -> bool:
        """The model sees BaSS images at test time (trained on BaSS data or with a BaSS front)."""
        return trained_with_bass(self.bass, self.has_front)

    @property
    def threat_models(self) -> tuple[ThreatModel, ...]:
        """Every threat model that applies to this run."""
        return applicable_threat_models(self.bass, self.has_front)

    @property
    def explanation_threat_model(self) -> ThreatModel:
        """The default threat model of the analyses: the paper's ``domain`` for BaSS models."""
        return self.threat_models[0]

    @classmethod
    def resolve(
        cls,
        info: Mapping[str, Any],
        *,
        dataset: str | None = None,
        data_root: str | os.PathLike | None = None,
    ) -> RunSettings:
        """The settings of a loaded checkpoint (``load_model_from_run``'s info) and the caller's choices.

        Args:
            info: the loader's description of the checkpoint.
            dataset: analyse this dataset instead of the run's own.
            data_root: its folder (default: the run's own folder when the dataset is the run's).

        Raises:
            ConfigError: the checkpoint does not say its dataset and none is given, or a name is unknown.
        """
        config = dict(info.get("config") or {})
        data = info.get("data") or {}
        spec = info.get("model_spec") or {}
        own = data.get("dataset")
        trained_on = canonical_name(own) if own is not None else None
        chosen = dataset or trained_on
        if chosen is None:
            raise ConfigError(
                f"The checkpoint {info.get('path')} does not say which dataset it was trained on; "
                "give the dataset (--dataset NAME)."
            )
        chosen = canonical_name(chosen)
        same = chosen == trained_on
        if data_root is None and same:
            data_root = data.get("data_root")
        front = spec.get("bass_front")
        strength = _first_set(data.get("bass_strength"), (front or {}).get("strength"), default=1.0)
        objective = info.get("objective")
        return cls(
            dataset=chosen,
            data_root=None if data_root is None else str(data_root),
            trained_on=trained_on,
            bass=data.get("bass"),
            bass_strength=float(strength),
            gamma=data.get("gamma") if data.get("bass") == "augment" else None,
            augmentation=config.get("augmentation") if same else None,
            front=dict(front) if front else None,
            objective=objective,
            bass_branch=bool(objective == "augmix-bass" or config.get("bass_branch")),
            training_budget=_training_budget(config),
            config=config or None,
        )


def _training_budget(config: Mapping[str, Any]) -> Budget | None:
    """The budget an adversarial objective's config was trained at (step: its own, else eps / 4)."""
    if config.get("objective") not in ADVERSARIAL_OBJECTIVES or config.get("eps") is None:
        return None
    eps = parse_eps(config["eps"])
    step = config.get("step_size")
    step_size = parse_eps(step, "step size") if step is not None else eps / 4
    return Budget(eps, step_size, f"run config ({config['objective']} training budget)")


def _first_set(*values: Any, default: Any) -> Any:
    """The first value that is not None (so a BaSS strength of 0 stays 0)."""
    return next((value for value in values if value is not None), default)


class RunFolder:
    """A run (or checkpoint) opened for evaluation and explanation; see the module docstring.

    Use :meth:`open`. Attributes:
        path: what was opened (a run folder, a checkpoint folder or file).
        layout: the run folder's paths (where its results and analyses are read).
        output: where results, analyses and figures are written (``layout`` unless ``out`` was given).
        info: the checkpoint loader's description
            (:func:`~freqtail.workflows.run_model.load_model_from_run`).
        model: the bare trained model (no BaSS front), on the CPU, in eval mode.
        settings: :class:`RunSettings`.
    """

    def __init__(
        self, path: Path, folder: Path, output: Path, model: Any, info: dict[str, Any], settings: RunSettings
    ) -> None:
        self.path = path
        self.layout = RunLayout.of(folder)
        self.output = RunLayout.of(output)
        self.model = model
        self.info = info
        self.settings = settings
        self._digest: str | None = None
        self._test_sets: dict[str | None, Any] = {}

    # ------------------------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        *,
        which: str = "best",
        dataset: str | None = None,
        data_root: str | os.PathLike | None = None,
        out: str | os.PathLike | None = None,
        model_name: str | None = None,
        normalize: str | None = None,
    ) -> RunFolder:
        """Open a run folder (``runs/NAME``), a checkpoint, or a file of weights from elsewhere.

        Args:
            path: the run folder, a checkpoint folder / file, or bare weights (``.pt``, ``.pth``,
                ``.safetensors``; then ``model_name`` and ``dataset`` say what they are).
            which: ``"best"`` or ``"last"`` checkpoint of a run folder.
            dataset, data_root: analyse another dataset / folder than the run's own.
            out: write results and analyses here instead of into the run folder (checked writable now).
            model_name, normalize: architecture and normalisation preset of bare weights.

        Raises:
            InputError / CheckpointError / ConfigError: one sentence on anything missing or mismatched.
        """
        given = Path(path).expanduser()
        spec = _foreign_spec(given, model_name, dataset, normalize)
        model, info = load_model_from_run(given, which, device="cpu", with_front=False, spec=spec)
        model.eval()
        folder = _run_folder_of(given, info)
        _check_contained(RunLayout.of(folder))
        settings = RunSettings.resolve(info, dataset=dataset, data_root=data_root)
        _check_architecture(info.get("model_spec") or {}, settings.dataset)
        output = Path(out).expanduser() if out is not None else folder
        check_writable_folder(output, "output folder")
        return cls(given, folder, output, model, info, settings)

    @classmethod
    def from_robustbench(
        cls,
        name: str,
        *,
        dataset: str = "cifar10",
        threat_model: str = "Linf",
        model_dir: str | os.PathLike | None = None,
        data_root: str | os.PathLike | None = None,
        out: str | os.PathLike | None = None,
    ) -> RunFolder:
        """A RobustBench model (:func:`freqtail.models.from_robustbench`) opened like a run.

        Its results and analyses go to a run-like folder, ``runs/robustbench-NAME`` by default, so that
        ``freqtail compare`` and ``freqtail report`` place it beside trained runs. It is a standard
        model: RobustBench models take raw images (threat model ``standard``).

        Raises:
            ConfigError / CheckpointError: robustbench missing, an unknown name, no weights on disk.
        """
        dataset = canonical_name(dataset)
        model = from_robustbench(name, dataset, threat_model, model_dir)
        weights = robustbench_weights(name, dataset, threat_model, model_dir)
        data = dataset_info(dataset)
        info = {
            "path": str(weights),
            "which": None,
            "format": "robustbench",
            "model_spec": {
                "name": f"robustbench:{name}",
                "num_classes": data.num_classes,
                "image_size": data.image_size[0],
                "robustbench": {"name": name, "dataset": dataset, "threat_model": threat_model},
            },
            "data": {"dataset": dataset, "data_root": None if data_root is None else str(data_root)},
            "objective": None,
            "config": None,
        }
        settings = RunSettings.resolve(info, data_root=data_root)
        output = Path(out).expanduser() if out is not None else Path("runs") / f"robustbench-{name}"
        check_writable_folder(output, "output folder")
        return cls(Path(weights), output, output, model, info, settings)

    # ------------------------------------------------------------------------------------ the model
    @property
    def name(self) -> str:
        """The run's name (its folder's name)."""
        return self.layout.folder.name

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.info.get("model_spec") or {})

    @property
    def num_classes(self) -> int | None:
        value = self.spec.get("num_classes")
        return None if value is None else int(value)

    @property
    def checkpoint_tag(self) -> str:
        """First part of every record id: ``best``, ``last`` or the name of a checkpoint file."""
        info = self.info
        if info.get("which"):
            return str(info["which"])
        if info.get("path"):
            path = Path(info["path"])
            return path.stem if info.get("format") in ("foreign", "robustbench") else path.name
        return self.path.stem

    @property
    def digest(self) -> str:
        """SHA-256 of the model's weights (names and raw bytes, sorted by name); computed once."""
        if self._digest is None:
            self._digest = state_digest(self.model)
        return self._digest

    def checkpoint_facts(self) -> dict[str, Any]:
        """What every evaluated number records about the weights it was measured with."""
        info, spec, settings = self.info, self.spec, self.settings
        return {
            "path": str(Path(info["path"]).resolve()) if info.get("path") else None,
            "which": info.get("which"),
            "format": info.get("format"),
            "epoch": info.get("epoch"),
            "global_step": info.get("global_step"),
            "model": spec.get("name"),
            "num_classes": spec.get("num_classes"),
            "objective": settings.objective,
            "bass": settings.bass,
            "gamma": settings.gamma,
            "bass_strength": (info.get("data") or {}).get("bass_strength"),
            "bass_branch": settings.bass_branch,
            "digest": self.digest,
            "selected_on": info.get("selected_on"),
        }

    def threat_models(self, requested: str | None = "auto") -> list[ThreatModel]:
        """The threat models a ``--threat-model`` choice means here (refused if one does not apply)."""
        return resolve_threat_models(requested, self.settings.bass, self.settings.has_front)

    def model_for(self, threat_model: str | ThreatModel, device: Any = "cpu"):
        """The model as ``threat_model`` sees it (end-to-end: with the differentiable BaSS front), on
        ``device``, in eval mode; its weights are shared with :attr:`model`."""
        setup = threat_model_setup(self.model, threat_model, bass_strength=self.settings.bass_strength)
        return setup.model.to(device).eval()

    # ------------------------------------------------------------------------------------ the data
    def test_data(self, threat_model: str | ThreatModel):
        """The test split ``threat_model`` uses: BaSS-converted for ``domain``, raw otherwise (cached)."""
        bass = "dataset" if ThreatModel.parse(threat_model) == DOMAIN else None
        if bass not in self._test_sets:
            s = self.settings
            self._test_sets[bass] = build_dataset(
                s.dataset,
                "test",
                s.data_root,
                bass=bass,
                strength=s.bass_strength,
                augmentation=s.augmentation,
            )
        return self._test_sets[bass]

    def test_sets(self, threat_models: Iterable[str | ThreatModel]) -> dict[str | None, Any]:
        """``{None: raw, "dataset": BaSS-converted}`` test sets of the given threat models."""
        for threat_model in threat_models:
            self.test_data(threat_model)
        return dict(self._test_sets)

    def describe_data(self, threat_model: str | ThreatModel) -> str:
        """One sentence naming the images ``threat_model`` analyses (for figures and JSON)."""
        threat_model = ThreatModel.parse(threat_model)
        label = f"{self.settings.dataset} test split"
        if threat_model == DOMAIN:
            return label + " (BaSS-converted: the paper's domain protocol)"
        if threat_model == ThreatModel.END_TO_END:
            return label + " (raw images through the model's BaSS front: end-to-end)"
        return label

    def evaluation_target(self, request: EvaluationRequest) -> EvaluationTarget:
        """What an evaluation of this run evaluates: its training facts, its test sets for the
        threat models ``request`` asks for, and its output folder's cache (``eval-cache/``)."""
        s = self.settings
        threat_models = self.threat_models(request.threat_model)
        return EvaluationTarget(
            dataset=s.dataset,
            data_root=s.data_root,
            training_bass=s.bass,
            has_front=s.has_front,
            bass_strength=s.bass_strength,
            training_budget=s.training_budget,
            work_dir=self.output.eval_cache,
            checkpoint=self.checkpoint_facts(),
            checkpoint_tag=self.checkpoint_tag,
            model_classes=self.num_classes,
            test_sets=self.test_sets(threat_models),
        )

    # ------------------------------------------------------------------------------------ results
    @property
    def store(self) -> ResultsStore:
        """The output folder's ``results.json`` / ``results.md`` (merged under its lock)."""
        return ResultsStore(self.output)

    def results(self) -> list[dict[str, Any]]:
        """The records stored in the output folder (see :meth:`ResultsStore.records`)."""
        return self.store.records()

    def merge_results(
        self, records: Iterable[Mapping[str, Any]], warn: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        """Merge ``records`` into the output folder's results under its lock (:meth:`ResultsStore.merge`)."""
        return self.store.merge(records, warn=warn)


# ---------------------------------------------------------------------------------------- helpers
def state_digest(model: Any) -> str:
    """SHA-256 of a model's state dict (names, dtypes and raw bytes, sorted by name)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(str(flat.dtype).encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _foreign_spec(path: Path, model_name: str | None, dataset: str | None, normalize: str | None):
    """The model spec of bare weights from elsewhere (None for freqtail's own checkpoints)."""
    if not is_bare_weights(path) or (model_name is None and path.suffix == ".safetensors"):
        return None
    if not model_name or not dataset:
        raise CheckpointError(
            f"The file {path} holds bare weights; say which architecture and dataset with --model NAME "
            "--dataset NAME."
        )
    info = dataset_info(dataset)
    norm = None if normalize in (None, "none") else normalize
    return model_spec(model_name, info.num_classes, image_size=info.image_size[0], normalize=norm)


def _check_architecture(spec: Mapping[str, Any], dataset: str) -> None:
    """Refuse a model built for another image size or class count than ``dataset`` has."""
    data = dataset_info(dataset)
    size = tuple(data.image_size)
    trained = (int(spec.get("image_size", size[0])), int(spec.get("num_classes", data.num_classes)))
    if trained[1] != data.num_classes or trained[0] != size[0]:
        raise CheckpointError(
            f"The checkpoint's {spec.get('name')} was built for {trained[0]}x{trained[0]} images and "
            f"{trained[1]} classes, but {dataset} has {size[0]}x{size[1]} images and {data.num_classes} "
            "classes; evaluate it on the dataset it was trained on."
        )


def _check_contained(layout: RunLayout) -> None:
    """Refuse a run folder whose results, caches, analyses or figures lead out of it (symbolic links).

    Raises:
        ConfigError: one sentence naming the path and where it points.
    """
    folder = layout.folder
    files = [layout.results, layout.results_md, layout.results_lock]
    files += [layout.json(kind) for kind in ANALYSES] + [layout.arrays(kind) for kind in ANALYSES]
    files += [layout.partial(kind) for kind in ANALYSES]
    for path in files:
        inside(folder, path.relative_to(folder), "The path", error=ConfigError)
    for tree in (layout.eval_cache, layout.figures):
        tree_inside(folder, tree.relative_to(folder), "The path", error=ConfigError)


def _run_folder_of(path: Path, info: Mapping[str, Any]) -> Path:
    """The run folder a checkpoint belongs to (where results go), else the checkpoint's own folder."""
    layout = RunLayout.of(path)
    if path.is_dir() and (layout.checkpoints.is_dir() or layout.config.is_file()):
        return path
    checkpoints = RunLayout.of(".").checkpoints.name
    folder = Path(info.get("path") or path)
    for candidate in (folder, *folder.parents):
        if candidate.name == checkpoints:
            return candidate.parent
    return path.parent if path.is_file() else path
