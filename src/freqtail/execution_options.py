"""How a model is asked to run (:class:`ExecutionOptions`: channels-last, ``torch.compile``), as a
checked record; :mod:`freqtail.models.execution` applies it to a model.

Nothing here imports torch: evaluation requests and training configs hold these options and are
checked on the command line before the library loads (docs/design.md, "Option checks before torch").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from freqtail.errors import ConfigError


@dataclass(frozen=True)
class ExecutionOptions:
    """How to run a model: ``channels_last`` memory format, ``compile`` with ``torch.compile``.

    Both default to off (eager, contiguous): what freqtail did before they existed. They change how
    fast a model runs, not what it computes (up to the tolerances in the module docstring).
    """

    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        for name in ("channels_last", "compile"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ConfigError(f"The execution option {name} must be true or false, not {value!r}.")

    @property
    def eager(self) -> bool:
        """Neither option is on: the model runs as it is."""
        return not (self.channels_last or self.compile)

    def to_dict(self) -> dict[str, bool]:
        """``{"channels_last": bool, "compile": bool}`` (what records' settings store)."""
        return asdict(self)


#: Plain eager execution in the contiguous layout (the default).
EAGER = ExecutionOptions()


def as_execution_options(value: ExecutionOptions | Mapping[str, Any] | None) -> ExecutionOptions:
    """``None`` (eager), an :class:`ExecutionOptions`, or a mapping of its fields, as options.

    Raises:
        ConfigError: an unknown key or a value that is not a bool.
    """
    if value is None:
        return EAGER
    if isinstance(value, ExecutionOptions):
        return value
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"channels_last", "compile"})
        if unknown:
            raise ConfigError(
                f"Unknown execution option {unknown[0]!r}; the options are channels_last and compile."
            )
        return ExecutionOptions(**dict(value))
    raise ConfigError(f"Execution options must be ExecutionOptions or a mapping, not {type(value).__name__}.")
