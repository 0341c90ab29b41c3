"""Unwritable, missing or full destinations: one sentence naming the path, exit 2, before long work.

Tests run as root in CI, where permission bits do not stop writes, so an unwritable destination is
made with a file standing where a folder must be (a real OS error), a full disk with a real 1 MiB
tmpfs mounted for the test (root only), and a file-size limit with a real ``RLIMIT_FSIZE`` on a child
process.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys

import numpy as np
import pytest

from freqtail.cli import allocation_size, main
from freqtail.errors import OutputError
from freqtail.io import (
    atomic_save_npy,
    atomic_write_bytes,
    atomic_write_text,
    check_writable_file,
    check_writable_folder,
)


def _one_sentence(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    return lines[0]


@pytest.fixture()
def blocker(tmp_path):
    """A plain file: anything below it cannot be created."""
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


def test_atomic_writes_name_the_destination(blocker):
    with pytest.raises(OutputError, match=rf"Could not write {blocker / 'out.json'}: {blocker} is a file"):
        atomic_write_text(blocker / "out.json", "{}")


@pytest.fixture()
def small_disk(tmp_path):
    """A real 1 MiB tmpfs (skipped where mounting needs a root this process is not)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"could not mount a small tmpfs: {made.stderr.decode(errors='replace').strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_one_sentence(small_disk):
    """NumPy's np.save loses the errno of a short write; the sentence still says why."""
    target = small_disk / "images.npy"
    with pytest.raises(OutputError, match=rf"Could not write {target}: no space left on the device\."):
        atomic_save_npy(target, np.zeros(1 << 18))  # 2 MiB
    with pytest.raises(OutputError, match=r"big\.bin: no space left on the device\."):
        atomic_write_bytes(small_disk / "big.bin", b"x" * (2 << 20))
    assert list(small_disk.iterdir()) == []  # no temporary file left behind


def test_a_file_size_limit_is_one_sentence(tmp_path):
    script = (
        "import sys, numpy as np\n"
        "from freqtail.errors import OutputError\n"
        "from freqtail.io import atomic_save_npy\n"
        "try:\n"
        "    atomic_save_npy(sys.argv[1], np.zeros(1 << 18))\n"
        "except OutputError as err:\n"
        "    print(err)\n"
    )

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    target = tmp_path / "images.npy"
    child = subprocess.run(
        [sys.executable, "-c", script, str(target)],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=120,
    )
    assert child.stdout.strip() == (
        f"Could not write {target}: file too large for this process's file-size limit ({1 << 20} bytes)."
    ), child.stderr
    assert list(tmp_path.iterdir()) == []


def test_checks_refuse_files_in_the_way(blocker, tmp_path):
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_writable_folder(blocker)
    with pytest.raises(OutputError, match="cannot be written"):
        check_writable_folder(blocker / "below")
    with pytest.raises(OutputError, match="is a folder; give a file name"):
        check_writable_file(tmp_path)
    assert check_writable_folder(tmp_path / "new" / "folder").is_dir()


def test_bass_refuses_a_bad_output_before_converting(tmp_path, blocker, natural_crops, capsys):
    source = tmp_path / "in.npy"
    np.save(source, natural_crops(32, 1, seed=0)[:4])
    line = _one_sentence(capsys, ["bass", "--input", str(source), "--output", str(blocker / "x" / "o.npy")])
    assert str(blocker / "x") in line and "cannot be written" in line


def test_spectrum_refuses_a_bad_plot_path_and_an_unwritable_cache(tmp_path, blocker, capsys, monkeypatch):
    line = _one_sentence(capsys, ["spectrum", "--plot", str(blocker / "plot.png")])
    assert str(blocker) in line
    monkeypatch.setenv("FREQTAIL_CACHE", str(blocker / "cache"))
    line = _one_sentence(capsys, ["spectrum", "--dataset", "embedded"])
    assert str(blocker) in line and "is a file, not a folder" in line


def test_corrupt_and_report_refuse_a_file_as_their_folder(tmp_path, blocker, capsys):
    line = _one_sentence(capsys, ["corrupt", "--dataset", "embedded", "--out", str(blocker), "--limit", "4"])
    assert "is a file, not a folder" in line and str(blocker) in line
    run = tmp_path / "run"
    run.mkdir()
    (run / "spectrum.json").write_text("{}")
    line = _one_sentence(capsys, ["report", str(run), "--out", str(blocker / "report")])
    assert str(blocker) in line


def test_train_refuses_a_run_folder_below_a_file(blocker, capsys):
    line = _one_sentence(capsys, ["train", "--out", str(blocker / "run"), "--epochs", "1", "--no-progress"])
    assert f"The run folder {blocker / 'run'} cannot be written ({blocker} is a file, not a folder)" in line
    line = _one_sentence(capsys, ["train", "--out", str(blocker), "--epochs", "1", "--no-progress"])
    assert f"The run folder {blocker} is a file, not a folder" in line


def test_evaluate_refuses_an_output_below_a_file(blocker, tmp_path, capsys):
    from test_evaluate_support import make_run

    run = make_run(tmp_path / "run", None, steps=1)
    line = _one_sentence(capsys, ["evaluate", str(run), "--out", str(blocker / "results"), "--n", "4"])
    assert f"{blocker} is a file, not a folder" in line


MEMORY_LIMITED = """\
import contextlib, io, re, resource, sys
from freqtail.cli import allocation_size, main
# The command once on two images first: every module it imports lazily is loaded and every cache
# warm, so the limit below is for the big run's own work (under load, imports and allocations that
# came after the measurement once used up the margin before the images were even mapped).
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    assert main([*sys.argv[1:3], sys.argv[3]]) == 0
status = open("/proc/self/status").read()
used = int(re.search(r"VmSize:\\s+(\\d+) kB", status).group(1)) * 1024
resource.setrlimit(resource.RLIMIT_AS, (used + (24 << 20), resource.RLIM_INFINITY))
sys.exit(main(sys.argv[1:2] + sys.argv[4:]))
"""


def test_running_out_of_memory_says_how_much_and_how_to_go_smaller(tmp_path):
    """A real address-space limit, 24 MiB above what the process holds after a run on two images: the
    12 MiB set maps, its batches (a 12 MiB copy, then 48 MiB of floats) do not all fit. One malloc
    arena: a second one reserves 64 MiB of address space at once, whenever a thread happens to
    allocate."""
    images, few = tmp_path / "images.npy", tmp_path / "two.npy"
    np.save(images, np.zeros((1024, 64, 64, 3), dtype=np.uint8))
    np.save(few, np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8))
    script = tmp_path / "memory_limited.py"
    script.write_text(MEMORY_LIMITED)
    argv = [sys.executable, str(script), "spectrum", "--images", str(few)]
    argv += ["--images", str(images), "--batch-size", "1024"]
    env = dict(os.environ, MALLOC_ARENA_MAX="1")
    child = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    lines = child.stderr.strip().splitlines()
    assert child.returncode == 2 and len(lines) == 1, child.stderr
    # Whichever array of a batch no longer fits (numpy's or torch's allocator; a copy of the uint8
    # batch, 12 MiB, or its float form, 48 MiB) is named with its size, and the option that shrinks it.
    said = re.fullmatch(
        r"freqtail spectrum: error: Ran out of memory \((\d+\.\d) MiB more could not be allocated\); "
        r"try a smaller --batch-size \(now 1024\)\.",
        lines[0],
    )
    assert said and float(said.group(1)) >= 12.0, lines[0]


@pytest.mark.parametrize(
    "message, size",
    [
        (
            "Unable to allocate 48.0 MiB for an array with shape (1024, 3, 64, 64) and data type float32",
            "48.0 MiB",
        ),
        (
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
            "you tried to allocate 50331648 bytes. Error code 12 (Cannot allocate memory)",
            "48.0 MiB",  # 50331648 / 2**20
        ),
        ("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 79.11 GiB total capacity)", "20.00 MiB"),
        ("std::bad_alloc", None),
    ],
)
def test_the_size_of_the_failed_allocation_is_read_from_each_allocators_message(message, size):
    assert allocation_size(message) == size


def test_corrupt_on_a_full_disk_is_one_sentence_not_a_sigbus(small_disk, capsys):
    """The clean source (a reserved memory map) fits the 1 MiB disk, its corrupted copy does not; the
    -C set's files are written without maps, so the disk filling up is an error, not SIGBUS (135)."""
    out = small_disk / "c"
    argv = ["corrupt", "--dataset", "embedded", "--limit", "200", "--corruptions", "fog", "--out", str(out)]
    line = _one_sentence(capsys, [*argv, "--no-progress"])
    assert (
        line.startswith("freqtail corrupt: error: Could not write ") and "no space left on the device" in line
    )
    assert not (out / "fog.npy").exists()
    too_big = _one_sentence(capsys, [*argv[:4], "1600", *argv[5:], "--no-progress"])  # 4.9 MB clean source
    assert "clean.npy" in too_big and "no space left on the device" in too_big
