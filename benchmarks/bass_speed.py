"""How fast is BaSS against the FFTs it cannot avoid, and how much memory does a conversion take?

Single-threaded on the CPU, natural-image crops (RGB) at 32x32, 128x128 and 224x224. Every ratio
is measured within one run, the compared functions timed in turn within every repeat (best of the
repeats), so that background load on a shared machine hits both sides alike. It prints the ratios
of the speed goals and whether each is met:

* **uint8 path / float64 FFT round trip**: :func:`freqtail.bass.balance_spectrum` on a uint8
  numpy (N, H, W, C) array, and :func:`freqtail.bass.convert_uint8_images` on the same array,
  per image, over a float64 ``rfft2`` + ``irfft2`` of the same images done in chunks of 256
  (the images already float64 (N, C, H, W)); goal <= 3 at every size.
* **published per-image code / uint8 path** at 32x32: :func:`numpy_bass`, the plain per-image,
  per-channel numpy implementation of the published algorithm, over ``balance_spectrum``;
  goal >= 6.
* **float32 tensor path / float32 FFT round trip**: :func:`freqtail.bass.balance_spectrum_tensor`
  on a float32 (N, C, H, W) batch in [0, 1] over ``rfft2`` + ``irfft2`` of the same batch in one
  call; goal <= 2 at every size, and at 32x32 also on every batch of :data:`FLOAT_BATCHES` (from
  one image, where the fixed cost of a call counts most, to many chunks of
  :data:`freqtail.bass.core.CHUNK_BYTES`). A batch of fewer than :data:`CALL_IMAGES` images is
  called ``CALL_IMAGES // batch`` times per repeat, each call timed on its own (best of all): a
  sample of many calls in a row would almost always include the moments a loaded machine gives
  the process no core, and on one call the minimum is close to the median.

It also prints **the floor** of the float32 goal at 32x32 on batches of :data:`FLOOR_BATCHES`
(:func:`floor`): the round trip against (a) the two transforms as BaSS calls them
(``core._rfft2``, ``core._irfft2``), (b) the round trip with ``k`` trivial in-place ops on the
spectrum between the transforms (an in-place multiply of its real view by a 0-dim tensor holding
1), for ``k`` = :data:`MINIMAL_GLUE_OPS`, the fewest ops the algorithm needs between the
transforms in eager torch, and for ``k`` = the torch ops one ``balance_spectrum_tensor`` call
issues besides the transforms (counted with a :class:`torch.overrides.TorchFunctionMode`), and
(c) ``balance_spectrum_tensor`` itself.

It also prints the peak resident memory (``VmHWM``, else ``ru_maxrss``) of a fresh process
converting 50,000 memory-mapped 32x32 RGB uint8 images with ``convert_uint8_images``, and that
process's RSS before the conversion (Python + torch + nothing else).

Run: ``OMP_NUM_THREADS=1 python benchmarks/bass_speed.py`` (about 40 s). ``--quick``: 6 repeats
instead of 30 and one memory run (about 15 s); ``--json``: one JSON object instead of the text;
``--skip-memory``: no 50,000-image conversion; ``--sweep``: also the paths at several
:data:`freqtail.bass.core.CHUNK_BYTES`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch

from freqtail.bass import balance_spectrum, balance_spectrum_tensor, convert_uint8_images
from freqtail.bass import core as bass_core
from freqtail.bass.convert import DEFAULT_CHUNK_SIZE
from freqtail.sample_photos import photo_crops

#: (side, images for the uint8 paths, images in the float32 batch).
SIZES = ((32, 512, 256), (128, 64, 32), (224, 32, 16))
#: The other float32 batches timed at 32x32 (the batch of :data:`SIZES` is the fourth); 2,000 is
#: many chunks of :data:`freqtail.bass.core.CHUNK_BYTES`.
FLOAT_BATCHES = (1, 16, 64, 2000)
#: A small batch is timed ``CALL_IMAGES // batch`` times per repeat.
CALL_IMAGES = 256
#: Images per float64 FFT round trip call in the uint8 goal's baseline.
ROUND_TRIP_CHUNK = 256
#: Crops timed with the published per-image code (it is slow).
PUBLISHED_IMAGES = 32
#: The float32 batches at 32x32 whose floor :func:`floor` measures.
FLOOR_BATCHES = (1, 16)
#: The fewest torch calls a no-autograd BaSS call needs between its two transforms in eager
#: torch, on a batch without ties or degenerate channels, counted from ``freqtail.bass.core``
#: (views, attribute reads and the de-interleaving copy left out, as a strided kernel could do
#: without them): the amplitude ``sqrt(m^2 ((re + eps)^2 + im^2))`` 5 (add, square, addcmul,
#: multiply, sqrt); the maximum-amplitude check 5 (the largest squared value past DC, its sqrt,
#: the comparison with the DC amplitude, ``any``, the read back); band sums 2 (zeros,
#: ``index_add_``); the profile 2 (divide by the band sizes, multiply by the scale); Eq. 4 7 (one
#: buffer for the profile and its logs side by side, ``>``, ``where``, ``log``, one sum and one
#: division of both, the final division); the degenerate test 3 (``isposinf``, ``any``, the read
#: back); the factor table 1 (``ones``, the division writing into it); applying it 2 (gather,
#: multiply); the clip 1.
MINIMAL_GLUE_OPS = 28
#: The goals: an upper bound on the two "over FFT" ratios, a lower bound on the published one.
GOALS = {"uint8_over_fft64": 3.0, "published_over_uint8": 6.0, "float32_over_fft32": 2.0}


def best_seconds(
    fns: dict[str, Callable[[], object]], repeats: int, calls: dict[str, int] | None = None
) -> dict[str, float]:
    """Best wall time of one call of each function, the functions timed in turn within each of
    ``repeats`` rounds, function ``name`` called ``calls[name]`` times a round (default 1)."""
    calls = calls or {}
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            for _ in range(calls.get(name, 1)):
                start = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def numpy_bass(image: np.ndarray) -> np.ndarray:
    """The published algorithm, per image and per channel in plain numpy (full-plane fft2/fftshift).

    uint8 (H, W, C) -> uint8 (H, W, C). The same transcription as ``reference_channel`` in
    ``tests/test_bass.py``, without its options.
    """
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


def crops_of(side: int, n: int) -> np.ndarray:
    """uint8 (n, side, side, 3) natural crops (the embedded photos' crops, repeated if needed)."""
    crops = photo_crops(side, max(1, -(-n // 16)))
    return np.ascontiguousarray(np.resize(crops, (n, side, side, 3)))


def round_trip(x: torch.Tensor, chunk: int | None = None) -> None:
    """``irfft2(rfft2(x))`` of float (N, C, H, W), in calls of ``chunk`` images (all at once if None)."""
    size = x.shape[-2:]
    chunk = chunk or len(x)
    for start in range(0, len(x), chunk):
        torch.fft.irfft2(torch.fft.rfft2(x[start : start + chunk]), s=size)


def measure_size(side: int, n_uint8: int, n_float: int, repeats: int) -> dict[str, float]:
    """Microseconds per image at one size, every function timed in turn within every repeat.

    Keys: ``fft64`` (the float64 round trip in chunks of 256), ``balance_spectrum`` (uint8 numpy),
    ``convert_uint8_images``, ``fft32`` (the float32 round trip), ``balance_spectrum_tensor``
    (float32), and at 32x32 ``published`` (:func:`numpy_bass`, per image) and ``fft32@B`` and
    ``balance_spectrum_tensor@B`` for each batch B of :data:`FLOAT_BATCHES`.
    """
    images = crops_of(side, n_uint8)
    x64 = torch.from_numpy(images).permute(0, 3, 1, 2).to(torch.float64).contiguous()
    x32 = x64[:n_float].div(255.0).float().contiguous()
    few = images[:PUBLISHED_IMAGES]
    fns = {
        "fft64": lambda: round_trip(x64, ROUND_TRIP_CHUNK),
        "balance_spectrum": lambda: balance_spectrum(images),
        "convert_uint8_images": lambda: convert_uint8_images(images),
        "fft32": lambda: round_trip(x32),
        "balance_spectrum_tensor": lambda: balance_spectrum_tensor(x32),
    }
    count = {"fft32": n_float, "balance_spectrum_tensor": n_float, "published": len(few)}
    calls: dict[str, int] = {}
    if side == 32:
        fns["published"] = lambda: [numpy_bass(image) for image in few]
        for batch in FLOAT_BATCHES:
            x = torch.from_numpy(crops_of(side, batch)).permute(0, 3, 1, 2).float().div(255.0).contiguous()
            fns[f"fft32@{batch}"] = lambda x=x: round_trip(x)
            fns[f"balance_spectrum_tensor@{batch}"] = lambda x=x: balance_spectrum_tensor(x)
            count.update({f"fft32@{batch}": batch, f"balance_spectrum_tensor@{batch}": batch})
            per_repeat = max(1, CALL_IMAGES // batch)
            calls.update(dict.fromkeys((f"fft32@{batch}", f"balance_spectrum_tensor@{batch}"), per_repeat))
    seconds = best_seconds(fns, repeats, calls)
    return {name: round(t / count.get(name, n_uint8) * 1e6, 2) for name, t in seconds.items()}


class _TorchCalls(torch.overrides.TorchFunctionMode):
    """Counts the torch functions, methods and tensor attribute reads called from Python."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


def torch_calls(fn: Callable[[], object]) -> tuple[int, int]:
    """``(ops, attribute reads)``: the torch calls ``fn`` makes from Python but its FFTs.

    An op is any torch function or tensor method (kernels and views alike); an attribute read is
    a tensor property (``x.shape``). ``torch.fft.rfft2`` and ``irfft2`` are left out."""
    fn()  # cached tables built
    with _TorchCalls() as calls:
        fn()
    reads = calls.names.count("__get__")  # a tensor property's getter: no kernel runs
    ffts = sum(name in ("fft_rfft2", "fft_irfft2", "rfft2", "irfft2") for name in calls.names)
    return len(calls.names) - reads - ffts, reads


def round_trip_with_ops(x: torch.Tensor, k: int, one: torch.Tensor) -> None:
    """rfft2, ``k`` in-place multiplies of the spectrum's real view by ``one`` (a 0-dim 1), irfft2."""
    spectrum = torch.fft.rfft2(x)
    parts = torch.view_as_real(spectrum)
    for _ in range(k):
        parts.mul_(one)
    torch.fft.irfft2(spectrum, s=x.shape[-2:])


def floor(repeats: int) -> dict[str, dict]:
    """The float32 goal's floor at 32x32 (see the module docstring), per batch of :data:`FLOOR_BATCHES`.

    Returns, per batch: ``us`` (µs per call of each function, best of ``repeats`` interleaved
    rounds of ``CALL_IMAGES // batch`` calls each), ``ratio`` (each over the round trip), ``ops``
    and ``reads`` (torch ops and attribute reads of one ``balance_spectrum_tensor`` call but the
    transforms).
    """
    one = torch.tensor(1.0)
    rows = {}
    for batch in FLOOR_BATCHES:
        x = torch.from_numpy(crops_of(32, batch)).permute(0, 3, 1, 2).float().div(255.0).contiguous()
        ops, reads = torch_calls(lambda x=x: balance_spectrum_tensor(x))
        fns: dict[str, Callable[[], object]] = {
            "round_trip": lambda x=x: round_trip(x),
            "bass_transforms": lambda x=x: bass_core._irfft2(bass_core._rfft2(x), (32, 32)),
            f"round_trip+{MINIMAL_GLUE_OPS}_ops": lambda x=x: round_trip_with_ops(x, MINIMAL_GLUE_OPS, one),
            f"round_trip+{ops}_ops": lambda x=x, ops=ops: round_trip_with_ops(x, ops, one),
            "balance_spectrum_tensor": lambda x=x: balance_spectrum_tensor(x),
        }
        calls = dict.fromkeys(fns, max(1, CALL_IMAGES // batch))
        seconds = best_seconds(fns, repeats, calls)
        rows[f"32x32x{batch}"] = {
            "us": {name: round(t * 1e6, 1) for name, t in seconds.items()},
            "ratio": {name: round(t / seconds["round_trip"], 2) for name, t in seconds.items()},
            "ops": ops,
            "reads": reads,
        }
    return rows


def report_of(times: dict[str, dict[str, float]], repeats: int) -> dict:
    """The goal ratios, whether each goal is met, and the times behind them (one JSON object)."""
    uint8: dict[str, dict[str, float]] = {}
    published: dict[str, float] = {}
    float32: dict[str, float] = {}
    for size, us in times.items():
        uint8[size] = {
            name: round(us[name] / us["fft64"], 2) for name in ("balance_spectrum", "convert_uint8_images")
        }
        float32[size] = round(us["balance_spectrum_tensor"] / us["fft32"], 2)
        for name in us:
            if name.startswith("fft32@"):
                batch = name.split("@")[1]
                float32[f"{size}x{batch}"] = round(us[f"balance_spectrum_tensor@{batch}"] / us[name], 2)
        if "published" in us:
            published[size] = round(us["published"] / us["balance_spectrum"], 1)
    # Where each goal is closest to failing: (ratio, size or size x batch).
    worst = {
        "uint8_over_fft64": max((max(r.values()), size) for size, r in uint8.items()),
        "published_over_uint8": min((ratio, size) for size, ratio in published.items()),
        "float32_over_fft32": max((ratio, size) for size, ratio in float32.items()),
    }
    goals = {}
    for name, bound in GOALS.items():
        at_least = name == "published_over_uint8"
        goals[name] = {
            "bound": f"{'>=' if at_least else '<='} {bound:g}",
            "worst": worst[name][0],
            "at": worst[name][1],
            "met": worst[name][0] >= bound if at_least else worst[name][0] <= bound,
        }
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "images": {f"{side}x{side}": {"uint8": nu, "float32": nf} for side, nu, nf in SIZES}
        | {f"32x32x{batch}": {"float32": batch} for batch in FLOAT_BATCHES},
        "ratios": {
            "uint8_over_fft64": uint8,
            "published_over_uint8": published,
            "float32_over_fft32": float32,
        },
        "goals": goals,
        "us_per_image": times,
    }


def sweep(repeats: int) -> list[dict]:
    """The uint8 and float32 paths over their FFT round trips at chunk budgets of 2^18 .. 2^24 bytes."""
    rows = []
    default = bass_core.CHUNK_BYTES
    try:
        for side, n_uint8, n_float in SIZES:
            images = crops_of(side, n_uint8)
            x64 = torch.from_numpy(images).permute(0, 3, 1, 2).to(torch.float64).contiguous()
            x32 = x64[:n_float].div(255.0).float().contiguous()
            fns: dict[str, Callable[[], object]] = {
                "fft64": lambda x64=x64: round_trip(x64, ROUND_TRIP_CHUNK),
                "fft32": lambda x32=x32: round_trip(x32),
            }
            for shift in range(18, 25):

                def uint8_path(images=images, shift=shift):
                    bass_core.CHUNK_BYTES = 1 << shift
                    balance_spectrum(images)

                def float_path(x32=x32, shift=shift):
                    bass_core.CHUNK_BYTES = 1 << shift
                    balance_spectrum_tensor(x32)

                fns[f"uint8@2^{shift}"] = uint8_path
                fns[f"float32@2^{shift}"] = float_path
            seconds = best_seconds(fns, repeats)
            row = {"size": f"{side}x{side}"}
            for name, t in seconds.items():
                if "@" in name:
                    row[name] = round(t / seconds["fft64" if name.startswith("uint8") else "fft32"], 2)
            rows.append(row)
    finally:
        bass_core.CHUNK_BYTES = default
    return rows


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
    return {"chunk_size": chunk_size, **json.loads(result.stdout.strip().splitlines()[-1])}


def print_text(report: dict) -> None:
    print(
        f"torch {report['torch']}, {report['threads']} thread, best of {report['repeats']} interleaved "
        "repeats, natural RGB crops; µs per image"
    )
    print(
        f"{'size':>8} {'fft64':>8} {'uint8':>8} {'convert':>8} {'uint8/fft64':>12} "
        f"{'fft32':>7} {'float32':>8} {'f32/fft32':>9} {'published':>10} {'pub/uint8':>9}"
    )
    ratios = report["ratios"]
    for size, us in report["us_per_image"].items():
        uint8 = ratios["uint8_over_fft64"][size]
        published = (
            f"{us['published']:>10} {ratios['published_over_uint8'][size]:>9}" if "published" in us else ""
        )
        print(
            f"{size:>8} {us['fft64']:>8} {us['balance_spectrum']:>8} {us['convert_uint8_images']:>8} "
            f"{uint8['balance_spectrum']:>6}/{uint8['convert_uint8_images']:<5} {us['fft32']:>7} "
            f"{us['balance_spectrum_tensor']:>8} {ratios['float32_over_fft32'][size]:>9} {published}"
        )
    print(
        "uint8: balance_spectrum on uint8 (N, H, W, C); convert: convert_uint8_images; fft64: float64 "
        "rfft2 + irfft2 in chunks of 256 (uint8/fft64 gives both); float32: balance_spectrum_tensor; "
        "fft32: its batch's round trip; published: the plain per-image numpy code"
    )
    for size, ratio in ratios["float32_over_fft32"].items():
        if size.count("x") == 2:
            side, batch = size.rsplit("x", 1)
            us = report["us_per_image"][side]
            print(
                f"float32 batch of {batch} at {side}: fft32 {us[f'fft32@{batch}']} µs, "
                f"balance_spectrum_tensor {us[f'balance_spectrum_tensor@{batch}']} µs, ratio {ratio}"
            )
    for name, goal in report["goals"].items():
        verdict = "met" if goal["met"] else "NOT met"
        print(f"goal {name} {goal['bound']}: {verdict} (worst {goal['worst']}, at {goal['at']})")
    for size, row in report.get("floor", {}).items():
        print(
            f"floor {size}: balance_spectrum_tensor makes {row['ops']} torch ops and {row['reads']} "
            "attribute reads besides its two transforms; µs per call (ratio to the round trip): "
            + ", ".join(f"{name} {us} ({row['ratio'][name]})" for name, us in row["us"].items())
        )
    for row in report.get("sweep", []):
        print(f"chunk sweep {row['size']}: " + " ".join(f"{k}={v}" for k, v in row.items() if "@" in k))
    for mem in report.get("memory", []):
        print(
            f"convert_uint8_images(chunk_size={mem['chunk_size']}), {mem['images']} memory-mapped 32x32x3 "
            f"uint8 images: {mem['seconds']} s, peak RSS {mem['peak_rss_mib']} MiB "
            f"(after imports {mem['rss_after_import_mib']} MiB), {mem['degenerate']} degenerate"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 repeats instead of 30, one memory run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--skip-memory", action="store_true", help="skip the 50,000-image conversions")
    parser.add_argument("--sweep", action="store_true", help="also time several chunk budgets")
    args = parser.parse_args()
    torch.set_num_threads(1)
    repeats = 6 if args.quick else 30
    times = {f"{side}x{side}": measure_size(side, nu, nf, repeats) for side, nu, nf in SIZES}
    report = report_of(times, repeats)
    report["floor"] = floor(repeats)
    if args.sweep:
        report["sweep"] = sweep(repeats)
    if not args.skip_memory:
        chunk_sizes = (DEFAULT_CHUNK_SIZE,) if args.quick else (16, DEFAULT_CHUNK_SIZE)
        report["memory"] = [memory(chunk_size) for chunk_size in chunk_sizes]
    if args.json:
        print(json.dumps(report))
    else:
        print_text(report)


if __name__ == "__main__":
    main()
