"""Fig. 2's coefficient ranking: the definition and the published notebook's computation, checked
against a second implementation written here from the notebook's description on designed gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freqtail.analysis import SensitivityAccumulator, SensitivityResult
from freqtail.analysis.sensitivity_ranking import coefficient_ranking
from freqtail.errors import InputError

SIZE = 32
COLUMNS = SIZE // 2 + 1  # the notebook keeps columns 0 .. 16 of the centred spectrum
TOP_CLASSES = 100  # conjugate classes designed to lie above DC
DC_FLAT = (SIZE // 2) * COLUMNS + SIZE // 2  # DC's flat index in the 32 x 17 array: 288


def _conjugate_classes() -> tuple[np.ndarray, np.ndarray]:
    """For every centred position of a 32x32 spectrum, its conjugate's position; and one representative
    (the smaller position) per class. Written from X[-u, -v] = conj(X[u, v]) with offsets wrapped."""
    rows, cols = np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="ij")
    du, dv = rows - SIZE // 2, cols - SIZE // 2
    conj_rows = (-du + SIZE // 2) % SIZE
    conj_cols = (-dv + SIZE // 2) % SIZE
    conjugate = (conj_rows * SIZE + conj_cols).ravel()
    flat = np.arange(SIZE * SIZE)
    return conjugate, np.unique(np.minimum(flat, conjugate))


def designed_gradient(seed: int) -> np.ndarray:
    """A real 32x32 gradient whose centred spectrum has distinct integer magnitudes per conjugate class:
    the 100 largest on classes of columns dv = -15 .. -1 (each once in the notebook's 32 x 17 array), DC
    the 101st, the others in random order; random phases."""
    rng = np.random.default_rng(seed)
    conjugate, classes = _conjugate_classes()
    columns = classes % SIZE
    single = classes[(columns >= 1) & (columns <= SIZE // 2 - 1)]
    dc = (SIZE // 2) * SIZE + SIZE // 2
    top = rng.choice(single, TOP_CLASSES, replace=False)
    rest = rng.permutation(np.setdiff1d(classes, np.concatenate([top, [dc]])))
    magnitude = {int(p): float(m) for m, p in enumerate(rest[::-1], start=1)}
    magnitude[dc] = float(len(rest) + 1)
    for m, p in enumerate(rng.permutation(top), start=len(rest) + 2):
        magnitude[int(p)] = float(m)
    spectrum = np.zeros(SIZE * SIZE, dtype=np.complex128)
    for p, m in magnitude.items():
        q = int(conjugate[p])
        if q == p:  # self-conjugate: real
            spectrum[p] = m * rng.choice([-1.0, 1.0])
        else:
            spectrum[p] = m * np.exp(1j * rng.uniform(0, 2 * np.pi))
            spectrum[q] = np.conj(spectrum[p])
    gradient = np.fft.ifft2(np.fft.ifftshift(spectrum.reshape(SIZE, SIZE)))
    assert np.abs(gradient.imag).max() < 1e-9
    return gradient.real


def notebook_reference(gradient: np.ndarray) -> dict[str, np.ndarray]:
    """The notebook's computation, from its description: F = fftshift(fft2(g)), columns 0 .. 16,
    magnitudes sorted descending (ties, the two copies of a pair, in flat order), row = idx / 17 (true
    division), col = idx % 17, radius = sqrt((row - 16)^2 + (col - 16)^2)."""
    kept = np.abs(np.fft.fftshift(np.fft.fft2(gradient)))[:, :COLUMNS].ravel()  # (544,)
    flat = np.arange(kept.size)
    order = np.lexsort((flat, -np.rint(kept)))  # the designed magnitudes are integers: exact ties
    row = order / 17
    col = order % 17
    radius = np.sqrt((row - 16) ** 2 + (col - 16) ** 2)
    return {"sorted": np.sort(kept)[::-1], "order": order, "radius": radius}


@pytest.fixture(scope="module")
def gradients() -> np.ndarray:
    return np.stack([designed_gradient(seed) for seed in range(3)])  # (3, 32, 32)


def _result(gradients: np.ndarray, **options) -> SensitivityResult:
    accumulator = SensitivityAccumulator(top_fraction=0.1, **options)
    return accumulator.update(torch.from_numpy(gradients)).result(boundary_band=5)


def test_notebook_ranking_equals_a_second_implementation_of_the_notebook(gradients):
    result = _result(gradients, ranking="published-notebook")
    references = [notebook_reference(g) for g in gradients]
    assert result.ranking == "published-notebook" and result.num_coefficients == 544
    positions = [100, 200, 300, 400]
    expected = np.stack([ref["radius"][positions] for ref in references], axis=1)  # (R, N)
    np.testing.assert_array_equal(result.rank_radius_samples, expected)
    np.testing.assert_array_equal(result.rank_band_samples, np.floor(expected).astype(np.int64))
    curve = np.mean([ref["sorted"] for ref in references], axis=0)
    np.testing.assert_allclose(result.mean_sorted_magnitude, curve, rtol=1e-9)
    top = np.concatenate([np.floor(ref["radius"][:55]).astype(np.int64) for ref in references])  # ceil(54.4)
    np.testing.assert_array_equal(result.top_band_counts, np.bincount(top, minlength=23))


def test_dc_lies_at_radius_16_over_17_in_the_notebook_and_0_by_the_definition(gradients):
    for ref in map(notebook_reference, gradients):
        assert ref["order"][100] == DC_FLAT  # as designed: 100 single-copy classes above DC
    notebook = _result(gradients, ranking="published-notebook")
    np.testing.assert_allclose(notebook.rank_radius_samples[0], 16 / 17, rtol=0, atol=1e-12)  # 0.94
    definition = _result(gradients, rank_fractions=[100 / 513])  # position round(100 / 513 * 513) = 100
    assert definition.rank_positions.tolist() == [100]
    np.testing.assert_array_equal(definition.rank_radius_samples[0], 0.0)
    # The ranking decides where coefficients lie, never the gradient's energy per band.
    np.testing.assert_allclose(notebook.band_energy_share, definition.band_energy_share, rtol=1e-12)


def test_position_labels_and_sizes_of_both_rankings(gradients, tmp_path):
    definition = _result(gradients)
    assert definition.ranking == "definition" and definition.num_coefficients == 514
    assert definition.rank_positions.tolist() == [0, 103, 205, 308, 410, 513]  # round(f * 513)
    notebook = _result(gradients, ranking="published-notebook")
    assert notebook.rank_positions.tolist() == [100, 200, 300, 400]
    assert notebook.rank_fractions.tolist() == [0.2, 0.4, 0.6, 0.8]
    assert SensitivityAccumulator(ranking="published-notebook").rank_fractions.tolist() == [
        0.2,
        0.4,
        0.6,
        0.8,
    ]
    data = notebook.to_dict()
    assert data["ranking"] == "published-notebook" and data["num_coefficients"] == 544
    assert [(r["fraction"], r["position"]) for r in data["ranks"]] == [
        (0.2, 100),
        (0.4, 200),
        (0.6, 300),
        (0.8, 400),
    ]
    loaded = SensitivityResult.load(notebook.save(tmp_path / "notebook.npz"))
    assert loaded.ranking == "published-notebook"
    np.testing.assert_array_equal(loaded.rank_radius_samples, notebook.rank_radius_samples)
    with np.load(tmp_path / "notebook.npz") as archive:  # a file written before the ranking was recorded
        np.savez(tmp_path / "old.npz", **{k: archive[k] for k in archive.files if k != "ranking"})
    assert SensitivityResult.load(tmp_path / "old.npz").ranking == "definition"


def test_notebook_table_counts_30_pairs_twice_and_moves_radii_by_at_most_16_over_17():
    notebook = coefficient_ranking("published-notebook", 32, 32)
    definition = coefficient_ranking("definition", 32, 32)
    counts = np.bincount(notebook.coefficient, minlength=definition.size)
    assert counts.min() == 1 and (counts == 2).sum() == 30 and counts.sum() == 544
    flat = np.arange(544)
    exact = np.sqrt((flat // 17 - 16) ** 2 + (flat % 17 - 16) ** 2)
    assert np.abs(notebook.radius - exact).max() == pytest.approx(16 / 17)
    assert notebook.radius[DC_FLAT] == pytest.approx(16 / 17) and exact[DC_FLAT] == 0


def test_bad_rankings_are_one_sentence():
    with pytest.raises(InputError, match="must be one of definition, published-notebook, not 'notebook'"):
        SensitivityAccumulator(ranking="notebook")
    with pytest.raises(InputError, match="own rank positions"):
        SensitivityAccumulator(rank_fractions=[0.5], ranking="published-notebook")
    accumulator = SensitivityAccumulator(ranking="published-notebook")
    with pytest.raises(InputError, match="32x32 images only .*not 16x16"):
        accumulator.update(torch.zeros(1, 16, 16))
