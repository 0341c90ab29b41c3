"""freqtail.evaluate parts: corruption means, suites, budgets, threat models, results, tables, compare."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from freqtail.data.corruptions import CATEGORIES, CORRUPTIONS
from freqtail.distributed import DistContext
from freqtail.errors import ConfigError, FreqtailError, InputError
from freqtail.evaluate import (
    EvaluationRequest,
    aggregate_corruptions,
    applicable_threat_models,
    compare_runs,
    default_budget,
    merge_records,
    parse_suites,
    resolve_budget,
    resolve_threat_models,
    results_markdown,
    stratified_subset,
    threat_model_setup,
    write_results,
)
from freqtail.evaluate.compare import RunResults, compare_markdown
from freqtail.evaluate.results import load_results
from freqtail.evaluate.sharding import batch_seed, global_batches, rank_batches
from freqtail.models import FreqtailModel, bass_front
from freqtail.workflows import RunSettings

# ------------------------------------------------------------------------------------ aggregation


def test_category_means_of_a_partial_table_by_hand():
    table = {
        "gaussian_noise": {1: 0.9, 2: 0.7},
        "shot_noise": {1: 0.5, 2: 0.3},
        "defocus_blur": {1: 1.0, 2: 0.8},
    }
    out = aggregate_corruptions(table)
    assert out["categories"]["noise"] == pytest.approx((0.9 + 0.7 + 0.5 + 0.3) / 4)
    assert out["categories"]["blur"] == pytest.approx(0.9)
    assert out["categories"]["weather"] is None and out["categories"]["digital"] is None
    assert out["mean"] == pytest.approx((0.9 + 0.7 + 0.5 + 0.3 + 1.0 + 0.8) / 6)
    assert out["cells"] == 6 and not out["complete"]
    assert "speckle_noise" in out["missing"] and "gaussian_noise" not in out["missing"]


def test_full_table_mean_is_over_cells_not_over_categories():
    # Noise cells 0.2, all other cells 0.8: 4 x 5 noise cells and 15 x 5 others.
    table = {
        name: {s: (0.2 if CORRUPTIONS[name] == "noise" else 0.8) for s in range(1, 6)} for name in CORRUPTIONS
    }
    out = aggregate_corruptions(table)
    assert out["complete"] and out["cells"] == 95
    assert out["categories"] == pytest.approx({"noise": 0.2, "blur": 0.8, "weather": 0.8, "digital": 0.8})
    assert out["mean"] == pytest.approx((20 * 0.2 + 75 * 0.8) / 95)
    assert out["mean"] != pytest.approx(np.mean(list(out["categories"].values())))


def test_counts_are_accepted_and_categories_match_the_paper():
    assert [len(CATEGORIES[c]) for c in ("noise", "blur", "weather", "digital")] == [4, 5, 5, 5]
    out = aggregate_corruptions({"fog": {1: (3, 4), 2: (1, 4)}, "contrast": {3: (0, 4)}})
    assert out["categories"]["weather"] == pytest.approx(0.5)
    assert out["categories"]["digital"] == 0.0
    assert out["mean"] == pytest.approx((0.75 + 0.25 + 0.0) / 3)


@pytest.mark.parametrize(
    "table",
    [{}, {"gaussian_noise": {}}, {"rain": {1: 0.5}}, {"fog": {1: 1.5}}, {"fog": {1: float("nan")}}],
)
def test_bad_corruption_tables_are_refused(table):
    with pytest.raises(InputError):
        aggregate_corruptions(table)


# ------------------------------------------------------------------------------------ suites, budgets


def test_suites_parse_in_order_and_unknown_ones_list_the_valid_ones():
    assert parse_suites("clean, PGD20,cw,clean") == ["clean", "pgd20", "cw"]
    assert parse_suites(["aa-fast", "corruptions"]) == ["aa-fast", "corruptions"]
    assert "aa-fast" not in parse_suites("all")
    with pytest.raises(ConfigError) as err:
        parse_suites("clean,pgd30")
    message = str(err.value)
    assert "'pgd30'" in message and all(
        name in message for name in ("clean", "pgd20", "cw", "aa", "corruptions")
    )
    with pytest.raises(ConfigError):
        parse_suites(" , ")


def test_documented_suite_aliases_are_read_and_a_bare_pgd_is_refused():
    assert parse_suites("pgd-20,autoattack,aafast,AA_FAST") == ["pgd20", "aa", "aa-fast"]
    with pytest.raises(ConfigError) as err:
        parse_suites("clean,pgd")
    assert "pgd20" in str(err.value) and "steps" in str(err.value)


def test_band_suites_parse_are_robust_and_are_labelled_with_their_band():
    from freqtail.evaluate.suites import ROBUST_SUITES, band_pgd_config, band_variant, metric_name

    assert parse_suites("PGD_20_LFC, pgd20-hfc,pgd-20-lfc") == ["pgd20-lfc", "pgd20-hfc"]
    assert (
        {"pgd20-lfc", "pgd20-hfc"}
        <= set(parse_suites("all"))
        <= set(ROBUST_SUITES) | {"clean", "corruptions"}
    )
    assert {"pgd20-lfc", "pgd20-hfc"} <= set(ROBUST_SUITES)  # they get the gradient-masking verdict
    assert (metric_name("pgd20-lfc"), metric_name("pgd20-hfc")) == ("pgd-20-ce-lfc", "pgd-20-ce-hfc")
    assert band_variant("8/255", "pgd20-lfc", 7) == "eps=8/255,band<7"
    assert band_variant("4/255", "pgd20-hfc", 12) == "eps=4/255,band>=12"
    config = band_pgd_config("pgd20-hfc", default_budget((32, 32)), 7)
    assert (config.band, config.boundary_band, config.steps, config.loss) == ("hfc", 7, 20, "ce")
    assert (config.eps, config.step_size) == pytest.approx((8 / 255, 2 / 255))
    with pytest.raises(ConfigError) as err:
        parse_suites("pgd20-mfc")
    assert "pgd20-lfc" in str(err.value) and "pgd20-hfc" in str(err.value)


def test_a_band_boundary_is_checked_before_anything_runs():
    from test_evaluate_support import make_plan

    # 32x32 images: K = floor(hypot(16, 16)) = 22, so b runs from 0 to K + 1 = 23.
    plan = make_plan(dataset="embedded", suites="clean,pgd20-lfc", band_boundary=23)
    assert plan.band_boundary == 23
    assert make_plan(dataset="embedded", suites="pgd20-hfc").band_boundary is None
    for value in (24, -1, 2.5):
        with pytest.raises(ConfigError) as err:
            make_plan(dataset="embedded", suites="pgd20-hfc", band_boundary=value)
        assert f"for 32x32 images must be an integer from 0 to 23, not {value!r}." in str(err.value)
    with pytest.raises(ConfigError) as err:
        make_plan(dataset="embedded", suites="clean,pgd20", band_boundary=7)
    assert str(err.value) == (
        "A band boundary (--band-boundary) applies only to the band suites pgd20-lfc and pgd20-hfc; "
        "add one of them or leave the boundary out."
    )


def test_budgets_by_image_size_flag_and_run_config():
    cifar, imagenet = default_budget((32, 32)), default_budget((224, 224))
    assert (cifar.eps, cifar.step_size) == pytest.approx((8 / 255, 2 / 255))
    assert (imagenet.eps, imagenet.step_size) == pytest.approx((4 / 255, 1 / 255))
    given = resolve_budget((32, 32), eps=EvaluationRequest(eps="4/255").eps)
    assert (given.eps, given.step_size, given.source) == pytest.approx((4 / 255, 1 / 255, "--eps"))
    adversarial = {"objective": "trades", "eps": "2/255", "step_size": "0.5/255"}
    from_config = resolve_budget((32, 32), training_budget=_training_budget(adversarial))
    assert (from_config.eps, from_config.step_size) == pytest.approx((2 / 255, 0.5 / 255))
    assert "run config" in from_config.source
    # An ERM run's eps key is an unused default: the paper default for the image size applies.
    erm = resolve_budget((224, 224), training_budget=_training_budget({"objective": "erm", "eps": "8/255"}))
    assert erm.eps == pytest.approx(4 / 255)


def _training_budget(config):
    """The training budget a run with ``config`` is evaluated at by default (read once when it opens)."""
    info = {"path": "weights.pt", "data": {"dataset": "embedded"}, "config": config}
    return RunSettings.resolve(info).training_budget


def test_an_eps_on_the_wrong_scale_is_one_sentence():
    with pytest.raises(InputError, match=r"0\.\.255 scale; use 8/255"):
        EvaluationRequest(eps="8")


# ------------------------------------------------------------------------------------ threat models


def test_which_threat_models_apply_to_which_training_mode():
    assert applicable_threat_models(None) == ("standard",)
    assert applicable_threat_models("augment") == ("standard",)
    assert applicable_threat_models("dataset") == ("domain", "end-to-end")
    assert applicable_threat_models(None, has_front=True) == ("domain", "end-to-end")
    assert resolve_threat_models("auto", "dataset") == ["domain", "end-to-end"]
    assert resolve_threat_models("both", "dataset") == ["domain", "end-to-end"]
    assert resolve_threat_models("end-to-end", "dataset") == ["end-to-end"]


@pytest.mark.parametrize(
    ("choice", "bass", "words"),
    [
        ("end-to-end", None, "only to models trained on BaSS data"),
        ("domain", "augment", "only as training augmentation"),
        ("both", None, "its only threat model is standard"),
        ("standard", "dataset", "does not apply"),
        ("sideways", None, "Unknown threat model"),
    ],
)
def test_threat_models_that_do_not_apply_are_refused(choice, bass, words):
    with pytest.raises(ConfigError, match=words) as err:
        resolve_threat_models(choice, bass)
    assert str(err.value).count(". ") == 0  # one sentence


def _linear_model() -> FreqtailModel:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 5))
    return FreqtailModel(backbone, normalize="cifar10", front=bass_front())


def test_each_threat_model_uses_the_right_model_view_and_data():
    model = _linear_model()
    domain = threat_model_setup(model, "domain")
    end_to_end = threat_model_setup(model, "end-to-end", bass_strength=0.5)
    standard = threat_model_setup(model, "standard")
    assert domain.data_bass == "dataset" and domain.model.front is None
    assert standard.data_bass is None and standard.model.front is None
    assert end_to_end.data_bass is None and end_to_end.model.front.round_mode == "straight-through"
    assert end_to_end.model.front.strength == 0.5
    # Weights are shared, never copied; every view is in eval mode.
    assert domain.model.backbone is model.backbone and end_to_end.model.backbone is model.backbone
    assert not end_to_end.model.training and not domain.model.training


def test_end_to_end_view_equals_the_model_on_offline_bass_images(natural_crops):
    from freqtail.bass import convert_uint8_images

    model = _linear_model()
    crops = natural_crops(16, 2)  # uint8 (N, 16, 16, 3)
    raw = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    converted, _ = convert_uint8_images(crops)
    offline = torch.from_numpy(converted).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        end_to_end = threat_model_setup(model, "end-to-end").model(raw)
        domain = threat_model_setup(model, "domain").model(offline)
    # The front's uint8 truncation reproduces offline BaSS (up to rare one-grey-level rounding).
    assert torch.allclose(end_to_end, domain, atol=0.05)


def test_end_to_end_attack_stays_in_the_raw_eps_ball_and_gradients_flow(natural_crops):
    from freqtail.attacks import pgd

    model = _linear_model()
    view = threat_model_setup(model, "end-to-end").model
    crops = natural_crops(16, 2)
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        y = view(x).argmax(dim=1)
    eps = 8 / 255
    x_adv = pgd(view, x, y, eps=eps, step_size=2 / 255, steps=5, generator=0)
    assert float((x_adv - x).abs().max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    probe = x.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(view(probe), (y + 1) % 5)
    (gradient,) = torch.autograd.grad(loss, probe)
    assert bool((gradient.flatten(1).abs().sum(dim=1) > 0).all())
    with torch.no_grad():
        assert bool((view(x_adv).argmax(1) != y).any())  # the attack through BaSS does something


# ------------------------------------------------------------------------------------ subsets, ranks


def _rule_by_hand(labels, n, seed):
    """The documented rule, step by step, with plain Python loops (an independent re-implementation)."""
    labels = list(labels)
    rng = np.random.default_rng(seed)
    classes = sorted(set(labels))
    shuffled = {}
    for c in classes:  # step 1: each class's ascending positions, shuffled, in ascending label order
        positions = [i for i, label in enumerate(labels) if label == c]
        shuffled[c] = [positions[j] for j in rng.permutation(len(positions))]
    visit = [classes[j] for j in rng.permutation(len(classes))]  # step 2
    taken, rank = [], 0
    while len(taken) < n:  # step 3: round r takes the rank-r image of every class that has one
        for c in visit:
            if rank < len(shuffled[c]) and len(taken) < n:
                taken.append(shuffled[c][rank])
        rank += 1
    return sorted(taken)  # step 4


def test_stratified_subset_small_case_covers_every_class():
    labels = [0, 0, 0, 1, 1, 2]
    chosen = stratified_subset(labels, 3, seed=0)
    assert chosen.dtype == np.int64 and sorted({labels[i] for i in chosen}) == [0, 1, 2]
    assert 5 in chosen  # the only image of class 2
    for seed in range(5):
        for n in range(1, 7):
            assert stratified_subset(labels, n, seed).tolist() == _rule_by_hand(labels, n, seed)
    assert len({labels[i] for i in stratified_subset(labels, 2, seed=0)}) == 2  # two classes, not one twice


def test_stratified_subset_invariants_on_a_class_ordered_set():
    labels = np.repeat(np.arange(16), 100)  # stored class by class, like the embedded test set
    chosen = stratified_subset(labels, 64, seed=0)
    assert len(chosen) == 64 and np.all(np.diff(chosen) > 0)
    assert np.array_equal(chosen, stratified_subset(labels, 64, seed=0))
    assert not np.array_equal(chosen, stratified_subset(labels, 64, seed=1))
    for n in (1, 15, 17, 64, 100, 799):
        counts = np.bincount(labels[stratified_subset(labels, n, seed=3)], minlength=16)
        assert counts.sum() == n and counts.max() - counts.min() <= 1
    small, large = stratified_subset(labels, 40, seed=2), stratified_subset(labels, 90, seed=2)
    assert set(small.tolist()) <= set(large.tolist())  # one seed: nested subsets
    uneven = np.array([0] * 3 + [1] * 50 + [2] * 50)  # a class runs out: the others share the rest
    counts = np.bincount(uneven[stratified_subset(uneven, 30, seed=0)], minlength=3)
    assert counts.tolist()[0] == 3 and abs(counts[1] - counts[2]) <= 1 and counts.sum() == 30
    assert np.array_equal(stratified_subset(labels[:10], None), np.arange(10))
    assert np.array_equal(stratified_subset(labels[:10], 50), np.arange(10))
    one_class = np.zeros(30, dtype=int)  # one class: the first n of a seeded permutation, sorted
    expected = np.sort(np.random.default_rng(7).permutation(30)[:5])
    assert np.array_equal(stratified_subset(one_class, 5, seed=7), expected)
    with pytest.raises(InputError):
        stratified_subset(labels, 0)
    with pytest.raises(InputError):
        stratified_subset(labels, 5, seed=-1)


def test_dataset_labels_are_read_without_loading_images():
    from freqtail.data import ArrayDataset
    from freqtail.data.subsets import UNLABELLED_RULE, choose_subset, dataset_labels

    images = np.zeros((6, 2, 2, 3), dtype=np.uint8)
    arrays = ArrayDataset(images, np.array([0, 0, 0, 1, 1, 2]), ["a", "b", "c"])
    assert dataset_labels(arrays).tolist() == [0, 0, 0, 1, 1, 2]

    class Folder(torch.utils.data.Dataset):
        targets = [2, 1, 0]

        def __len__(self):
            return 3

        def __getitem__(self, index):
            raise AssertionError("labels must not load images")

    assert dataset_labels(Folder()).tolist() == [2, 1, 0]
    subset = torch.utils.data.Subset(arrays, [5, 0, 3])
    assert dataset_labels(subset).tolist() == [2, 0, 1]
    both = torch.utils.data.ConcatDataset([arrays, Folder()])
    assert dataset_labels(both).tolist() == [0, 0, 0, 1, 1, 2, 2, 1, 0]
    bare = torch.utils.data.TensorDataset(torch.zeros(6, 3, 2, 2), torch.zeros(6))
    assert dataset_labels(bare) is None
    choice = choose_subset(bare, 3, seed=1)  # no labels: one class, and the record says so
    assert choice.rule == UNLABELLED_RULE
    assert choice.indices.tolist() == sorted(np.random.default_rng(1).permutation(6)[:3].tolist())
    assert (
        choose_subset(arrays, 3, seed=0).indices.tolist() == stratified_subset(arrays.labels, 3, 0).tolist()
    )
    assert choose_subset(arrays, None).to_dict()["subset"] == "all"


def test_ranks_share_the_global_batches_round_robin():
    batches = global_batches(np.arange(23), 5)
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    mine = [rank_batches(batches, DistContext(rank, 2)) for rank in range(2)]
    assert [n for n, _ in mine[0]] == [0, 2, 4] and [n for n, _ in mine[1]] == [1, 3]
    together = np.sort(np.concatenate([b for part in mine for _, b in part]))
    assert np.array_equal(together, np.arange(23))
    assert batch_seed(0, 3) == batch_seed(0, 3) != batch_seed(0, 4)


# ------------------------------------------------------------------------------------ results.json


def _record(rid: str, accuracy: float, threat: str, metric: str, n: int = 100, **extra) -> dict:
    return {
        "id": rid,
        "threat_model": threat,
        "metric": metric,
        "accuracy": accuracy,
        "correct": None if accuracy is None else round(accuracy * n),
        "total": n,
        "data": {"dataset": "embedded", "n": n, "of": 1600, "subset_seed": 0},
        "settings": {},
        **extra,
    }


def test_results_merge_replaces_same_ids_and_keeps_the_rest(tmp_path):
    path = tmp_path / "results.json"
    write_results(path, [_record("best|standard|clean|", 0.5, "standard", "clean")])
    write_results(path, [_record("best|standard|pgd-20-ce|eps=8/255", 0.2, "standard", "pgd-20-ce")])
    data = write_results(path, [_record("best|standard|clean|", 0.6, "standard", "clean")])
    assert [r["id"] for r in data["results"]] == ["best|standard|clean|", "best|standard|pgd-20-ce|eps=8/255"]
    assert load_results(tmp_path)["results"][0]["accuracy"] == 0.6
    assert merge_records([{"id": "a", "v": 1}], [{"id": "b", "v": 2}, {"id": "a", "v": 3}]) == [
        {"id": "a", "v": 3},
        {"id": "b", "v": 2},
    ]


def test_a_damaged_results_file_is_never_overwritten(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="damaged"):
        write_results(path, [_record("x", 0.5, "standard", "clean")])
    assert path.read_text(encoding="utf-8") == "{not json"
    (tmp_path / "other.json").write_text(json.dumps({"format": "something"}), encoding="utf-8")
    with pytest.raises(InputError, match="not a freqtail results file"):
        load_results(tmp_path / "other.json")


# ------------------------------------------------------------------------------------ tables, compare


def _corruption_record(rid: str, threat: str, order: str, noise: float, mean: float) -> dict:
    return {
        **_record(rid, mean, threat, "corruptions", n=50),
        "order": order,
        "categories": {"noise": noise, "blur": 0.5, "weather": 0.5, "digital": 0.5},
        "mean": mean,
        "cells": 95,
        "per_corruption": {"gaussian_noise": {"1": {"accuracy": noise, "correct": 1, "total": 2}}},
        "settings": {"c_dir": "C", "severities": [1, 2, 3, 4, 5], "published": True},
    }


def _verdict(state: str, summary: str, created: str, judged: int = 80) -> dict:
    return {
        "state": state,
        "checked": state != "not-run",
        "judged": judged,
        "images": 100,
        "minimum": 50,
        "flags": ["square-beats-pgd"] if state == "possible-masking" else [],
        "summary": summary,
        "indices": list(range(100)),
        "record": "best|domain|gradient-masking|eps=8/255",
        "created": created,
    }


def test_results_markdown_has_the_papers_columns_and_notes():
    records = [
        _record("best|domain|clean|", 0.8922, "domain", "clean"),
        _record(
            "best|domain|pgd-20-ce|eps=8/255",
            0.5961,
            "domain",
            "pgd-20-ce",
            gradient_masking=_verdict("no-sign", "All fine.", "t1"),
        ),
        _record("best|end-to-end|clean|", 0.89, "end-to-end", "clean"),
        _corruption_record(
            "best|domain|corruptions|bass-then-corrupt", "domain", "bass-then-corrupt", 0.6, 0.7
        ),
    ]
    records.append(
        {
            **_record("best|domain|gradient-masking|eps=8/255", None, "domain", "gradient-masking"),
            "summary": "The check's own record is not what the table quotes.",
        }
    )
    text = results_markdown({"results": records, "updated": "now"})
    assert "| checkpoint | threat model | Clean | PGD-20 |" in text
    assert "| best | domain | 89.22 | 59.61 |" in text
    assert "| best | end-to-end | 89.00 | – |" in text
    assert "| Clean | Noise | Blur | Weather | Digital | Mean |" in text
    # Clean on 100 images, corruptions on 50 per cell: the row says so in every cell.
    assert (
        "| best | domain | bass-then-corrupt | 89.22 (n=100) | 60.00 (n=50) | 50.00 (n=50) | 50.00 (n=50) "
        "| 50.00 (n=50) | 70.00 (n=50) |"
    ) in text
    assert "Gradient-masking check (`best`, domain; PGD-20, checked t1): All fine." in text
    assert "not what the table quotes" not in text
    assert "n = 100 of 1600" in text


def _band_record(tag: str, threat: str, band: str, boundary: int, accuracy: float, n: int = 100, **extra):
    metric = f"pgd-20-ce-{band}"
    variant = f"eps=8/255,band{'<' if band == 'lfc' else '>='}{boundary}"
    settings = {
        "attack": "pgd",
        "name": metric,
        "eps_255": 8.0,
        "step_size_255": 2.0,
        "steps": 20,
        "loss": "ce",
        "restarts": 1,
        "random_start": True,
        "seed": 0,
        "band": band,
        "boundary_band": boundary,
        "boundary_band_inscribed": boundary - 1,
        "boundary_lfc_share": 0.7934,
        "boundary_source": f"measured on the {n} evaluated images",
        "iteration": "the documented iteration",
    }
    return {
        **_record(f"{tag}|{threat}|{metric}|{variant}", accuracy, threat, metric, n=n, **extra),
        "settings": settings,
    }


def _band_run_records(masked: bool = False) -> list[dict]:
    """A BaSS run: domain (b = 15) and end-to-end (b = 6), clean, PGD-20 and both band attacks."""
    verdict = _verdict("possible-masking" if masked else "no-sign", "Checked.", "t1")
    return [
        _record("best|domain|clean|", 0.66, "domain", "clean"),
        _record("best|domain|pgd-20-ce|eps=8/255", 0.09, "domain", "pgd-20-ce", gradient_masking=verdict),
        _band_record("best", "domain", "lfc", 15, 0.13, gradient_masking=verdict),
        _band_record("best", "domain", "hfc", 15, 0.31, gradient_masking=verdict),
        _record("best|end-to-end|clean|", 0.65, "end-to-end", "clean"),
        _record("best|end-to-end|pgd-20-ce|eps=8/255", 0.04, "end-to-end", "pgd-20-ce"),
        _band_record("best", "end-to-end", "lfc", 6, 0.42),
        _band_record("best", "end-to-end", "hfc", 6, 0.11, n=50),
    ]


def test_the_band_table_shows_each_rows_boundary_and_marks():
    from freqtail.evaluate.tables import band_table

    records = _band_run_records(masked=True)
    text = results_markdown({"results": records, "updated": "now"})
    # Table 1 keeps the paper's columns; the band numbers have their own table.
    assert "| checkpoint | threat model | Clean | PGD-20 |" in text and "LFC |" not in text.split("##")[1]
    assert "## Robust accuracy by band (%)" in text
    assert (
        "| checkpoint | threat model | boundary b | Clean | PGD-20 | PGD-20 LFC (bands < b) "
        "| PGD-20 HFC (bands >= b) | n |"
    ) in text
    assert "| best | domain | 15 | 66.00 | 9.00 † | 13.00 † | 31.00 † | 100 |" in text
    # HFC on 50 images, the rest on 100: every cell of that row names its n.
    assert (
        "| best | end-to-end | 6 | 65.00 (n=100) | 4.00 (n=100) | 42.00 (n=100) | 11.00 (n=50) | 50, 100 |"
    ) in text
    table = band_table(records)
    assert (
        "- `best` domain: b = 15: measured on the 100 evaluated images; the bands < b hold 79.34% of" in table
    )
    assert "b over the inscribed bands alone (the paper's range): 14." in table
    assert "- Iteration: the documented iteration." in table
    assert "perturbation in the bands < b" in table and "perturbation in the bands >= b" in table
    assert "Gradient-masking check (`best`, domain; PGD-20, PGD-20 LFC, PGD-20 HFC, checked t1)" in table
    assert band_table([r for r in records if "-lfc" not in r["metric"] and "-hfc" not in r["metric"]]) is None


def test_band_rows_keep_budgets_and_boundaries_apart():
    from freqtail.evaluate.tables import band_rows, band_table

    records = [
        _record("best|standard|clean|", 0.7, "standard", "clean"),
        _record("best|standard|pgd-20-ce|eps=8/255", 0.1, "standard", "pgd-20-ce"),
        _band_record("best", "standard", "lfc", 6, 0.2),
        _band_record("best", "standard", "lfc", 9, 0.3),  # a second boundary, given explicitly
    ]
    records[-1]["id"] = "best|standard|pgd-20-ce-lfc|eps=4/255,band<9"  # and another budget
    rows = band_rows(records)
    assert [(r["eps"], r["boundary"], sorted(r["records"])) for r in rows] == [
        ("eps=4/255", 9, ["Clean", "PGD-20 LFC"]),
        ("eps=8/255", 6, ["Clean", "PGD-20", "PGD-20 LFC"]),
    ]
    text = band_table(records)
    assert "| checkpoint | threat model | budget | boundary b |" in text
    assert "| best | standard | 4/255 | 9 | 70.00 | – | 30.00 | – | 100 |" in text


def test_compare_puts_band_rows_side_by_side_and_says_when_boundaries_differ():
    erm = _run(
        "erm",
        [
            _record("best|standard|clean|", 0.75, "standard", "clean"),
            _record("best|standard|pgd-20-ce|eps=8/255", 0.07, "standard", "pgd-20-ce"),
            _band_record("best", "standard", "lfc", 6, 0.20),
            _band_record("best", "standard", "hfc", 6, 0.23),
        ],
        bass=False,
    )
    bass = _run("erm-bass", _band_run_records(), bass=True)
    result = compare_runs([erm, bass])
    assert result["bands"]["columns"] == ["Clean", "PGD-20", "PGD-20 LFC", "PGD-20 HFC"]
    rows = {(r["run"], r["threat_model"]): r for r in result["bands"]["rows"]}
    domain, end_to_end = rows[("erm-bass", "domain")], rows[("erm-bass", "end-to-end")]
    assert (domain["boundary"], end_to_end["boundary"]) == (15, 6)
    assert domain["delta"]["values"]["PGD-20 LFC"] == pytest.approx(0.13 - 0.20)
    assert end_to_end["delta"]["values"]["PGD-20 HFC"] == pytest.approx(0.11 - 0.23)
    assert (domain["delta"]["vs_boundary"], end_to_end["delta"]["n_differs"]) == (6, ["PGD-20 HFC"])
    text = compare_markdown(result)
    assert "## Robust accuracy by band (%)" in text
    assert "| erm | standard | 6 | 75.00 | 7.00 | 20.00 | 23.00 |" in text
    assert "| Δ vs erm | domain − standard | 15 vs 6 | -9.00 | +2.00 | -7.00 | +8.00 |" in text
    assert "| Δ vs erm | end-to-end − standard | 6 | -10.00 | -3.00 | +22.00 | -12.00 |" in text
    assert "Δ of erm-bass (domain, b = 15) vs erm (standard, b = 6): the LFC / HFC columns compare" in text
    assert "(end-to-end, b = 6) vs erm" not in text  # same boundary: nothing to warn about


def _masking_results(tmp_path):
    """results.json after two evaluations: PGD-20 with a first check (possible masking), then CW-20
    with a second check whose record replaces the first one's."""
    path = tmp_path / "results.json"
    first = _verdict("possible-masking", "Possible gradient masking on 80 images (first check).", "t1")
    second = _verdict("no-sign", "No sign of gradient masking on 90 images (second check).", "t2", 90)
    check = "best|domain|gradient-masking|eps=8/255"
    write_results(
        path,
        [
            _record(check, None, "domain", "gradient-masking", state="possible-masking", summary="first"),
            _record("best|domain|clean|", 0.8, "domain", "clean"),
            _record("best|domain|pgd-20-ce|eps=8/255", 0.4, "domain", "pgd-20-ce", gradient_masking=first),
        ],
    )
    data = write_results(
        path,
        [
            _record(check, None, "domain", "gradient-masking", state="no-sign", summary="second"),
            _record("best|domain|pgd-20-cw|eps=8/255", 0.35, "domain", "pgd-20-cw", gradient_masking=second),
        ],
    )
    return path, data


def test_a_later_masking_check_never_hides_an_earlier_verdict(tmp_path):
    path, data = _masking_results(tmp_path)
    stored = {r["id"]: r for r in data["results"]}
    assert stored["best|domain|gradient-masking|eps=8/255"]["summary"] == "second"  # replaced
    text = results_markdown(data)
    row = next(line for line in text.splitlines() if line.startswith("| best | domain |"))
    assert row == "| best | domain | 80.00 | 40.00 † | 35.00 |"
    assert "† Gradient-masking check (`best`, domain; PGD-20, checked t1): Possible gradient masking" in text
    assert "Gradient-masking check (`best`, domain; CW-20, checked t2): No sign of gradient masking" in text
    assert "† = the number's own gradient-masking check found possible gradient masking" in text
    other = tmp_path / "other"
    other.mkdir()
    write_results(other / "results.json", [_record("best|standard|clean|", 0.7, "standard", "clean")])
    from freqtail.evaluate import load_run_results

    comparison = compare_runs([load_run_results(other, "ERM"), load_run_results(tmp_path, "BaSS")])
    domain = next(r for r in comparison["adversarial"]["rows"] if r["run"] == "BaSS")
    assert domain["masking"]["PGD-20"]["state"] == "possible-masking"
    assert domain["masking"]["CW-20"]["state"] == "no-sign"
    markdown = compare_markdown(comparison)
    assert "| BaSS | domain | 80.00 | 40.00 † | 35.00 |" in markdown
    assert (
        "Gradient-masking check of BaSS (domain; PGD-20, checked t1): Possible gradient masking" in markdown
    )
    assert "Gradient-masking check of BaSS (domain; CW-20, checked t2): No sign" in markdown


def test_verdict_states_and_older_records():
    from freqtail.attacks.masking_verdicts import verdict_state
    from freqtail.evaluate.tables import record_verdict

    assert verdict_state(None, []) == "not-run"
    assert verdict_state(8, ["square-beats-pgd"]) == "too-few-images"  # 8 images: no verdict
    assert verdict_state(49, [], minimum=50) == "too-few-images"
    assert verdict_state(50, [], minimum=50) == "no-sign"
    assert verdict_state(50, ["zero-input-gradients"], minimum=50) == "possible-masking"
    assert verdict_state(3, [], minimum=1) == "no-sign"
    assert record_verdict({"metric": "pgd-20-ce"})["state"] == "not-run"
    old = record_verdict(
        {"gradient_masking": {"checked": True, "record": "x", "masked": True, "summary": "S"}}
    )
    assert old["state"] == "possible-masking" and "older freqtail" in old["summary"]
    assert record_verdict({"gradient_masking": {"checked": True, "record": "x"}})["state"] == "unknown"
    assert record_verdict({"gradient_masking": {"checked": False}})["state"] == "not-run"
    few = record_verdict({"gradient_masking": _verdict("too-few-images", "Too few images to judge.", "t")})
    assert few["words"] == "too few images to judge"
    text = results_markdown(
        {
            "results": [
                _record("best|standard|clean|", 0.5, "standard", "clean", n=8),
                _record(
                    "best|standard|pgd-20-ce|eps=8/255",
                    0.25,
                    "standard",
                    "pgd-20-ce",
                    n=8,
                    gradient_masking=_verdict("too-few-images", "Too few images to judge: 4.", "t", 4),
                ),
            ]
        }
    )
    assert "| best | standard | 50.00 | 25.00 ‡ |" in text and "Too few images to judge: 4." in text
    assert "POSSIBLE GRADIENT MASKING" not in text and "†" not in text


def test_a_row_of_mixed_image_counts_shows_n_per_column():
    records = [
        _record("best|standard|clean|", 0.5, "standard", "clean", n=500),
        _record("best|standard|pgd-20-ce|eps=8/255", 0.25, "standard", "pgd-20-ce", n=100),
        _record("last|standard|clean|", 0.5, "standard", "clean", n=100),
        _record("last|standard|pgd-20-ce|eps=8/255", 0.2, "standard", "pgd-20-ce", n=100),
    ]
    text = results_markdown({"results": records})
    assert "| best | standard | 50.00 (n=500) | 25.00 (n=100) |" in text
    assert "| last | standard | 50.00 | 20.00 |" in text  # one n: no clutter
    assert "Rows `best` standard mix numbers measured on different numbers of images" in text
    base = _run("A", [dict(r) for r in records[:2]], bass=False)
    other = _run("B", [dict(r) for r in records[2:]], bass=False)
    markdown = compare_markdown(compare_runs([base, other]))
    assert "| A | standard | 50.00 (n=500) | 25.00 (n=100) |" in markdown
    assert "| B | standard | 50.00 | 20.00 |" in markdown


def test_replacing_a_record_measured_on_other_images_warns(tmp_path):
    from freqtail.evaluate.results import replacement_warnings

    path = tmp_path / "results.json"
    first = _record("best|standard|pgd-20-ce|eps=8/255", 0.2, "standard", "pgd-20-ce", n=500)
    first["data"]["indices"] = list(range(500))
    warnings: list[str] = []
    write_results(path, [first], warn=warnings.append)
    assert warnings == []
    smaller = _record("best|standard|pgd-20-ce|eps=8/255", 0.3, "standard", "pgd-20-ce", n=100)
    write_results(path, [smaller], warn=warnings.append)
    assert len(warnings) == 1
    assert "measured on 500 images with one measured on 100 images" in warnings[0]
    same_n = {**first, "data": {**first["data"], "indices": list(range(1, 501))}}
    assert "different set of 500 images" in replacement_warnings([first], [same_n])[0]
    assert replacement_warnings([first], [dict(first)]) == []
    assert replacement_warnings([first], [_record("other", 0.1, "standard", "clean", n=3)]) == []
    other_steps = {**first, "settings": {**first.get("settings", {}), "step_size": 0.0, "steps": 20}}
    first_steps = {**first, "settings": {**first.get("settings", {}), "step_size": 2 / 255, "steps": 20}}
    (changed,) = replacement_warnings([first_steps], [other_steps])
    assert f"with other settings (step_size {2 / 255!r} -> 0.0)" in changed
    check = _record("best|standard|gradient-masking|eps=8/255", None, "standard", "gradient-masking", n=100)
    smaller_check = {**check, "data": {**check["data"], "n": 16}}
    assert replacement_warnings([check], [smaller_check]) == []  # not a table's number


def test_corruption_detail_header_names_the_severities_shown():
    def corruption(rid, threat, levels):
        record = _corruption_record(rid, threat, "none", 0.6, 0.7)
        record["per_corruption"] = {
            "gaussian_noise": {str(s): {"accuracy": 0.5, "correct": 1, "total": 2} for s in levels}
        }
        record["settings"]["severities"] = list(levels)
        return record

    three = results_markdown(
        {"results": [corruption("best|standard|corruptions|none", "standard", [1, 3, 5])]}
    )
    assert "Per corruption: mean over severities 1, 3, 5 (accuracy at severity 1 / 3 / 5):" in three
    assert "severities 1, 3, 5, n = 50 images per cell" in three
    one = results_markdown({"results": [corruption("best|standard|corruptions|none", "standard", [3])]})
    assert "Per corruption: accuracy at severity 3:" in one and "1 / 2" not in one
    mixed = results_markdown(
        {
            "results": [
                corruption("best|standard|corruptions|none", "standard", [3]),
                corruption("last|standard|corruptions|none", "standard", [1, 2]),
            ]
        }
    )
    assert "mean over the severities named in each column" in mixed
    assert "best standard (none), severities 3" in mixed and "last standard (none), severities 1/2" in mixed


def test_the_budget_source_is_quoted_from_each_record():
    def pgd(rid, source):
        record = _record(rid, 0.3, "standard", "pgd-20-ce")
        record["settings"] = {
            "attack": "pgd",
            "name": "pgd-20-ce",
            "eps_255": 8.0,
            "step_size_255": 2.0,
            "steps": 20,
            "loss": "ce",
            "restarts": 1,
            "random_start": True,
            "seed": 0,
            "budget_source": source,
        }
        return record

    default = results_markdown({"results": [pgd("best|standard|pgd-20-ce|eps=8/255", "paper default")]})
    assert "(budget: paper default)" in default and "--eps" not in default
    given = results_markdown(
        {
            "results": [
                pgd("best|standard|pgd-20-ce|eps=8/255", "--eps"),
                pgd("last|standard|pgd-20-ce|eps=8/255", "paper default"),
            ]
        }
    )
    assert "(budget: --eps) [`best` standard]" in given
    assert "(budget: paper default) [`last` standard]" in given


def _run(label: str, records: list[dict], bass: bool) -> RunResults:
    for record in records:
        record["checkpoint"] = {"bass": "dataset" if bass else None}
    return RunResults(label, f"runs/{label}", records)


def test_compare_pairs_each_bass_run_with_the_baseline_before_it():
    pgd_at = _run(
        "PGD-AT",
        [
            _record("best|standard|clean|", 0.8350, "standard", "clean"),
            _record("best|standard|pgd-20-ce|eps=8/255", 0.5272, "standard", "pgd-20-ce"),
        ],
        bass=False,
    )
    pgd_at_bass = _run(
        "PGD-AT+BaSS",
        [
            _record("best|domain|clean|", 0.8922, "domain", "clean"),
            _record("best|domain|pgd-20-ce|eps=8/255", 0.5961, "domain", "pgd-20-ce"),
            _record("best|end-to-end|clean|", 0.8900, "end-to-end", "clean"),
            _record("best|end-to-end|pgd-20-ce|eps=8/255", 0.3000, "end-to-end", "pgd-20-ce", n=50),
        ],
        bass=True,
    )
    trades = _run("TRADES", [_record("best|standard|clean|", 0.8215, "standard", "clean")], bass=False)
    trades_bass = _run("TRADES+BaSS", [_record("best|domain|clean|", 0.8720, "domain", "clean")], bass=True)
    result = compare_runs([pgd_at, pgd_at_bass, trades, trades_bass])
    rows = result["adversarial"]["rows"]
    domain = next(r for r in rows if r["run"] == "PGD-AT+BaSS" and r["threat_model"] == "domain")
    assert domain["delta"]["vs"] == "PGD-AT"
    assert domain["delta"]["values"]["Clean"] == pytest.approx(0.8922 - 0.8350)
    assert domain["delta"]["values"]["PGD-20"] == pytest.approx(0.5961 - 0.5272)
    end_to_end = next(r for r in rows if r["run"] == "PGD-AT+BaSS" and r["threat_model"] == "end-to-end")
    assert end_to_end["delta"]["values"]["PGD-20"] == pytest.approx(0.30 - 0.5272)
    assert end_to_end["delta"]["n_differs"] == ["PGD-20"]
    trades_row = next(r for r in rows if r["run"] == "TRADES+BaSS")
    assert trades_row["delta"]["vs"] == "TRADES"
    assert trades_row["delta"]["values"]["Clean"] == pytest.approx(0.8720 - 0.8215)
    assert "delta" not in next(r for r in rows if r["run"] == "TRADES")
    text = compare_markdown(result)
    assert "| Δ vs PGD-AT | domain − standard | +5.72 | +6.89 |" in text
    assert "| Δ vs TRADES | domain − standard | +5.05 | – |" in text
    assert "different numbers of evaluated images in PGD-20" in text
    # A fixed baseline compares every other run with it.
    forced = compare_runs([pgd_at, pgd_at_bass, trades, trades_bass], baseline="TRADES")
    first = next(r for r in forced["adversarial"]["rows"] if r["run"] == "PGD-AT")
    assert first["delta"]["vs"] == "TRADES"
    assert first["delta"]["values"]["Clean"] == pytest.approx(0.8350 - 0.8215)


def test_compare_corruption_deltas_and_bad_requests():
    base = _run(
        "AugMix",
        [
            _record("best|standard|clean|", 0.95, "standard", "clean"),
            _corruption_record("best|standard|corruptions|none", "standard", "none", 0.8462, 0.8991),
        ],
        bass=False,
    )
    plus = _run(
        "AugMix+BaSS",
        [
            _record("best|standard|clean|", 0.96, "standard", "clean"),
            _corruption_record("best|standard|corruptions|none", "standard", "none", 0.8866, 0.9096),
        ],
        bass=False,
    )
    plus.records[0]["checkpoint"]["bass_branch"] = True  # AugMix with a BaSS branch is a BaSS run
    result = compare_runs([base, plus])
    row = result["corruptions"]["rows"][1]
    assert row["delta"]["values"]["Noise"] == pytest.approx(0.8866 - 0.8462)
    assert row["delta"]["values"]["Mean"] == pytest.approx(0.9096 - 0.8991)
    assert "| Δ vs AugMix | standard − standard |  | +1.00 | +4.04 |" in compare_markdown(result)
    with pytest.raises(FreqtailError, match="at least two runs"):
        compare_runs([base])
    with pytest.raises(FreqtailError, match="none of the compared runs"):
        compare_runs([base, plus], baseline="nope")
    with pytest.raises(FreqtailError, match="no checkpoint 'last'"):
        compare_runs([base, plus], checkpoint="last")


def test_every_table_says_which_images_chose_the_checkpoint():
    on_val = {"rule": "best", "split": "val", "n": 500, "metric": "val_robust_acc"}
    on_test = {"rule": "best", "split": "test", "n": 1000, "metric": "test_robust_acc"}
    last = {"rule": "last-epoch", "split": None, "n": None, "metric": None}
    records = [
        _record("best|standard|clean|", 0.8, "standard", "clean", checkpoint={"selected_on": on_val}),
        _record("last|standard|clean|", 0.7, "standard", "clean", checkpoint={"selected_on": last}),
    ]
    text = results_markdown({"results": records})
    assert (
        "Checkpoint `best`: chosen as best on 500 held-out training images (selection: val) "
        "by val_robust_acc." in text
    )
    assert "Checkpoint `last`: the last epoch's weights (no checkpoint selection)." in text
    # The authors' protocol says so; a run from before selected_on was recorded still names test images.
    tested = _run("ERM", [_record("best|standard|clean|", 0.8, "standard", "clean")], bass=False)
    tested.records[0]["checkpoint"]["selected_on"] = on_test
    older = _run("Old", [_record("best|standard|clean|", 0.7, "standard", "clean")], bass=False)
    older.records[0]["checkpoint"]["which"] = "best"
    compared = compare_markdown(compare_runs([tested, older]))
    assert "Checkpoint `best` of ERM: chosen as best on 1000 test images by test_robust_acc" in compared
    assert "the authors' protocol" in compared
    assert "Checkpoint `best` of Old: chosen as best on test images (recorded before" in compared


def test_generated_corruption_sets_are_keyed_by_the_implementation_versions(tmp_path, monkeypatch):
    import freqtail.bass as bass
    from freqtail.data import corrupted_sets
    from freqtail.evaluate.corruption_eval import generated_folder

    def folder():
        return generated_folder(tmp_path, "embedded", "corrupt", np.arange(4), [1, 3], 0, 1.0)

    first = folder()
    assert folder() == first  # same inputs, same folder (resumable)
    monkeypatch.setattr(corrupted_sets, "FORMAT_VERSION", corrupted_sets.FORMAT_VERSION + 1)
    newer_format = folder()
    monkeypatch.setattr(bass, "BASS_VERSION", bass.BASS_VERSION + "-next")
    assert len({first, newer_format, folder()}) == 3
