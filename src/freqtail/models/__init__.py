"""Model registry, CIFAR/ImageNet architectures and the wrappers freqtail trains and evaluates.

>>> from freqtail.models import ExecutionOptions, FreqtailModel, create_model, prepare_model
>>> model = FreqtailModel(create_model("resnet18", num_classes=10), normalize="cifar10")
>>> fast = prepare_model(model, ExecutionOptions(channels_last=True, compile=True))

Importing this package registers every architecture module listed below.
"""

from __future__ import annotations

from freqtail.execution_options import EAGER, ExecutionOptions
from freqtail.models import densenet, preact_resnet, resnet, resnext, small_cnn, wide_resnet  # noqa: F401  (register)
from freqtail.models.execution import PreparedModel, prepare_model
from freqtail.models.external import from_robustbench
from freqtail.models.registry import (
    ModelEntry,
    canonical_model_name,
    check_model_arguments,
    count_parameters,
    create_model,
    model_entry,
    model_names,
    register_model,
)
from freqtail.models.spec import SPEC_FORMAT, SPEC_VERSION, build_model_from_spec, model_spec
from freqtail.models.wrappers import NORMALIZATIONS, FreqtailModel, Normalize, as_normalize, bass_front

__all__ = [
    "EAGER",
    "ExecutionOptions",
    "PreparedModel",
    "from_robustbench",
    "NORMALIZATIONS",
    "SPEC_FORMAT",
    "SPEC_VERSION",
    "FreqtailModel",
    "ModelEntry",
    "Normalize",
    "as_normalize",
    "bass_front",
    "build_model_from_spec",
    "canonical_model_name",
    "check_model_arguments",
    "count_parameters",
    "create_model",
    "model_entry",
    "model_names",
    "model_spec",
    "prepare_model",
    "register_model",
]
