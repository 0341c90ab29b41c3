"""How fast are the embedded-dataset build and the BaSS ("-B") conversion of a 50,000-image dataset?

Prints, on the CPU with one thread:

* the embedded dataset build (16 photographs -> 6,400 train + 1,600 test 32x32 images): seconds and
  images per second in memory, the cold cached build (``ensure_embedded``: build + atomic write) and
  the warm load from the cache;
* the "dataset" protocol conversion of 50,000 32x32 RGB images (embedded images repeated) through
  :func:`freqtail.data.variants.cached_bass_arrays` (content hash + BaSS + atomic cache write), its
  reuse on the second call, and :func:`freqtail.data.bass_copies.write_bass_dataset` of a CIFAR-10-layout
  set (50,000 train + 10,000 test) into CIFAR python batches; each in a fresh process, with its peak
  resident memory (``VmHWM``) and the resident memory before the work started;
* what checking cached arrays against their recorded digests costs (:mod:`freqtail.data.cache_files`):
  SHA-256 throughput, and the read of a CIFAR-10-sized array (60,000 32x32 RGB images, 184 MB) from
  a warm page cache unchecked (``load_npy``) and checked (``load_array``), as a ratio, and a checked
  memory map of it (medians of 5);
* what checking a -C set costs (:mod:`freqtail.data.corrupted_sets`, a CIFAR-10-C-sized file: 10,000
  32x32 images x 5 severities, 154 MB): each severity block read with ``load_corrupted_set`` checked
  against its digest, against the same folder read unchecked (no ``meta.json``, as a published set),
  and a rerun of ``write_corrupted_set`` that checks the finished file before skipping it;
* each corruption at 32x32 (images per second over its five severities) and the projected time for a
  10,000-image -C set, measured by ``benchmarks/corruption_speed.py`` (which has more options).

Run: ``OMP_NUM_THREADS=1 python benchmarks/data_speed.py`` (``--images N`` to change the 50,000,
``--corruption-images N`` for the corruption timing, 0 to skip it; ``--checks-only`` for the two
digest-check measurements alone).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def _rss_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _images(n: int):
    import numpy as np

    from freqtail.data.embedded import build_embedded_arrays

    base = build_embedded_arrays(train_per_class=50, test_per_class=1)["train_images"]
    reps = -(-n // len(base))
    return np.ascontiguousarray(np.concatenate([base] * reps)[:n])


def child(task: str, n: int) -> dict:
    """One measured task in this (fresh) process; returns numbers as a dict."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    images = _images(n)
    if task == "cached":
        from freqtail.data.variants import cached_bass_arrays

        rss_before = _rss_mib("VmRSS")
        start = time.perf_counter()
        out, meta = cached_bass_arrays("bench", {"train": images}, progress=False)
        first = time.perf_counter() - start
        peak = _rss_mib("VmHWM")
        start = time.perf_counter()
        _, meta2 = cached_bass_arrays("bench", {"train": images}, progress=False)
        second = time.perf_counter() - start
        assert not meta["reused"] and meta2["reused"] and out["train"].shape == images.shape
        return {
            "seconds": first,
            "reuse_seconds": second,
            "rss_before_mib": rss_before,
            "peak_mib": peak,
            "degenerate": int(meta["degenerate"]["train"]),
        }
    from freqtail.data.bass_copies import write_bass_dataset
    from freqtail.data.cifar import write_cifar_batches

    root = tempfile.mkdtemp(prefix="freqtail-bench-")
    labels = np.arange(len(images)) % 10
    test = images[: max(1, n // 5)]
    write_cifar_batches(
        "cifar10",
        root,
        {"train": (images, labels), "test": (test, labels[: len(test)])},
        [f"c{k}" for k in range(10)],
    )
    del images, test
    rss_before = _rss_mib("VmRSS")
    result = write_bass_dataset("cifar10", root, os.path.join(root, "out"), progress=False)
    return {
        "seconds": result["seconds"],
        "images": result["images"],
        "rss_before_mib": rss_before,
        "peak_mib": _rss_mib("VmHWM"),
        "degenerate": result["degenerate"],
    }


def run_child(task: str, n: int, cache: str) -> dict:
    env = {**os.environ, "FREQTAIL_CACHE": cache, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, __file__, "--child", task, "--images", str(n)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--corruption-images", type=int, default=500)
    parser.add_argument("--checks-only", action="store_true", help="only the digest-check costs")
    parser.add_argument("--child", choices=("cached", "cifar"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.images)))
        return
    if args.checks_only:
        print_verification_cost()
        print_corrupted_set_check_cost()
        return

    import torch

    torch.set_num_threads(1)
    from freqtail.data import embedded
    from freqtail.sample_photos import load_photos

    with tempfile.TemporaryDirectory() as cache:
        os.environ["FREQTAIL_CACHE"] = cache
        start = time.perf_counter()
        load_photos()
        photos = time.perf_counter() - start
        start = time.perf_counter()
        arrays = embedded.build_embedded_arrays()
        build = time.perf_counter() - start
        n = len(arrays["train_images"]) + len(arrays["test_images"])
        print(
            f"embedded build: {n} images in {build:.2f} s = {n / build:,.0f} images/s "
            f"(+ {photos:.2f} s to decode the 16 photographs once)"
        )
        start = time.perf_counter()
        embedded.ensure_embedded()
        cold = time.perf_counter() - start
        start = time.perf_counter()
        embedded.ensure_embedded()
        warm = time.perf_counter() - start
        print(f"embedded cache: cold build + write {cold:.2f} s, warm load {warm * 1000:.0f} ms")

        cached = run_child("cached", args.images, os.path.join(cache, "cached"))
        print(
            f"dataset-mode BaSS of {args.images:,} 32x32 images (hash + convert + cache write): "
            f"{cached['seconds']:.1f} s = {args.images / cached['seconds']:,.0f} images/s; "
            f"reuse {cached['reuse_seconds']:.2f} s; peak RSS {cached['peak_mib']:.0f} MiB "
            f"(before {cached['rss_before_mib']:.0f} MiB); degenerate {cached['degenerate']}"
        )
        cifar = run_child("cifar", args.images, os.path.join(cache, "cifar"))
        print(
            f"write_bass_dataset cifar10 ({cifar['images']:,} images, python batches): "
            f"{cifar['seconds']:.1f} s "
            f"= {cifar['images'] / cifar['seconds']:,.0f} images/s; peak RSS {cifar['peak_mib']:.0f} MiB "
            f"(before {cifar['rss_before_mib']:.0f} MiB); degenerate {cifar['degenerate']}"
        )

    print_verification_cost()
    print_corrupted_set_check_cost()
    if args.corruption_images > 0:
        print_corruption_speed(args.corruption_images)


def print_verification_cost(count: int = 60_000, repeats: int = 5) -> None:
    """Checked against unchecked reads of one uint8 (count, 32, 32, 3) cached array (warm page cache)."""
    import statistics

    from freqtail.data import cache_files
    from freqtail.io import load_npy

    images = _images(count)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "images.npy")
        expected = cache_files.save_array(path, images)
        megabytes = images.nbytes / 1e6
        del images

        def median_seconds(read) -> float:
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                read()
                times.append(time.perf_counter() - start)
            return statistics.median(times)

        hashing = median_seconds(lambda: cache_files.array_digest(load_npy(path, mmap=True)))
        print(f"digest: SHA-256 of {megabytes:.0f} MB in {hashing:.2f} s = {megabytes / hashing:,.0f} MB/s")
        plain = median_seconds(lambda: load_npy(path))
        checked = median_seconds(lambda: cache_files.load_array(path, expected))
        print(
            f"checked read of {count:,} 32x32 images ({megabytes:.0f} MB into memory): {checked:.3f} s "
            f"against {plain:.3f} s unchecked (+{checked - plain:.3f} s, {checked / plain:.1f}x)"
        )
        mapped = median_seconds(lambda: cache_files.load_array(path, expected, mmap=True))
        print(
            f"checked memory map of the same file: {mapped:.3f} s (an unchecked map reads nothing until "
            "used; the check reads the file once)"
        )


def _median_seconds(work, repeats: int) -> float:
    import statistics

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def print_corrupted_set_check_cost(count: int = 10_000, repeats: int = 5) -> None:
    """Checked against unchecked reads of the severity blocks of one -C file (warm page cache)."""
    import shutil

    import numpy as np

    from freqtail.data.corrupted_sets import load_corrupted_set, write_corrupted_set

    images, labels = _images(count), np.arange(count) % 10
    levels = (1, 2, 3, 4, 5)
    with tempfile.TemporaryDirectory() as folder:
        checked_dir, plain_dir = os.path.join(folder, "checked-C"), os.path.join(folder, "plain-C")
        start = time.perf_counter()
        write_corrupted_set(images, labels, checked_dir, ["contrast"], levels, progress=False)
        written = time.perf_counter() - start
        shutil.copytree(checked_dir, plain_dir)
        os.remove(os.path.join(plain_dir, "meta.json"))  # read as a published set: nothing checked
        megabytes = os.path.getsize(os.path.join(checked_dir, "contrast.npy")) / 1e6

        def read_blocks(c_dir: str) -> None:
            for severity in levels:
                np.array(load_corrupted_set(c_dir, "contrast", severity).images)  # the block read in full

        checked = _median_seconds(lambda: read_blocks(checked_dir), repeats)
        plain = _median_seconds(lambda: read_blocks(plain_dir), repeats)
        print(
            f"-C set, {count:,} 32x32 images x 5 severities ({megabytes:.0f} MB, written with its digests in "
            f"{written:.1f} s): the 5 blocks read checked in {checked:.3f} s against {plain:.3f} s unchecked "
            f"(+{(checked - plain) / 5 * 1000:.0f} ms per block)"
        )

        def resume() -> None:
            write_corrupted_set(images, labels, checked_dir, ["contrast"], levels, progress=False)

        rerun = _median_seconds(resume, repeats)
        print(f"-C set rerun that checks the finished file and skips it: {rerun:.3f} s")


def print_corruption_speed(count: int) -> None:
    """Per-corruption images/second at 32x32, from the corruption benchmark's own timing function."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from corruption_speed import natural_images, time_corruptions

    rates = time_corruptions(natural_images(count, 32))
    for name, rate in rates.items():
        print(f"corruption {name:<18} {rate:>9,.0f} images/s at 32x32 (over severities 1-5)")
    projected = sum(10_000 * 5 / rate for rate in rates.values())
    print(f"projected: a 10,000-image 32x32 test set at all 19 x 5 settings in {projected / 60:.1f} min")


if __name__ == "__main__":
    main()
