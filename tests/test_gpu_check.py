"""``benchmarks/gpu_check.py`` runs on the CPU (``--device cpu --quick``): every check completes and
writes its numbers, so the script is ready for the first GPU machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_on_the_cpu(tmp_path):
    command = [
        sys.executable,
        "benchmarks/gpu_check.py",
        "--device",
        "cpu",
        "--quick",
        "--out",
        str(tmp_path),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    checks = report["checks"]
    assert all(entry["status"] == "ok" for entry in checks.values()), checks
    assert checks["BaSS speed"]["32"]["bass_images_per_second"] > 0
    training = checks["training speed (ERM, PGD-AT-10)"]
    for objective in ("erm", "pgd-at"):
        for mode in ("eager_float32", "bf16_channels_last", "compiled"):
            assert training[f"{objective}_{mode}_images_per_second"] > 0
    assert (
        checks["torchrun smoke run"]["backend"] == "gloo" and checks["torchrun smoke run"]["returncode"] == 0
    )
    assert checks["device pipeline vs DataLoader"]["device_vs_loader"] > 0
    assert checks["AutoAttack-fast"]["images"] == 16
    text = (tmp_path / "gpu_check.md").read_text()
    assert "not measured (needs a GPU)" in text and "| BaSS speed | ok |" in text
