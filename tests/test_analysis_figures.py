"""Figures of the explanations, the data's long tail and BaSS before/after."""

from __future__ import annotations

import itertools
import json
from xml.etree import ElementTree

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.contour import ContourSet
from mpl_toolkits.mplot3d.art3d import Poly3DCollection
from torch import nn

from freqtail.analysis import LandscapeResult, fourier_heatmap, frequency_sensitivity, loss_landscape
from freqtail.errors import ConfigError, InputError
from freqtail.report.analysis_figures import (
    plot_dataset_long_tail,
    plot_heatmap,
    plot_landscape,
    plot_landscape_3d,
    plot_sensitivity,
)
from freqtail.report.bass_figures import log_amplitude_spectrum, plot_bass_examples
from freqtail.report.figure_formats import check_figure_formats, figure_files
from freqtail.report.pyplot import plt
from freqtail.workflows.explain import ExplainRequest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


SVG = "{http://www.w3.org/2000/svg}"


def is_png(path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 1000


def assert_formats(files) -> None:
    """Each file is what its suffix claims: PNG magic bytes, a PDF header, an SVG document drawn with
    vector paths (not only an embedded raster)."""
    assert files, "no file written"
    for file in files:
        data = file.read_bytes()
        fmt = file.suffix
        if fmt == ".png":
            assert is_png(file), file
        elif fmt == ".pdf":
            assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF"), file
        else:
            assert fmt == ".svg", file
            root = ElementTree.fromstring(data)
            assert root.tag == f"{SVG}svg", file
            assert len(list(root.iter(f"{SVG}path"))) > 10, file
    assert not [p for p in files[0].parent.iterdir() if p.name.startswith(".")], "a temporary file is left"


def drawn(fig):
    """Draw a saved (and closed) figure again with Agg; return the renderer that measured its artists."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


@pytest.fixture()
def spy(monkeypatch):
    """The figures the plot functions save, in order (each still written by the real save_figure)."""
    import freqtail.report.analysis_figures as module

    figures = []
    real = module.save_figure

    def recording(fig, *args, **kwargs):
        figures.append(fig)
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(module, "save_figure", recording)
    return figures


@pytest.fixture(scope="module")
def case(natural_crops):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16 * 16, 3))
    images = natural_crops(16, 2, seed=0)[:9]
    labels = torch.arange(9) % 3
    return model, images, labels


def test_sensitivity_figure_from_result_and_from_its_json(case, tmp_path, spy):
    model, images, labels = case
    result = frequency_sensitivity(model, (images, labels))
    files = plot_sensitivity(result, tmp_path / "a" / "sensitivity.png")  # the default: every format
    assert files == [tmp_path / "a" / f"sensitivity.{fmt}" for fmt in ("png", "pdf", "svg")]
    assert_formats(files)
    # Fig. 2's two rows: the sorted magnitudes above the radius densities, one column.
    (fig,) = spy
    rank_ax, density_ax = fig.axes
    assert [ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes] == [(2, 1), (2, 1)]
    assert rank_ax.get_position().y0 > density_ax.get_position().y1
    np.testing.assert_allclose(rank_ax.lines[0].get_ydata(), result.mean_sorted_magnitude)
    dashed = [line for line in density_ax.lines if line.get_linestyle() == "--"]
    assert [line.get_xdata()[0] for line in dashed] == [result.boundary_band]
    # The legend names the rank positions and the boundary, outside both axes and inside the figure.
    (legend,) = fig.legends
    assert len(legend.get_texts()) == len(result.rank_positions) + 1
    renderer = drawn(fig)
    box = legend.get_window_extent(renderer)
    assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes)
    assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1)

    data = json.loads(json.dumps(result.to_dict()))
    data["ranks"][0]["density"] = None  # a point mass is drawn as a line, not a crash
    assert_formats(plot_sensitivity(data, tmp_path / "b", formats=("png",)))
    with pytest.raises(InputError, match="lacks the key"):
        plot_sensitivity({"ranks": []}, tmp_path / "d.png")
    with pytest.raises(InputError, match="suffix"):
        plot_sensitivity(result, tmp_path / "e.txt")
    with pytest.raises(InputError, match="png, pdf, svg"):
        plot_sensitivity(result, tmp_path / "f.png", formats=("png", "bmp"))
    assert not list(tmp_path.glob("[def].*"))


def test_landscape_figure_redraws_from_the_npz(case, tmp_path):
    model, images, labels = case
    result = loss_landscape(model, (images, labels), grid=3, span=0.5)
    npz = result.save(tmp_path / "landscape.npz")
    assert_formats(plot_landscape(npz, tmp_path / "landscape.png", formats=("png",)))
    single = loss_landscape(model, (images, labels), grid=1)
    assert_formats(plot_landscape(single, tmp_path / "single.png", formats=("png",)))
    assert_formats(plot_landscape_3d(single, tmp_path / "single_3d.png", formats=("png",)))
    with pytest.raises(InputError, match="does not exist"):
        plot_landscape(tmp_path / "missing.npz", tmp_path / "x.png")


def test_constant_landscape_is_drawn(tmp_path):
    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(2, 2))

        def forward(self, x):
            return torch.zeros(x.shape[0], 2)

    images = torch.rand(4, 1, 8, 8)
    result = loss_landscape(Constant(), (images, torch.zeros(4, dtype=torch.long)), grid=3, boundary_band=2)
    assert np.ptp(result.loss_lfc) == 0
    assert_formats(plot_landscape(result, tmp_path / "flat.png", formats=("png",)))


def paraboloid_landscape(grid: int = 5) -> LandscapeResult:
    """A hand-built landscape: LFC loss 1 + a^2 + 2 b^2, HFC loss 3 + 2 a^2 + b^2 (minimum at 0, 0)."""
    axis = np.linspace(-1.0, 1.0, grid)
    a, b = np.meshgrid(axis, axis, indexing="ij")  # loss[i, j] is at (alphas[i], betas[j])
    lfc, hfc = 1 + a**2 + 2 * b**2, 3 + 2 * a**2 + b**2
    none = np.zeros_like(lfc, dtype=bool)
    return LandscapeResult(
        axis, axis, lfc, hfc, 1 - lfc / 10, 1 - hfc / 10, none, none, 4, 0, 1.0, 8, (16, 16)
    )


def _shown_tick_labels(ax, renderer) -> list[tuple[str, object]]:
    """``(text, drawn box)`` of the major tick labels an axes draws: within each axis' view interval
    (the locator's ticks outside it are not drawn but keep a label), visible and not empty."""
    labels = []
    for axis in (ax.xaxis, ax.yaxis, *([ax.zaxis] if hasattr(ax, "zaxis") else [])):
        low, high = sorted(axis.get_view_interval())
        tolerance = 1e-9 * max(1.0, high - low)
        locations = axis.get_majorticklocs()
        for location, tick in zip(locations, axis.get_major_ticks(len(locations)), strict=True):
            label = tick.label1
            if low - tolerance <= location <= high + tolerance and label.get_visible() and label.get_text():
                labels.append((label.get_text(), label.get_window_extent(renderer)))
    return labels


def overlapping_tick_labels(fig) -> list[str]:
    """Pairs of tick labels of ``fig`` whose drawn boxes overlap, across all its axes (panels, colour
    bars, 3-D axes' x, y and z), and tick labels that a legend covers."""
    renderer = drawn(fig)
    labels = [label for ax in fig.axes for label in _shown_tick_labels(ax, renderer)]
    clashes = [
        f"{a} / {b}" for (a, box_a), (b, box_b) in itertools.combinations(labels, 2) if box_a.overlaps(box_b)
    ]
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        clashes += [f"{text} / legend" for text, label_box in labels if box.overlaps(label_box)]
    return clashes


def test_the_overlap_check_finds_crowded_tick_labels_and_a_legend_over_them():
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1], label="a line")
    assert overlapping_tick_labels(fig) == []
    ax.set_xticks(np.linspace(0, 1, 40))  # 40 labels on two inches
    assert len(overlapping_tick_labels(fig)) > 20
    ax.set_xticks([0, 1])
    ax.legend(loc="lower left", bbox_to_anchor=(-0.3, -0.3))  # over the x axis' first label
    assert "0 / legend" in overlapping_tick_labels(fig)
    plt.close(fig)


def _landscape(grid: int, span: float, scale: float, offset: float, size: int = 32) -> LandscapeResult:
    """A paraboloid landscape over [-span, span]² with losses ``offset + scale * (...)``."""
    axis = np.linspace(-span, span, grid)
    a, b = np.meshgrid(axis, axis, indexing="ij")
    lfc, hfc = offset + scale * (a**2 + 2 * b**2), offset + 3 * scale * (2 * a**2 + b**2)
    none = np.zeros_like(lfc, dtype=bool)
    return LandscapeResult(
        axis, axis, lfc, hfc, 0.5 + 0 * lfc, 0.5 + 0 * lfc, none, none, 4, 0, span, 8, (size,) * 2
    )


def _sensitivity(size: int, rank_count: int, boundary: int) -> dict:
    """A sensitivity result's dict for ``size`` x ``size`` RGB images: magnitudes over 12 decades,
    ``rank_count`` ranks with Gaussian radius densities."""
    top = int(np.hypot(size / 2, size / 2)) + 1
    grid = np.linspace(0.0, top, 200)
    n = 3 * size * size
    ranks = [
        {
            "fraction": f,
            "position": int(f * (n - 1)),
            "mean_radius": f * top,
            "density": np.exp(-((grid - f * top) ** 2) / 20).tolist(),
        }
        for f in np.linspace(0.0, 1.0, rank_count)
    ]
    return {
        "mean_sorted_magnitude": np.geomspace(1e3, 1e-9, n).tolist(),
        "ranks": ranks,
        "density_grid": grid.tolist(),
        "boundary_band": boundary,
        "image_size": [size, size],
        "num_images": 64,
        "hfc_energy_share": 0.3,
        "top_hfc_share": 0.2,
        "top_fraction": 0.05,
    }


@pytest.mark.parametrize(
    "result",
    [
        _landscape(5, 1.0, 1.0, 1.0),
        _landscape(
            7, 0.01, 1e-4, 2.302585
        ),  # tiny span: long tick labels, losses that differ in the 5th digit
        _landscape(11, 25.0, 1000.0, 0.0),
        _landscape(5, 1.0, 1e5, 12345.678),  # large losses on the colour bars and the z axis
    ],
    ids=["unit", "tiny-span", "wide-span", "large-loss"],
)
def test_landscape_tick_labels_never_overlap(result, monkeypatch):
    import freqtail.report.analysis_figures as module

    figures = []
    monkeypatch.setattr(module, "save_figure", lambda fig, *args, **kwargs: figures.append(fig) or [])
    plot_landscape(result, "landscape.png")
    plot_landscape_3d(result, "landscape_3d.png")
    for fig in figures:
        assert overlapping_tick_labels(fig) == []


@pytest.mark.parametrize(("size", "rank_count", "boundary"), [(8, 3, 2), (32, 5, 6), (224, 10, 40)])
def test_sensitivity_tick_labels_never_overlap(size, rank_count, boundary, monkeypatch):
    import freqtail.report.analysis_figures as module

    figures = []
    monkeypatch.setattr(module, "save_figure", lambda fig, *args, **kwargs: figures.append(fig) or [])
    plot_sensitivity(_sensitivity(size, rank_count, boundary), "sensitivity.png")
    (fig,) = figures
    assert overlapping_tick_labels(fig) == []


def test_landscape_is_fig_1_contours_of_hfc_and_lfc_with_the_star_at_the_origin(tmp_path, spy):
    result = paraboloid_landscape()
    files = plot_landscape(result, tmp_path / "figures" / "landscape.png")
    assert [f.name for f in files] == ["landscape.png", "landscape.pdf", "landscape.svg"]
    assert_formats(files)
    (fig,) = spy
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 2 and len(fig.axes) == 4  # two panels, a colour bar each
    for ax, loss, name in zip(
        panels, (result.loss_hfc, result.loss_lfc), ("(a) high", "(b) low"), strict=True
    ):
        assert ax.get_title().startswith(name)
        filled, lines = (c for c in ax.collections if isinstance(c, ContourSet))
        assert filled.filled and not lines.filled
        # the filled levels span this panel's own loss: (a) is the HFC grid, (b) the LFC grid
        assert (filled.levels[0], filled.levels[-1]) == (loss.min(), loss.max())
        stars = [line for line in ax.lines if line.get_marker() == "*"]
        assert len(stars) == 1 and stars[0].get_color() == "black"
        assert list(stars[0].get_xydata()[0]) == [0.0, 0.0]
    assert overlapping_tick_labels(fig) == []


def test_landscape_3d_surfaces_with_the_star_at_the_trained_weights(tmp_path, spy):
    result = paraboloid_landscape()
    files = plot_landscape_3d(result, tmp_path / "landscape_3d.png", formats=("png", "svg"))
    assert [f.name for f in files] == ["landscape_3d.png", "landscape_3d.svg"]
    assert_formats(files)
    (fig,) = spy
    assert [ax.name for ax in fig.axes] == ["3d", "3d"]
    for ax, center_loss in zip(fig.axes, (3.0, 1.0), strict=True):  # (a) HFC, (b) LFC at alpha = beta = 0
        assert any(isinstance(c, Poly3DCollection) for c in ax.collections)
        (star,) = [line for line in ax.lines if line.get_marker() == "*"]
        assert [float(v[0]) for v in star.get_data_3d()] == [0.0, 0.0, center_loss]


def test_vector_figures_keep_text_as_text_and_are_identical_on_a_rerun(tmp_path, monkeypatch):
    result = paraboloid_landscape()
    written = {}
    # A different clock for each run: a file that recorded its creation time would differ.
    for run, epoch in (("first", "0"), ("second", "86400")):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
        written[run] = plot_landscape(result, tmp_path / run / "landscape", formats=("pdf", "svg"))
    for first, second in zip(written["first"], written["second"], strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name
    pdf, svg = written["first"]
    assert b"/Type3" not in pdf.read_bytes() and b"/FontFile2" in pdf.read_bytes()  # TrueType, not glyphs
    texts = [el.text for el in ElementTree.parse(svg).iter(f"{SVG}text")]
    assert "(a) high frequencies (HFC)" in "".join(t or "" for t in texts)


def test_heatmap_figure(case, tmp_path):
    model, images, labels = case
    result = fourier_heatmap(model, (images[:2], labels[:2]), eps=1.0)
    npz = result.save(tmp_path / "heatmap.npz")
    assert_formats(plot_heatmap(npz, tmp_path / "heatmap.png", formats=("png", "svg")))
    assert_formats(plot_heatmap(result, tmp_path / "heatmap2", formats=("pdf",)))
    with pytest.raises(InputError, match="heat-map"):
        plot_heatmap(42, tmp_path / "x.png")


def test_dataset_long_tail_figure_reuses_the_spectrum_summary(natural_crops, tmp_path):
    from freqtail.spectrum import summarize

    images = natural_crops(32, 2, seed=0)
    files, summary = plot_dataset_long_tail(images, tmp_path / "long_tail.png", formats=("png", "pdf"))
    assert [f.name for f in files] == ["long_tail.png", "long_tail.pdf"]
    assert_formats(files)
    assert summary.boundary_band == summarize(images).boundary_band


def test_figure_formats_are_checked_once_in_one_sentence():
    assert check_figure_formats("png") == ("png",)
    assert check_figure_formats(" PDF, svg ,pdf") == ("pdf", "svg")  # case, spaces and repeats
    assert check_figure_formats(["svg", "png"]) == ("svg", "png")
    for bad in ("", "bmp", "png,,svg", "png;pdf", [], ["png", 3], None):
        with pytest.raises(InputError) as info:
            check_figure_formats(bad, "--figure-format")
        message = str(info.value)
        assert message.startswith("--figure-format must be") and "png, pdf, svg" in message
        assert message.endswith(".") and "\n" not in message
    assert ExplainRequest(n=2, batch_size=1, figure_formats="svg,png").figure_formats == ("svg", "png")
    assert ExplainRequest(n=2, batch_size=1).figure_formats == ("png", "pdf", "svg")
    with pytest.raises(ConfigError, match="--figure-format must be"):
        ExplainRequest(n=2, batch_size=1, figure_formats="jpeg")


def test_figure_files_replace_a_figure_suffix_or_append_one(tmp_path):
    assert figure_files(tmp_path / "a.png", ("svg", "pdf")) == [tmp_path / "a.svg", tmp_path / "a.pdf"]
    assert figure_files(tmp_path / "a.SVG", ("png",)) == [tmp_path / "a.png"]
    assert figure_files(tmp_path / "a", ("png",)) == [tmp_path / "a.png"]
    with pytest.raises(InputError, match="suffix must be .png, .pdf, .svg or none"):
        figure_files(tmp_path / "a.jpg", ("png",))
    with pytest.raises(InputError, match="it is a folder"):
        figure_files(tmp_path, ("png",))


def test_log_amplitude_spectrum_of_a_constant_image_is_hand_computed():
    image = np.full((1, 4, 6, 3), 10, dtype=np.uint8)
    spectrum = log_amplitude_spectrum(image)
    expected = np.zeros((1, 4, 6))
    expected[0, 2, 3] = np.log1p(10 * 24)  # DC = sum of the pixels, at (H // 2, W // 2)
    np.testing.assert_allclose(spectrum, expected, atol=1e-9)


def test_bass_examples_figure_for_colour_grey_and_degenerate_images(natural_crops, tmp_path):
    colour = natural_crops(32, 1, seed=0)[:3]
    assert is_png(plot_bass_examples(colour, tmp_path / "bass.png"))
    grey = np.concatenate([colour[:2, ..., :1], np.zeros((1, 32, 32, 1), dtype=np.uint8)])  # last: degenerate
    assert is_png(plot_bass_examples(grey, tmp_path / "bass_grey.png", strength=0.5, max_images=3))
    assert is_png(plot_bass_examples(colour[0], tmp_path / "one.png"))
    with pytest.raises(InputError, match="uint8"):
        plot_bass_examples(colour.astype(np.float32), tmp_path / "x.png")
    with pytest.raises(InputError, match="max_images"):
        plot_bass_examples(colour, tmp_path / "x.png", max_images=0)
    with pytest.raises(InputError):
        plot_bass_examples(colour, tmp_path / "x.png", strength=2.0)
