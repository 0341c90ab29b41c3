"""``freqtail corrupt`` shared by 2 gloo processes under freqtail's torchrun launcher: the finished set
is a one-process run's byte for byte, and a rank killed inside the write of a unit leaves a folder the
rerun (two ranks forked from the test process) finishes, reusing the units already written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from forked import forked_cli_ranks
from freqtail.cli import main
from freqtail.data.corrupted_parts import Unit, plan_units

pytestmark = pytest.mark.slow

LAUNCHER = ["-m", "freqtail.train.torchrun", "--standalone", "--nnodes", "1", "--nproc-per-node", "2"]
ARGV = ["corrupt", "--dataset", "embedded", "--limit", "24", "--corruptions", "gaussian_noise,contrast"]
ARGV += ["--severities", "1,3", "--seed", "2", "--no-progress"]

#: Rank 1 kills itself (SIGKILL) inside the write of its first unit: its part file is written to its
#: temporary name, not yet moved into place.
KILL_RANK_1_AT_ITS_FIRST_PART = """\
import os, signal, sys
real_replace = os.replace

def replace(source, destination, *args, **kwargs):
    if os.environ.get("RANK") == "1" and "/.parts/" in os.fspath(destination):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(source, destination, *args, **kwargs)

os.replace = replace
from freqtail.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _torchrun(program: list[str], argv: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, *LAUNCHER, *program, *argv]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_units_are_planned_in_a_fixed_order():
    units = plan_units(["fog", "snow"], [1, 3], n=10, step=4)
    assert [(u.corruption, u.severity, u.block, u.begin, u.count) for u in units[:4]] == [
        ("fog", 1, 0, 0, 4),
        ("fog", 1, 0, 4, 4),
        ("fog", 1, 0, 8, 2),
        ("fog", 3, 1, 0, 4),
    ]
    assert len(units) == 12  # how they are shared: tests/test_corrupted_shares.py
    assert Unit("fog", 3, 1, 8, 2).path(Path("c")) == Path("c/.parts/fog/s3-000000008.npy")


def test_two_processes_write_one_process_set_and_resume_a_killed_rank(tmp_path, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main([*ARGV, "--out", str(one)]) == 0
    capsys.readouterr()

    script = tmp_path / "kill_rank_1.py"
    script.write_text(KILL_RANK_1_AT_ITS_FIRST_PART)
    killed = _torchrun([str(script)], [*ARGV, "--out", str(two)])
    assert killed.returncode != 0
    parts = sorted(p.relative_to(two).as_posix() for p in (two / ".parts").rglob("*.npy"))
    # a part counts as written once the record of its digest is there too (written after it)
    finished = [
        n for n in parts if not Path(n).name.startswith(".") and (two / n).with_suffix(".json").is_file()
    ]
    assert any(Path(name).name.startswith(".") for name in parts)  # rank 1's unfinished part file

    # The rerun by two ranks forked from this process (tests/forked.py): a torchrun start costs seconds.
    ranks = forked_cli_ranks([*ARGV, "--out", str(two), "--json"], 2)
    (out, err), _ = [rank.communicate(timeout=300) for rank in ranks]
    assert [rank.returncode for rank in ranks] == [0, 0], err[-3000:]
    result = json.loads(out)
    assert result["world_size"] == 2 and result["written"] == ["gaussian_noise", "contrast"]
    assert result["units"] == 4 and result["units_computed"] == 4 - len(finished)  # found ones reused
    assert not (two / ".parts").exists()  # assembled, parts and the killed write's temporary removed

    for name in ("gaussian_noise.npy", "contrast.npy", "labels.npy", "clean.npy"):
        assert (two / name).read_bytes() == (one / name).read_bytes(), name
    meta_one = json.loads((one / "meta.json").read_text())
    meta_two = json.loads((two / "meta.json").read_text())
    assert (meta_one.pop("world_size"), meta_two.pop("world_size")) == (1, 2)
    assert meta_two == meta_one
    images = np.load(two / "contrast.npy")
    assert images.shape == (2 * 24, 32, 32, 3) and not np.array_equal(images[:24], images[24:])
