"""The gradient-masking check's vocabulary and defaults: its flags, its four verdict states and the
one rule that decides them (:func:`verdict_state`), the words shown for them, and the check's
default settings (:mod:`freqtail.attacks.masking` runs the check).

Nothing here imports torch: evaluation requests take their defaults from here when the command line
checks its options, before the library loads (docs/design.md, "Option checks before torch").
"""

from __future__ import annotations

FLAG_SQUARE = "square-beats-pgd"
FLAG_LARGE_EPS = "large-eps-accuracy-not-zero"
FLAG_ZERO_GRADIENT = "zero-input-gradients"

STATE_MASKED = "possible-masking"
STATE_NO_SIGN = "no-sign"
STATE_TOO_FEW = "too-few-images"
STATE_NOT_RUN = "not-run"
#: Verdict state -> the words tables and the command line show.
VERDICT_WORDS: dict[str, str] = {
    STATE_MASKED: "POSSIBLE GRADIENT MASKING",
    STATE_NO_SIGN: "no sign of gradient masking",
    STATE_TOO_FEW: "too few images to judge",
    STATE_NOT_RUN: "not run",
}
#: Fewest correctly classified images the check judges on: below it there is no verdict.
MIN_JUDGED_IMAGES = 50
#: The probes, in the order they run (the progress bar's stages).
PROBES = ("PGD vs Square", "large-eps PGD", "input gradients")
#: The check's defaults (their one home: :func:`freqtail.attacks.masking.gradient_masking_check` and
#: :class:`freqtail.attacks.masking.MaskingCheckConfig`).
DEFAULT_PGD_STEPS = 20
DEFAULT_SQUARE_QUERIES = 1000
DEFAULT_LARGE_EPS = 0.5
DEFAULT_LARGE_EPS_STEPS = 50
DEFAULT_TOLERANCE = 0.01
DEFAULT_LARGE_EPS_TOLERANCE = 0.05


def verdict_state(judged: int | None, flags: list[str], minimum: int = MIN_JUDGED_IMAGES) -> str:
    """The verdict of a check that judged ``judged`` correctly classified images and raised ``flags``.

    ``judged`` None means the check did not run. Fewer than ``minimum`` judged images give
    ``"too-few-images"`` whatever the flags say; otherwise any flag gives ``"possible-masking"``.
    """
    if judged is None:
        return STATE_NOT_RUN
    if judged < minimum:
        return STATE_TOO_FEW
    return STATE_MASKED if flags else STATE_NO_SIGN
