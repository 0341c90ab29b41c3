"""freqtail.checks: the generic argument checks, their sentences, and the argparse types built on them."""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from freqtail.checks import (
    check_choice,
    check_fraction,
    check_int,
    check_name,
    check_number,
    check_optional_int,
    check_seed,
    check_utf8_path,
    int_argument,
    number_argument,
    seed_argument,
)
from freqtail.errors import ConfigError, InputError


# ----------------------------------------------------------------------------- check_int
def test_check_int_accepts_ints_and_numpy_ints_and_returns_python_ints():
    assert check_int(3, "n") == 3
    for value in (np.int64(7), np.int32(7), np.uint8(7)):
        out = check_int(value, "n", minimum=1)
        assert out == 7 and type(out) is int


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 1.0, 2.5, "3", None, math.nan, [1]])
def test_check_int_refuses_non_integers(value):
    with pytest.raises(InputError, match="n must be an integer, not "):
        check_int(value, "n")


@pytest.mark.parametrize(
    ("minimum", "maximum", "wanted"),
    [
        (1, None, "a positive integer"),
        (0, None, "a non-negative integer"),
        (2, None, "an integer >= 2"),
        (None, 9, "an integer <= 9"),
        (1, 5, "an integer from 1 to 5"),
    ],
)
def test_check_int_bounds_are_inclusive_and_named(minimum, maximum, wanted):
    for good in (minimum, maximum):
        if good is not None:
            assert check_int(good, "x", minimum=minimum, maximum=maximum) == good
    for bad in (None if minimum is None else minimum - 1, None if maximum is None else maximum + 1):
        if bad is not None:
            with pytest.raises(InputError) as info:
                check_int(bad, "The count", minimum=minimum, maximum=maximum)
            assert str(info.value) == f"The count must be {wanted}, not {bad!r}."


def test_check_int_whole_floats_only_when_asked():
    assert check_int(100.0, "epochs", whole_floats=True) == 100
    assert check_int(1e9, "epochs", whole_floats=True) == 10**9
    assert check_int(np.float64(4.0), "epochs", whole_floats=True) == 4
    for bad in (1.5, math.inf, math.nan, True):
        with pytest.raises(InputError, match="must be an integer"):
            check_int(bad, "epochs", whole_floats=True)
    with pytest.raises(InputError, match="epochs must be an integer, not 100.0."):
        check_int(100.0, "epochs")
    # The bounds apply to the whole float's value; the sentence shows what was given.
    with pytest.raises(InputError, match=r"^epochs must be a positive integer, not 0.0.$"):
        check_int(0.0, "epochs", minimum=1, whole_floats=True)


def test_check_int_raises_the_class_the_caller_chooses():
    with pytest.raises(ConfigError) as info:
        check_int(0, "The batch size", minimum=1, error=ConfigError)
    assert str(info.value) == "The batch size must be a positive integer, not 0."
    assert not isinstance(info.value, InputError)


def test_check_optional_int_lets_none_through():
    assert check_optional_int(None, "n", minimum=1) is None
    assert check_optional_int(np.int16(4), "n", minimum=1) == 4
    with pytest.raises(ConfigError, match=r"^--n must be a positive integer, not 0.$"):
        check_optional_int(0, "--n", minimum=1, error=ConfigError)


# ----------------------------------------------------------------------------- check_number
def test_check_number_accepts_real_numbers_and_returns_floats():
    for value, expected in (
        (1, 1.0),
        (0.25, 0.25),
        (np.float32(0.5), 0.5),
        (np.int64(2), 2.0),
        (Fraction(1, 4), 0.25),
    ):
        out = check_number(value, "x")
        assert out == expected and type(out) is float


@pytest.mark.parametrize(
    "value", [True, False, math.nan, math.inf, -math.inf, np.float64("nan"), "0.5", None, 10**400]
)
def test_check_number_refuses_bools_strings_and_non_finite_values(value):
    with pytest.raises(InputError) as info:
        check_number(value, "The span")
    assert str(info.value) == f"The span must be a finite number, not {value!r}."


@pytest.mark.parametrize(
    ("bounds", "inside", "outside", "wanted"),
    [
        ({"minimum": 0}, [0, 3.5], [-1e-9], "a non-negative number"),
        ({"minimum": 0, "open_min": True}, [1e-12, 7], [0, -1], "a positive number"),
        ({"minimum": 2}, [2, 2.5], [1.99], "a number >= 2"),
        ({"minimum": 0.5, "open_min": True}, [0.51], [0.5], "a number > 0.5"),
        ({"maximum": 1}, [1, -5], [1.01], "a number <= 1"),
        ({"maximum": 1, "open_max": True}, [0.99], [1], "a number < 1"),
        ({"minimum": 0, "maximum": 1}, [0, 1, 0.5], [-0.1, 1.5], "a number in [0, 1]"),
        ({"minimum": 0, "maximum": 1, "open_min": True}, [1, 0.1], [0], "a number in (0, 1]"),
        ({"minimum": 0, "maximum": 1, "open_max": True}, [0, 0.9], [1], "a number in [0, 1)"),
        (
            {"minimum": 0, "maximum": 1, "open_min": True, "open_max": True},
            [0.8],
            [0, 1],
            "a number in (0, 1)",
        ),
    ],
)
def test_check_number_bounds_inclusive_or_exclusive(bounds, inside, outside, wanted):
    for value in inside:
        assert check_number(value, "x", **bounds) == value
    for value in outside:
        with pytest.raises(InputError) as info:
            check_number(value, "The value", **bounds)
        assert str(info.value) == f"The value must be {wanted}, not {value!r}."


def test_check_fraction_is_the_closed_unit_interval():
    assert check_fraction(0, "p") == 0.0 and check_fraction(1, "p") == 1.0
    with pytest.raises(InputError) as info:
        check_fraction(1.5, "The BaSS strength")
    assert str(info.value) == "The BaSS strength must be a number in [0, 1], not 1.5."
    with pytest.raises(ConfigError, match="gamma must be a number in"):
        check_fraction(True, "gamma", error=ConfigError)


# ----------------------------------------------------------------------------- check_choice
def test_check_choice_names_every_choice():
    assert check_choice("power", ("amplitude", "power"), "The BaSS profile") == "power"
    assert check_choice("cw", {"ce": 1, "cw": 2}, "The loss") == "cw"  # a mapping's keys
    with pytest.raises(InputError) as info:
        check_choice("Power", ("amplitude", "power"), "The BaSS profile")
    assert str(info.value) == "The BaSS profile must be one of amplitude, power, not 'Power'."
    for bad in (None, ["power"], 1):
        with pytest.raises(ConfigError, match="must be one of"):
            check_choice(bad, ("amplitude", "power"), "profile", error=ConfigError)


# ----------------------------------------------------------------------------- argparse types
def _parse(kind, text: str):
    """``(value, None)`` or ``(None, argparse's message)`` for ``--x TEXT`` with ``type=kind``."""
    parser = argparse.ArgumentParser(prog="t", exit_on_error=False)
    parser.add_argument("--x", type=kind)
    try:
        return parser.parse_args(["--x", text]).x, None
    except argparse.ArgumentError as err:
        return None, str(err)


def _read(text: str, whole_floats: bool) -> int | float | None:
    """What the library check would be given for ``text``: an int, a float (if allowed) or None."""
    for read in (int, float) if whole_floats else (int,):
        try:
            return read(text)
        except ValueError:
            pass
    return None


INT_CASES = [
    ({"minimum": 1}, ["1", "12", "0", "-3", "1.0", "x", "", "True"]),
    ({"minimum": 0}, ["0", "5", "-1", "1e3"]),
    ({"minimum": 1, "maximum": 5}, ["1", "5", "6", "0"]),
    ({"whole_floats": True}, ["-4", "100", "100.0", "1e9", "1.5", "1e400", "nan", "inf", "x"]),
]
NUMBER_CASES = [
    ({"minimum": 0, "maximum": 1}, ["0", "1", "0.5", "1e-3", "1.5", "-0.1", "nan", "inf", "x"]),
    ({"minimum": 0, "open_min": True}, ["2", "0", "-1", "inf"]),
]


@pytest.mark.parametrize(
    ("make_type", "check", "bounds", "texts"),
    [(int_argument, check_int, bounds, texts) for bounds, texts in INT_CASES]
    + [(number_argument, check_number, bounds, texts) for bounds, texts in NUMBER_CASES],
)
def test_argument_types_give_the_library_checks_verdicts(make_type, check, bounds, texts):
    kind = make_type(**bounds)
    for text in texts:
        value, message = _parse(kind, text)
        given = _read(text, whole_floats=check is check_number or bounds.get("whole_floats", False))
        try:
            expected = check(given, "x", **bounds)
        except InputError as err:
            wanted = str(err).split(" must be ")[1].split(", not ")[0]
            assert value is None and message == f"argument --x: expected {wanted}, got {text!r}", text
        else:
            assert message is None and value == expected and type(value) is type(expected), text


@pytest.mark.parametrize(
    "text", ["\uff18", "\u0663", "\u0661\u0660", "\u00b2"]
)  # full-width 8, Arabic-Indic 3, 10, ²
def test_argument_types_read_only_ascii_digits(text):
    for kind, wanted in (
        (int_argument(minimum=0), "a non-negative integer"),
        (number_argument(), "a finite number"),
    ):
        assert _parse(kind, text) == (
            None,
            f"argument --x: expected {wanted} written with ASCII digits, got {text!r}",
        )


def test_negative_zero_is_below_a_minimum_of_zero():
    with pytest.raises(InputError, match=r"x must be a non-negative number, not -0.0\."):
        check_number(-0.0, "x", minimum=0)
    assert _parse(number_argument(minimum=0), "-0") == (
        None,
        "argument --x: expected a non-negative number, got '-0'",
    )
    assert (
        check_number(0.0, "x", minimum=0) == 0.0 and math.copysign(1, check_number(-0.0, "x", minimum=-1)) < 0
    )


def test_the_command_line_types_are_the_shared_ones():
    from freqtail.commands._common import non_negative_int, positive_int, unit_interval, whole_number

    assert positive_int("3") == 3 and non_negative_int("0") == 0 and whole_number("1e2") == 100
    assert unit_interval("0.25") == 0.25
    assert _parse(positive_int, "0")[1] == "argument --x: expected a positive integer, got '0'"
    assert _parse(non_negative_int, "-1")[1] == "argument --x: expected a non-negative integer, got '-1'"
    assert _parse(unit_interval, "2")[1] == "argument --x: expected a number in [0, 1], got '2'"
    assert _parse(whole_number, "1.5")[1] == "argument --x: expected an integer, got '1.5'"


def test_the_module_imports_nothing_heavy():
    code = "import sys, freqtail.checks; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ----------------------------------------------------------------------------- check_utf8_path
def test_check_utf8_path_keeps_utf8_names_and_refuses_other_bytes():
    assert check_utf8_path("runs/résumé", "The folder") == Path("runs/résumé")
    assert check_utf8_path(b"runs/ok".decode(), "The folder") == Path("runs/ok")
    with pytest.raises(InputError) as info:
        check_utf8_path(os.fsdecode(b"runs/\xe9t\xe9"), "The run folder")  # Latin-1 bytes, not UTF-8
    assert (
        str(info.value)
        == "The run folder runs/\\xe9t\\xe9 has a name that is not UTF-8 text (byte 0xe9); rename it."
    )


# ----------------------------------------------------------------------------- seeds
@pytest.mark.parametrize("value", [-1, 2**63, 2**64, 2**64 + 5, 1.0, True, "3"])
def test_check_seed_refuses_what_no_generator_takes(value):
    with pytest.raises(ConfigError) as info:
        check_seed(value, "The seed --seed", error=ConfigError)
    assert (
        str(info.value) == f"The seed --seed must be an integer from 0 to 9223372036854775807, not {value!r}."
    )


def test_seeds_at_both_ends_seed_torch_and_numpy():
    for value in (0, 2**63 - 1, np.int64(2**63 - 1)):
        seed = check_seed(value, "seed")
        assert type(seed) is int
        torch.Generator().manual_seed(seed)  # neither raises at the largest seed
        np.random.default_rng(seed)
    assert _parse(seed_argument(), str(2**63)) == (
        None,
        f"argument --x: expected an integer from 0 to {2**63 - 1}, got '{2**63}'",
    )


# ----------------------------------------------------------------------------- check_name
@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", "must not be empty"),
        ("  ", "must not be empty"),
        (None, "must not be empty"),
        ("erm\tbass", "U+0009"),
        ("erm\x00", "U+0000"),
        ("erm\u200b", "U+200B"),  # zero-width space: two labels that look the same
        ("erm\u2028", "U+2028"),  # line separator
    ],
)
def test_check_name_refuses_empty_names_and_hidden_characters(value, words):
    with pytest.raises(InputError, match=re.escape(words)):
        check_name(value, "The label")
    assert check_name("ERM + BaSS (domain) é", "The label") == "ERM + BaSS (domain) é"
