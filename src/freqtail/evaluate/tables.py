"""Markdown tables in the paper's layouts, built from results records.

* adversarial: Clean / PGD-20 / CW-20 / AA (/ AA-fast) per checkpoint and threat model (Table 1);
* bands (beyond the paper): Clean / PGD-20 / PGD-20 LFC / PGD-20 HFC per checkpoint, threat model and
  boundary band b, the b of each row in its own column (a BaSS run's two threat models attack images
  with different boundaries);
* corruptions: Clean / Noise / Blur / Weather / Digital / Mean per checkpoint, threat model and
  corruption order (Table 4), plus a per-corruption detail table;
* notes under each table give, per column, the exact settings and the number of evaluated
  images, the threat models' meaning and the gradient-masking verdicts.

Accuracies are shown in percent with two decimals; JSON keeps the exact fractions and counts.

Two rules keep a table from misleading:

* each robust number shows the verdict of *its own* gradient-masking check (stored in the number's
  record, :func:`record_verdict`): a cell is marked † (possible gradient masking) or ‡ (too few images
  to judge), and the notes quote each check with the columns it covers;
* a row whose numbers come from different numbers of images shows ``(n=...)`` in every cell of it
  (:func:`cell_text`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import astuple
from typing import Any

from freqtail.attacks.masking_verdicts import (
    STATE_MASKED,
    STATE_NO_SIGN,
    STATE_NOT_RUN,
    STATE_TOO_FEW,
    VERDICT_WORDS,
)
from freqtail.data.corruptions import CORRUPTIONS
from freqtail.data.subsets import FIRST_N_RULE, SUBSET_RULE, UNLABELLED_RULE
from freqtail.environment import measured_with
from freqtail.evaluate.records import Record, RecordId
from freqtail.evaluate.threat_model_names import DESCRIPTIONS, THREAT_MODELS
from freqtail.formatting import MISSING, percent

#: Column titles of the adversarial table, in order.
ADVERSARIAL_METRICS: dict[str, str] = {
    "clean": "Clean",
    "pgd-20-ce": "PGD-20",
    "pgd-20-cw": "CW-20",
    "autoattack-standard": "AA",
    "autoattack-fast": "AA-fast",
}
CATEGORY_TITLES = {"noise": "Noise", "blur": "Blur", "weather": "Weather", "digital": "Digital"}
#: Band metrics (the pgd20-lfc / pgd20-hfc suites) -> column title in the band table.
BAND_METRICS: dict[str, str] = {"pgd-20-ce-lfc": "PGD-20 LFC", "pgd-20-ce-hfc": "PGD-20 HFC"}
#: Columns of the band table's numbers (and of compare's band section), in order.
BAND_COLUMNS = ("Clean", "PGD-20", *BAND_METRICS.values())
#: The band table's title (results.md, compare, the report).
BAND_TABLE_TITLE = "Robust accuracy by band"
CORRUPTION_COLUMNS = ("Clean", *CATEGORY_TITLES.values(), "Mean")
#: A robust number whose own check stored no verdict (results.json of an older freqtail).
STATE_UNKNOWN = "unknown"
#: Cell marks of the masking verdicts (states without a mark leave the cell as it is).
VERDICT_MARKS = {STATE_MASKED: "†", STATE_TOO_FEW: "‡"}
_MARK_MEANINGS = {
    STATE_MASKED: "the number's own gradient-masking check found possible gradient masking",
    STATE_TOO_FEW: "the number's own gradient-masking check had too few correctly classified images to judge",
}


def mark_legend(states: Iterable[Any]) -> str | None:
    """A note explaining the marks of ``states`` that have one, or None when none has."""
    present = [state for state in VERDICT_MARKS if state in set(states)]
    if not present:
        return None
    return "; ".join(f"{VERDICT_MARKS[state]} = {_MARK_MEANINGS[state]}" for state in present) + "."


def signed_pp(delta: float | None) -> str:
    """A difference of fractions in percentage points with its sign: ``+5.72``, ``-0.10``, ``–``."""
    return MISSING if delta is None else f"{100 * delta:+.2f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric_from: int = 1) -> str:
    """A GitHub Markdown table; columns from ``numeric_from`` on are right-aligned."""
    header = list(header)
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def record_key(record: Record | Mapping[str, Any]) -> RecordId:
    """The named parts of a record's id (:class:`~freqtail.evaluate.records.RecordId`)."""
    return RecordId.of(record)


def _variant(record: Mapping[str, Any]) -> str:
    return record_key(record).variant if "id" in record else ""


def adversarial_columns(records: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """``(metric, variant, title)`` of every adversarial column present, in table order.

    A metric evaluated at more than one budget gets one column per budget, titled e.g. ``PGD-20 (4/255)``.
    """
    seen: dict[str, list[str]] = {}
    for record in records:
        metric = record.get("metric")
        if metric in ADVERSARIAL_METRICS:
            variants = seen.setdefault(metric, [])
            if _variant(record) not in variants:
                variants.append(_variant(record))
    columns = []
    for metric, title in ADVERSARIAL_METRICS.items():
        variants = seen.get(metric, [])
        for variant in sorted(variants):
            shown = title if len(variants) == 1 else f"{title} ({variant.removeprefix('eps=')})"
            columns.append((metric, variant, shown))
    return columns


def _row_keys(records: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    order = {name: i for i, name in enumerate(THREAT_MODELS)}
    for record in records:
        key = (record_key(record).checkpoint, record["threat_model"])
        if key not in keys:
            keys.append(key)
    return sorted(keys, key=lambda k: (k[0], order.get(k[1], 99)))


def _index(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str, str], Mapping[str, Any]]:
    """``(checkpoint tag, threat model, metric, variant) -> record``."""
    table = {}
    for record in records:
        key = record_key(record)
        table[(key.checkpoint, record["threat_model"], record["metric"], key.variant)] = record
    return table


def record_n(record: Mapping[str, Any] | None) -> Any:
    """The number of images a record's number was measured on (per cell for corruption records)."""
    return None if record is None else (record.get("data") or {}).get("n")


def cell_text(value: float | None, n: Any = None, verdict: Mapping[str, Any] | None = None) -> str:
    """A table cell: the percentage, ``(n=...)`` when ``n`` is given (a row of mixed image counts), and
    the verdict's mark (:data:`VERDICT_MARKS`)."""
    if value is None:
        return MISSING
    text = percent(value)
    if n is not None:
        text += f" (n={n})"
    mark = VERDICT_MARKS.get((verdict or {}).get("state"))
    return f"{text} {mark}" if mark else text


def mixed_n(sizes: Iterable[Any]) -> bool:
    """True when the image counts of one row's numbers differ."""
    return len({n for n in sizes if n is not None}) > 1


def record_verdict(record: Mapping[str, Any]) -> dict[str, Any]:
    """The gradient-masking verdict stored in a robust record, with ``state``, ``words`` and ``summary``.

    Records written before verdicts were stored whole are read too: a stored ``masked`` flag gives
    "possible-masking" / "no-sign" (said to be from an older freqtail), a bare pointer to a check
    gives :data:`STATE_UNKNOWN`, no entry gives "not-run".
    """
    stored = record.get("gradient_masking")
    if not isinstance(stored, Mapping):
        return {
            "state": STATE_NOT_RUN,
            "words": VERDICT_WORDS[STATE_NOT_RUN],
            "summary": "Gradient-masking check not run for this number.",
        }
    verdict = dict(stored)
    state = verdict.get("state")
    if state in VERDICT_WORDS:
        verdict.setdefault("words", VERDICT_WORDS[state])
        verdict.setdefault("summary", f"Gradient-masking check: {VERDICT_WORDS[state]}.")
        return verdict
    if verdict.get("checked") is False:
        state = STATE_NOT_RUN
        summary = verdict.get("summary") or "Gradient-masking check not run for this number."
    elif "masked" in verdict:
        state = STATE_MASKED if verdict["masked"] else STATE_NO_SIGN
        summary = (
            f"{verdict.get('summary') or VERDICT_WORDS[state]} (verdict stored by an older freqtail, "
            "which had no minimum image count)"
        )
    else:
        state = STATE_UNKNOWN
        summary = (
            "The verdict of this number's check was not stored with it (results.json of an older "
            "freqtail); evaluate again to attach one."
        )
    return {
        **verdict,
        "state": state,
        "words": VERDICT_WORDS.get(state, "verdict not stored"),
        "summary": summary,
    }


def subset_words(data: Mapping[str, Any]) -> str:
    """How a record's (or an analysis's) images were chosen, in a few words."""
    rule = str(data.get("subset"))
    if rule.startswith(SUBSET_RULE):
        kind = "class-stratified seeded subset"
    elif rule.startswith(UNLABELLED_RULE):
        kind = "seeded subset, not class-stratified (labels not at hand)"
    elif rule == FIRST_N_RULE:
        return "the first images of an iterable, not a seeded subset"
    else:
        kind = "seeded subset"
    return f"{kind}, subset seed {data.get('subset_seed')}"


def _n_words(record: Mapping[str, Any]) -> str:
    data = record.get("data", {})
    n, of = data.get("n"), data.get("of")
    if of is None or n == of:
        return f"n = {n}"
    return f"n = {n} of {of} ({subset_words(data)})"


def _settings_words(record: Mapping[str, Any]) -> str:
    s = record.get("settings", {})
    if record["metric"] == "clean":
        return "no attack"
    if s.get("attack") == "pgd":
        start = "random start" if s.get("random_start") else "no random start"
        band = ""
        if s.get("band") in ("lfc", "hfc"):
            # b differs between rows (each threat model's images have their own): the table shows it.
            band = f", perturbation in the bands {'<' if s['band'] == 'lfc' else '>='} b"
        return (
            f"{s.get('name')}: L-inf eps {s.get('eps_255'):g}/255, step {s.get('step_size_255'):g}/255, "
            f"{s.get('steps')} steps, {s.get('loss')} loss, {s.get('restarts')} restart(s), {start}, "
            f"seed {s.get('seed')}{band}{_budget_words(s)}"
        )
    if s.get("attack") == "autoattack":
        return (
            f"{s.get('name')}: {' + '.join(s.get('attacks', []))} ({s.get('package')}), L-inf eps "
            f"{s.get('eps_255'):g}/255, seed {s.get('seed')}{_budget_words(s)}"
        )
    return str(s)


def _budget_words(settings: Mapping[str, Any]) -> str:
    """Where the budget came from, as the record says (``--eps`` only when the caller gave it)."""
    source = settings.get("budget_source")
    return f" (budget: {source})" if source else ""


def selection_words(checkpoint: Mapping[str, Any]) -> str:
    """Which images chose a checkpoint, in words, from its ``selected_on`` record.

    ``selected_on`` is written by the trainer (:mod:`freqtail.train.checkpoint`): ``{"rule": "best",
    "split": "test" | "val", "n", "metric"}`` or ``{"rule": "last-epoch", ...}``. Checkpoints of older
    versions have none; their ``best`` was chosen on test images, as the authors' code does.
    """
    selected = checkpoint.get("selected_on") or {}
    rule, split = selected.get("rule"), selected.get("split")
    count = f"{selected['n']} " if selected.get("n") is not None else ""
    metric = f" by {selected['metric']}" if selected.get("metric") else ""
    if rule == "last-epoch":
        return "the last epoch's weights (no checkpoint selection)"
    if rule == "best" and split == "val":
        return f"chosen as best on {count}held-out training images (selection: val){metric}"
    if rule == "best" and split == "test":
        return (
            f"chosen as best on {count}test images{metric} (selection: test, the authors' protocol; "
            "test numbers of this checkpoint are not independent of that choice)"
        )
    if checkpoint.get("which") == "best":
        return "chosen as best on test images (recorded before freqtail recorded how many)"
    if checkpoint.get("which") == "last":
        return "the last epoch's weights (no checkpoint selection)"
    return "selection not recorded (a checkpoint file from outside a freqtail run)"


def _checkpoint_words(records: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    seen = set()
    for record in records:
        tag = record_key(record).checkpoint
        info = record.get("checkpoint") or {}
        if tag in seen:
            continue
        seen.add(tag)
        facts = [
            f"{key} {info[key]}"
            for key in ("path", "epoch", "objective", "bass")
            if info.get(key) is not None
        ]
        digest = info.get("digest")
        if digest:
            facts.append(f"weights sha256 {str(digest)[:12]}")
        facts.append(selection_words(info))
        lines.append(f"- Checkpoint `{tag}`: " + ", ".join(facts) + ".")
    return lines


def _threat_model_notes(records: Sequence[Mapping[str, Any]]) -> list[str]:
    present = [name for name in THREAT_MODELS if any(r["threat_model"] == name for r in records)]
    return [f"- Threat model `{name}`: {DESCRIPTIONS[name]}." for name in present]


def _rows_label(keys: Iterable[tuple[str, str]]) -> str:
    return ", ".join(f"`{tag}` {threat}" for tag, threat in keys)


def _column_settings_notes(title: str, examples: Sequence[Mapping[str, Any]]) -> list[str]:
    """One note per column: its settings (per row when rows differ) and image counts."""
    by_words: dict[str, list[tuple[str, str]]] = {}
    for record in examples:
        key = (record_key(record).checkpoint, record["threat_model"])
        by_words.setdefault(_settings_words(record), []).append(key)
    if len(by_words) == 1:
        settings = next(iter(by_words))
    else:
        settings = "; ".join(f"{words} [{_rows_label(keys)}]" for words, keys in by_words.items())
    sizes = sorted({_n_words(r) for r in examples})
    notes = [f"- {title}: {settings}; {'; '.join(sizes)}."]
    for message in sorted({w for r in examples for w in r.get("check_warnings", [])}):
        notes.append(f"  - AutoAttack check warning: {message}")
    return notes


def verdict_notes(records: Sequence[Mapping[str, Any]], title_of: Mapping[tuple[str, str], str]) -> list[str]:
    """Notes quoting the gradient-masking verdict of each robust record, one per distinct check.

    Args:
        records: robust records of one table.
        title_of: ``(metric, variant) -> column title``.

    Returns:
        Markdown bullet lines, grouped by (checkpoint tag, threat model, check), each naming the columns
        whose numbers carry that verdict; a later check never hides an earlier one because every
        record is read on its own.
    """
    groups: dict[tuple, list[str]] = {}
    verdicts: dict[tuple, dict[str, Any]] = {}
    for record in records:
        verdict = record_verdict(record)
        rid = record_key(record)
        key = (
            rid.checkpoint,
            record["threat_model"],
            verdict.get("state"),
            verdict.get("created"),
            verdict.get("summary"),
            verdict.get("check"),
        )
        verdicts[key] = verdict
        groups.setdefault(key, []).append(title_of.get((record["metric"], rid.variant), record["metric"]))
    order = {name: i for i, name in enumerate(THREAT_MODELS)}
    lines = []
    for key in sorted(groups, key=lambda k: (k[0], order.get(k[1], 99), str(k[3]))):
        tag, threat = key[0], key[1]
        verdict = verdicts[key]
        columns = ", ".join(dict.fromkeys(groups[key]))
        if verdict["state"] == STATE_NOT_RUN:
            lines.append(
                f"- Gradient-masking check (`{tag}`, {threat}; {columns}): not run for these numbers."
            )
            continue
        when = f", checked {verdict['created']}" if verdict.get("created") else ""
        mark = VERDICT_MARKS.get(verdict["state"])
        lead = f"{mark} " if mark else ""
        lines.append(
            f"- {lead}Gradient-masking check (`{tag}`, {threat}; {columns}{when}): {verdict['summary']}"
        )
    return lines


def adversarial_table(records: Sequence[Mapping[str, Any]]) -> str | None:
    """The Table-1-style Markdown (table and notes), or None when there is no such record.

    Each robust cell carries the mark of its own record's gradient-masking verdict; a row whose numbers
    come from different image counts shows ``(n=...)`` in each cell.
    """
    chosen = [r for r in records if r.get("metric") in ADVERSARIAL_METRICS]
    if not chosen:
        return None
    columns = adversarial_columns(chosen)
    index = _index(chosen)
    rows, mixed_rows = [], []
    for tag, threat in _row_keys(chosen):
        present = [index.get((tag, threat, m, v)) for m, v, _ in columns]
        mixed = mixed_n(record_n(r) for r in present if r is not None)
        if mixed:
            mixed_rows.append((tag, threat))
        cells = [
            MISSING
            if r is None
            else cell_text(
                r["accuracy"],
                record_n(r) if mixed else None,
                record_verdict(r) if r.get("metric") != "clean" else None,
            )
            for r in present
        ]
        rows.append([tag, threat, *cells])
    parts = [
        markdown_table(["checkpoint", "threat model", *(t for _, _, t in columns)], rows, numeric_from=2)
    ]
    notes = ["", "Notes (accuracy in %; robust = correct on the clean and on the adversarial image):"]
    for metric, variant, title in columns:
        examples = [r for key, r in index.items() if key[2] == metric and key[3] == variant]
        notes += _column_settings_notes(title, examples)
    if mixed_rows:
        notes.append(
            f"- Rows {_rows_label(mixed_rows)} mix numbers measured on different numbers of images: "
            "each cell shows its n."
        )
    notes += _threat_model_notes(chosen)
    robust = [r for r in chosen if r.get("metric") != "clean"]
    notes += verdict_notes(robust, {(m, v): t for m, v, t in columns})
    legend = mark_legend(record_verdict(r)["state"] for r in robust)
    if legend:
        notes.append(f"- {legend}")
    notes += _checkpoint_words(chosen)
    return "\n".join(parts + notes)


def band_key(record: Mapping[str, Any]) -> tuple[str, int] | None:
    """``("eps=8/255", 7)`` from a band record's id variant ``eps=8/255,band<7`` (or ``band>=7``), or
    None for any other record."""
    if record.get("metric") not in BAND_METRICS:
        return None
    eps, _, band = _variant(record).partition(",")
    try:
        return eps, int(band.removeprefix("band>=").removeprefix("band<"))
    except ValueError:
        return None


def band_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows of the band table: one per checkpoint, threat model, budget and boundary band b that a
    band record (``pgd-20-ce-lfc`` / ``pgd-20-ce-hfc``) has.

    Returns:
        ``[{"tag", "threat_model", "eps" (the id's budget, "eps=8/255"), "boundary" (b),
        "records": {column of :data:`BAND_COLUMNS`: record}}]``, sorted by checkpoint, threat model,
        budget and b; Clean and PGD-20 are the row's checkpoint and threat model's own records (PGD-20
        at the same budget), present only when evaluated.
    """
    index = _index(records)
    order = {name: i for i, name in enumerate(THREAT_MODELS)}
    keys: list[tuple[str, str, str, int]] = []
    for record in records:
        key = band_key(record)
        if key is None:
            continue
        row = (record_key(record).checkpoint, record["threat_model"], *key)
        if row not in keys:
            keys.append(row)
    rows = []
    for tag, threat, eps, boundary in sorted(keys, key=lambda k: (k[0], order.get(k[1], 99), k[2], k[3])):
        found = {
            "Clean": index.get((tag, threat, "clean", "")),
            "PGD-20": index.get((tag, threat, "pgd-20-ce", eps)),
        }
        for metric, title in BAND_METRICS.items():
            found[title] = index.get((tag, threat, metric, f"{eps},{_band_label(metric, boundary)}"))
        present = {title: r for title, r in found.items() if r is not None}
        rows.append(
            {"tag": tag, "threat_model": threat, "eps": eps, "boundary": boundary, "records": present}
        )
    return rows


def _band_label(metric: str, boundary: int) -> str:
    return f"band<{boundary}" if metric.endswith("-lfc") else f"band>={boundary}"


def boundary_words(record: Mapping[str, Any]) -> str:
    """Where a band record's boundary came from, with its LFC share and the inscribed boundary when
    recorded: ``b = 7: measured: ... (raw); LFC holds 79.4% of the non-DC power; b over the inscribed
    bands: 7``."""
    s = record.get("settings") or {}
    words = f"b = {s.get('boundary_band')}: {s.get('boundary_source') or 'source not recorded'}"
    if s.get("boundary_lfc_share") is not None:
        words += f"; the bands < b hold {percent(s['boundary_lfc_share'])}% of the non-DC power"
    if s.get("boundary_band_inscribed") is not None:
        words += f"; b over the inscribed bands alone (the paper's range): {s['boundary_band_inscribed']}"
    return words


def band_table(records: Sequence[Mapping[str, Any]]) -> str | None:
    """The robust-accuracy-by-band Markdown (table and notes), or None when no band record is there.

    One row per checkpoint, threat model, budget and boundary band b (:func:`band_rows`): Clean, PGD-20,
    PGD-20 LFC (perturbation in the bands < b) and PGD-20 HFC (bands >= b), b and the image count in
    their own columns. Robust cells carry their own gradient-masking marks; a row of mixed image counts
    shows ``(n=...)`` in each cell.
    """
    rows = band_rows(records)
    if not rows:
        return None
    several_budgets = len({row["eps"] for row in rows}) > 1
    header = ["checkpoint", "threat model", *(["budget"] if several_budgets else []), "boundary b"]
    header += ["Clean", "PGD-20", "PGD-20 LFC (bands < b)", "PGD-20 HFC (bands >= b)", "n"]
    lines, mixed_rows, shown = [], [], []
    for row in rows:
        found = row["records"]
        mixed = mixed_n(record_n(r) for r in found.values())
        if mixed:
            mixed_rows.append((row["tag"], row["threat_model"]))
        cells = []
        for title in BAND_COLUMNS:
            record = found.get(title)
            cells.append(
                MISSING
                if record is None
                else cell_text(
                    record["accuracy"],
                    record_n(record) if mixed else None,
                    record_verdict(record) if title != "Clean" else None,
                )
            )
        lead = [
            row["tag"],
            row["threat_model"],
            *([row["eps"].removeprefix("eps=")] if several_budgets else []),
        ]
        sizes = sorted({n for n in (record_n(r) for r in found.values()) if n is not None})
        lines.append([*lead, str(row["boundary"]), *cells, ", ".join(map(str, sizes)) or MISSING])
        shown += list(found.values())
    numeric_from = 3 if several_budgets else 2
    parts = [markdown_table(header, lines, numeric_from=numeric_from)]
    notes = [
        "",
        "Notes (accuracy in %; robust = correct on the clean and on the adversarial image; LFC / HFC: the "
        "PGD-20 perturbation restricted to the bands < b / >= b of every channel's centred spectrum, "
        "band k = floor(radius), by a hard FFT mask at every step):",
    ]
    iteration = next(
        (r["settings"].get("iteration") for r in shown if (r.get("settings") or {}).get("iteration")), None
    )
    if iteration:
        notes.append(f"- Iteration: {iteration}.")
    seen_boundaries = set()
    for row in rows:
        band_records = [row["records"][t] for t in BAND_METRICS.values() if t in row["records"]]
        for record in band_records:
            words = boundary_words(record)
            key = (row["tag"], row["threat_model"], words)
            if key not in seen_boundaries:
                seen_boundaries.add(key)
                notes.append(f"- `{row['tag']}` {row['threat_model']}: {words}.")
    for title in BAND_COLUMNS:
        examples = list({id(r): r for row in rows if (r := row["records"].get(title)) is not None}.values())
        if examples:
            notes += _column_settings_notes(title, examples)
    if mixed_rows:
        notes.append(
            f"- Rows {_rows_label(mixed_rows)} mix numbers measured on different numbers of images: "
            "each cell shows its n."
        )
    notes += _threat_model_notes(shown)
    robust = list({id(r): r for r in shown if r.get("metric") != "clean"}.values())
    titles = {(r["metric"], _variant(r)): title for row in rows for title, r in row["records"].items()}
    notes += verdict_notes(robust, titles)
    legend = mark_legend(record_verdict(r)["state"] for r in robust)
    if legend:
        notes.append(f"- {legend}")
    notes += _checkpoint_words(shown)
    return "\n".join(parts + notes)


def _clean_for(index, tag: str, threat: str) -> Mapping[str, Any] | None:
    return index.get((tag, threat, "clean", ""))


def corruption_severities(record: Mapping[str, Any]) -> list[int]:
    """The severities a corruption record holds numbers for (from its cells), ascending."""
    found = {int(level) for row in (record.get("per_corruption") or {}).values() for level in row}
    return sorted(found) or [int(v) for v in (record.get("settings") or {}).get("severities", [])]


def _levels_words(levels: Sequence[int]) -> str:
    return ", ".join(map(str, levels))


def corruption_table(records: Sequence[Mapping[str, Any]]) -> str | None:
    """The Table-4-style Markdown (summary, per-corruption detail, notes), or None.

    The detail table's header names the severities it shows; a row whose Clean number and corruption
    cells come from different image counts shows ``(n=...)`` in each cell.
    """
    chosen = [r for r in records if r.get("metric") == "corruptions"]
    if not chosen:
        return None
    index = _index(records)
    order = {name: i for i, name in enumerate(THREAT_MODELS)}
    chosen = sorted(chosen, key=lambda r: (record_key(r).checkpoint, order.get(r["threat_model"], 99)))
    rows, mixed_rows = [], []
    for record in chosen:
        tag = record_key(record).checkpoint
        clean = _clean_for(index, tag, record["threat_model"])
        mixed = mixed_n([record_n(clean), record_n(record)])
        if mixed:
            mixed_rows.append((tag, record["threat_model"]))
        shown = record_n(record) if mixed else None
        categories = record.get("categories", {})
        rows.append(
            [
                tag,
                record["threat_model"],
                record.get("order", ""),
                cell_text(clean["accuracy"], record_n(clean) if mixed else None) if clean else MISSING,
                *(cell_text(categories.get(c), shown) for c in CATEGORY_TITLES),
                cell_text(record.get("mean"), shown),
            ]
        )
    header = ["checkpoint", "threat model", "order", *CORRUPTION_COLUMNS]
    parts = [markdown_table(header, rows, numeric_from=3)]
    levels_of = [corruption_severities(record) for record in chosen]
    same_levels = all(levels == levels_of[0] for levels in levels_of)
    detail_header = ["corruption", "category"]
    detail_rows: dict[str, list[str]] = {name: [name, CORRUPTIONS[name]] for name in CORRUPTIONS}
    for record, levels in zip(chosen, levels_of, strict=True):
        tag = record_key(record).checkpoint
        title = f"{tag} {record['threat_model']} ({record.get('order')})"
        if not same_levels:
            title += f", severities {'/'.join(map(str, levels))}"
        detail_header.append(title)
        for name in CORRUPTIONS:
            cells = (record.get("per_corruption") or {}).get(name)
            if not cells:
                detail_rows[name].append(MISSING)
                continue
            by_severity = [cells[s]["accuracy"] for s in sorted(cells, key=int)]
            mean = percent(sum(by_severity) / len(by_severity))
            detail_rows[name].append(
                mean if len(by_severity) == 1 else f"{mean} ({' / '.join(percent(a) for a in by_severity)})"
            )
    used = [row for row in detail_rows.values() if any(cell != MISSING for cell in row[2:])]
    if not same_levels:
        lead = "Per corruption: mean over the severities named in each column (accuracy per severity):"
    elif len(levels_of[0]) == 1:
        lead = f"Per corruption: accuracy at severity {levels_of[0][0]}:"
    else:
        levels = levels_of[0]
        lead = (
            f"Per corruption: mean over severities {_levels_words(levels)} "
            f"(accuracy at severity {' / '.join(map(str, levels))}):"
        )
    parts += ["", lead, "", markdown_table(detail_header, used, numeric_from=2)]
    notes = ["", "Notes (accuracy in %):"]
    notes.append(
        "- Noise / Blur / Weather / Digital: mean accuracy over the category's corruptions x severities; "
        "Mean: over all corruption x severity cells shown (the paper's tables: 19 x 5 = 95), not the "
        "mean of the four categories."
    )
    notes.append(
        "- Orders: `bass-then-corrupt` = corruptions generated from the BaSS test set (the paper's "
        "CIFAR10-B-C), model without BaSS front; `corrupt-then-bass` = the ordinary -C set with BaSS "
        "applied to each corrupted image (front inside the model, as deployed); `none` = no BaSS."
    )
    if mixed_rows:
        notes.append(
            f"- Rows {_rows_label(mixed_rows)}: the Clean number and the corruption cells come from "
            "different numbers of images; each cell shows its n (per corruption cell)."
        )
    for record, levels in zip(chosen, levels_of, strict=True):
        tag = record_key(record).checkpoint
        s = record.get("settings", {})
        missing = record.get("missing_corruptions") or []
        extra = f"; missing corruptions: {', '.join(missing)}" if missing else ""
        origin = (
            "published set" if s.get("published") else f"{s.get('origin')}, corruption seed {s.get('seed')}"
        )
        clean = _clean_for(index, tag, record["threat_model"])
        clean_words = f"; Clean: {_n_words(clean)}" if clean else ""
        notes.append(
            f"- `{tag}` {record['threat_model']} ({record.get('order')}): "
            f"-C folder {s.get('c_dir')} ({origin}); "
            f"{record.get('cells')} cells, severities {_levels_words(levels)}, "
            f"n = {record['data'].get('n')} images per cell{extra}{clean_words}."
        )
    notes += _threat_model_notes(chosen)
    notes += _checkpoint_words(chosen)
    return "\n".join(parts + notes)


#: What a stale record's checkpoint tag reads as in every table (:mod:`freqtail.train.staleness`).
STALE_MARK = " (stale)"


def marked_stale(records: Sequence[Mapping[str, Any]], stale_ids: Collection[str]) -> list[dict[str, Any]]:
    """The records, each stale one (its id in ``stale_ids``) with its checkpoint tag shown as
    ``best (stale)``: in every table its numbers then stand in rows of their own, apart from the numbers
    measured on the checkpoint the run names now. For display only: never written back."""
    shown = []
    for record in records:
        if record.get("id") in stale_ids:
            rid = record_key(record)
            record = {**record, "id": str(RecordId(rid.checkpoint + STALE_MARK, *astuple(rid)[1:]))}
        shown.append(dict(record))
    return shown


def results_markdown(
    data: Mapping[str, Any],
    title: str = "Evaluation results",
    stale_notes: Sequence[str] = (),
    stale_ids: Collection[str] = frozenset(),
) -> str:
    """The whole ``results.md`` for the content of a ``results.json``.

    ``stale_notes`` (sentences) and ``stale_ids`` come from
    :func:`freqtail.train.staleness.stale_checkpoints`: the notes open the file under "Stale numbers",
    and the stale records' rows read ``best (stale)``."""
    records = marked_stale(data.get("results", []), stale_ids)
    datasets = sorted({str(r.get("data", {}).get("dataset")) for r in records})
    lines = [f"# {title}", ""]
    lines.append(
        f"Dataset: {', '.join(datasets) or MISSING} (test split). Updated {data.get('updated') or MISSING}. "
        "Every number is stored with its exact settings in results.json."
    )
    if stale_notes:
        lines += ["", "## Stale numbers", "", *(f"- ⚠ {note}" for note in stale_notes)]
    if records:
        lines += ["", measured_with(records)]
    adversarial = adversarial_table(records)
    if adversarial:
        lines += ["", "## Clean and adversarial accuracy (%)", "", adversarial]
    bands = band_table(records)
    if bands:
        lines += ["", f"## {BAND_TABLE_TITLE} (%)", "", bands]
    corruption = corruption_table(records)
    if corruption:
        lines += ["", "## Corruption robustness (%)", "", corruption]
    if not adversarial and not bands and not corruption:
        lines += ["", "No results yet."]
    return "\n".join(lines) + "\n"
