"""Everything a training run is made of, built from its config: data, model, optimiser, objective,
schedule and what the epochs measure (:class:`TrainParts`).

Rank 0 builds the datasets and downloads pretrained weights first (it fills the caches), then the
other ranks (:func:`freqtail.distributed.main_first`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from freqtail import distributed as D
from freqtail.data import dataset_info
from freqtail.errors import ConfigError
from freqtail.models import ExecutionOptions, build_model_from_spec, model_spec, prepare_model
from freqtail.train.config import TRAIN_IN_CHANNELS, TrainConfig
from freqtail.train.data import (
    EpochSampler,
    SeededItems,
    build_test_data,
    build_train_data,
    build_val_data,
    train_loader,
)
from freqtail.train.device_data import build_device_train_data
from freqtail.train.evaluation import EvalPlan, eval_plan
from freqtail.train.objectives import Branches, build_objective
from freqtail.train.pipeline import resolve_data_pipeline
from freqtail.train.rng import derive_seed, seed_everything
from freqtail.train.schedules import schedule_from_config
from freqtail.train.tensorboard_log import check_log


def check_execution(config: TrainConfig, context: D.DistContext) -> None:
    """Refuse a config that cannot run on these processes and this device (one sentence).

    Raises:
        ConfigError: a batch that does not divide among the processes, AMP or SyncBatchNorm off CUDA,
            ``log: tensorboard`` without the tensorboard package.
    """
    world = context.world_size
    if config.batch_size % world:
        raise ConfigError(
            f"The global batch_size {config.batch_size} must be divisible by the {world} processes "
            f"(each process takes batch_size / {world})."
        )
    if config.amp != "none" and context.device.type != "cuda":
        raise ConfigError(
            f"Mixed precision (amp: {config.amp}) runs on CUDA only; set amp: none on {context.device}."
        )
    if config.sync_bn and context.device.type != "cuda":
        raise ConfigError("sync_bn needs CUDA (PyTorch's SyncBatchNorm does not run on CPU).")
    check_log(config)  # every rank, so that all refuse alike before any collective


@dataclass(frozen=True)
class TrainParts:
    """The built parts of a run (the objects are live: the loop updates the model and optimiser).

    Attributes:
        config: the run's config.
        data_pipeline: ``"device"`` (whole batches made on the device) or ``"loader"`` (a DataLoader).
        train_data: the seeded training items (``SeededItems``) or ``DeviceTrainData``.
        sampler: this rank's epoch order (``(epoch, index)`` keys).
        loader: the DataLoader of the ``loader`` pipeline, None for ``device``.
        per_rank_batch: images per step on this rank (``batch_size / world_size``).
        spec: the model spec recorded in every checkpoint.
        model: the model that owns the weights (checkpoints, optimiser).
        runner: ``model`` as the execution options run it (the training attack and evaluation).
        forward: the training forward (through DDP under torchrun; compiled after DDP).
        optimizer: SGD over ``model``'s parameters.
        scaler: the fp16 gradient scaler, or None.
        autocast_dtype: the AMP dtype, or None.
        objective: the training objective (:func:`freqtail.train.objectives.build_objective`).
        steps_per_epoch, total_steps, total_epochs: the run's length in optimiser steps / epochs.
        lr_at: ``global step -> learning rate``.
        evaluation: what the end of an epoch measures (:class:`freqtail.train.evaluation.EvalPlan`).
    """

    config: TrainConfig
    data_pipeline: str
    train_data: Any
    sampler: EpochSampler
    loader: DataLoader | None
    per_rank_batch: int
    spec: dict[str, Any]
    model: torch.nn.Module
    runner: torch.nn.Module
    forward: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    autocast_dtype: torch.dtype | None
    objective: Any
    steps_per_epoch: int
    total_steps: int
    total_epochs: int
    lr_at: Callable[[int], float]
    evaluation: EvalPlan


def _train_data(config: TrainConfig, pipeline: str, context: D.DistContext) -> tuple[Any, Dataset]:
    """``(training items, the dataset under them)``: built on rank 0 first."""
    if pipeline == "device":
        data = D.main_first(lambda: build_device_train_data(config, context.device), context)
        return data, data
    base = D.main_first(lambda: build_train_data(config), context)
    return SeededItems(base, config.seed), base


def _spec(config: TrainConfig, num_classes: int, image_size: int) -> dict[str, Any]:
    normalize = config.normalize
    if normalize == "dataset":
        info = dataset_info(config.dataset)
        normalize = {"mean": list(info.mean), "std": list(info.std)}
    return model_spec(
        config.model,
        num_classes,
        image_size,
        TRAIN_IN_CHANNELS,
        normalize=normalize,
        bass_front=config.bass_strength if config.bass == "dataset" else None,
        options=config.model_options,
    )


def _model(config: TrainConfig, spec: dict[str, Any], context: D.DistContext, *, fresh: bool):
    """``(model, runner, forward)``; only a ``fresh`` run asks for ``pretrained`` weights (a resumed
    run's weights come from its checkpoint)."""
    device = context.device
    seed_everything(derive_seed(config.seed, "init"))
    if config.pretrained and fresh:  # rank 0 first: it fills the library's download cache
        build = partial(build_model_from_spec, spec, with_front=False, pretrained=True)
        model = D.main_first(build, context).to(device)
    else:
        model = build_model_from_spec(spec, with_front=False).to(device)
    if config.sync_bn and context.distributed:
        model.backbone = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model.backbone)
    execution = ExecutionOptions(channels_last=config.channels_last, compile=config.compile)
    runner = prepare_model(model, execution)
    if not context.distributed:
        return model, runner, Branches(runner)
    ids = [device.index] if device.type == "cuda" else None
    ddp = partial(torch.nn.parallel.DistributedDataParallel, device_ids=ids)
    forward = prepare_model(model, execution, wrap=lambda inner: ddp(Branches(inner)))
    return model, runner, forward


def _sampling(
    config: TrainConfig, context: D.DistContext, train_data: Any, pipeline: str
) -> tuple[EpochSampler, DataLoader | None, int]:
    """``(this rank's epoch sampler, the DataLoader of the loader pipeline or None, images per step)``."""
    per_rank_batch = config.batch_size // context.world_size
    sampler = EpochSampler(
        train_data,
        num_replicas=context.world_size,
        rank=context.rank,
        seed=config.seed,
        drop_last=config.drop_last,
    )
    if pipeline != "loader":
        return sampler, None, per_rank_batch
    pin = context.device.type == "cuda"
    return sampler, train_loader(train_data, sampler, per_rank_batch, config, pin_memory=pin), per_rank_batch


def _steps_per_epoch(config: TrainConfig, sampler: EpochSampler, per_rank_batch: int, images: int) -> int:
    per_rank = sampler.num_samples
    steps = per_rank // per_rank_batch if config.drop_last else -(-per_rank // per_rank_batch)
    if steps < 1:
        raise ConfigError(
            f"The training set has {images} images, fewer than one batch of {config.batch_size}; "
            "lower batch_size or set drop_last: false."
        )
    return steps


def build_optimizer(config: TrainConfig, parameters) -> torch.optim.SGD:
    """The run's optimizer: SGD with the config's learning rate, momentum, weight decay and Nesterov."""
    return torch.optim.SGD(
        parameters,
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.nesterov,
    )


def build_parts(config: TrainConfig, context: D.DistContext, *, fresh: bool) -> TrainParts:
    """Build the run's :class:`TrainParts` on every rank; ``fresh``: the run starts at step 0.

    Raises:
        ConfigError: a training set smaller than one batch, an impossible ``best_metric``, ...
        FreqtailError: whatever building the data or the model raised on rank 0 (on every rank).
    """
    pipeline = resolve_data_pipeline(config)
    train_data, base = _train_data(config, pipeline, context)
    test_data = D.main_first(lambda: build_test_data(config), context)
    val_data = D.main_first(lambda: build_val_data(config), context)
    spec = _spec(config, base.num_classes, int(base.image_size[0]))
    model, runner, forward = _model(config, spec, context, fresh=fresh)
    optimizer = build_optimizer(config, model.parameters())
    objective = build_objective(config)
    sampler, loader, per_rank_batch = _sampling(config, context, train_data, pipeline)
    steps_per_epoch = _steps_per_epoch(config, sampler, per_rank_batch, len(train_data))
    total_steps = config.steps if config.steps is not None else config.epochs * steps_per_epoch
    parts = TrainParts(
        config=config,
        data_pipeline=pipeline,
        train_data=train_data,
        sampler=sampler,
        loader=loader,
        per_rank_batch=per_rank_batch,
        spec=spec,
        model=model,
        runner=runner,
        forward=forward,
        optimizer=optimizer,
        scaler=torch.amp.GradScaler("cuda") if config.amp == "fp16" else None,
        autocast_dtype={"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.amp),
        objective=objective,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        total_epochs=-(-total_steps // steps_per_epoch),
        lr_at=schedule_from_config(config, steps_per_epoch, total_steps),
        evaluation=eval_plan(config, test_data, val_data),
    )
    if context.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return parts
