"""Converted dataset copies (`freqtail bass --dataset ... --out`) survive a kill: the rerun, holding the
folder's lock, sweeps what the killed writes left and writes the copy again."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from freqtail.bass import convert_uint8_images
from freqtail.cli import main
from freqtail.data import build_dataset
from freqtail.data.bass_copies import WRITE_LOCK, write_bass_dataset
from freqtail.locks import try_lock
from kill_support import killed_at_write


def _temporaries(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*") if ".tmp" in p.name)


@pytest.mark.slow
def test_a_copy_killed_inside_a_write_is_swept_and_written_again(small_embedded, tmp_path, capsys):
    root, arrays = small_embedded
    out = tmp_path / "copy"
    argv = ["bass", "--dataset", "embedded", "--data-root", str(root), "--out", str(out)]
    # SIGKILL between writing test_images.npy's temporary file and moving it into place
    killed_at_write("test_images.npy", 1, argv)
    left = _temporaries(out)
    assert [name[:17] for name in left] == [".test_images.npy."]
    assert not (out / "meta.json").exists()  # written last: the killed copy is not a dataset
    # while another writer holds the folder, a second one is refused in one sentence naming it
    holder = try_lock(out / WRITE_LOCK, purpose="test")
    try:
        assert main(argv) == 2
    finally:
        holder.release()
    refusal = capsys.readouterr().err.strip()
    assert f"The folder {out} is being written by process" in refusal and "\n" not in refusal
    assert _temporaries(out) == left  # the refused run, without the lock, swept nothing
    assert main(argv) == 0
    assert _temporaries(out) == []
    for split in ("train", "test"):
        copy = build_dataset("embedded", split, out)
        assert np.array_equal(copy.images, convert_uint8_images(arrays[f"{split}_images"])[0])


def test_a_folder_copy_sweeps_the_temporary_files_of_its_images(tmp_path):
    for split in ("train", "val"):
        (tmp_path / "src" / split / "n1").mkdir(parents=True)
        image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(image).save(tmp_path / "src" / split / "n1" / "a.JPEG", format="PNG")
    image_folder = tmp_path / "out" / "val" / "n1"
    image_folder.mkdir(parents=True)
    leftovers = [image_folder / ".a.png.k1ll3d_0.tmp.png", tmp_path / "out" / ".words.txt.abcdefgh.tmp.txt"]
    others = [image_folder / ".b.png.k1ll3d_0.tmp.png", image_folder / "a.png.k1ll3d_0.tmp.png"]
    for path in leftovers + others:  # the first two as a kill leaves them; the others are not the copy's
        path.write_bytes(b"partial")
    write_bass_dataset("imagenet", tmp_path / "src", tmp_path / "out", progress=False)
    assert not any(path.exists() for path in leftovers) and all(path.exists() for path in others)
    assert (image_folder / "a.png").is_file()
