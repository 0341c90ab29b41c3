"""Perturbation budgets: parse "8/255"-style strings and refuse budgets on the wrong scale.

freqtail's images are floats in [0, 1], so an L-inf budget is a number well below 1 (the paper's
CIFAR budget is 8/255 = 0.0314). A budget of 8 is almost always 8/255 typed on the 0..255 scale;
such a value is refused with a sentence that says what to write instead, rather than silently
running an attack that can reach every image.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from freqtail.errors import InputError

#: A budget as text: an ASCII decimal number or fraction of two ("8/255", "0.0314", "2e-3", "8 / 255"),
#: exponents of at most 3 digits (Fraction would build 10**99999999 exactly). Python's float() and
#: Fraction() also read other scripts' digits ("８", Arabic-Indic) and "1_0"; a budget is written the
#: way every table prints it, so those are refused, not read.
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?"
_BUDGET_TEXT = re.compile(rf"(?P<sign>[+-]?)(?P<numerator>{_NUMBER})(?:/(?P<denominator>{_NUMBER}))?")


def check_eps(eps: float, what: str = "eps") -> float:
    """Return ``eps`` as a float after checking it is a budget on the [0, 1] image scale.

    Args:
        eps: an L-inf budget (or step size) in units of the [0, 1] image scale, ``0 <= eps < 1``.
        what: the name used in error messages ("eps", "step size").

    Raises:
        InputError: not a finite real number, negative, or ``>= 1`` (taken to be on the 0..255
            scale; the message gives the [0, 1] value to use instead).

    >>> check_eps(8 / 255)
    0.03137254901960784
    """
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise InputError(f"The {what} must be a number such as 8/255 = 0.0314, not {eps!r}.")
    value = float(eps)
    if not math.isfinite(value):
        raise InputError(f"The {what} must be a finite number, not {value}.")
    if value < 0 or math.copysign(1.0, value) < 0:  # -0.0 too: a budget written with a minus sign
        raise InputError(f"The {what} must be >= 0, not {value:g}.")
    if value >= 1:
        raise InputError(
            f"{what.capitalize()} {value:g} looks like it is on the 0..255 scale; "
            f"use {value:g}/255 = {value / 255:.4f}."
        )
    return value


def parse_eps(text: str | float, what: str = "eps") -> float:
    """Read a budget written as a number or a fraction ("8/255", "0.0314", 0.0314) and check it.

    Returns:
        the budget as a float on the [0, 1] scale (passed through :func:`check_eps`).

    Raises:
        InputError: unreadable text, a zero denominator, or a value refused by :func:`check_eps`.

    >>> round(parse_eps("8/255"), 5)
    0.03137
    """
    if isinstance(text, str):
        match = _BUDGET_TEXT.fullmatch(text.replace(" ", ""))
        if match is None:
            ascii_hint = "" if text.isascii() else " with ASCII digits"
            raise InputError(
                f"Could not read the {what} {text!r}; "
                f"write a number such as 0.0314 or a fraction such as 8/255{ascii_hint}."
            )
        if match["sign"] == "-":  # "-0" and "-0/255" too, which are zero to float() and Fraction()
            raise InputError(f"The {what} must be >= 0, not {text.strip()!r}.")
        value = Fraction(match["numerator"])
        if match["denominator"] is not None:
            if Fraction(match["denominator"]) == 0:
                raise InputError(f"Could not read the {what} {text!r}: its denominator is 0.")
            value /= Fraction(match["denominator"])
        return check_eps(float(value), what)
    return check_eps(text, what)
