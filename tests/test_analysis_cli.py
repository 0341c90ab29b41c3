"""``freqtail sensitivity``, ``landscape`` and ``heatmap`` on a tiny run folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from freqtail import train
from freqtail.analysis import SensitivityResult
from freqtail.cli import main
from freqtail.sample_photos import photo_crops

NUM_CLASSES = 16  # the embedded dataset's classes


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    """A tiny embedded-layout dataset (32 test images) so the tests never build the full one."""
    from freqtail.data.embedded import write_embedded_folder
    from freqtail.sample_photos import photo_crops

    crops = photo_crops(32, 4, seed=3)
    test = crops[:32]
    arrays = {
        "train_images": test,
        "train_labels": np.arange(32, dtype=np.int64) % NUM_CLASSES,
        "test_images": test,
        "test_labels": np.arange(32, dtype=np.int64) % NUM_CLASSES,
    }
    return write_embedded_folder(tmp_path_factory.mktemp("tiny-embedded"), arrays)


@pytest.fixture()
def run_dir(tmp_path, data_folder):
    """A run folder holding one checkpoint of a tiny small-cnn, written with the trainer's API."""
    from freqtail.models import build_model_from_spec, model_spec

    spec = model_spec("small-cnn", NUM_CLASSES, options={"width": 4}, normalize="cifar10")
    torch.manual_seed(0)
    model = build_model_from_spec(spec)
    info = {
        "global_step": 1,
        "epoch": 1,
        "model_spec": spec,
        "config": {"dataset": "embedded", "data_root": str(data_folder), "bass": None},
    }
    run = tmp_path / "run"
    train.save_checkpoint(
        run / "checkpoints", model_state=model.state_dict(), info=info, pointers=("last", "best")
    )
    return run


def test_sensitivity_writes_its_files_into_the_run_folder(run_dir, capsys):
    assert main(["sensitivity", str(run_dir), "--n", "12", "--device", "cpu", "--figure-format", "png"]) == 0
    printed = capsys.readouterr().out
    assert "Frequency sensitivity" in printed and "12 images of 32x32" in printed
    for name in ("sensitivity.json", "sensitivity.npz", "figures/sensitivity.png", "figures/long_tail.png"):
        assert (run_dir / name).is_file(), name
    data = json.loads((run_dir / "sensitivity.json").read_text())
    assert data["num_images"] + data["num_zero_gradient"] == 12
    assert data["boundary_band"] == data["spectrum"]["boundary_band"]
    assert data["source"].startswith("embedded test split")
    assert 0.0 <= data["hfc_energy_share"] <= 1.0


def test_sensitivity_published_notebook_ranking_end_to_end(run_dir, tmp_path, capsys):
    common = ["--n", "16", "--device", "cpu", "--figure-format", "png", "--json"]
    assert main(["sensitivity", str(run_dir), *common, "--out", str(tmp_path / "def")]) == 0
    definition = json.loads(capsys.readouterr().out)
    notebook_run = ["sensitivity", str(run_dir), *common, "--ranking", "published-notebook"]
    assert main(notebook_run) == 0
    notebook = json.loads(capsys.readouterr().out)
    assert definition["ranking"] == "definition" and definition["num_coefficients"] == 514
    assert notebook["ranking"] == "published-notebook" and notebook["num_coefficients"] == 544
    assert [(r["fraction"], r["position"]) for r in notebook["ranks"]] == [
        (0.2, 100),
        (0.4, 200),
        (0.6, 300),
        (0.8, 400),
    ]
    assert json.loads((run_dir / "sensitivity.json").read_text())["ranking"] == "published-notebook"
    # Every radius is one of the notebook's: sqrt((idx / 17 - 16)^2 + (idx % 17 - 16)^2), idx < 544.
    idx = np.arange(544)
    table = np.sqrt((idx / 17 - 16) ** 2 + (idx % 17 - 16) ** 2)
    radii = SensitivityResult.load(run_dir / "sensitivity.npz").rank_radius_samples
    assert radii.shape == (4, notebook["num_images"]) and np.isin(radii, table).all()
    # Same images, same boundary, same energy shares: only the ranking differs.
    assert notebook["indices"] == definition["indices"]
    assert notebook["boundary_band"] == definition["boundary_band"]
    assert notebook["hfc_energy_share"] == pytest.approx(definition["hfc_energy_share"], rel=1e-12)


def test_sensitivity_published_notebook_ranking_refuses_other_sizes(tmp_path, capsys):
    """A run on a one-image Tiny-ImageNet tree: 64x64 images, which the notebook does not handle."""
    from freqtail.models import build_model_from_spec, model_spec

    tiny = tmp_path / "tiny-imagenet-200"
    (tiny / "val" / "images").mkdir(parents=True)
    (tiny / "wnids.txt").write_text("n01\n")
    Image.fromarray(photo_crops(64, 1)[0]).save(tiny / "val" / "images" / "val_0.png")
    (tiny / "val" / "val_annotations.txt").write_text("val_0.png\tn01\t0\t0\t10\t10\n")
    spec = model_spec("small-cnn", 200, image_size=64, options={"width": 4})
    config = {"dataset": "tiny-imagenet", "data_root": str(tmp_path), "bass": None}
    info = {"global_step": 1, "epoch": 1, "model_spec": spec, "config": config}
    run = tmp_path / "run"
    state = build_model_from_spec(spec).state_dict()
    train.save_checkpoint(run / "checkpoints", model_state=state, info=info, pointers=("last", "best"))
    assert main(["sensitivity", str(run), "--ranking", "published-notebook", "--figure-format", "png"]) == 2
    err = capsys.readouterr().err
    assert "32x32 images only" in err and "not 64x64" in err and err.count("\n") == 1
    assert not (run / "sensitivity.json").exists()


@pytest.fixture()
def bass_run_dir(tmp_path, data_folder):
    """A run trained on BaSS-converted data: its spec records a BaSS front."""
    from freqtail.models import build_model_from_spec, model_spec

    spec = model_spec("small-cnn", NUM_CLASSES, options={"width": 4}, bass_front=True)
    torch.manual_seed(1)
    model = build_model_from_spec(spec)
    info = {
        "global_step": 1,
        "model_spec": spec,
        "config": {"dataset": "embedded", "data_root": str(data_folder), "bass": "dataset"},
    }
    run = tmp_path / "bass-run"
    train.save_checkpoint(
        run / "checkpoints", model_state=model.state_dict(), info=info, pointers=("last", "best")
    )
    return run


def test_bass_runs_use_the_domain_protocol_unless_end_to_end(bass_run_dir, tmp_path, capsys):
    from freqtail.bass import balance_spectrum
    from freqtail.spectrum import summarize

    domain, end_to_end = tmp_path / "domain", tmp_path / "e2e"
    common = ["--n", "6", "--figure-format", "png"]  # the figures are not what this test is about
    assert main(["sensitivity", str(bass_run_dir), *common, "--out", str(domain)]) == 0
    assert main(["sensitivity", str(bass_run_dir), *common, "--out", str(end_to_end), "--end-to-end"]) == 0
    capsys.readouterr()
    first = json.loads((domain / "sensitivity.json").read_text())
    second = json.loads((end_to_end / "sensitivity.json").read_text())
    assert "domain" in first["source"] and "end-to-end" in second["source"]
    # The domain run measured its boundary on BaSS-converted images, the end-to-end run on raw ones.
    from freqtail.data.embedded import read_embedded_folder
    from freqtail.data.subsets import stratified_subset

    images, labels, _ = read_embedded_folder(_data_root(bass_run_dir), "test")
    chosen = stratified_subset(labels, 6, seed=0)  # the documented subset
    assert first["indices"] == second["indices"] == chosen.tolist()
    raw = images[chosen]
    assert first["spectrum"]["boundary_band"] == summarize(balance_spectrum(raw)).boundary_band
    assert second["spectrum"]["boundary_band"] == summarize(raw).boundary_band


def _data_root(run_dir):
    info = json.loads(next((run_dir / "checkpoints").glob("step-*/checkpoint.json")).read_text())
    return info["config"]["data_root"]


def test_every_analysis_and_evaluate_use_the_same_images_for_the_same_n_and_seed(run_dir, tmp_path, capsys):
    from freqtail.data.embedded import read_embedded_folder
    from freqtail.data.subsets import SUBSET_RULE, stratified_subset

    labels = read_embedded_folder(_data_root(run_dir), "test")[1]
    expected = stratified_subset(labels, 8, seed=2).tolist()
    assert len(set(labels[expected].tolist())) == 8  # 8 of 16 classes, one image each
    common = ["--n", "8", "--subset-seed", "2", "--out", str(tmp_path)]
    png = ["--figure-format", "png"]
    assert main(["sensitivity", str(run_dir), *common, *png]) == 0
    assert main(["landscape", str(run_dir), *common, *png, "--grid", "1"]) == 0
    assert main(["heatmap", str(run_dir), *common, *png, "--batch-size", "512"]) == 0
    assert main(["evaluate", str(run_dir), "--suite", "clean", "--no-progress", *common]) == 0
    capsys.readouterr()
    for name in ("sensitivity", "landscape", "heatmap"):
        data = json.loads((tmp_path / f"{name}.json").read_text())
        assert data["indices"] == expected, name
        assert data["subset"] == SUBSET_RULE and data["subset_seed"] == 2 and data["n_requested"] == 8
    records = json.loads((tmp_path / "results.json").read_text())["results"]
    assert [r["data"]["indices"] for r in records] == [expected]


def test_sensitivity_json_and_out_folder(run_dir, tmp_path, capsys):
    out = tmp_path / "elsewhere"
    argv = ["sensitivity", str(run_dir), "--n", "8", "--out", str(out), "--json", "--top", "0.05"]
    assert main([*argv, "--figure-format", "pdf,svg"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["top_fraction"] == 0.05 and "mean_sorted_magnitude" not in printed
    assert (out / "sensitivity.json").is_file()
    figures = [f"{kind}.{fmt}" for kind in ("sensitivity", "long_tail") for fmt in ("pdf", "svg")]
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(figures)  # no PNG asked for
    assert [Path(f).name for f in printed["figures"]] == figures
    assert not (run_dir / "sensitivity.json").exists()


def test_landscape_writes_a_redrawable_grid(run_dir, capsys):
    from freqtail.analysis import LandscapeResult
    from freqtail.report.analysis_figures import plot_landscape

    argv = ["landscape", str(run_dir), "--grid", "3", "--span", "0.5", "--n", "8", "--seed", "4"]
    assert main(argv + ["--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["grid"] == 3 and printed["seed"] == 4 and printed["num_images"] == 8
    result = LandscapeResult.load(run_dir / "landscape.npz")
    assert result.loss_lfc.shape == (3, 3) and result.span == 0.5
    assert printed["center"]["loss_lfc"] == pytest.approx(result.loss_lfc[1, 1])
    for name in ("landscape", "landscape_3d"):  # every format by default
        assert all((run_dir / "figures" / f"{name}.{fmt}").is_file() for fmt in ("png", "pdf", "svg"))
    assert not list(run_dir.glob("landscape.partial*.npz"))  # every rank's partial file removed
    assert plot_landscape(run_dir / "landscape.npz", run_dir / "redrawn.pdf", formats=["pdf"])[0].is_file()


def test_heatmap_writes_its_files(run_dir, capsys):
    argv = [
        "heatmap",
        str(run_dir),
        "--n",
        "2",
        "--eps",
        "2.0",
        "--batch-size",
        "256",
        "--figure-format",
        "png",
    ]
    assert main(argv) == 0
    assert "Fourier heat map" in capsys.readouterr().out
    data = json.loads((run_dir / "heatmap.json").read_text())
    assert data["eps"] == 2.0 and data["num_images"] == 2
    assert np.array(data["error_rate"]).shape == (32, 32)
    assert (run_dir / "heatmap.npz").is_file() and (run_dir / "figures" / "heatmap.png").is_file()
    assert not (run_dir / "figures" / "heatmap.pdf").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sensitivity", "{missing}"], "no run folder or checkpoint at"),
        (["sensitivity", "{run}", "--top", "2"], "top fraction"),
        (["landscape", "{run}", "--span", "0"], "span"),
        (["heatmap", "{run}", "--figure-format", "bmp"], "--figure-format must be a non-empty"),
        (["sensitivity", "{run}", "--figure-format", ""], "list of png, pdf, svg, not ''"),
        (["heatmap", "{run}", "--eps", "nan"], "eps"),
        (
            ["heatmap", "{run}", "--device", "cuda:7"]
            if not torch.cuda.is_available()
            else ["heatmap", "{run}", "--device", "tpu"],
            "device",
        ),
        (["sensitivity", "{run}", "--dataset", "mnist"], "Unknown dataset"),
        (["sensitivity", "{run}", "--end-to-end"], "its only threat model is standard"),
        (["landscape", "{empty}"], "checkpoint"),
        (["sensitivity", "{run}", "--dataset", "cifar10", "--data-root", "{empty}"], "CIFAR"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(run_dir, tmp_path, capsys, argv, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [a.format(run=run_dir, missing=tmp_path / "nope", empty=empty) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message.lower() in err.lower()
    assert "Traceback" not in err and err.count("\n") == 1


def test_n_must_be_positive(run_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["heatmap", str(run_dir), "--n", "0"])
    assert exit_info.value.code == 2
    assert "positive integer" in capsys.readouterr().err
