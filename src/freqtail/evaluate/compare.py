"""Several runs side by side with the deltas of BaSS, as the paper's Tables 1 and 4 show them.

Rows are (run, threat model) for the adversarial table, (run, threat model, corruption order) for
the corruption table and (run, threat model, boundary band b) for the band table (Clean, PGD-20,
PGD-20 LFC, PGD-20 HFC; :func:`freqtail.evaluate.tables.band_rows`). A run trained with BaSS (any
record under the ``domain`` / ``end-to-end`` threat model, or a checkpoint recorded with a BaSS
training mode) gets a ``Δ`` row under each of its rows: its accuracy minus its baseline's, in
percentage points. The baseline of a BaSS run is the nearest run before it on the command line that
was trained without BaSS (so ``PGD-AT +BaSS TRADES +BaSS`` pairs as the paper does), else the first
run; ``baseline=`` forces one run for all. The baseline row is the baseline run's row with the same
threat model, else its first row.

A delta is only computed between numbers measured with the same metric and budget (the column);
when the two numbers come from different numbers of images, the table notes it. A band row is paired
with the baseline's row of the same threat model and boundary when there is one; when the two
boundaries differ (each threat model's images have their own 80/20 boundary: BaSS images a higher
one), the Δ compares attacks on different bands, and the notes say so and how to compare at one
boundary (``--band-boundary``). A row whose numbers come from different numbers of images shows
``(n=...)`` in each cell, and each robust number keeps the mark and note of its own gradient-masking
verdict (:func:`freqtail.evaluate.tables.record_verdict`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freqtail.checks import check_name
from freqtail.errors import InputError
from freqtail.evaluate.records import RecordId
from freqtail.evaluate.results import load_results
from freqtail.evaluate.tables import (
    BAND_COLUMNS,
    BAND_TABLE_TITLE,
    CATEGORY_TITLES,
    CORRUPTION_COLUMNS,
    MISSING,
    STALE_MARK,
    VERDICT_MARKS,
    adversarial_columns,
    band_rows,
    cell_text,
    mark_legend,
    markdown_table,
    mixed_n,
    record_n,
    record_verdict,
    selection_words,
    signed_pp,
)
from freqtail.evaluate.threat_model_names import THREAT_MODELS

#: The verdict keys a comparison row keeps per robust column (see :func:`record_verdict`).
VERDICT_KEYS = ("state", "words", "summary", "judged", "images", "created", "check")


@dataclass
class RunResults:
    """The results of one run: a label for the tables, where they came from, and the records.

    ``stale_notes`` and ``stale_ids``: sentences on, and ids of, records measured on a checkpoint the
    run's pointers no longer name (:func:`freqtail.train.staleness.with_staleness` fills them); their
    rows read ``label (stale)`` and the notes follow the run's line.
    """

    label: str
    path: str
    records: list[dict]
    stale_notes: tuple[str, ...] = ()
    stale_ids: frozenset[str] = frozenset()

    def shown_label(self, used: Iterable[Mapping[str, Any]]) -> str:
        """The label of a row built from the records ``used``: marked when one of them is stale."""
        stale = any(r.get("id") in self.stale_ids for r in used)
        return self.label + STALE_MARK if stale else self.label


def load_run_results(path: str | os.PathLike, label: str | None = None) -> RunResults:
    """Read a run folder's (or a file's) ``results.json``; the label defaults to the folder name.

    Raises:
        InputError: see :func:`~freqtail.evaluate.results.load_results`; a given label that is empty
            or holds control characters (:func:`~freqtail.checks.check_name`).
    """
    p = Path(path)
    if label is not None:
        check_name(label, "The run label")
    data = load_results(p)
    name = p.name if p.is_dir() else p.parent.name
    return RunResults(label or name, str(p), list(data["results"]))


def _tag(record: Mapping[str, Any]) -> str:
    return RecordId.of(record).checkpoint


def _variant(record: Mapping[str, Any]) -> str:
    return RecordId.of(record).variant


def uses_bass(records: Sequence[Mapping[str, Any]]) -> bool:
    """True when the records belong to a model trained with BaSS."""
    for record in records:
        if record.get("threat_model") in ("domain", "end-to-end"):
            return True
        info = record.get("checkpoint") or {}
        if info.get("bass") in ("dataset", "augment") or info.get("bass_branch"):
            return True
    return False


def _select_checkpoint(run: RunResults, checkpoint: str | None) -> list[dict]:
    tags = list(dict.fromkeys(_tag(r) for r in run.records))
    if not tags:
        raise InputError(f"The results of {run.label} ({run.path}) hold no numbers; evaluate that run first.")
    if checkpoint is not None:
        if checkpoint not in tags:
            raise InputError(
                f"The results of {run.label} have no checkpoint {checkpoint!r} (present: {', '.join(tags)})."
            )
        tag = checkpoint
    else:
        tag = "best" if "best" in tags else tags[0]
    return [r for r in run.records if _tag(r) == tag]


def _baseline_index(
    runs: Sequence[RunResults], position: int, bass_flags: list[bool], baseline: int | None
) -> int | None:
    if baseline is not None:
        return None if baseline == position else baseline
    if not bass_flags[position]:
        return None
    for earlier in range(position - 1, -1, -1):
        if not bass_flags[earlier]:
            return earlier
    return 0 if position != 0 else None


def _resolve_baseline(runs: Sequence[RunResults], baseline: int | str | None) -> int | None:
    if baseline is None:
        return None
    if isinstance(baseline, int) and not isinstance(baseline, bool):
        if not 0 <= baseline < len(runs):
            raise InputError(f"The baseline must be a run number from 0 to {len(runs) - 1}, not {baseline}.")
        return baseline
    for index, run in enumerate(runs):
        if baseline in (run.label, run.path) or Path(run.path).resolve() == Path(str(baseline)).resolve():
            return index
    raise InputError(
        f"The baseline {baseline!r} is none of the compared runs ({', '.join(r.label for r in runs)})."
    )


def _order_key(record: Mapping[str, Any]) -> int:
    return {name: i for i, name in enumerate(THREAT_MODELS)}.get(record.get("threat_model"), 99)


def _adversarial_rows(run: RunResults, records: list[dict], columns) -> list[dict]:
    rows = []
    threat_models = sorted(
        {r["threat_model"] for r in records if r.get("metric") in {c[0] for c in columns}},
        key=lambda t: THREAT_MODELS.index(t) if t in THREAT_MODELS else 99,
    )
    for threat in threat_models:
        values, sizes, masking, used = {}, {}, {}, []
        for metric, variant, title in columns:
            match = [
                r
                for r in records
                if r["threat_model"] == threat and r["metric"] == metric and _variant(r) == variant
            ]
            if match:
                used.append(match[0])
                values[title] = match[0]["accuracy"]
                sizes[title] = record_n(match[0])
                if metric != "clean":
                    verdict = record_verdict(match[0])
                    masking[title] = {key: verdict.get(key) for key in VERDICT_KEYS}
        rows.append(
            {
                "run": run.shown_label(used),
                "path": run.path,
                "threat_model": threat,
                "values": values,
                "n": sizes,
                "masking": masking,
            }
        )
    return rows


def _corruption_rows(run: RunResults, records: list[dict]) -> list[dict]:
    rows = []
    for record in sorted((r for r in records if r.get("metric") == "corruptions"), key=_order_key):
        clean = [
            r for r in records if r["threat_model"] == record["threat_model"] and r.get("metric") == "clean"
        ]
        values = {"Clean": clean[0]["accuracy"]} if clean else {}
        for key, title in CATEGORY_TITLES.items():
            if record.get("categories", {}).get(key) is not None:
                values[title] = record["categories"][key]
        values["Mean"] = record.get("mean")
        sizes = {title: record_n(record) for title in values}
        if clean:
            sizes["Clean"] = record_n(clean[0])
        rows.append(
            {
                "run": run.shown_label([record, *clean[:1]]),
                "path": run.path,
                "threat_model": record["threat_model"],
                "order": record.get("order"),
                "values": values,
                "n": sizes,
            }
        )
    return rows


def _band_rows(run: RunResults, records: list[dict]) -> list[dict]:
    rows = []
    for found in band_rows(records):
        values, sizes, masking = {}, {}, {}
        for title, record in found["records"].items():
            values[title] = record["accuracy"]
            sizes[title] = record_n(record)
            if title != "Clean":
                verdict = record_verdict(record)
                masking[title] = {key: verdict.get(key) for key in VERDICT_KEYS}
        rows.append(
            {
                "run": run.shown_label(found["records"].values()),
                "path": run.path,
                "threat_model": found["threat_model"],
                "eps": found["eps"],
                "boundary": found["boundary"],
                "values": values,
                "n": sizes,
                "masking": masking,
            }
        )
    return rows


def _pick_base_row(rows: list[dict], row: Mapping[str, Any]) -> dict | None:
    """The baseline's row for ``row``: same threat model (else any), preferring the same budget and
    boundary (band rows; other rows have neither, so the first of the threat model is taken)."""
    pool = [r for r in rows if r["threat_model"] == row["threat_model"]] or rows
    for candidate in pool:
        if candidate.get("eps") == row.get("eps") and candidate.get("boundary") == row.get("boundary"):
            return candidate
    return pool[0] if pool else None


def _attach_deltas(rows_by_run: list[list[dict]], baselines: list[int | None], labels: list[str]) -> None:
    for position, rows in enumerate(rows_by_run):
        base_index = baselines[position]
        if base_index is None:
            continue
        for row in rows:
            base = _pick_base_row(rows_by_run[base_index], row)
            if base is None:
                continue
            deltas, n_differs = {}, []
            for title, value in row["values"].items():
                other = base["values"].get(title)
                if value is None or other is None:
                    continue
                deltas[title] = value - other
                if row["n"].get(title) != base["n"].get(title):
                    n_differs.append(title)
            row["delta"] = {
                "vs": labels[base_index],
                "vs_threat_model": base["threat_model"],
                "values": deltas,
                "n_differs": n_differs,
            }
            if "boundary" in row:
                row["delta"]["vs_boundary"] = base.get("boundary")


def compare_runs(
    runs: Sequence[RunResults], *, baseline: int | str | None = None, checkpoint: str | None = None
) -> dict[str, Any]:
    """Put runs side by side; see the module docstring for rows, pairing and deltas.

    Args:
        runs: from :func:`load_run_results`, in the order to show them.
        baseline: a run number or label to compare every other run with (default: pairing rule).
        checkpoint: which checkpoint's numbers to show ("best", "last", ...); default "best" when a
            run has it, else the first one it has.

    Returns:
        ``{"runs": [...], "adversarial": {"columns": [...], "rows": [...]}, "bands": {...},
        "corruptions": {...}}``; a row is ``{"run", "path", "threat_model", ("order"), ("eps",
        "boundary": band rows' budget and b), "values": {column: fraction}, "n": {column: images},
        ("masking": {robust column: its own verdict, keys :data:`VERDICT_KEYS`}), ("delta": {"vs",
        "vs_threat_model", ("vs_boundary"), "values": {column: difference}, "n_differs": [...]})}``.

    Raises:
        InputError: fewer than two runs, a run without results, an unknown baseline or checkpoint.
    """
    if len(runs) < 2:
        raise InputError("Give at least two runs to compare.")
    base = _resolve_baseline(runs, baseline)
    selected = [_select_checkpoint(run, checkpoint) for run in runs]
    flags = [uses_bass(records) for records in selected]
    baselines = [_baseline_index(runs, i, flags, base) for i in range(len(runs))]
    labels = [run.label for run in runs]
    columns = adversarial_columns([r for records in selected for r in records])
    adversarial = [
        _adversarial_rows(run, records, columns) for run, records in zip(runs, selected, strict=True)
    ]
    corruption = [_corruption_rows(run, records) for run, records in zip(runs, selected, strict=True)]
    bands = [_band_rows(run, records) for run, records in zip(runs, selected, strict=True)]
    _attach_deltas(adversarial, baselines, labels)
    _attach_deltas(corruption, baselines, labels)
    _attach_deltas(bands, baselines, labels)
    return {
        "runs": [
            {
                "label": run.label,
                "path": run.path,
                "bass": flag,
                "baseline": None if b is None else labels[b],
                "checkpoint": _tag(records[0]),
                "selection": selection_words(records[0].get("checkpoint") or {}),
                "stale": list(run.stale_notes) if any(r.get("id") in run.stale_ids for r in records) else [],
            }
            for run, records, flag, b in zip(runs, selected, flags, baselines, strict=True)
        ],
        "adversarial": {
            "columns": [title for _, _, title in columns],
            "rows": [r for rows in adversarial for r in rows],
        },
        "bands": {"columns": list(BAND_COLUMNS), "rows": [r for rows in bands for r in rows]},
        "corruptions": {
            "columns": list(CORRUPTION_COLUMNS),
            "rows": [r for rows in corruption for r in rows],
        },
    }


def _render(section: Mapping[str, Any], kind: str) -> tuple[str, list[str]]:
    """The Markdown table and notes of one section; ``kind`` is "adversarial", "bands" or "corruptions"."""
    columns = list(section["columns"])
    extra = {"corruptions": ["order"], "bands": ["boundary b"]}.get(kind, [])
    if kind == "bands" and len({row["eps"] for row in section["rows"]}) > 1:
        extra = ["budget", *extra]
    header = ["run", "threat model", *extra, *columns]
    lines, notes = [], []
    for row in section["rows"]:
        lead = [row["run"], row["threat_model"], *_extra_cells(row, extra)]
        mixed = mixed_n(row["n"].values())
        masking = row.get("masking") or {}
        cells = [
            cell_text(row["values"].get(c), row["n"].get(c) if mixed else None, masking.get(c))
            for c in columns
        ]
        lines.append([*lead, *cells])
        if mixed:
            notes.append(
                f"- {row['run']} ({row['threat_model']}): its numbers come from different numbers of "
                "images; each cell shows its n."
            )
        notes += _verdict_lines(row)
        delta = row.get("delta")
        if delta:
            lead = [f"Δ vs {delta['vs']}", f"{row['threat_model']} − {delta['vs_threat_model']}"]
            lead += ["" for _ in extra]
            if kind == "bands":
                vs = delta.get("vs_boundary")
                lead[-1] = str(row["boundary"]) if vs == row["boundary"] else f"{row['boundary']} vs {vs}"
            lines.append([*lead, *(signed_pp(delta["values"].get(c)) for c in columns)])
            if delta["n_differs"]:
                notes.append(
                    f"- Δ of {row['run']} ({row['threat_model']}) vs {delta['vs']}: different numbers of "
                    f"evaluated images in {', '.join(delta['n_differs'])}."
                )
            if kind == "bands" and delta.get("vs_boundary") != row["boundary"]:
                notes.append(
                    f"- Δ of {row['run']} ({row['threat_model']}, b = {row['boundary']}) vs {delta['vs']} "
                    f"({delta['vs_threat_model']}, b = {delta.get('vs_boundary')}): the LFC / HFC columns "
                    "compare attacks on different bands (each row's own 80/20 boundary); evaluate both "
                    "runs with the same --band-boundary to compare them at one boundary."
                )
    legend = mark_legend(
        v.get("state") for row in section["rows"] for v in (row.get("masking") or {}).values()
    )
    if legend:
        notes.append(f"- {legend}")
    return markdown_table(header, lines, numeric_from=2 + len(extra)), notes


def _extra_cells(row: Mapping[str, Any], extra: list[str]) -> list[str]:
    values = {
        "order": row.get("order", ""),
        "budget": str(row.get("eps", "")).removeprefix("eps="),
        "boundary b": str(row.get("boundary", "")),
    }
    return [values[name] for name in extra]


def _verdict_lines(row: Mapping[str, Any]) -> list[str]:
    """One note per distinct gradient-masking verdict of a row's robust numbers (columns named)."""
    groups: dict[tuple, list[str]] = {}
    for title, verdict in (row.get("masking") or {}).items():
        key = (verdict.get("state"), verdict.get("created"), verdict.get("summary"), verdict.get("check"))
        groups.setdefault(key, []).append(title)
    lines = []
    for (state, created, summary, _), titles in groups.items():
        mark = VERDICT_MARKS.get(state)
        when = f", checked {created}" if created else ""
        lines.append(
            f"- {mark + ' ' if mark else ''}Gradient-masking check of {row['run']} ({row['threat_model']}; "
            f"{', '.join(titles)}{when}): {summary}"
        )
    return lines


def compare_markdown(comparison: Mapping[str, Any]) -> str:
    """Markdown of :func:`compare_runs`'s result: one table per kind, deltas in percentage points."""
    parts = ["# Comparison", ""]
    runs = comparison["runs"]
    parts.append(
        "Runs: "
        + "; ".join(
            f"{r['label']} ({r['path']}{', BaSS' if r['bass'] else ''}"
            f"{', Δ vs ' + r['baseline'] if r['baseline'] else ''})"
            for r in runs
        )
        + "."
    )
    parts += [""] + [
        f"- Checkpoint `{r['checkpoint']}` of {r['label']}: {r['selection']}."
        for r in runs
        if r.get("selection")
    ]
    parts += [f"- ⚠ {r['label']}: {note}" for r in runs for note in r.get("stale") or []]
    any_table = False
    for key, title in (
        ("adversarial", "Clean and adversarial accuracy (%)"),
        ("bands", f"{BAND_TABLE_TITLE} (%)"),
        ("corruptions", "Corruption robustness (%)"),
    ):
        section = comparison.get(key)
        if not section or not section["rows"]:
            continue
        any_table = True
        table, notes = _render(section, key)
        parts += ["", f"## {title}", "", table]
        parts += [
            "",
            "Δ: accuracy minus the baseline's, in percentage points (same metric and budget per column).",
        ]
        parts += notes
    if not any_table:
        parts += ["", f"No comparable numbers ({MISSING})."]
    parts += [
        "",
        "Each number's settings (eps, steps, seed, n, threat model) are in the runs' results.json "
        "and results.md.",
    ]
    return "\n".join(parts) + "\n"
