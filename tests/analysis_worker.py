"""Runs several freqtail commands one after another in one process group (tests/test_analysis_distributed.py).

Started by ``python -m freqtail.train.torchrun ... tests/analysis_worker.py CASES OUT``: ``CASES`` is a
JSON file ``{"name": [freqtail argv...], ...}``. Every rank joins the process group once (each torchrun
start costs seconds), then runs each case through ``freqtail.cli.main`` in order, its stdout and stderr
in ``OUT/<name>.rank<r>.out`` / ``.err`` and its exit status in ``OUT/<name>.rank<r>.code``. The commands
find the group joined and leave it to this script. The script exits with the highest status.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import torch

from freqtail.cli import main
from freqtail.distributed import init_distributed, shutdown


def run_cases(cases: dict[str, list[str]], out: Path) -> int:
    context = init_distributed("cpu")
    worst = 0
    try:
        for name, argv in cases.items():
            stem = out / f"{name}.rank{context.rank}"
            with open(f"{stem}.out", "w") as stdout, open(f"{stem}.err", "w") as stderr:
                with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                    code = main(argv)
            Path(f"{stem}.code").write_text(str(code))
            worst = max(worst, code)
    finally:
        shutdown(context)
    return worst


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(run_cases(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])))
