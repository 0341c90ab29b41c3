"""How a model runs: channels-last memory format and ``torch.compile``, owned in one place.

:func:`prepare_model` turns a model into a module that runs it as :class:`ExecutionOptions` say and
gives the same logits (float ``(N, C, H, W)`` in, ``(N, K)`` out) up to float rounding:

* ``channels_last``: the model's 4-D parameters and buffers are converted to
  ``torch.channels_last`` in place, and every 4-D input is made channels-last on the way in
  (``x.contiguous(memory_format=torch.channels_last)``, which is differentiable, so attacks that take
  gradients with respect to the input work unchanged). Convolution kernels for NHWC run faster on
  GPUs with tensor cores; on a CPU it depends on the machine and the model (oneDNN's NHWC kernels made
  small-cnn and resnet18 training steps 1.2-1.4x faster on freqtail's 2-core test machine:
  ``benchmarks/train_speed.py --compare-execution``).
* ``compile``: ``torch.compile`` of the whole forward (after the channels-last conversion), with the
  batch dimension dynamic from the first call, so every batch size (the last, smaller batch of an
  epoch, evaluation batches) runs the same compiled graph of its kind (training or eval mode, with or
  without input gradients). Each prepared model has its own compiled-graph cache: what runs for a
  call never depends on what else the process compiled, which keeps resumed training bit-exact.
  The first calls compile (seconds to minutes); CPUs need a C++ compiler. A
  :class:`~freqtail.models.FreqtailModel`'s BaSS front (the end-to-end threat model) runs eagerly
  before the compiled rest: its input checks would break the graph, Inductor generates no code for
  its complex FFTs, and compiling it cost more than it saved (on a CPU, tens of seconds).
  Attacks gain least: the compiled backward computes the parameters' gradients too, where eager
  autograd computes only the input's (small-cnn on a CPU: a no-grad forward 2.5x faster compiled,
  a forward plus input gradient 1.04x).

The model passed in stays the owner of the weights: ``state_dict()`` / ``load_state_dict()`` of the
prepared module are the owner's (no ``_orig_mod.`` or wrapper prefixes), and a checkpoint written
from a prepared model loads into a plain one and back. ``train()`` / ``eval()`` / ``to()`` of the
prepared module reach the owner.

Tolerances (float32 on a CPU, against the same model run eagerly in the contiguous layout; tested
in ``tests/test_execution.py``, measured values in brackets): logits within 1e-5 of their largest
magnitude with channels-last [small-cnn 4e-7, resnet18 8e-7] and within 1e-4 compiled [small-cnn
4e-7, resnet18 8e-7]; input gradients within 1e-4 of their largest magnitude for small-cnn [5e-7].
Deeper networks have ReLU inputs within float32 rounding of 0, which fall on either side depending
on the summation order, so their input gradients differ locally however they run: eager float32
differs from float64 as much (resnet18: 1.7e-3 relative L2; channels-last 1.8e-3, bounded in the
test by 1.5x eager's). Attacks that step by the *sign* of the gradient (PGD) can therefore take
another step where a component's sign flips, and the iterates then go apart: PGD-20 robust-accuracy
counts agree within one image of 64 [identical: small-cnn 43/64, resnet18 19/64 at eps 8/255], not
bit for bit by promise.
"""

from __future__ import annotations

import itertools
import types
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from freqtail.errors import ConfigError
from freqtail.execution_options import ExecutionOptions, as_execution_options
from freqtail.models.wrappers import FreqtailModel

# The exception classes that mean "torch.compile failed": private torch modules, hence guarded (they
# differ between torch versions). Loading them is free here: torchvision, which the models import,
# has loaded torch._dynamo and torch._inductor already.
_COMPILE_ERRORS: tuple[type[BaseException], ...] = ()
try:
    from torch._dynamo.exc import BackendCompilerFailed

    _COMPILE_ERRORS += (BackendCompilerFailed,)
except ImportError:  # pragma: no cover - other torch versions
    pass
try:
    from torch._inductor.exc import InductorError

    _COMPILE_ERRORS += (InductorError,)
except ImportError:  # pragma: no cover
    pass


class ChannelsLastInputs(nn.Module):
    """``model(x.contiguous(memory_format=torch.channels_last))`` for every 4-D tensor argument.

    The conversion copies the values unchanged and passes gradients back to ``x`` (in ``x``'s shape).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: Any) -> Any:
        return self.model(*(_channels_last(x) for x in inputs))


def _channels_last(x: Any) -> Any:
    if isinstance(x, torch.Tensor) and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


_COPIES = itertools.count()


def _compiled(module: nn.Module) -> Callable[..., Any]:
    """``torch.compile`` of ``module(*inputs)`` with a compiled-graph cache of its own."""

    def run(*inputs: Any) -> Any:
        return module(*inputs)

    # Dynamo keeps compiled graphs on the code object it compiles, and its automatic-dynamic-shape
    # state per (file, line, name) of that code. Through one shared function (or one class's
    # forward) every model would share them and one recompile budget (recompile_limit, 8): what ran
    # would depend on what the process compiled before, and a resumed run would differ from an
    # uninterrupted one. A renamed copy of the code per prepared model keeps each apart.
    name = f"freqtail_prepared_{next(_COPIES)}"
    code = run.__code__.replace(co_name=name, co_qualname=name)
    own = types.FunctionType(code, run.__globals__, name, None, run.__closure__)
    return torch.compile(own)


def _compile_failure(err: BaseException) -> ConfigError:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reason = lines[0] if lines else type(err).__name__
    if len(reason) > 300:
        reason = reason[:297] + "..."
    return ConfigError(
        f"torch.compile could not compile the model ({type(err).__name__}: {reason.rstrip('.')}); "
        "run it without compile (compile: false, or leave out --compile)."
    )


class PreparedModel(nn.Module):
    """A model run with :class:`ExecutionOptions`; made by :func:`prepare_model`.

    ``forward(*inputs)`` takes what the owner (or the ``wrap`` given to :func:`prepare_model`) takes.
    The owner is the submodule ``model``; ``state_dict()`` and ``load_state_dict()`` are the owner's.
    """

    def __init__(
        self,
        model: nn.Module,
        runner: nn.Module,
        options: ExecutionOptions,
        *,
        wrapped: bool,
        front: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.options = options
        object.__setattr__(self, "_front", front)  # the owner's front, run eagerly; registered there
        if options.compile:
            try:
                # A wrapped model (DistributedDataParallel) is compiled as PyTorch documents it,
                # torch.compile(ddp_model), so that Dynamo splits the graph at DDP's gradient buckets.
                run = torch.compile(runner) if wrapped else _compiled(runner)
            except RuntimeError as err:  # torch.compile refuses this Python or platform
                raise _compile_failure(err) from None
        else:
            run = runner
        # Not an attribute nn.Module registers: the runner holds the owner, which is ``model`` already.
        object.__setattr__(self, "_run", run)

    def forward(self, *inputs: Any) -> Any:
        if self._front is not None:
            inputs = tuple(self._front(x) for x in inputs)
        if not self.options.compile:
            return self._run(*inputs)
        for x in inputs:
            if isinstance(x, torch.Tensor) and x.ndim >= 1:
                torch._dynamo.maybe_mark_dynamic(x, 0)
        try:
            return self._run(*inputs)
        except _COMPILE_ERRORS as err:
            raise _compile_failure(err) from None

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The owner's state dict: the keys a plain model has."""
        return self.model.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """Load into the owner (keys as a plain model has them)."""
        return self.model.load_state_dict(state_dict, strict=strict, assign=assign)

    def extra_repr(self) -> str:
        return f"channels_last={self.options.channels_last}, compile={self.options.compile}"


def prepare_model(
    model: nn.Module,
    options: ExecutionOptions | Mapping[str, Any] | None = None,
    *,
    wrap: Callable[[nn.Module], nn.Module] | None = None,
) -> nn.Module:
    """``model`` ready to run as ``options`` say (see the module docstring).

    Args:
        model: any module, e.g. a :class:`freqtail.models.FreqtailModel` or a threat model's view of
            it; it keeps its weights (with ``channels_last``, its 4-D parameters and buffers are
            converted in place: values unchanged, only the memory layout).
        options: :class:`ExecutionOptions` (or a mapping of its fields); None = eager.
        wrap: builds the module that is run from the (channels-last) model, e.g.
            ``lambda m: DistributedDataParallel(m)``; compiled after wrapping, as PyTorch recommends
            for DDP.

    Returns:
        ``model`` itself when the options are eager and there is no ``wrap`` (``wrap(model)`` when
        there is one); otherwise a :class:`PreparedModel` whose state dict is ``model``'s. It is in
        ``model``'s training mode.

    Raises:
        ConfigError: bad options, or ``torch.compile`` fails (one sentence; raised at the first call,
            where compilation happens).
    """
    options = as_execution_options(options)
    if options.eager:
        return model if wrap is None else wrap(model)
    if options.channels_last:
        model.to(memory_format=torch.channels_last)
    front, body = None, model
    if options.compile and wrap is None and isinstance(model, FreqtailModel) and model.front is not None:
        front, body = model.front, model.without_front()
    runner = ChannelsLastInputs(body) if options.channels_last else body
    if wrap is not None:
        runner = wrap(runner)
    prepared = PreparedModel(model, runner, options, wrapped=wrap is not None, front=front)
    prepared.train(model.training)
    return prepared
