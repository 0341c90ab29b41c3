"""Unwritable, missing or full destinations: one sentence naming the path, exit 2, before long work.

Tests run as root in CI, where permission bits do not stop writes, so an unwritable destination is
made with a file standing where a folder must be (a real OS error), and a full disk by making the
write itself fail with ENOSPC.
"""

from __future__ import annotations

import errno

import numpy as np
import pytest

from freqtail.cli import main
from freqtail.errors import OutputError
from freqtail.io import atomic_save_npy, atomic_write_text, check_writable_file, check_writable_folder


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


def test_a_full_disk_is_one_sentence(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    target = tmp_path / "images.npy"
    with pytest.raises(OutputError, match=rf"Could not write {target}: No space left on device\."):
        atomic_save_npy(target, np.zeros(3))
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


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
