"""A trained model rebuilt from a run folder, a checkpoint, or bare weights from elsewhere.

One rule decides what a path holds (:func:`is_bare_weights`): a freqtail checkpoint (a run folder, a
``checkpoints/`` folder, a checkpoint folder, a pointer, ``checkpoint.json`` or the
``model.safetensors`` beside one; :func:`freqtail.train.checkpoint.load_checkpoint`) or bare weights
(a ``torch.save`` file: ``.pt``, ``.pth``, ``.bin``, ``.ckpt``; or a ``.safetensors`` file with no
``checkpoint.json`` beside it), whose architecture comes from a model spec. Foreign files are read as
tensors only (``torch.load(weights_only=True)``): no code in them runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from freqtail.errors import CheckpointError
from freqtail.train.checkpoint import (
    CHECKPOINT_FORMAT,
    INFO_FILE,
    SUMMARY_KEYS,
    checkpoint_summary,
    load_checkpoint,
    model_with_state,
    read_safetensors,
)

#: Suffixes of ``torch.save`` files: always bare weights (freqtail never writes them).
TORCH_SAVE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
#: Keys under which training scripts commonly nest the state dict in a ``torch.save`` file.
_NESTED_STATE_KEYS = ("state_dict", "model_state_dict", "model", "net", "ema")


def is_bare_weights(path: Path) -> bool:
    """True when ``path`` is a file of weights without a freqtail checkpoint around it: a ``torch.save``
    file, or a ``.safetensors`` file with no ``checkpoint.json`` beside it."""
    if not path.is_file():
        return False
    if path.suffix in TORCH_SAVE_SUFFIXES:
        return True
    return path.suffix == ".safetensors" and not (path.parent / INFO_FILE).exists()


def _load_foreign_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` or ``torch.save`` file, without running any code."""
    if path.suffix == ".safetensors":
        tensors, _ = read_safetensors(path, "weights")
        return tensors
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError for disallowed objects, RuntimeError / EOFError for damage
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"The file {path} cannot be loaded safely as tensors only (torch.load with weights_only=True "
            f"refused it: {message[:160]})."
        ) from None
    for key in _NESTED_STATE_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"The file {path} does not hold a state dict of tensors.")
    return obj


def load_model_from_run(
    path: str | os.PathLike,
    which: str = "best",
    *,
    device: str | torch.device = "cpu",
    with_front: bool = True,
    spec: Mapping[str, Any] | None = None,
    verify: bool = True,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a trained model, in eval mode, and describe where it came from.

    Args:
        path: a run folder (``runs/NAME``), a checkpoint folder or file (see
            :func:`freqtail.train.checkpoint.load_checkpoint`), a standalone ``model.safetensors``
            written by freqtail, or bare weights (``.safetensors``, ``.pt``, ``.pth``) with ``spec``.
        which: ``"best"`` (default) or ``"last"`` for a run folder.
        device: where to put the model.
        with_front: keep the BaSS front if the model spec has one (runs trained with
            ``bass="dataset"`` record it: the model then takes raw images, the end-to-end threat
            model). ``False`` gives the bare model for BaSS-converted inputs (the paper's domain).
        spec: a model spec (:func:`freqtail.models.model_spec`) for files that carry none.
        verify: check SHA-256 digests of freqtail checkpoints.

    Returns:
        ``(model, info)``; ``info`` holds ``path``, ``which``, ``format`` ("freqtail-checkpoint" or
        "foreign"), ``epoch``, ``global_step``, ``complete``, ``config``, ``model_spec``, ``metrics``
        (the checkpoint epoch's record), ``best``, ``selected_on`` (which images chose the
        checkpoint; ``LAST_EPOCH`` of :mod:`freqtail.train.checkpoint` for ``which="last"``),
        ``data`` (dataset, bass, gamma, bass_strength), ``objective`` and ``freqtail_version`` (None
        where unknown).

    Raises:
        CheckpointError: anything missing, corrupt, foreign without ``spec`` or mismatching.
    """
    p = Path(path).expanduser()
    if not is_bare_weights(p):
        checkpoint = load_checkpoint(p, which, verify=verify)
        model = checkpoint.build_model(with_front=with_front, device=device)
        return model, checkpoint_summary(checkpoint)
    if spec is None and p.suffix == ".safetensors":
        _, metadata = read_safetensors(p, "weights")
        if metadata.get("format") == CHECKPOINT_FORMAT and "model_spec" in metadata:
            try:
                spec = json.loads(metadata["model_spec"])
            except json.JSONDecodeError:
                raise CheckpointError(
                    f"The model spec in the metadata of {p} is not valid JSON; the file is damaged."
                ) from None
    if spec is None:
        raise CheckpointError(
            f"The file {p} carries no freqtail model spec; pass spec=model_spec(name, num_classes, ...) "
            "so the architecture is known."
        )
    state = _load_foreign_state(p)
    model = model_with_state(spec, state, str(p), with_front, device)
    info = {key: None for key in SUMMARY_KEYS}
    info.update(path=str(p), format="foreign", model_spec=dict(spec))
    return model, info
