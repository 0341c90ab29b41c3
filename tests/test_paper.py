"""freqtail.paper: the published tables load, have their shapes, and hold together.

The data is a transcription, so a few spot values are compared with what was read off the paper; the
rest are structural checks that a misread value would break: the paper's own printed deltas, robust
accuracy below clean accuracy, Table 2's "Ours" equal to Table 1's row, Table 4's Mean as the
weighted mean of its category columns.
"""

from __future__ import annotations

import itertools
import json
from importlib import resources

import pytest

from freqtail.errors import InputError
from freqtail.paper import (
    PublishedDelta,
    PublishedRow,
    PublishedTable,
    paper_reference,
    published_deltas,
    published_row,
    published_table,
    published_tables,
    published_value,
)

CATEGORIES = ("Noise", "Blur", "Weather", "Digital")


def test_every_table_loads_with_its_caption_settings_and_citation():
    tables = published_tables()
    assert list(tables) == ["table1", "table2", "table3", "table4"]
    for number, (name, table) in enumerate(tables.items(), 1):
        assert isinstance(table, PublishedTable) and table.name == name
        assert table.caption.startswith(f"Table {number}: ")
        assert table.settings and table.section and table.comment
        assert "Revisiting Visual Model Robustness" in table.citation
        assert all(isinstance(row, PublishedRow) for row in table.rows)
        assert all(tuple(row.values) == table.columns for row in table.rows)
    reference = paper_reference()
    assert reference["authors"] == ["Zhiyu Lin", "Yifei Gao", "Yunfan Yang", "Jitao Sang"]
    assert "NeurIPS 2023" in reference["venue"]


def test_the_data_file_is_package_data():
    data = resources.files("freqtail.paper").joinpath("tables.json")
    assert data.is_file()
    assert set(json.loads(data.read_text(encoding="utf-8"))["tables"]) == set(published_tables())


def test_shapes():
    tables = published_tables()
    one = tables["table1"]
    assert one.columns == ("Clean", "PGD-20", "AA")
    assert len(one.rows) == 24  # 2 datasets x 2 models x 3 methods x (without, with BaSS)
    keys = {(r.dataset, r.model, r.method, r.bass) for r in one.rows}
    assert keys == set(
        itertools.product(
            ("CIFAR-10", "CIFAR-100"), ("ResNet-18", "WRN-34-10"), ("PGD-AT", "TRADES", "MART"), (False, True)
        )
    )
    assert len(one.printed_deltas) == 12
    two = tables["table2"]
    assert two.columns == ("Clean", "AA") and len(two.rows) == 6
    assert {(r.method, r.dataset) for r in two.rows} == set(
        itertools.product(("DAJAT", "PORT", "TRADES"), ("CIFAR-10", "CIFAR-100"))
    )
    three = tables["table3"]
    assert three.columns == ("Clean", "PGD-20", "AA") and len(three.rows) == 4
    assert {(r.method, r.bass) for r in three.rows} == set(
        itertools.product(("PGD-AT", "TRADES"), (False, True))
    )
    assert {(r.model, r.dataset) for r in three.rows} == {("ResNet-50", "Restricted-ImageNet")}
    four = tables["table4"]
    assert four.columns == ("Clean", *CATEGORIES, "Mean")
    assert len(four.rows) == 16  # 2 datasets x 4 models x (AugMix, AugMix + BaSS)
    assert {r.model for r in four.rows} == {"WRN-40-2", "DenseNet", "ResNeXt-29", "ResNet-50"}


def test_spot_values_read_off_the_paper():
    cell = published_value
    assert (
        cell("table1", method="PGD-AT", model="ResNet-18", dataset="CIFAR-10", bass=False, column="Clean")
        == 83.50
    )
    assert (
        cell("table1", method="MART", model="WRN-34-10", dataset="CIFAR-100", bass=True, column="AA") == 32.20
    )
    assert (
        cell("table1", method="TRADES", model="ResNet-18", dataset="CIFAR-100", bass=False, column="PGD-20")
        == 29.90
    )
    assert cell("table2", method="PORT", model=None, dataset="CIFAR-10", bass=False, column="AA") == 60.27
    assert (
        cell("table2", method="DAJAT", model=None, dataset="CIFAR-100", bass=False, column="Clean") == 68.75
    )
    assert (
        cell(
            "table3",
            method="TRADES",
            model="ResNet-50",
            dataset="Restricted-ImageNet",
            bass=True,
            column="AA",
        )
        == 42.80
    )
    assert (
        cell(
            "table3",
            method="PGD-AT",
            model="ResNet-50",
            dataset="Restricted-ImageNet",
            bass=False,
            column="PGD-20",
        )
        == 49.44
    )
    assert (
        cell("table4", method="AugMix", model="ResNeXt-29", dataset="CIFAR-100", bass=True, column="Weather")
        == 72.47
    )
    assert (
        cell("table4", method="AugMix", model="WRN-40-2", dataset="CIFAR-10", bass=False, column="Mean")
        == 89.91
    )


def test_every_value_is_an_accuracy_and_none_was_left_unread():
    for table in published_tables().values():
        for row in table.rows:
            for value in row.values.values():
                assert value is not None  # every printed value could be read
                assert 0.0 <= value <= 100.0
                assert round(value, 2) == value  # two decimals, as printed


def test_robust_accuracy_is_below_clean_accuracy():
    for name in ("table1", "table3"):
        for row in published_table(name).rows:
            assert row.values["AA"] <= row.values["PGD-20"] <= row.values["Clean"], row
    for row in published_table("table2").rows:
        assert row.values["AA"] <= row.values["Clean"]
    for row in published_table("table4").rows:
        assert max(row.values[c] for c in (*CATEGORIES, "Mean")) <= row.values["Clean"], row


def test_deltas_are_the_difference_of_the_two_rows_and_match_the_printed_ones():
    one = published_table("table1")
    deltas = published_deltas("table1")
    assert len(deltas) == 12 and all(isinstance(d, PublishedDelta) for d in deltas)
    for delta in deltas:
        with_bass = published_row(
            "table1", method=delta.method, model=delta.model, dataset=delta.dataset, bass=True
        )
        without = published_row(
            "table1", method=delta.method, model=delta.model, dataset=delta.dataset, bass=False
        )
        for column in one.columns:
            assert delta.values[column] == pytest.approx(
                with_bass.values[column] - without.values[column], abs=1e-9
            )
    printed = {(d.method, d.model, d.dataset): dict(d.values) for d in one.printed_deltas}
    assert {(d.method, d.model, d.dataset): dict(d.values) for d in deltas} == printed
    # The prose: BaSS "consistently achieves a better robust-accuracy trade-off": every delta is positive.
    assert all(value > 0 for d in deltas for value in d.values.values())
    assert len(published_deltas("table3")) == 2 and len(published_deltas("table4")) == 8
    assert published_deltas("table2") == ()  # "Ours" has no baseline row in Table 2


def test_table2_ours_is_table1_trades_with_bass_and_beats_the_baselines():
    for dataset in ("CIFAR-10", "CIFAR-100"):
        ours = published_row("table2", method="TRADES", model="WRN-34-10", dataset=dataset, bass=True)
        assert ours.note == "printed as 'Ours'"
        table1 = published_row("table1", method="TRADES", model="WRN-34-10", dataset=dataset, bass=True)
        assert dict(ours.values) == {"Clean": table1.values["Clean"], "AA": table1.values["AA"]}
        for other in ("DAJAT", "PORT"):
            row = published_row("table2", method=other, model=None, dataset=dataset, bass=False)
            assert all(ours.values[c] > row.values[c] for c in ("Clean", "AA"))


def test_table4_mean_is_a_weighted_mean_of_the_categories_not_the_plain_one():
    four = published_table("table4")
    weights = dict(four.mean_weights)
    assert weights == {"Noise": 4, "Blur": 5, "Weather": 4, "Digital": 6}  # 19 corruptions
    plain_gaps = []
    for row in four.rows:
        weighted = sum(weights[c] * row.values[c] for c in CATEGORIES) / sum(weights.values())
        # Printed to two decimals: the categories and the Mean each carry at most 0.005 of rounding.
        assert row.values["Mean"] == pytest.approx(weighted, abs=0.01), row
        plain_gaps.append(abs(row.values["Mean"] - sum(row.values[c] for c in CATEGORIES) / 4))
    assert max(plain_gaps) > 0.4  # so the plain mean of the four columns is not what the paper prints
    # The prose: BaSS "further improves the performance of AugMix" (Mean) and lifts Noise by about 4 points.
    for delta in published_deltas("table4"):
        assert delta.values["Mean"] > 0 and delta.values["Noise"] >= 4.0


def test_lookups_that_miss_say_what_exists():
    with pytest.raises(InputError, match="table1, table2, table3, table4"):
        published_table("table5")
    with pytest.raises(InputError, match="no row"):
        published_value(
            "table1", method="PGD-AT", model="ResNet-50", dataset="CIFAR-10", bass=False, column="AA"
        )
    with pytest.raises(InputError, match="no column"):
        published_value(
            "table1", method="PGD-AT", model="ResNet-18", dataset="CIFAR-10", bass=False, column="Noise"
        )


def test_the_loaded_tables_cannot_be_changed_by_a_caller():
    row = published_table("table1").rows[0]
    with pytest.raises(TypeError):
        row.values["Clean"] = 0.0  # type: ignore[index]
    published_tables().clear()
    assert len(published_tables()) == 4
