"""The demo's key-number table (freqtail.report.key_numbers): each percentage with its 95% Wilson
interval, computed here independently with SciPy from the counts of hand-built records."""

from __future__ import annotations

from scipy import stats

from freqtail.report.key_numbers import key_number_table, last_epoch_notes, run_key_numbers


def _wilson(correct: int, total: int) -> tuple[float, float]:
    ci = stats.binomtest(correct, total).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def _records() -> list[dict]:
    data = {"n": 500}
    cells = {"fog": {"1": {"correct": 300, "total": 500}, "3": {"correct": 200, "total": 500}}}
    cells["contrast"] = {"1": {"correct": 100, "total": 500}, "3": {"correct": 0, "total": 500}}
    return [
        {
            "metric": "clean",
            "threat_model": "standard",
            "accuracy": 0.628,
            "correct": 314,
            "total": 500,
            "data": data,
        },
        {
            "metric": "pgd-20-ce",
            "threat_model": "standard",
            "accuracy": 0.0,
            "correct": 0,
            "total": 500,
            "data": data,
        },
        {
            "metric": "corruptions",
            "threat_model": "standard",
            "mean": 0.3,
            "per_corruption": cells,
            "data": data,
        },
    ]


def test_each_percentage_shows_its_wilson_interval_from_the_counts_behind_it():
    rows = run_key_numbers("erm", "ERM", _records())
    assert rows[0]["corruptions_counts"] == [600, 2000]  # pooled over the four cells
    _, (report,) = key_number_table(rows)
    for cell, (k, n) in zip(report[3:6], [(314, 500), (0, 500), (600, 2000)], strict=True):
        low, high = _wilson(k, n)
        assert cell == f"{100 * k / n:.2f} ({100 * low:.2f}–{100 * high:.2f})"
    assert report[4].startswith(
        "0.00 (0.00–0.7"
    )  # no image survives: the interval still says how few were tried
    _, (console,) = key_number_table(rows, style="console")
    low, high = _wilson(314, 500)
    assert console[3] == f"62.8% ({100 * low:.1f}–{100 * high:.1f})" == "62.8% (58.5–66.9)"


def test_a_number_without_usable_counts_is_shown_alone():
    rows = run_key_numbers("erm", "ERM", _records())
    old = {key: value for key, value in rows[0].items() if not key.endswith("_counts")}  # an older summary
    assert key_number_table([old])[1][0][3:6] == ["62.80", "0.00", "30.00"]
    broken = dict(rows[0], clean_counts=[600, 500], pgd20_counts=[True, 500])
    assert key_number_table([broken])[1][0][3:5] == ["62.80", "0.00"]


def _metrics(epochs: int) -> list[dict]:
    """Training's per-epoch records: test accuracy rising by 5 points an epoch, robust falling by 2."""
    return [
        {
            "epoch": e,
            "test_acc": 0.40 + 0.05 * e,
            "test_images": 500,
            "test_robust_acc": 0.30 - 0.02 * e,
            "robust_examples": 200,
            "robust_attack": "PGD-10",
        }
        for e in range(1, epochs + 1)
    ]


def test_each_row_names_its_checkpoint_and_the_last_epoch_stands_beside_the_selected_one():
    best = {"which": "best", "epoch": 2, "selected_on": {"rule": "best", "split": "test", "n": 500}}
    records = [dict(r, checkpoint=best) for r in _records()]
    rows = run_key_numbers("pgd-at", "PGD-AT", records, _metrics(5))
    header, (cells,) = key_number_table(rows)
    assert header[:3] == ["run", "threat model", "checkpoint"]
    assert cells[2] == "epoch 2 of 5, best on test"
    assert last_epoch_notes(rows) == [
        "PGD-AT: the numbers above are of epoch 2 (epoch 2 of 5, best on test); training's own evaluation "
        "on 500 test images gave clean 50.00% at epoch 2 and 65.00% at the last epoch, 5; robust (PGD-10, "
        "200 images) 26.00% and 20.00%."
    ]
    # the last epoch's checkpoint: nothing to put beside it
    last = {"which": "last", "epoch": 5, "selected_on": {"rule": "last-epoch"}}
    rows = run_key_numbers("pgd-at", "PGD-AT", [dict(r, checkpoint=last) for r in _records()], _metrics(5))
    assert key_number_table(rows)[1][0][2] == "epoch 5 of 5, last" and last_epoch_notes(rows) == []
    # a summary written before checkpoints were recorded
    assert key_number_table(run_key_numbers("erm", "ERM", _records()))[1][0][2] == "–"
