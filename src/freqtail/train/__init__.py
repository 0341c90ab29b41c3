"""Training: objectives (ERM, PGD-AT, TRADES, MART, AugMix with and without a BaSS branch), one
trainer (SGD, schedules, AMP on CUDA, DDP under torchrun), resumable runs and safe checkpoints.

>>> from freqtail.train import load_checkpoint, load_config
>>> from freqtail.workflows.training import TrainRequest, train_run  # a run folder as a whole
>>> result = train_run(TrainRequest(load_config(overrides=["epochs=2"]), "runs/demo"))
>>> model = load_checkpoint("runs/demo").build_model()       # best checkpoint, eval mode

Names load on first use, so ``import freqtail.train.config`` (the command line's option help) does
not import torch.
"""

from __future__ import annotations

from freqtail.lazy_exports import lazy_attributes

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "AugMixDataset": "augmix",
    "augmix_image": "augmix",
    "CHECKPOINT_FORMAT": "checkpoint",
    "CHECKPOINT_VERSION": "checkpoint",
    "Checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "resolve_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "OBJECTIVES": "config",
    "TrainConfig": "config",
    "config_from_dict": "config",
    "config_keys": "config",
    "config_to_yaml": "config",
    "load_config": "config",
    "ERM": "objectives",
    "MART": "objectives",
    "PGDAT": "objectives",
    "TRADES": "objectives",
    "AugMixJSD": "objectives",
    "ObjectiveOutput": "objectives",
    "build_objective": "objectives",
    "jsd_consistency": "objectives",
    "linf_ascent": "objectives",
    "mart_terms": "objectives",
    "trades_terms": "objectives",
    "TrainResult": "trainer",
    "TrainStart": "trainer",
    "Trainer": "trainer",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
