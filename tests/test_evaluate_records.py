"""The record schema (freqtail.evaluate.records): ids, round trips, older files, and the per-image bits
checked against independent per-image computations (one process and two gloo processes)."""
# ruff: noqa: F811  (pytest fixtures imported from test_evaluate_support are parameters here)

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch

from freqtail.data import build_dataset
from freqtail.data.corrupted_sets import load_corrupted_set
from freqtail.errors import InputError
from freqtail.evaluate import run_evaluation
from freqtail.evaluate.budgets import default_budget
from freqtail.evaluate.records import (
    PER_IMAGE_ENCODING,
    PerImage,
    Record,
    RecordId,
    pack_mask,
    unpack_mask,
)
from freqtail.evaluate.results import load_records, load_results, write_results
from freqtail.evaluate.sharding import batch_seed, global_batches
from freqtail.evaluate.suites import SUITE_SPECS
from freqtail.formatting import MISSING, percent
from test_evaluate_support import (  # noqa: F401
    eval_cache,
    evaluate_in_two_processes,
    load_run,
    make_plan,
    shared_cache,
    tiny_runs,
)

# ------------------------------------------------------------------------------------------- ids


def test_record_id_has_named_parts_and_writes_todays_text():
    rid = RecordId.parse("best|domain|pgd-20-ce|eps=8/255,band<7")
    assert (rid.checkpoint, rid.threat_model, rid.metric, rid.variant) == (
        "best",
        "domain",
        "pgd-20-ce",
        "eps=8/255,band<7",
    )
    assert str(rid) == "best|domain|pgd-20-ce|eps=8/255,band<7"
    assert str(RecordId("last", "standard", "clean")) == "last|standard|clean|"
    assert RecordId.parse("last|standard|clean|").variant == ""
    assert RecordId.of({"id": "a|b|c|d"}) == RecordId("a", "b", "c", "d")


@pytest.mark.parametrize("text", ["best|domain|clean", "a|b|c|d|e", "", None, 7])
def test_a_malformed_record_id_is_one_sentence(text):
    with pytest.raises(InputError) as info:
        RecordId.parse(text)
    message = str(info.value)
    assert message.count(". ") == 0 and message.endswith(".") and "four parts" in message


# ----------------------------------------------------------------------------------- bits, round trip


@pytest.mark.parametrize("n", [1, 7, 8, 9, 100, 1001])
def test_per_image_bits_round_trip(n):
    mask = np.random.default_rng(n).random(n) < 0.5
    text = pack_mask(mask)
    assert text.isascii()
    assert np.array_equal(unpack_mask(text, n), mask)
    # numpy's default (big) bit order: the first image is the highest bit of the first byte.
    assert np.packbits(mask).tobytes() == base64.b64decode(text)
    with pytest.raises(InputError, match="bits"):
        unpack_mask(text, n + 8)


def _stored(**extra) -> dict:
    record = {
        "id": "best|standard|pgd-20-ce|eps=8/255",
        "suite": "pgd20",
        "metric": "pgd-20-ce",
        "threat_model": "standard",
        "threat_model_setup": {"name": "standard", "data_bass": None, "front": None, "description": "x"},
        "settings": {"attack": "pgd", "eps": 8 / 255},
        "data": {"dataset": "embedded", "n": 3, "indices": [2, 5, 9]},
        "checkpoint": {"which": "best"},
        "world_size": 1,
        "fingerprint": "abc",
        "freqtail_version": "0.1",
        "correct": 2,
        "total": 3,
        "accuracy": 2 / 3,
        "clean_correct": 3,
        "clean_accuracy": 1.0,
        "check_warnings": [],
        "seconds": 0.5,
        "created": "2026-01-01T00:00:00Z",
        "gradient_masking": {"state": "not-run"},
    }
    record.update(extra)
    return record


def test_record_round_trips_every_key_and_reads_its_bits():
    stored = _stored(per_image=PerImage.of_mask([True, False, True]).to_dict(), unknown_key={"kept": 1})
    record = Record.from_dict(stored)
    assert record.to_dict() == stored
    bits = PerImage.of_mask([True, False, True]).to_dict()
    assert list(Record.from_dict(_stored(per_image=bits)).to_dict()) == [*_stored(), "per_image"]
    assert record.id.checkpoint == "best" and record.id.variant == "eps=8/255"
    assert record.correct_mask().tolist() == [True, False, True]
    assert int(record.correct_mask().sum()) == record.correct
    assert stored["per_image"]["encoding"] == PER_IMAGE_ENCODING
    # A null stored under a typed key stays a null.
    nulls = {**stored, "accuracy": None}
    assert Record.from_dict(nulls).to_dict() == nulls


def test_older_records_without_bits_load_and_have_no_mask(tmp_path):
    old = _stored()
    path = tmp_path / "results.json"
    write_results(path, [old])
    (record,) = load_records(path)
    assert record.per_image is None and record.correct_mask() is None
    assert load_results(path)["results"][0] == old


@pytest.mark.parametrize(
    ("records", "words"),
    [
        ([[1, 2]], "not a JSON object"),
        (["text"], "not a JSON object"),
        ([{"metric": "clean"}], "without an id"),
        (
            [_stored(threat_model=None)],
            "record 'best|standard|pgd-20-ce|eps=8/255' without a threat_model string",
        ),
        ([{k: v for k, v in _stored().items() if k != "metric"}], "without a metric string"),
        ([_stored(data=7)], "whose 'data' is not a JSON object \\(7\\)"),
        ([_stored(correct="2")], "whose 'correct' is not an integer"),
        ([_stored(total=True)], "whose 'total' is not an integer"),
        ([_stored(accuracy="high")], "whose 'accuracy' is not a number"),
        ([_stored(), _stored(id=5)], "The record id 5 is not"),
    ],
)
def test_a_results_file_with_misshapen_records_is_one_sentence_naming_it(tmp_path, records, words):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"format": "freqtail-results", "version": 1, "results": records}))
    with pytest.raises(InputError, match=words) as info:
        load_results(path)
    assert str(path) in str(info.value)


def test_a_malformed_stored_id_names_the_file(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"format": "freqtail-results", "version": 1, "results": [{"id": "x"}]}))
    with pytest.raises(InputError, match="four parts") as info:
        load_records(path)
    assert str(path) in str(info.value)


def test_one_percent_formatter():
    assert percent(0.5272) == "52.72" and percent(0.5272, 1, "%") == "52.7%"
    assert percent(None) == MISSING and percent(True) == MISSING and percent("x", 1, "%") == MISSING
    assert percent(np.float32(0.25)) == "25.00"


def test_every_suite_has_one_spec():
    from freqtail.evaluate.suite_names import SUITES

    assert list(SUITE_SPECS) == list(SUITES)
    budget = default_budget((32, 32))
    assert SUITE_SPECS["clean"].config(budget) is None and SUITE_SPECS["clean"].variant("8/255") == ""
    assert SUITE_SPECS["cw"].config(budget).loss == "cw"
    assert SUITE_SPECS["pgd20-hfc"].variant("8/255", 7) == "eps=8/255,band>=7"


# ------------------------------------------------------------------------- bits from real evaluations

REQUEST = {
    "dataset": "embedded",
    "suites": "clean,pgd20,pgd20-lfc,cw,corruptions",
    "threat_model": "standard",
    "n": 24,
    "batch_size": 8,
    "seed": 3,
    "masking_n": 0,
    "generate_c": True,
    "corruptions": ["shot_noise", "pixelate"],
    "severities": [3],
}


def _images(dataset, indices):
    return torch.stack([dataset[int(i)][0] for i in indices]), torch.tensor(
        [int(dataset[int(i)][1]) for i in indices]
    )


def test_per_image_bits_agree_with_independent_per_image_computations(tiny_runs, shared_cache, tmp_path):
    model, _ = load_run(tiny_runs["standard"])
    model.eval()
    plan = make_plan(**REQUEST, work_dir=tmp_path / "work")
    records = {r["metric"]: Record.from_dict(r) for r in run_evaluation(plan, model)}
    assert set(records) == {"clean", "pgd-20-ce", "pgd-20-ce-lfc", "pgd-20-cw", "corruptions"}
    test = build_dataset("embedded", "test")
    clean = records["clean"]
    x, y = _images(test, clean.indices)
    with torch.no_grad():
        expected = (model(x).argmax(dim=1) == y).numpy()
    assert np.array_equal(clean.correct_mask(), expected)
    for record in records.values():
        if record.metric == "corruptions":
            continue
        mask = record.correct_mask()
        assert mask.shape == (record.data["n"],) and int(mask.sum()) == record.correct
        assert not (mask & ~expected).any()  # robust implies correct when clean
    # PGD-20 again, batch by batch with the runner's seeds: the same bits.
    pgd = records["pgd-20-ce"]
    config = SUITE_SPECS["pgd20"].config(plan.budget)
    again = []
    for number, batch in enumerate(global_batches(pgd.indices, plan.request.batch_size)):
        xb, yb = _images(test, batch)
        generator = torch.Generator().manual_seed(batch_seed(plan.request.seed, number))
        x_adv = config(model, xb, yb, generator=generator)
        with torch.no_grad():
            again.append(((model(xb).argmax(1) == yb) & (model(x_adv).argmax(1) == yb)).numpy())
    assert np.array_equal(pgd.correct_mask(), np.concatenate(again))
    # Corruptions: one bit string per cell, equal to the model's argmax on the -C file's images.
    corruptions = records["corruptions"]
    assert corruptions.correct_mask() is None
    for name in REQUEST["corruptions"]:
        block = load_corrupted_set(corruptions.settings["c_dir"], name, 3)
        positions = np.arange(len(block))  # a generated set holds exactly the evaluated images
        with torch.no_grad():
            images = torch.from_numpy(block.images[positions]).permute(0, 3, 1, 2).float() / 255
            right = (model(images).argmax(1) == torch.from_numpy(block.labels[positions])).numpy()
        bits = corruptions.cell_mask(name, 3)
        assert np.array_equal(bits, right)
        assert int(bits.sum()) == corruptions.extras["per_corruption"][name]["3"]["correct"]


@pytest.mark.slow
def test_two_gloo_processes_give_the_same_bits_as_one(tiny_runs, shared_cache, tmp_path):
    model, _ = load_run(tiny_runs["standard"])
    single = run_evaluation(make_plan(**REQUEST, work_dir=tmp_path / "work"), model)
    double = evaluate_in_two_processes(
        tiny_runs["standard"], {**REQUEST, "work_dir": tmp_path / "work"}, shared_cache, tmp_path
    )
    # 24 images in batches of 8: rank 0 measures batches 0 and 2, rank 1 batch 1.
    assert [r["id"] for r in double] == [r["id"] for r in single]
    for one, two in zip(single, double, strict=True):
        assert two["world_size"] == 2 and one["world_size"] == 1
        assert two["per_image"] == one["per_image"], one["id"]
        if one["metric"] != "corruptions":
            assert int(Record.from_dict(two).correct_mask().sum()) == two["correct"]
