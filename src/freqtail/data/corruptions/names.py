"""The names of the CIFAR-10-C corruptions, their categories and severities, and the parsing of
``--corruptions`` / ``--severities`` texts.

Nothing here imports NumPy or torch: the command line checks these options with it before the library
loads (docs/design.md, "Option checks before torch").
"""

from __future__ import annotations

from freqtail.checks import check_int
from freqtail.errors import InputError

#: Category of each corruption (paper Table 4), in the paper's order.
CORRUPTIONS: dict[str, str] = {
    "gaussian_noise": "noise",
    "shot_noise": "noise",
    "impulse_noise": "noise",
    "speckle_noise": "noise",
    "defocus_blur": "blur",
    "glass_blur": "blur",
    "motion_blur": "blur",
    "zoom_blur": "blur",
    "gaussian_blur": "blur",
    "snow": "weather",
    "frost": "weather",
    "fog": "weather",
    "brightness": "weather",
    "spatter": "weather",
    "contrast": "digital",
    "elastic_transform": "digital",
    "pixelate": "digital",
    "jpeg_compression": "digital",
    "saturate": "digital",
}

#: Corruption names of each category, in order.
CATEGORIES: dict[str, tuple[str, ...]] = {
    category: tuple(name for name, cat in CORRUPTIONS.items() if cat == category)
    for category in ("noise", "blur", "weather", "digital")
}

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

#: Corruptions that draw random numbers (their output depends on the seed).
RANDOM_CORRUPTIONS: frozenset[str] = frozenset(
    {
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "speckle_noise",
        "glass_blur",
        "motion_blur",
        "snow",
        "frost",
        "fog",
        "spatter",
        "elastic_transform",
    }
)


def corruption_names(category: str | None = None) -> list[str]:
    """Names of all corruptions (paper order), or of one category ("noise", "blur", "weather", "digital")."""
    if category is None:
        return list(CORRUPTIONS)
    key = category.strip().lower()
    if key not in CATEGORIES:
        raise InputError(f"Unknown corruption category {category!r}; choose one of {', '.join(CATEGORIES)}.")
    return list(CATEGORIES[key])


def check_corruption_name(name: str) -> str:
    """Return ``name`` if it is a known corruption, else raise one sentence listing the valid names."""
    if name not in CORRUPTIONS:
        raise InputError(f"Unknown corruption {name!r}; choose one of {', '.join(CORRUPTIONS)}.")
    return name


def check_severity(severity: int) -> int:
    """Return ``severity`` as an int if it is one of 1..5, else raise one sentence."""
    return check_int(severity, "Corruption severity", minimum=1, maximum=5)


def parse_severities(text: str) -> list[int]:
    """A ``--severities`` text (``"1-5"``, ``"1,3,5"``, ``"2"``, ``"1-3,5"``) -> distinct severities 1..5."""
    values: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                if low > high:
                    raise ValueError
                values.extend(range(low, high + 1))
            else:
                values.append(int(part))
    except ValueError:
        raise InputError(
            f"--severities must look like 1-5, 1,3,5 or 2 (integers from 1 to 5), not {text!r}."
        ) from None
    if not values or any(not 1 <= v <= 5 for v in values) or len(set(values)) != len(values):
        raise InputError(f"--severities must list distinct integers from 1 to 5, not {text!r}.")
    return values


def parse_corruptions(text: str | None) -> list[str]:
    """A ``--corruptions`` text: comma-separated names and/or categories ("all" or None = every one)."""
    if text is None or text.strip().lower() == "all":
        return list(CORRUPTIONS)
    chosen: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        key = part.lower().replace("-", "_")
        if key in CORRUPTIONS:
            chosen.append(key)
        elif key in CATEGORIES:
            chosen.extend(CATEGORIES[key])
        else:
            raise InputError(
                f"Unknown corruption {part!r} in --corruptions; choose from {', '.join(CORRUPTIONS)} "
                f"or a category ({', '.join(CATEGORIES)})."
            )
    return list(dict.fromkeys(chosen))
