"""The names of the evaluation suites, their aliases, and the parsing of a ``--suite`` list
(:func:`parse_suites`); what each suite runs is :mod:`freqtail.evaluate.suites`.

Nothing here imports torch: the command line checks ``--suite`` with it before the library loads
(docs/design.md, "Option checks before torch").
"""

from __future__ import annotations

from collections.abc import Iterable

from freqtail.errors import ConfigError

#: Suite name -> one-line description, in report order.
SUITES: dict[str, str] = {
    "clean": "clean accuracy",
    "pgd20": "PGD-20 (cross-entropy), L-inf",
    "pgd20-lfc": "PGD-20 (cross-entropy), L-inf, perturbing only the bands below the 80/20 boundary b",
    "pgd20-hfc": "PGD-20 (cross-entropy), L-inf, perturbing only the bands at or above b",
    "cw": "PGD-20 on the CW margin loss, L-inf",
    "aa": "AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square), L-inf",
    "aa-fast": "APGD-CE + APGD-T only, labelled autoattack-fast, L-inf",
    "corruptions": "common corruptions (-C set): per corruption and severity, category means, mean",
}
#: Other accepted spellings of suite names (in ``freqtail evaluate --help`` and docs/guides/evaluation.md).
SUITE_ALIASES: dict[str, str] = {
    "pgd-20": "pgd20",
    "pgd-20-lfc": "pgd20-lfc",
    "pgd-20-hfc": "pgd20-hfc",
    "autoattack": "aa",
    "aafast": "aa-fast",
}
#: Names refused with a sentence of their own (ambiguous).
REFUSED_SUITES: dict[str, str] = {
    "pgd": "Suite 'pgd' does not say how many steps; the PGD suite is pgd20 (PGD-20, cross-entropy), and "
    "cw is PGD-20 on the CW margin loss.",
}


def parse_suites(text: str | Iterable[str]) -> list[str]:
    """``"clean,pgd20"`` (or a list) -> ``["clean", "pgd20"]`` in the order given, without repeats.

    ``"all"`` means every suite except ``aa-fast`` (which only makes sense instead of ``aa``);
    :data:`SUITE_ALIASES` are read as the suites they name.

    Raises:
        ConfigError: an empty list, an unknown name (the sentence lists the valid ones) or ``pgd``
            (ambiguous: the sentence names pgd20).
    """
    parts = text.split(",") if isinstance(text, str) else list(text)
    names: list[str] = []
    for part in parts:
        key = str(part).strip().lower().replace("_", "-")
        if not key:
            continue
        if key in REFUSED_SUITES:
            raise ConfigError(REFUSED_SUITES[key])
        key = SUITE_ALIASES.get(key, key)
        if key == "all":
            names.extend(name for name in SUITES if name != "aa-fast")
        elif key in SUITES:
            names.append(key)
        else:
            raise ConfigError(
                f"Unknown suite {str(part).strip()!r}; valid suites are: {', '.join(SUITES)}, all "
                f"(aliases: {', '.join(f'{a} = {b}' for a, b in SUITE_ALIASES.items())})."
            )
    if not names:
        raise ConfigError(f"No suite given; valid suites are: {', '.join(SUITES)}.")
    return list(dict.fromkeys(names))
