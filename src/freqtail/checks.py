"""Generic checks of arguments and values: the one owner of "is this a valid count, number or choice".

Every check returns the value in canonical form (a Python ``int``, ``float`` or the choice) or
raises one sentence naming the value, what it must be and what it was::

    The BaSS strength must be a number in [0, 1], not 1.5.

``what`` is the sentence's subject exactly as it should read ("The batch size", "max_band",
"--n"); ``error`` is the :class:`~freqtail.errors.FreqtailError` subclass the caller raises
(:class:`~freqtail.errors.InputError` for function arguments, :class:`~freqtail.errors.ConfigError`
for configuration). Booleans are refused everywhere: ``True`` is an ``int`` to Python, never a
count or a number to freqtail. NumPy integers and floats are accepted (through :mod:`numbers`,
without importing NumPy).

:func:`int_argument` and :func:`number_argument` turn the same rules into ``argparse`` types, so
the command line and the library give the same verdicts in the same words. Checks that know a
domain (budgets such as "8/255", profiles, image shapes) live with their owners, built on these.
"""

from __future__ import annotations

import argparse
import math
import numbers
import os
import unicodedata
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from freqtail.errors import FreqtailError, InputError

__all__ = [
    "check_choice",
    "check_fraction",
    "check_int",
    "check_name",
    "check_number",
    "check_optional_int",
    "check_seed",
    "check_utf8_path",
    "int_argument",
    "number_argument",
    "seed_argument",
]

#: The largest seed: every generator freqtail seeds (torch, NumPy, Python) takes 0 .. 2**63 - 1, and
#: records store seeds as signed 64-bit JSON integers that other tools read back exactly.
SEED_MAX = 2**63 - 1


def _show(bound: float) -> str:
    return str(bound) if isinstance(bound, numbers.Integral) else f"{bound:g}"


def _describe_int(minimum: int | None = None, maximum: int | None = None) -> str:
    """What an integer within the bounds is called: ``"a positive integer"``, ``"an integer from 1 to 5"``."""
    if maximum is None:
        if minimum is None:
            return "an integer"
        if minimum == 1:
            return "a positive integer"
        if minimum == 0:
            return "a non-negative integer"
        return f"an integer >= {minimum}"
    if minimum is None:
        return f"an integer <= {maximum}"
    return f"an integer from {minimum} to {maximum}"


def _describe_number(
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    open_min: bool = False,
    open_max: bool = False,
) -> str:
    """What a finite number within the bounds is called: ``"a positive number"``, ``"a number in [0, 1)"``."""
    if maximum is None:
        if minimum is None:
            return "a finite number"
        if minimum == 0:
            return "a positive number" if open_min else "a non-negative number"
        return f"a number {'>' if open_min else '>='} {_show(minimum)}"
    if minimum is None:
        return f"a number {'<' if open_max else '<='} {_show(maximum)}"
    left, right = "(" if open_min else "[", ")" if open_max else "]"
    return f"a number in {left}{_show(minimum)}, {_show(maximum)}{right}"


def check_int(
    value: Any,
    what: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    whole_floats: bool = False,
    error: type[FreqtailError] = InputError,
) -> int:
    """Return ``value`` as an ``int`` if it is an integer within ``[minimum, maximum]`` (inclusive).

    Args:
        value: the value to check; ``int`` or a NumPy integer (``bool`` is refused).
        what: the subject of the error sentence ("The batch size").
        minimum: the smallest allowed value, or None for no lower bound.
        maximum: the largest allowed value, or None for no upper bound.
        whole_floats: also accept a float with an integer value (``100.0``, ``1e9``), as YAML
            and the command line write large counts.
        error: the exception class to raise.

    Raises:
        ``error``: "{what} must be {a positive integer | an integer from 1 to 5 | ...}, not {value!r}."
    """
    number = value
    if whole_floats and isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        if math.isfinite(value) and float(value).is_integer():
            number = int(value)
    valid = (
        isinstance(number, numbers.Integral)
        and not isinstance(number, bool)
        and (minimum is None or number >= minimum)
        and (maximum is None or number <= maximum)
    )
    if not valid:
        raise error(f"{what} must be {_describe_int(minimum, maximum)}, not {value!r}.")
    return int(number)


def check_optional_int(
    value: Any,
    what: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    whole_floats: bool = False,
    error: type[FreqtailError] = InputError,
) -> int | None:
    """``None`` as is (typically "all" or "the default"), else :func:`check_int` of the value."""
    if value is None:
        return None
    return check_int(value, what, minimum=minimum, maximum=maximum, whole_floats=whole_floats, error=error)


def check_seed(value: Any, what: str, *, error: type[FreqtailError] = InputError) -> int:
    """Return ``value`` as an ``int`` if it is a seed, an integer in ``0 .. SEED_MAX`` (2**63 - 1).

    Raises:
        ``error``: "{what} must be an integer from 0 to 9223372036854775807, not {value!r}."
    """
    return check_int(value, what, minimum=0, maximum=SEED_MAX, error=error)


def check_number(
    value: Any,
    what: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    open_min: bool = False,
    open_max: bool = False,
    error: type[FreqtailError] = InputError,
) -> float:
    """Return ``value`` as a ``float`` if it is a finite real number within the bounds.

    Args:
        value: the value to check; any real number (``int``, ``float``, NumPy scalars, ``Fraction``);
            ``bool``, strings, NaN and infinities are refused.
        what: the subject of the error sentence ("The landscape span").
        minimum, maximum: the bounds, or None for none.
        open_min, open_max: exclude the bound itself (``minimum=0, open_min=True``: positive).
        error: the exception class to raise.

    Raises:
        ``error``: "{what} must be {a number in [0, 1] | a positive number | ...}, not {value!r}."
    """
    number = math.nan
    if type(value) is float:  # the common case, without the abstract-class test (~1 us a call)
        number = value
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an int beyond float's range is not a finite number
            pass
    below_zero = number < 0 or math.copysign(1.0, number) < 0  # -0.0: a value written with a minus sign
    valid = (
        math.isfinite(number)
        and (minimum is None or (number > minimum if open_min else number >= minimum))
        and not (minimum == 0 and below_zero)
        and (maximum is None or (number < maximum if open_max else number <= maximum))
    )
    if not valid:
        wanted = _describe_number(minimum, maximum, open_min=open_min, open_max=open_max)
        raise error(f"{what} must be {wanted}, not {value!r}.")
    return number


def check_fraction(value: Any, what: str, *, error: type[FreqtailError] = InputError) -> float:
    """Return ``value`` as a ``float`` if it is a number in [0, 1] (a probability, a strength, a share)."""
    return check_number(value, what, minimum=0, maximum=1, error=error)


def check_choice(
    value: Any, choices: Collection[str], what: str, *, error: type[FreqtailError] = InputError
) -> str:
    """Return ``value`` if it is one of ``choices`` (exact spelling), else name every choice.

    Raises:
        ``error``: "{what} must be one of {a, b, c}, not {value!r}."
    """
    if not (isinstance(value, str) and value in choices):
        raise error(f"{what} must be one of {', '.join(choices)}, not {value!r}.")
    return value


#: Unicode categories a name may not contain: control characters (newline, tab, NUL, escape, ...),
#: format characters (zero-width, direction overrides) and line or paragraph separators.
_HIDDEN_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}


def check_name(value: Any, what: str, *, error: type[FreqtailError] = InputError) -> str:
    """Return ``value`` if it is a name that prints as itself: a non-empty string without control,
    format or line-separator characters (a run name, a label, a grid cell name).

    Such characters would end a line of a table, hide part of a name or make two names look the same.

    Raises:
        ``error``: "{what} must not be empty." or "{what} 'a\\nb' holds the control character U+000A; ..."
    """
    if not isinstance(value, str) or not value.strip():
        raise error(f"{what} must not be empty.")
    for character in value:
        if unicodedata.category(character) in _HIDDEN_CATEGORIES:
            raise error(
                f"{what} {value!r} holds the control character U+{ord(character):04X}; "
                "use letters, digits and punctuation."
            )
    return value


def check_utf8_path(path: str | os.PathLike, what: str, *, error: type[FreqtailError] = InputError) -> Path:
    """Return ``path`` as a :class:`~pathlib.Path` if its bytes are UTF-8 text.

    A name with other bytes (Python keeps them as surrogates) cannot be written into a UTF-8 page or
    printed; it is refused, shown with the odd bytes escaped (``runs/bad\\xffname``).

    Raises:
        ``error``: "{what} {path} has a name that is not UTF-8 text (byte 0xff); rename it."
    """
    raw = os.fsencode(path)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        shown = raw.decode("utf-8", "backslashreplace")
        raise error(
            f"{what} {shown} has a name that is not UTF-8 text (byte 0x{raw[err.start]:02x}); rename it."
        ) from None
    return Path(os.fsdecode(raw))


def _argument_type(read: Callable[[str], Any], check: Callable[[Any], Any], wanted: str):
    """An argparse ``type=``: ``read`` the text, ``check`` the value; either failing says ``wanted``."""

    def convert(text: str):
        if not text.isascii():  # int() and float() read "８" and Arabic-Indic digits; freqtail does not
            raise argparse.ArgumentTypeError(f"expected {wanted} written with ASCII digits, got {text!r}")
        try:
            return check(read(text))
        except ValueError:  # what read() raises, and InputError, which is a ValueError too
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None

    return convert


def int_argument(
    *, minimum: int | None = None, maximum: int | None = None, whole_floats: bool = False
) -> Callable[[str], int]:
    """An argparse ``type=`` for an integer option, refused exactly as :func:`check_int` refuses it.

    ``whole_floats`` also reads ``1e9`` and ``100.0`` as integers. argparse reports a refusal as
    ``argument --n: expected a positive integer, got '0'``.
    """

    def read(text: str) -> int | float:
        try:
            return int(text)
        except ValueError:
            if not whole_floats:
                raise
            return float(text)

    def check(value: int | float) -> int:
        return check_int(value, "The value", minimum=minimum, maximum=maximum, whole_floats=whole_floats)

    return _argument_type(read, check, _describe_int(minimum, maximum))


def number_argument(
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    open_min: bool = False,
    open_max: bool = False,
) -> Callable[[str], float]:
    """An argparse ``type=`` for a number option, refused exactly as :func:`check_number` refuses it."""
    bounds = {"minimum": minimum, "maximum": maximum, "open_min": open_min, "open_max": open_max}

    def check(value: float) -> float:
        return check_number(value, "The value", **bounds)

    return _argument_type(float, check, _describe_number(**bounds))


def seed_argument() -> Callable[[str], int]:
    """An argparse ``type=`` for a seed option (``--subset-seed``): :func:`check_seed`'s verdict."""
    return int_argument(minimum=0, maximum=SEED_MAX)
