"""A restricted unpickler for the CIFAR python batches.

The CIFAR-10/100 "python version" files are pickles. A plain ``pickle.load`` of a crafted file
runs arbitrary code, so freqtail reads them with :class:`CifarUnpickler`, whose ``find_class``
resolves only the handful of globals that such a file legitimately needs: numpy array and dtype
reconstruction (under the module paths of numpy 1.x and 2.x), ``_codecs.encode`` (how protocol-2
pickles written by Python 3 store ``bytes``) and builtin containers. Everything else, such as
``os.system`` or ``builtins.eval``, is refused. Calling the allowed globals on attacker-chosen
arguments only builds data.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

from freqtail.errors import DatasetNotFoundError

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        # numpy arrays: protocol <= 4 (_reconstruct + ndarray + dtype) and protocol 5 (_frombuffer)
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        # bytes in protocol-2 pickles written by Python 3
        ("_codecs", "encode"),
        # builtin containers (Python 2 pickles name the module __builtin__)
        *(
            (module, name)
            for module in ("builtins", "__builtin__")
            for name in ("list", "dict", "tuple", "set", "frozenset", "bytearray", "bytes", "str")
        ),
        ("collections", "OrderedDict"),
    }
)


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asked for a global outside :data:`ALLOWED_GLOBALS`."""


class CifarUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(f"{module}.{name}")
        if module == "__builtin__":
            module = "builtins"
        return super().find_class(module, name)


def safe_load_pickle(path: str | os.PathLike, what: str = "dataset file") -> Any:
    """Read a pickle file that may only contain plain data (dicts, lists, strings, numpy arrays).

    Python 2 strings are decoded as latin-1 (so numpy array buffers round-trip byte for byte).

    Raises:
        DatasetNotFoundError: the file is missing, truncated, not a pickle, or refers to anything
            outside the allow-list (a crafted file); the message is one sentence.
    """
    p = Path(path)
    if not p.is_file():
        raise DatasetNotFoundError(f"The {what} {p} does not exist.")
    try:
        data = p.read_bytes()
        return CifarUnpickler(io.BytesIO(data), encoding="latin1").load()
    except UnsafePickleError as err:
        raise DatasetNotFoundError(
            f"The {what} {p} was refused because it asks to load {err}, which a data file never needs; "
            "it may be malicious, so replace it with a copy from the official source."
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        MemoryError,
        OSError,
    ) as err:
        raise DatasetNotFoundError(
            f"The {what} {p} is truncated or damaged ({type(err).__name__}: {str(err)[:80]}); "
            "download it again."
        ) from None
