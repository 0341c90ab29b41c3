"""Running evaluations on tiny trained models: records, threat-model wiring, corruption orders,
distributed counting, resume and bad input."""
# ruff: noqa: F811  (pytest fixtures imported from test_evaluate_support are parameters here)

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from freqtail.errors import CheckpointError, DatasetNotFoundError, InputError
from freqtail.evaluate import run_evaluation, stratified_subset
from test_evaluate_support import (  # noqa: F401
    eval_cache,
    evaluate,
    evaluate_in_two_processes,
    load_run,
    make_plan,
    shared_cache,
    tiny_runs,
)

MASKING = {"masking_n": 16, "masking_queries": 50}


def _accuracy_count(model, x, y) -> int:
    with torch.no_grad():
        return int((model(x).argmax(dim=1) == y).sum())


def _subset(images_labels, n, seed=0):
    x, y = images_labels
    chosen = torch.from_numpy(stratified_subset(y.numpy(), n, seed))
    return x[chosen], y[chosen]


def test_records_carry_threat_model_settings_n_and_checkpoint(tiny_runs, shared_cache):
    from freqtail.bass import BaSSModule
    from freqtail.data import build_dataset

    model, _ = load_run(tiny_runs["bass"])
    labels = build_dataset("embedded", "test").labels
    records = evaluate(
        model,
        dataset="embedded",
        suites="clean,pgd20",
        threat_model="auto",
        training_bass="dataset",
        n=32,
        batch_size=16,
        seed=3,
        checkpoint={"path": "somewhere", "digest": "abc"},
        checkpoint_tag="best",
        **MASKING,
    )
    by_id = {r["id"]: r for r in records}
    assert set(by_id) == {
        f"best|{tm}|{m}" for tm in ("domain", "end-to-end") for m in ("gradient-masking|eps=8/255", "clean|")
    } | {f"best|{tm}|pgd-20-ce|eps=8/255" for tm in ("domain", "end-to-end")}
    for record in records:
        assert record["threat_model"] in ("domain", "end-to-end")
        assert record["checkpoint"] == {"path": "somewhere", "digest": "abc"}
        assert record["data"]["dataset"] == "embedded" and record["data"]["of"] == 1600
        if record["metric"] != "gradient-masking":  # every number stores the rule's images
            assert record["data"]["indices"] == stratified_subset(labels, 32, 0).tolist()
            assert record["data"]["subset_seed"] == 0 and "stratified" in record["data"]["subset"]
        expected_bass = "dataset" if record["threat_model"] == "domain" else None
        assert record["data"]["bass"] == expected_bass
        assert record["threat_model_setup"]["data_bass"] == expected_bass
    for tm in ("domain", "end-to-end"):
        clean, robust = by_id[f"best|{tm}|clean|"], by_id[f"best|{tm}|pgd-20-ce|eps=8/255"]
        assert clean["total"] == robust["total"] == clean["data"]["n"] == 32
        assert robust["settings"]["eps"] == pytest.approx(8 / 255) and robust["settings"]["steps"] == 20
        assert robust["settings"]["step_size"] == pytest.approx(2 / 255) and robust["settings"]["seed"] == 3
        assert robust["settings"]["loss"] == "ce" and "paper default" in robust["settings"]["budget_source"]
        assert robust["correct"] <= robust["clean_correct"] == clean["correct"]
        masking = by_id[f"best|{tm}|gradient-masking|eps=8/255"]
        verdict = robust["gradient_masking"]  # the whole verdict, not a pointer to the check's record
        assert verdict["checked"] is True and verdict["record"] == masking["id"]
        assert masking["data"]["n"] == 16 and verdict["images"] == 16
        # 16 images cannot hold the 50 correctly classified images a verdict needs.
        assert verdict["state"] == masking["state"] == "too-few-images" and verdict["masked"] is False
        assert verdict["judged"] == masking["report"]["considered"] < 50
        assert verdict["summary"] == masking["summary"] and verdict["summary"].startswith("Too few images")
        # The checked images: 16 of the evaluated 32, chosen from them by the same rule.
        assert verdict["indices"] == masking["data"]["indices"]
        assert set(verdict["indices"]) <= set(robust["data"]["indices"])
        evaluated = np.asarray(robust["data"]["indices"])
        assert verdict["indices"] == evaluated[stratified_subset(labels[evaluated], 16, 0)].tolist()
        assert len(set(labels[verdict["indices"]].tolist())) == 16  # one image of each class
        assert masking["settings"]["bass_front"] is (tm == "end-to-end")
        assert json.loads(json.dumps(record, allow_nan=False))  # JSON-ready, no NaN
    # Independent clean counts: domain = the bare model on offline BaSS images; end-to-end = the
    # model behind a BaSS front on raw images.
    bare = model.without_front().eval()
    x_bass, y = _subset(build_dataset("embedded", "test", bass="dataset").tensors(), 32)
    x_raw, _ = _subset(build_dataset("embedded", "test").tensors(), 32)
    assert by_id["best|domain|clean|"]["correct"] == _accuracy_count(bare, x_bass, y)
    front = model.with_front(BaSSModule(round_mode="straight-through")).eval()
    assert by_id["best|end-to-end|clean|"]["correct"] == _accuracy_count(front, x_raw, y)
    assert by_id["best|end-to-end|clean|"]["correct"] > 32 / 16  # better than chance


def test_band_suites_split_at_each_threat_models_own_boundary(tiny_runs, shared_cache):
    """domain attacks BaSS images, end-to-end raw ones: each gets the 80/20 boundary of its own evaluated
    images, measured here independently with freqtail.spectrum.summarize on the same images."""
    from freqtail.data import build_dataset
    from freqtail.spectrum import summarize

    model, _ = load_run(tiny_runs["bass"])
    records = evaluate(
        model,
        dataset="embedded",
        suites="clean,pgd20,pgd20-lfc,pgd20-hfc",
        training_bass="dataset",
        n=32,
        batch_size=16,
        checkpoint_tag="best",
        **MASKING,
    )
    by_key = {(r["threat_model"], r["metric"]): r for r in records}
    for threat, bass in (("domain", "dataset"), ("end-to-end", None)):
        x, _ = _subset(build_dataset("embedded", "test", bass=bass).tensors(), 32)
        expected = summarize(x)
        b = expected.boundary_band
        lfc, hfc = by_key[(threat, "pgd-20-ce-lfc")], by_key[(threat, "pgd-20-ce-hfc")]
        assert lfc["id"] == f"best|{threat}|pgd-20-ce-lfc|eps=8/255,band<{b}"
        assert hfc["id"] == f"best|{threat}|pgd-20-ce-hfc|eps=8/255,band>={b}"
        for record, band in ((lfc, "lfc"), (hfc, "hfc")):
            s = record["settings"]
            assert (s["band"], s["boundary_band"], s["steps"], s["loss"]) == (band, b, 20, "ce")
            assert s["boundary_band_inscribed"] == expected.boundary_band_inscribed
            assert s["boundary_lfc_share"] == pytest.approx(expected.lfc_power_share, abs=1e-4)
            assert (
                s["boundary_source"].startswith("measured")
                and "32 evaluated test images" in s["boundary_source"]
            )
            assert ("BaSS-converted" in s["boundary_source"]) == (threat == "domain")
            assert s["iteration"].startswith("delta <- clip(x + clamp(P_band(delta + step * sign(grad))")
            assert record["total"] == 32 and record["correct"] <= record["clean_correct"]
            assert record["data"]["indices"] == by_key[(threat, "clean")]["data"]["indices"]
            # A robust suite: the same gradient-masking verdict as PGD-20's.
            assert (
                record["gradient_masking"]["record"]
                == by_key[(threat, "pgd-20-ce")]["gradient_masking"]["record"]
            )
    # BaSS moves power to high frequencies: the BaSS images' boundary is the higher one.
    assert (
        by_key[("domain", "pgd-20-ce-lfc")]["settings"]["boundary_band"]
        > by_key[("end-to-end", "pgd-20-ce-lfc")]["settings"]["boundary_band"]
    )


def test_band_suites_at_the_last_boundary_are_pgd20_and_clean(tiny_runs, shared_cache):
    """32x32 images have bands 0..22, so b = 23: LFC keeps every band and is PGD-20 exactly (the same seeds
    draw the same starts), HFC keeps none and leaves every clean-correct image correct."""
    model, _ = load_run(tiny_runs["standard"])
    plan = make_plan(
        dataset="embedded",
        suites="clean,pgd20,pgd20-lfc,pgd20-hfc",
        n=24,
        batch_size=8,
        masking_n=0,
        band_boundary=23,
    )
    records = run_evaluation(plan, model)
    by_metric = {r["metric"]: r for r in records}
    pgd, lfc, hfc = by_metric["pgd-20-ce"], by_metric["pgd-20-ce-lfc"], by_metric["pgd-20-ce-hfc"]
    assert lfc["id"].endswith("|eps=8/255,band<23") and hfc["id"].endswith("|eps=8/255,band>=23")
    assert lfc["settings"]["boundary_source"] == "given (band_boundary / --band-boundary)"
    assert "boundary_band_inscribed" not in lfc["settings"]  # nothing measured
    assert lfc["correct"] == pgd["correct"] < pgd["clean_correct"]
    assert hfc["correct"] == hfc["clean_correct"] == by_metric["clean"]["correct"]
    # The records are stable: a resume skips all of them.
    done = {r["id"]: r["fingerprint"] for r in records}
    assert run_evaluation(plan, model, skip=lambda rid, fp: done.get(rid) == fp) == []


class _Sized(torch.utils.data.Dataset):
    """A stand-in test set of ``n`` images (to see which test set a threat model reads)."""

    def __init__(self, n: int, classes: int = 16) -> None:
        generator = torch.Generator().manual_seed(n)
        self.x = torch.rand(n, 3, 32, 32, generator=generator)
        self.y = torch.randint(0, classes, (n,), generator=generator)
        self.classes = [str(i) for i in range(classes)]
        self.num_classes = classes
        self.name = "embedded"

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index):
        return self.x[index], int(self.y[index])


def test_each_threat_model_reads_its_own_test_set(tiny_runs, shared_cache):
    model, _ = load_run(tiny_runs["bass"])
    records = evaluate(
        model,
        dataset="embedded",
        suites="clean",
        training_bass="dataset",
        test_sets={None: _Sized(40), "dataset": _Sized(24)},
    )
    sizes = {r["threat_model"]: (r["total"], r["data"]["of"]) for r in records}
    assert sizes == {"domain": (24, 24), "end-to-end": (40, 40)}
    standard, _ = load_run(tiny_runs["standard"])
    only = evaluate(standard, dataset="embedded", suites="clean", test_sets={None: _Sized(40)})
    assert [(r["threat_model"], r["total"]) for r in only] == [("standard", 40)]


def test_bad_input_is_one_sentence(tiny_runs, shared_cache):
    model, _ = load_run(tiny_runs["standard"])
    with pytest.raises(InputError, match="holds no images"):
        evaluate(model, dataset="embedded", suites="clean", test_sets={None: _Sized(0)})
    with pytest.raises(CheckpointError, match="16 output classes but the cifar10 test set has 10"):
        make_plan(dataset="cifar10", suites="clean", model_classes=16)
    with pytest.raises(CheckpointError, match="does not match the dataset"):
        evaluate(model, dataset="embedded", suites="clean", test_sets={None: _Sized(8, classes=40)})
    with pytest.raises(InputError, match="at least 4 classes and embedded has 3"):
        make_plan(dataset="embedded", suites="clean,aa", test_sets={None: _Sized(8, classes=3)})
    with pytest.raises(DatasetNotFoundError, match="--c-root"):
        make_plan(dataset="embedded", suites="corruptions")
    with pytest.raises(DatasetNotFoundError, match="--bc-root"):
        make_plan(dataset="embedded", suites="corruptions", training_bass="dataset", c_root=None)


def _corrupted_cell(images_uint8, name, severity, seed=0):
    from freqtail.data.corruptions import corrupt

    return corrupt(np.ascontiguousarray(images_uint8), name, severity, seed=seed, start_index=0)


def _as_float(images_uint8):
    return torch.from_numpy(np.ascontiguousarray(images_uint8)).permute(0, 3, 1, 2).float() / 255


def test_both_corruption_orders_for_a_bass_model(tiny_runs, shared_cache, tmp_path):
    from freqtail.bass import convert_uint8_images
    from freqtail.data import build_dataset

    model, _ = load_run(tiny_runs["bass"])
    records = evaluate(
        model,
        dataset="embedded",
        suites="corruptions",
        training_bass="dataset",
        n=48,
        generate_c=True,
        work_dir=tmp_path,
        corruptions=["gaussian_noise", "contrast"],
        severities=[2, 5],
        batch_size=16,
    )
    orders = {r["threat_model"]: r for r in records}
    assert orders["domain"]["order"] == "bass-then-corrupt"
    assert orders["end-to-end"]["order"] == "corrupt-then-bass"
    assert orders["domain"]["per_corruption"] != orders["end-to-end"]["per_corruption"]
    assert orders["domain"]["mean"] != orders["end-to-end"]["mean"]
    for record in records:
        assert record["cells"] == 4 and record["data"]["n"] == 48
        assert record["settings"]["origin"] == "generated" and record["settings"]["severities"] == [2, 5]
        cells = [c["accuracy"] for row in record["per_corruption"].values() for c in row.values()]
        assert record["mean"] == pytest.approx(np.mean(cells))
        assert record["categories"]["weather"] is None and record["categories"]["blur"] is None
    # Recompute gaussian noise at severity 5 in each order, independently of the evaluation code.
    raw = build_dataset("embedded", "test")
    chosen = stratified_subset(raw.labels, 48, 0)
    for record in records:  # the generated -C files hold exactly the evaluated test images
        assert record["data"]["indices"] == chosen.tolist() and record["data"]["of"] == 1600
    bass_images = build_dataset("embedded", "test", bass="dataset").images[chosen]
    labels = torch.from_numpy(raw.labels[chosen])
    bare = model.without_front().eval()
    paper_order = _as_float(_corrupted_cell(bass_images, "gaussian_noise", 5))
    expected_domain = _accuracy_count(bare, paper_order, labels)
    assert orders["domain"]["per_corruption"]["gaussian_noise"]["5"]["correct"] == expected_domain
    deployed, _ = convert_uint8_images(_corrupted_cell(raw.images[chosen], "gaussian_noise", 5))
    expected_end_to_end = _accuracy_count(bare, _as_float(deployed), labels)
    found = orders["end-to-end"]["per_corruption"]["gaussian_noise"]["5"]["correct"]
    assert abs(found - expected_end_to_end) <= 1  # the front's float path vs offline float64: rare rounding


def test_resume_skips_records_with_the_same_fingerprint(tiny_runs, shared_cache):
    model, _ = load_run(tiny_runs["standard"])
    plan = make_plan(dataset="embedded", suites="clean,pgd20", n=16, masking_n=0)
    first = run_evaluation(plan, model)
    done = {r["id"]: r["fingerprint"] for r in first}
    again = run_evaluation(plan, model, skip=lambda rid, fp: done.get(rid) == fp)
    assert again == []
    other = make_plan(dataset="embedded", suites="clean,pgd20", n=16, masking_n=0, seed=1)
    changed = run_evaluation(other, model, skip=lambda rid, fp: done.get(rid) == fp)
    assert [r["metric"] for r in changed] == ["pgd-20-ce"]  # clean does not depend on the attack seed


def _distributed_request(work_dir) -> dict:
    return {
        "dataset": "embedded",
        "suites": "clean,pgd20,pgd20-lfc,cw,corruptions",
        "training_bass": "dataset",
        "n": 40,
        "batch_size": 8,
        "seed": 5,
        "masking_n": 0,
        "generate_c": True,
        "work_dir": work_dir,
        "corruptions": ["shot_noise", "pixelate"],
        "severities": [3],
    }


@pytest.mark.slow
def test_two_gloo_processes_count_exactly_like_one(tiny_runs, shared_cache, tmp_path):
    model, _ = load_run(tiny_runs["bass"])
    single = run_evaluation(make_plan(**_distributed_request(tmp_path / "work")), model)
    double = evaluate_in_two_processes(
        tiny_runs["bass"], _distributed_request(tmp_path / "work"), shared_cache, tmp_path
    )

    def counts(records):
        out = {}
        for r in records:
            if r["metric"] == "corruptions":
                out[r["id"]] = {name: row for name, row in r["per_corruption"].items()}
            else:
                out[r["id"]] = (r["correct"], r["clean_correct"], r["total"])
        return out

    assert counts(double) == counts(single)
    assert all(r["world_size"] == 2 for r in double) and all(r["world_size"] == 1 for r in single)
    assert {r["threat_model"] for r in double} == {"domain", "end-to-end"}
    assert next(r for r in single if r["metric"] == "pgd-20-ce")["total"] == 40


@pytest.mark.slow
def test_autoattack_fast_is_labelled_and_bounded_by_pgd_free_clean(tiny_runs, shared_cache, tmp_path):
    model, _ = load_run(tiny_runs["standard"])
    records = evaluate(
        model, dataset="embedded", suites="clean,aa-fast", n=8, batch_size=8, masking_n=0, work_dir=tmp_path
    )
    clean, fast = records
    assert fast["metric"] == "autoattack-fast" and fast["id"].endswith("|autoattack-fast|eps=8/255")
    assert fast["settings"]["attacks"] == ["apgd-ce", "apgd-t"] and fast["settings"]["version"] == "fast"
    assert fast["settings"]["package"].startswith("pyautoattack")
    assert fast["correct"] <= clean["correct"] and fast["total"] == 8
    assert (tmp_path / "autoattack").is_dir()  # per-batch progress kept for resuming


def test_a_given_c_folder_counts_the_rule_s_positions_in_every_cell(tiny_runs, shared_cache, tmp_path):
    from freqtail.data import build_dataset
    from freqtail.data.corrupted_sets import write_corrupted_set

    test = build_dataset("embedded", "test")
    folder = tmp_path / "embedded-C"
    meta = {"dataset": "embedded", "split": "test", "bass": None, "classes": list(test.classes)}
    write_corrupted_set(test.images, test.labels, folder, ["contrast"], [1, 4], progress=False, meta=meta)
    model, _ = load_run(tiny_runs["standard"])
    (record,) = evaluate(
        model, dataset="embedded", suites="corruptions", n=24, c_root=folder, batch_size=24, subset_seed=3
    )
    chosen = stratified_subset(test.labels, 24, seed=3)
    assert record["data"]["indices"] == chosen.tolist() and record["data"]["n"] == 24
    assert record["data"]["of"] == 1600 and "each corruption file" in record["data"]["indices_of"]
    bare = model.without_front().eval()
    for severity in (1, 4):
        x = _as_float(_corrupted_cell(test.images, "contrast", severity)[chosen])
        expected = _accuracy_count(bare, x, torch.from_numpy(test.labels[chosen]))
        assert record["per_corruption"]["contrast"][str(severity)]["correct"] == expected
