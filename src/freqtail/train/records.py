"""The per-epoch metrics record (one line of ``metrics.jsonl``) and its one-line log text."""

from __future__ import annotations

from typing import Any

from freqtail.train.accumulator import Accumulator
from freqtail.train.config import TrainConfig
from freqtail.train.evaluation import robust_enabled

#: Keys of a metrics record that measure time, not what was computed (they differ between runs).
TIMING_KEYS = ("train_time", "eval_time", "epoch_time", "images_per_second")


def epoch_record(
    config: TrainConfig,
    *,
    epoch: int,
    global_step: int,
    lr: float,
    totals: Accumulator,
    evaluation: dict[str, Any],
    has_val: bool,
) -> dict[str, Any]:
    """The record of finished epoch ``epoch`` (1-based) before ``best`` and the timings are added.

    ``totals`` are the epoch's sums over all ranks; ``evaluation`` is
    :func:`freqtail.train.evaluation.evaluate_epoch`'s result (empty in an epoch without evaluation:
    its fields are then None).
    """
    names = sorted(totals.terms)
    record: dict[str, Any] = {
        "epoch": epoch,
        "global_step": global_step,
        "lr": lr,
        "train_loss": totals.loss / totals.count,
        "train_acc": totals.correct / totals.count,
        "train_terms": {name: totals.terms[name] / totals.count for name in names},
        "train_images": int(totals.count),
        "test_acc": evaluation.get("test_acc"),
        "test_images": evaluation.get("test_images"),
        "test_data": "bass-dataset" if config.bass == "dataset" else "original",
    }
    if robust_enabled(config):
        record["test_robust_acc"] = evaluation.get("test_robust_acc")
        record["robust_examples"] = evaluation.get("robust_examples")
        record["robust_attack"] = evaluation.get("robust_attack")
    if has_val:
        record["val_acc"] = evaluation.get("val_acc")
        record["val_images"] = evaluation.get("val_images")
        if robust_enabled(config):
            record["val_robust_acc"] = evaluation.get("val_robust_acc")
            record["val_robust_examples"] = evaluation.get("val_robust_examples")
    return record


def epoch_line(record: dict[str, Any], total_epochs: int) -> str:
    """``epoch 2/3, loss 1.2345, train acc 40.0%, test acc ..., lr ..., 1.2 s, 900 img/s (best)``."""
    parts = [f"epoch {record['epoch']}/{total_epochs}", f"loss {record['train_loss']:.4f}"]
    parts.append(f"train acc {100 * record['train_acc']:.1f}%")
    if record.get("test_acc") is not None:
        parts.append(f"test acc {100 * record['test_acc']:.1f}%")
    if record.get("test_robust_acc") is not None:
        parts.append(f"robust acc {100 * record['test_robust_acc']:.1f}%")
    parts.append(f"lr {record['lr']:.4g}")
    parts.append(f"{record['epoch_time']:.1f} s")
    parts.append(f"{record['images_per_second']:.0f} img/s")
    return ", ".join(parts) + (" (best)" if record["best"] else "")
