"""The demo's key-number table (freqtail.report.key_numbers): each percentage with its 95% Wilson
interval, computed here independently with SciPy from the counts of hand-built records."""

from __future__ import annotations

from scipy import stats

from freqtail.report.key_numbers import key_number_table, run_key_numbers


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
    for cell, (k, n) in zip(report[2:5], [(314, 500), (0, 500), (600, 2000)], strict=True):
        low, high = _wilson(k, n)
        assert cell == f"{100 * k / n:.2f} ({100 * low:.2f}–{100 * high:.2f})"
    assert report[3].startswith(
        "0.00 (0.00–0.7"
    )  # no image survives: the interval still says how few were tried
    _, (console,) = key_number_table(rows, style="console")
    low, high = _wilson(314, 500)
    assert console[2] == f"62.8% ({100 * low:.1f}–{100 * high:.1f})" == "62.8% (58.5–66.9)"


def test_a_number_without_usable_counts_is_shown_alone():
    rows = run_key_numbers("erm", "ERM", _records())
    old = {key: value for key, value in rows[0].items() if not key.endswith("_counts")}  # an older summary
    assert key_number_table([old])[1][0][2:5] == ["62.80", "0.00", "30.00"]
    broken = dict(rows[0], clean_counts=[600, 500], pgd20_counts=[True, 500])
    assert key_number_table([broken])[1][0][2:4] == ["62.80", "0.00"]
