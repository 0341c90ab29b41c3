"""Markdown tables in the paper's layouts, built from results records.

* adversarial: Clean / PGD-20 / CW-20 / AA (/ AA-fast) per checkpoint and threat model (Table 1);
* corruptions: Clean / Noise / Blur / Weather / Digital / Mean per checkpoint, threat model and
  corruption order (Table 4), plus a per-corruption detail table;
* notes under each table give, per column, the exact settings and the number of evaluated
  images, the threat models' meaning and the gradient-masking verdicts.

Accuracies are shown in percent with two decimals; JSON keeps the exact fractions and counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from freqtail.data.corruptions import CORRUPTIONS
from freqtail.evaluate.threat_models import DESCRIPTIONS, THREAT_MODELS

#: Column titles of the adversarial table, in order.
ADVERSARIAL_METRICS: dict[str, str] = {
    "clean": "Clean",
    "pgd-20-ce": "PGD-20",
    "pgd-20-cw": "CW-20",
    "autoattack-standard": "AA",
    "autoattack-fast": "AA-fast",
}
CATEGORY_TITLES = {"noise": "Noise", "blur": "Blur", "weather": "Weather", "digital": "Digital"}
CORRUPTION_COLUMNS = ("Clean", *CATEGORY_TITLES.values(), "Mean")
MISSING = "–"


def pct(fraction: float | None) -> str:
    """``0.5272 -> "52.72"``; None -> "–"."""
    return MISSING if fraction is None else f"{100 * fraction:.2f}"


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


def _variant(record: Mapping[str, Any]) -> str:
    return str(record.get("id", "|||")).split("|")[3] if "id" in record else ""


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
        key = (str(record["id"]).split("|")[0], record["threat_model"])
        if key not in keys:
            keys.append(key)
    return sorted(keys, key=lambda k: (k[0], order.get(k[1], 99)))


def _index(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str, str], Mapping[str, Any]]:
    """``(checkpoint tag, threat model, metric, variant) -> record``."""
    table = {}
    for record in records:
        parts = str(record["id"]).split("|")
        table[(parts[0], record["threat_model"], record["metric"], parts[3])] = record
    return table


def _n_words(record: Mapping[str, Any]) -> str:
    data = record.get("data", {})
    n, of = data.get("n"), data.get("of")
    if of is None or n == of:
        return f"n = {n}"
    return f"n = {n} of {of} (seeded subset, subset seed {data.get('subset_seed')})"


def _settings_words(record: Mapping[str, Any]) -> str:
    s = record.get("settings", {})
    if record["metric"] == "clean":
        return "no attack"
    if s.get("attack") == "pgd":
        start = "random start" if s.get("random_start") else "no random start"
        return (
            f"{s.get('name')}: L-inf eps {s.get('eps_255'):g}/255, step {s.get('step_size_255'):g}/255, "
            f"{s.get('steps')} steps, {s.get('loss')} loss, {s.get('restarts')} restart(s), {start}, "
            f"seed {s.get('seed')} ({s.get('budget_source')})"
        )
    if s.get("attack") == "autoattack":
        return (
            f"{s.get('name')}: {' + '.join(s.get('attacks', []))} ({s.get('package')}), L-inf eps "
            f"{s.get('eps_255'):g}/255, seed {s.get('seed')} ({s.get('budget_source')})"
        )
    return str(s)


def _checkpoint_words(records: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    seen = set()
    for record in records:
        tag = str(record["id"]).split("|")[0]
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
        lines.append(f"- Checkpoint `{tag}`: " + (", ".join(facts) if facts else "no details recorded") + ".")
    return lines


def _threat_model_notes(records: Sequence[Mapping[str, Any]]) -> list[str]:
    present = [name for name in THREAT_MODELS if any(r["threat_model"] == name for r in records)]
    return [f"- Threat model `{name}`: {DESCRIPTIONS[name]}." for name in present]


def adversarial_table(records: Sequence[Mapping[str, Any]]) -> str | None:
    """The Table-1-style Markdown (table and notes), or None when there is no such record."""
    chosen = [r for r in records if r.get("metric") in ADVERSARIAL_METRICS]
    if not chosen:
        return None
    columns = adversarial_columns(chosen)
    index = _index(chosen)
    rows = []
    for tag, threat in _row_keys(chosen):
        cells = [
            pct(index[(tag, threat, m, v)]["accuracy"]) if (tag, threat, m, v) in index else MISSING
            for m, v, _ in columns
        ]
        rows.append([tag, threat, *cells])
    parts = [
        markdown_table(["checkpoint", "threat model", *(t for _, _, t in columns)], rows, numeric_from=2)
    ]
    notes = ["", "Notes (accuracy in %; robust = correct on the clean and on the adversarial image):"]
    for metric, variant, title in columns:
        examples = [r for key, r in index.items() if key[2] == metric and key[3] == variant]
        sizes = sorted({_n_words(r) for r in examples})
        notes.append(f"- {title}: {_settings_words(examples[0])}; {'; '.join(sizes)}.")
        warned = sorted({w for r in examples for w in r.get("check_warnings", [])})
        for message in warned:
            notes.append(f"  - AutoAttack check warning: {message}")
    notes += _threat_model_notes(chosen)
    verdicts = [r for r in records if r.get("metric") == "gradient-masking"]
    for record in sorted(verdicts, key=lambda r: r["id"]):
        tag = str(record["id"]).split("|")[0]
        notes.append(
            f"- Gradient-masking check (`{tag}`, {record['threat_model']}, "
            f"{record['data'].get('n')} images): {record.get('summary', '')}"
        )
    robust = [r for r in chosen if r.get("metric") != "clean"]
    unchecked = sorted(
        {
            (str(r["id"]).split("|")[0], r["threat_model"])
            for r in robust
            if not (r.get("gradient_masking") or {}).get("checked")
        }
    )
    for tag, threat in unchecked:
        notes.append(f"- Gradient-masking check (`{tag}`, {threat}): not run for these numbers.")
    notes += _checkpoint_words(chosen)
    return "\n".join(parts + notes)


def _clean_for(index, tag: str, threat: str) -> Mapping[str, Any] | None:
    return index.get((tag, threat, "clean", ""))


def corruption_table(records: Sequence[Mapping[str, Any]]) -> str | None:
    """The Table-4-style Markdown (summary, per-corruption detail, notes), or None."""
    chosen = [r for r in records if r.get("metric") == "corruptions"]
    if not chosen:
        return None
    index = _index(records)
    order = {name: i for i, name in enumerate(THREAT_MODELS)}
    chosen = sorted(chosen, key=lambda r: (str(r["id"]).split("|")[0], order.get(r["threat_model"], 99)))
    rows = []
    for record in chosen:
        tag = str(record["id"]).split("|")[0]
        clean = _clean_for(index, tag, record["threat_model"])
        categories = record.get("categories", {})
        rows.append(
            [
                tag,
                record["threat_model"],
                record.get("order", ""),
                pct(clean["accuracy"]) if clean else MISSING,
                *(pct(categories.get(c)) for c in CATEGORY_TITLES),
                pct(record.get("mean")),
            ]
        )
    header = ["checkpoint", "threat model", "order", *CORRUPTION_COLUMNS]
    parts = [markdown_table(header, rows, numeric_from=3)]
    detail_header = ["corruption", "category"]
    detail_rows: dict[str, list[str]] = {name: [name, CORRUPTIONS[name]] for name in CORRUPTIONS}
    for record in chosen:
        tag = str(record["id"]).split("|")[0]
        detail_header.append(f"{tag} {record['threat_model']} ({record.get('order')})")
        for name in CORRUPTIONS:
            cells = (record.get("per_corruption") or {}).get(name)
            if not cells:
                detail_rows[name].append(MISSING)
                continue
            by_severity = [cells[s]["accuracy"] for s in sorted(cells, key=int)]
            detail_rows[name].append(
                f"{pct(sum(by_severity) / len(by_severity))} ({' / '.join(pct(a) for a in by_severity)})"
            )
    used = [row for row in detail_rows.values() if any(cell != MISSING for cell in row[2:])]
    parts += [
        "",
        "Per corruption: mean over severities (severity 1 / 2 / ... accuracies):",
        "",
        markdown_table(detail_header, used, numeric_from=2),
    ]
    notes = ["", "Notes (accuracy in %):"]
    notes.append(
        "- Noise / Blur / Weather / Digital: mean accuracy over the category's corruptions x severities; "
        "Mean: over all corruption x severity cells (paper: 19 x 5), not the mean of the four categories."
    )
    notes.append(
        "- Orders: `bass-then-corrupt` = corruptions generated from the BaSS test set (the paper's "
        "CIFAR10-B-C), model without BaSS front; `corrupt-then-bass` = the ordinary -C set with BaSS "
        "applied to each corrupted image (front inside the model, as deployed); `none` = no BaSS."
    )
    for record in chosen:
        tag = str(record["id"]).split("|")[0]
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
            f"{record.get('cells')} cells, severities {', '.join(map(str, s.get('severities', [])))}, "
            f"n = {record['data'].get('n')} images per cell{extra}{clean_words}."
        )
    notes += _threat_model_notes(chosen)
    notes += _checkpoint_words(chosen)
    return "\n".join(parts + notes)


def results_markdown(data: Mapping[str, Any], title: str = "Evaluation results") -> str:
    """The whole ``results.md`` for the content of a ``results.json``."""
    records = list(data.get("results", []))
    datasets = sorted({str(r.get("data", {}).get("dataset")) for r in records})
    lines = [f"# {title}", ""]
    lines.append(
        f"Dataset: {', '.join(datasets) or MISSING} (test split). Updated {data.get('updated') or MISSING}. "
        "Every number is stored with its exact settings in results.json."
    )
    adversarial = adversarial_table(records)
    if adversarial:
        lines += ["", "## Clean and adversarial accuracy (%)", "", adversarial]
    corruption = corruption_table(records)
    if corruption:
        lines += ["", "## Corruption robustness (%)", "", corruption]
    if not adversarial and not corruption:
        lines += ["", "No results yet."]
    return "\n".join(lines) + "\n"
