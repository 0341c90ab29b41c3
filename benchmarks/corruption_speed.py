"""Speed of the CIFAR-10-C corruptions (freqtail.data.corruptions), single process.

Prints images per second for every corruption (averaged over severities 1-5) at a given image
size, and the projected time to corrupt a 10,000-image test set at all 19 x 5 settings. Also
times glass blur's pixel shuffling against the original's per-pixel Python loop.

    OMP_NUM_THREADS=1 python benchmarks/corruption_speed.py            # 32x32, 1000 images
    OMP_NUM_THREADS=1 python benchmarks/corruption_speed.py --size 64 --images 300 --json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from freqtail.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from freqtail.data.corruptions import _kernels as kernels
from freqtail.environment import environment_text, measurement_environment
from freqtail.sample_photos import PHOTO_NAMES, photo_crops


def natural_images(count: int, size: int) -> np.ndarray:
    per_photo = -(-count // len(PHOTO_NAMES))
    return photo_crops(size, per_photo, seed=0)[:count]


def time_corruptions(images: np.ndarray) -> dict[str, float]:
    """Images per second of each corruption, over all five severities."""
    corrupt(images[:2], "frost", 1)  # build the cached frost textures outside the timing
    rates = {}
    for name in CORRUPTIONS:
        start = time.perf_counter()
        for severity in SEVERITIES:
            corrupt(images, name, severity, seed=0)
        rates[name] = len(images) * len(SEVERITIES) / (time.perf_counter() - start)
    return rates


def time_glass_shuffle(images: np.ndarray) -> tuple[float, float]:
    """Seconds per image of the sequential per-pixel swap loop and of the vectorised shuffle."""
    n, h, w = images.shape[:3]
    rng = np.random.default_rng(0)
    offsets = rng.integers(-1, 1, size=(n, 2, (h - 2) * (w - 2), 2))
    start = time.perf_counter()
    for i in range(n):
        x = images[i].copy()
        for it in range(2):
            k = 0
            for row in range(h - 1, 1, -1):
                for col in range(w - 1, 1, -1):
                    dx, dy = offsets[i, it, k]
                    k += 1
                    x[row, col], x[row + dy, col + dx] = x[row + dy, col + dx], x[row, col].copy()
    loop = (time.perf_counter() - start) / n
    start = time.perf_counter()
    kernels.local_shuffle(images, offsets, 1)
    vectorised = (time.perf_counter() - start) / n
    return loop, vectorised


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=1000, help="images per timing (default 1000)")
    parser.add_argument("--size", type=int, default=32, help="square image side (default 32)")
    parser.add_argument("--set-size", type=int, default=10_000, help="test-set size to project for")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    images = natural_images(args.images, args.size)
    rates = time_corruptions(images)
    projected = sum(args.set_size * len(SEVERITIES) / rate for rate in rates.values())
    loop, vectorised = time_glass_shuffle(images[:20])
    result = {
        "image_size": args.size,
        "images_timed": len(images),
        "images_per_second": {name: round(rate, 1) for name, rate in rates.items()},
        "projected_seconds": round(projected, 1),
        "projected_for": f"{args.set_size} images x {len(CORRUPTIONS)} x {len(SEVERITIES)} settings",
        "glass_shuffle_ms_per_image": {
            "per_pixel_loop": round(loop * 1e3, 3),
            "vectorised": round(vectorised * 1e3, 3),
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.size}x{args.size} images, {len(images)} per timing, one process")
    print(f"Measured with {environment_text(measurement_environment('cpu'))}.")
    print(f"{'corruption':20s} {'images/s':>10s}")
    for name, rate in rates.items():
        print(f"{name:20s} {rate:10.0f}")
    print(f"projected for {result['projected_for']}: {projected:.0f} s ({projected / 60:.1f} min)")
    print(
        f"glass blur shuffling (2 passes), ms per image: per-pixel loop {loop * 1e3:.2f}, "
        f"vectorised {vectorised * 1e3:.3f} ({loop / vectorised:.0f}x faster)"
    )


if __name__ == "__main__":
    main()
