"""One registered architecture: its factory, names, summary and options (see :mod:`.registry`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

#: Options every factory receives from ``create_model`` itself; they are not "extra" options.
COMMON_OPTIONS = ("image_size", "in_channels")


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture.

    ``name`` is the canonical name, ``aliases`` other accepted spellings, ``summary`` one line for
    listings, ``reference`` the paper or code whose configuration the factory follows, and
    ``options`` the factory's own keyword options with their defaults.
    """

    name: str
    factory: Callable[..., nn.Module]
    aliases: tuple[str, ...]
    summary: str
    reference: str

    @property
    def options(self) -> dict[str, object]:
        params = inspect.signature(self.factory).parameters.values()
        return {
            p.name: p.default
            for p in params
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in COMMON_OPTIONS
        }
