"""Packages that export their names lazily (PEP 562): the ``__getattr__`` and ``__dir__`` they share,
and keeping a lazily exported name when a submodule has the same name.

A package whose ``__init__`` exports its names lazily (PEP 562 ``__getattr__``) loses a name such as
``freqtail.attacks.pgd`` (the function) once its submodule of the same name is imported: the import
system then sets the package's attribute to the submodule, and ``__getattr__`` is no longer asked.
:func:`keep_exports` makes the package ignore that assignment for the names given, so that
``from freqtail.attacks import pgd`` is the function whatever was imported before, as it was when
the package imported it eagerly (the submodule stays in ``sys.modules`` and importable by its name).
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Iterable, Mapping


def keep_exports(package: str, names: Iterable[str]) -> None:
    """Make the package ``package`` (already in ``sys.modules``) keep ``names`` as its exports over
    its submodules of the same names (module attribute assignment, as the Python reference's
    "Customizing module attribute access" describes)."""
    kept = frozenset(names)

    class _Package(types.ModuleType):
        def __setattr__(self, name: str, value: object) -> None:
            if name in kept and isinstance(value, types.ModuleType):
                return
            super().__setattr__(name, value)

    sys.modules[package].__class__ = _Package


def lazy_attributes(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The PEP 562 ``__getattr__`` and ``__dir__`` of the package ``package`` that exports each name of
    ``exports`` from a module imported on first use: ``{public name: module}``, where a module named
    ``"freqtail.…"`` is absolute and any other name is a submodule of ``package``.

        >>> __getattr__, __dir__ = lazy_attributes(__name__, {"build_dataset": "registry"})
    """

    def module_of(name: str) -> str | None:
        module = exports.get(name)
        if module is None or module.startswith("freqtail."):
            return module
        return f"{package}.{module}"

    def __getattr__(name: str) -> object:
        module = module_of(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
