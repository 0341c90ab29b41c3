"""``freqtail sensitivity``: a trained model's sensitivity to frequency components (paper §3.2.2, Fig. 2)."""

from __future__ import annotations

import argparse

from freqtail.commands._common import add_parser, print_json

EXAMPLE = "freqtail sensitivity runs/demo --n 1000"


def register(subparsers) -> None:
    from freqtail.analysis.constants import DEFAULT_TOP_FRACTION
    from freqtail.analysis.runs import add_run_arguments

    parser = add_parser(
        subparsers,
        "sensitivity",
        help="which frequencies a trained model is sensitive to: its input gradients' Fourier coefficients",
        example=EXAMPLE,
        description="Measure a trained model's sensitivity to frequency components (paper §3.2.2, Fig. 2): "
        "the input gradient of each test image's loss, its Fourier coefficients (channel mean, one per "
        "conjugate pair) sorted by magnitude, the mean magnitude per rank, where the coefficients at chosen "
        "ranks lie (kernel densities of their radius) and the share of the gradient in high frequencies "
        "(HFC, beyond the data's 80/20 boundary). Writes figures/sensitivity.png, figures/long_tail.png, "
        "sensitivity.json and sensitivity.npz into the run folder.",
    )
    add_run_arguments(parser, default_n=1000, default_batch=128)
    parser.add_argument(
        "--top",
        type=float,
        default=DEFAULT_TOP_FRACTION,
        help=f"share of coefficients counted as 'top' for the HFC share (default {DEFAULT_TOP_FRACTION:g})",
    )
    parser.set_defaults(func=run)


def _compact(data: dict) -> dict:
    """The JSON summary printed by --json: everything but the long arrays."""
    out = {k: v for k, v in data.items() if k not in ("mean_sorted_magnitude", "density_grid", "spectrum")}
    out["ranks"] = [{k: v for k, v in rank.items() if k != "density"} for rank in data["ranks"]]
    if "spectrum" in data:
        out["spectrum"] = {k: data["spectrum"][k] for k in ("boundary_band", "lfc_power_share", "alpha")}
    return out


def run(args: argparse.Namespace) -> int:
    from freqtail.analysis.runs import analysis_data, load_run, output_folder, resolve_device
    from freqtail.analysis.sensitivity import check_top_fraction, frequency_sensitivity
    from freqtail.io import atomic_write_json
    from freqtail.report.analysis_figures import plot_sensitivity
    from freqtail.report.spectrum_figures import plot_long_tail

    top = check_top_fraction(args.top)
    out = output_folder(args)
    device = resolve_device(args.device)
    model, info = load_run(args.run, device, end_to_end=args.end_to_end)
    dataset, source = analysis_data(args, info)
    result = frequency_sensitivity(
        model,
        dataset,
        n=args.n,
        subset_seed=args.subset_seed,
        batch_size=args.batch_size,
        top_fraction=top,
        progress=True,
    )
    data = result.to_dict()
    data["source"] = source
    data["run"] = str(args.run)
    figure = plot_sensitivity(result, out / "figures" / "sensitivity.png")
    long_tail = plot_long_tail(
        result.spectrum, out / "figures" / "long_tail.png", title=f"Long tail of the {source}"
    )
    data["figures"] = [str(figure), str(long_tail)]
    npz = result.save(out / "sensitivity.npz")
    json_path = atomic_write_json(out / "sensitivity.json", data)
    if args.json:
        compact = _compact(data)
        compact["files"] = [str(json_path), str(npz)]
        print_json(compact)
        return 0
    h, w = result.image_size
    print(f"Frequency sensitivity of {args.run} on {result.num_images} images of {h}x{w} ({source})")
    if result.num_zero_gradient:
        print(f"  skipped {result.num_zero_gradient} images whose loss gradient is exactly zero")
    print(
        f"  LFC/HFC boundary band {result.boundary_band} (80/20 rule on the same images); "
        f"{result.num_coefficients} coefficients ranked per image"
    )
    print(f"  HFC share of the gradient's spectral energy: {100 * result.hfc_energy_share:.1f}%")
    print(
        f"  HFC share of the top {100 * result.top_fraction:g}% coefficients: "
        f"{100 * result.top_hfc_share:.1f}%"
    )
    for rank in data["ranks"]:
        print(
            f"  rank {100 * rank['fraction']:5.1f}%: median radius {rank['median_radius']:.2f}, "
            f"in HFC for {100 * rank['hfc_share']:.1f}% of the images"
        )
    print(f"  wrote {json_path}, {npz}, {figure}, {long_tail}")
    return 0
