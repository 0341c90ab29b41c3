"""Training: objectives (ERM, PGD-AT, TRADES, MART, AugMix with and without a BaSS branch), one
trainer (SGD, schedules, AMP on CUDA, DDP under torchrun), resumable runs and safe checkpoints.

>>> from freqtail.train import load_config, train
>>> result = train(load_config(overrides=["epochs=2"]), "runs/demo")
>>> from freqtail.train import load_model_from_run
>>> model, info = load_model_from_run("runs/demo")           # best checkpoint, eval mode
"""

from __future__ import annotations

from freqtail.train.augmix import AugMixDataset, augmix_image
from freqtail.train.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    Checkpoint,
    load_checkpoint,
    load_model_from_run,
    resolve_checkpoint,
    save_checkpoint,
)
from freqtail.train.config import (
    OBJECTIVES,
    TrainConfig,
    config_from_dict,
    config_keys,
    config_to_yaml,
    load_config,
)
from freqtail.train.objectives import (
    ERM,
    MART,
    PGDAT,
    TRADES,
    AugMixJSD,
    ObjectiveOutput,
    build_objective,
    jsd_consistency,
    linf_ascent,
    mart_terms,
    trades_terms,
)
from freqtail.train.trainer import Trainer, TrainResult, train

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "ERM",
    "MART",
    "OBJECTIVES",
    "PGDAT",
    "TRADES",
    "AugMixDataset",
    "AugMixJSD",
    "Checkpoint",
    "ObjectiveOutput",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "augmix_image",
    "build_objective",
    "config_from_dict",
    "config_keys",
    "config_to_yaml",
    "jsd_consistency",
    "linf_ascent",
    "load_checkpoint",
    "load_config",
    "load_model_from_run",
    "mart_terms",
    "resolve_checkpoint",
    "save_checkpoint",
    "train",
    "trades_terms",
]
