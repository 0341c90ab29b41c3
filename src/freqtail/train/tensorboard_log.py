"""TensorBoard event files of a training run (config key ``log: tensorboard``).

With ``log: tensorboard`` rank 0 writes event files into ``RUN/tensorboard/``
(:attr:`freqtail.runs.layout.RunLayout.tensorboard`) with PyTorch's
:class:`torch.utils.tensorboard.SummaryWriter`, the writer made for it (the optional extra
``pip install 'freqtail[tensorboard]'``). After every epoch it adds one scalar per tag of
:data:`SCALARS` at **global step = the epoch** (1-based, as ``epoch`` in ``metrics.jsonl``), taken
from that epoch's ``metrics.jsonl`` record, so the two never disagree (TensorBoard stores float32):

* ``train/loss``: ``train_loss``, the mean training loss of the epoch;
* ``train/lr``: ``lr``, the learning rate of the epoch's last step;
* ``train/images_per_second``: ``images_per_second``, training images over training time (all ranks);
* ``test/clean_accuracy``: ``test_acc``, a fraction in [0, 1] (epochs that evaluate);
* ``test/robust_accuracy``: ``test_robust_acc``, a fraction (epochs that measure it).

``tensorboard --logdir GRID`` over a grid folder shows every cell as its own run, named by its
folder (``<cell>/tensorboard``); over a run folder, the one run.

**Resume.** The trainer writes an epoch's scalars before that epoch's checkpoint, so every epoch a
checkpoint holds is already in the event files. A (re)started run opens a new event file with
``purge_step`` = the first epoch it trains: the file begins with a ``SessionLog.START`` event at that
step, and TensorBoard's readers drop every earlier-written event at that step or later (an epoch
whose checkpoint was never written, or the epochs after an older checkpoint that a resume fell back
to), so after any interruption each epoch appears once, with the numbers of ``metrics.jsonl``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from freqtail.errors import ConfigError
from freqtail.runs.layout import RunLayout
from freqtail.train.config import TrainConfig

#: Scalar tag -> the ``metrics.jsonl`` field it shows (a field that is null in an epoch is skipped).
SCALARS: dict[str, str] = {
    "train/loss": "train_loss",
    "train/lr": "lr",
    "train/images_per_second": "images_per_second",
    "test/clean_accuracy": "test_acc",
    "test/robust_accuracy": "test_robust_acc",
}
INSTALL_HINT = "pip install 'freqtail[tensorboard]'"


def summary_writer_class() -> type:
    """:class:`torch.utils.tensorboard.SummaryWriter`, imported on first use (an optional extra).

    Raises:
        ConfigError: the tensorboard package is missing (one sentence saying how to install it).
    """
    try:
        # Only the import's own warnings are silenced (a TensorBoard or protobuf release may warn at
        # import about optional parts freqtail does not use); the user's console stays freqtail's.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            f"log: tensorboard needs the tensorboard package, which is not installed; install it with "
            f"{INSTALL_HINT} (or train with log: none)."
        ) from None
    return SummaryWriter


def check_log(config: TrainConfig) -> None:
    """Refuse ``log: tensorboard`` before training starts when TensorBoard is not installed.

    Raises:
        ConfigError: see :func:`summary_writer_class`.
    """
    if config.log == "tensorboard":
        summary_writer_class()


class EpochLog:
    """Where each finished epoch's record goes besides ``metrics.jsonl``: a SummaryWriter, or nowhere.

    Attributes:
        writer: the open :class:`~torch.utils.tensorboard.SummaryWriter`, or None (``log: none``, or a
            rank other than 0).
    """

    def __init__(self, writer: Any = None) -> None:
        self.writer = writer

    def write(self, record: Mapping[str, Any]) -> None:
        """Add the scalars of :data:`SCALARS` of one ``metrics.jsonl`` record at step ``record["epoch"]``
        and flush them to the event file (before the epoch's checkpoint is written)."""
        if self.writer is None:
            return
        for tag, field in SCALARS.items():
            value = record.get(field)
            if value is not None:
                self.writer.add_scalar(tag, float(value), global_step=int(record["epoch"]))
        self.writer.flush()


@contextlib.contextmanager
def epoch_log(
    config: TrainConfig, run_dir: str | Path, *, first_epoch: int, is_main: bool
) -> Iterator[EpochLog]:
    """The :class:`EpochLog` of a run that trains from epoch ``first_epoch`` (1-based) on, closed at
    the end: a new event file in ``RUN/tensorboard/`` with ``purge_step=first_epoch`` (see the module
    docstring) on rank 0 with ``log: tensorboard``; else an :class:`EpochLog` that writes nothing.

    Raises:
        ConfigError: ``log: tensorboard`` without the tensorboard package.
    """
    if config.log != "tensorboard" or not is_main:
        yield EpochLog()
        return
    writer = summary_writer_class()(log_dir=str(RunLayout.of(run_dir).tensorboard), purge_step=first_epoch)
    try:
        yield EpochLog(writer)
    finally:
        writer.close()


__all__ = ["INSTALL_HINT", "SCALARS", "EpochLog", "check_log", "epoch_log", "summary_writer_class"]
