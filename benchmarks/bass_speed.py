"""How fast is BaSS, and how much memory does a CIFAR-sized conversion take?

Prints, single-threaded on the CPU, for batches of natural-image crops at 32x32, 128x128 and
224x224 (RGB):

* microseconds per image for an FFT round trip (``rfft2`` + ``irfft2``, the floor any BaSS pays),
  for :func:`freqtail.bass.balance_spectrum_tensor` (float32 and float64), and for a plain
  per-image, per-channel numpy implementation of the published algorithm;
* BaSS / FFT round trip and numpy / BaSS ratios;
* peak resident memory (``VmHWM``, else ``ru_maxrss``) of a fresh process converting 50,000 32x32 RGB uint8
  images with :func:`freqtail.bass.convert_uint8_images`, and the same process's RSS before the
  conversion (Python + torch + the input and output arrays).

Run: ``OMP_NUM_THREADS=1 python benchmarks/bass_speed.py`` (``--quick`` for a shorter run,
``--skip-memory`` to leave out the 50,000-image conversion).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from freqtail.bass import balance_spectrum_tensor
from freqtail.bass.convert import DEFAULT_CHUNK_SIZE
from freqtail.sample_photos import photo_crops

SIZES = ((32, 256), (128, 32), (224, 16))  # (side, batch size)


def best_seconds(fns: dict, repeats: int, inner: int) -> dict:
    """Best-of-``repeats`` mean wall time of ``inner`` calls of each function.

    The functions are timed in turn within every repeat, so that all of them see the same
    background load: on a shared machine the ratios stay meaningful even when the absolute
    times wander.
    """
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / inner)
    return best


def numpy_bass(image: np.ndarray) -> np.ndarray:
    """Plain per-image, per-channel numpy BaSS (full-plane fft2/fftshift), for the speed comparison."""
    h, w, channels = image.shape
    rows, cols = np.indices((h, w))
    band = np.floor(np.hypot(rows - h // 2, cols - w // 2)).astype(np.int64)
    outer = int(band.max())
    counts = np.bincount(band.ravel(), minlength=outer + 1)
    out = np.empty_like(image)
    for c in range(channels):
        spectrum = np.fft.fftshift(np.fft.fft2(image[:, :, c].astype(np.float64)))
        amplitude = np.abs(spectrum + 1e-8)
        peak = amplitude == amplitude.max()
        amplitude[peak] = 0.0
        means = (np.bincount(band.ravel(), weights=amplitude.ravel(), minlength=outer + 1) / counts)[1:outer]
        with np.errstate(divide="ignore", invalid="ignore"):  # flat crops: as published, no guard
            logs = np.log(means)
            weights = np.ones(outer + 1)
            weights[1:outer] = (logs / logs.sum()) / (means / means.sum())
        factor = weights[band]
        factor[peak] = 1.0
        result = np.real(np.fft.ifft2(np.fft.ifftshift(spectrum * factor)))
        out[:, :, c] = np.clip(result, 0, 255).astype(np.uint8)
    return out


def measure_size(side: int, batch: int, repeats: int, inner: int) -> dict:
    """Time the FFT round trip, BaSS (float32, float64) and plain numpy on ``batch`` crops of ``side``."""
    crops = photo_crops(side, max(1, batch // 16))[:batch]
    x32 = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255.0).contiguous()
    x64 = x32.double()
    n = x32.shape[0]
    times = best_seconds(
        {
            "fft32": lambda: torch.fft.irfft2(torch.fft.rfft2(x32), s=(side, side)),
            "bass32": lambda: balance_spectrum_tensor(x32),
            "fft64": lambda: torch.fft.irfft2(torch.fft.rfft2(x64), s=(side, side)),
            "bass64": lambda: balance_spectrum_tensor(x64),
        },
        repeats,
        inner,
    )
    fft32, bass32, fft64, bass64 = (times[k] / n for k in ("fft32", "bass32", "fft64", "bass64"))
    few = crops[: min(n, 16)]
    plain = best_seconds({"numpy": lambda: [numpy_bass(image) for image in few]}, 3, 1)["numpy"] / len(few)
    return {
        "size": f"{side}x{side}",
        "batch": n,
        "fft_round_trip_us": round(fft32 * 1e6, 1),
        "bass_float32_us": round(bass32 * 1e6, 1),
        "ratio_float32": round(bass32 / fft32, 2),
        "fft_round_trip_float64_us": round(fft64 * 1e6, 1),
        "bass_float64_us": round(bass64 * 1e6, 1),
        "ratio_float64": round(bass64 / fft64, 2),
        "numpy_per_image_us": round(plain * 1e6, 1),
        "numpy_over_bass_float32": round(plain / bass32, 1),
    }


def speed(quick: bool) -> list[dict]:
    repeats, inner = (3, 2) if quick else (15, 3)
    return [measure_size(side, batch, repeats, inner) for side, batch in SIZES]


_MEMORY_CHILD = """
import json, resource, sys, time


def peak_rss_mib():
    # VmHWM is this process's own high-water mark; ru_maxrss would include the parent's (Linux
    # keeps it across fork + exec). ru_maxrss is the fallback where /proc is missing.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


import numpy as np
from freqtail.bass import convert_uint8_images
import torch
torch.set_num_threads(1)
imported = peak_rss_mib()
images = np.load(sys.argv[1], mmap_mode="r")  # like `freqtail bass --input`
start = time.perf_counter()
out, n_degenerate = convert_uint8_images(images, chunk_size=int(sys.argv[2]))
seconds = time.perf_counter() - start
peak = peak_rss_mib()
print(json.dumps({"images": len(out), "degenerate": n_degenerate, "seconds": round(seconds, 2),
                  "rss_after_import_mib": round(imported, 1), "peak_rss_mib": round(peak, 1)}))
"""


def memory(chunk_size: int) -> dict:
    """Convert 50,000 memory-mapped 32x32 RGB images in a fresh single-threaded process.

    The peak resident set counts everything resident: Python, torch's libraries, the pages
    of the memory-mapped input that were read, the output array and the chunk's working memory.
    """
    tiles = photo_crops(32, 125)  # 2,000 natural crops, repeated to 50,000 images
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "images.npy")
        np.save(path, np.resize(tiles, (50000, 32, 32, 3)))
        result = subprocess.run(
            [sys.executable, "-c", _MEMORY_CHILD, path, str(chunk_size)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--skip-memory", action="store_true", help="skip the 50,000-image conversion")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, best of repeated runs; microseconds per RGB image")
    header = (
        f"{'size':>8} {'batch':>5} {'fft rt':>9} {'BaSS f32':>9} {'ratio':>6} "
        f"{'fft rt64':>9} {'BaSS f64':>9} {'ratio':>6} {'numpy':>10} {'numpy/BaSS':>10}"
    )
    print(header)
    for row in speed(args.quick):
        print(
            f"{row['size']:>8} {row['batch']:>5} {row['fft_round_trip_us']:>9} {row['bass_float32_us']:>9} "
            f"{row['ratio_float32']:>6} {row['fft_round_trip_float64_us']:>9} {row['bass_float64_us']:>9} "
            f"{row['ratio_float64']:>6} {row['numpy_per_image_us']:>10} {row['numpy_over_bass_float32']:>10}"
        )
    if not args.skip_memory:
        for chunk_size in (DEFAULT_CHUNK_SIZE, 4 * DEFAULT_CHUNK_SIZE):
            mem = memory(chunk_size)
            print(
                f"convert_uint8_images(chunk_size={chunk_size}), {mem['images']} memory-mapped 32x32x3 "
                f"uint8 images: {mem['seconds']} s, peak RSS {mem['peak_rss_mib']} MiB "
                f"(after imports {mem['rss_after_import_mib']} MiB), {mem['degenerate']} degenerate"
            )


if __name__ == "__main__":
    main()
