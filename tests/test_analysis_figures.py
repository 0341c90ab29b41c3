"""Figures of the explanations, the data's long tail and BaSS before/after."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from freqtail.analysis import fourier_heatmap, frequency_sensitivity, loss_landscape
from freqtail.errors import InputError
from freqtail.report.analysis_figures import (
    plot_dataset_long_tail,
    plot_heatmap,
    plot_landscape,
    plot_sensitivity,
)
from freqtail.report.bass_figures import log_amplitude_spectrum, plot_bass_examples

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def is_png(path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 1000


@pytest.fixture(scope="module")
def case(natural_crops):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16 * 16, 3))
    images = natural_crops(16, 2, seed=0)[:9]
    labels = torch.arange(9) % 3
    return model, images, labels


def test_sensitivity_figure_from_result_and_from_its_json(case, tmp_path):
    model, images, labels = case
    result = frequency_sensitivity(model, (images, labels))
    assert is_png(plot_sensitivity(result, tmp_path / "a" / "sensitivity.png"))
    data = json.loads(json.dumps(result.to_dict()))
    data["ranks"][0]["density"] = None  # a point mass is drawn as a line, not a crash
    assert is_png(plot_sensitivity(data, tmp_path / "b.png"))
    assert (tmp_path / "c.svg").name == plot_sensitivity(data, tmp_path / "c.svg").name
    with pytest.raises(InputError, match="lacks the key"):
        plot_sensitivity({"ranks": []}, tmp_path / "d.png")
    with pytest.raises(InputError, match="suffix"):
        plot_sensitivity(result, tmp_path / "e.txt")


def test_landscape_figure_redraws_from_the_npz(case, tmp_path):
    model, images, labels = case
    result = loss_landscape(model, (images, labels), grid=3, span=0.5)
    npz = result.save(tmp_path / "landscape.npz")
    assert is_png(plot_landscape(npz, tmp_path / "landscape.png"))
    single = loss_landscape(model, (images, labels), grid=1)
    assert is_png(plot_landscape(single, tmp_path / "single.png"))
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
    assert is_png(plot_landscape(result, tmp_path / "flat.png"))


def test_heatmap_figure(case, tmp_path):
    model, images, labels = case
    result = fourier_heatmap(model, (images[:2], labels[:2]), eps=1.0)
    npz = result.save(tmp_path / "heatmap.npz")
    assert is_png(plot_heatmap(npz, tmp_path / "heatmap.png"))
    assert is_png(plot_heatmap(result, tmp_path / "heatmap2.png"))
    with pytest.raises(InputError, match="heat-map"):
        plot_heatmap(42, tmp_path / "x.png")


def test_dataset_long_tail_figure_reuses_the_spectrum_summary(natural_crops, tmp_path):
    from freqtail.spectrum import summarize

    images = natural_crops(32, 2, seed=0)
    path, summary = plot_dataset_long_tail(images, tmp_path / "long_tail.png")
    assert is_png(path)
    assert summary.boundary_band == summarize(images).boundary_band


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
