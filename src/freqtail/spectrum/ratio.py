"""The 80/20 rule's ratio: its default and its check (:func:`check_ratio`).

Nothing here imports NumPy or torch: the command line checks ``--ratio`` with it before the library
loads (docs/design.md, "Option checks before torch").
"""

from __future__ import annotations

from freqtail.checks import check_number

#: Share of the power below the boundary: the paper's 80/20 split.
DEFAULT_RATIO = 0.8


def check_ratio(ratio: float) -> float:
    """Return ``ratio`` as a float if it is strictly between 0 and 1, else raise InputError."""
    what = "The boundary ratio (0.8 is the paper's 80/20 split)"
    return check_number(ratio, what, minimum=0, maximum=1, open_min=True, open_max=True)
