"""The corruption suite: accuracy on every (corruption, severity) cell of a threat model's -C set.

The set is the one the plan resolved (a -C folder, or generated once from the evaluated test images
into the work folder, on rank 0, then read by every rank); the counts are
:func:`freqtail.evaluate.corruption_eval.corruption_outcomes` (exact sums, per-image outcomes per cell).
"""

from __future__ import annotations

import time

import freqtail.evaluate.corruption_eval as ce
from freqtail.data.corruptions import CORRUPTIONS
from freqtail.data.subsets import SubsetChoice
from freqtail.distributed import barrier
from freqtail.evaluate.plan import test_set
from freqtail.evaluate.records import PerImage
from freqtail.evaluate.results import utc_now
from freqtail.evaluate.session import EvaluationSession
from freqtail.evaluate.suites import (
    SUITE_SPECS,
)


def run_corruptions(session: EvaluationSession, setup, choice: SubsetChoice | None) -> None:
    """The corruption suite of one threat model; ``choice`` = the evaluated test images (None: the
    suite runs alone, so they are chosen here from the raw test set's labels)."""
    plan = session.plan
    order = ce.ORDER_OF_THREAT_MODEL[setup.name]
    source = plan.corruption_sources.get(setup.name)
    if choice is None and (source is None or source.origin == "generated"):
        choice = session.choose(test_set(plan, None))
    if source is None:
        indices = choice.indices
        if session.context.is_main:
            source = ce.generate_corruption_source(
                order,
                dataset=plan.dataset,
                data_root=plan.target.data_root,
                indices=indices,
                generate_dir=plan.target.work_dir / "corrupted",
                corruptions=plan.request.corruption.corruptions,
                severities=plan.request.corruption.severities,
                seed=plan.request.corruption.seed,
                bass_strength=plan.target.bass_strength,
                progress=session.progress,
            )
        barrier(session.context)
        if source is None:  # other ranks: the folder rank 0 wrote
            levels = plan.request.corruption.severities or [1, 2, 3, 4, 5]
            folder = ce.generated_folder(
                plan.target.work_dir / "corrupted",
                plan.dataset,
                order,
                indices,
                levels,
                plan.request.corruption.seed,
                plan.target.bass_strength,
            )
            names = plan.request.corruption.corruptions or list(CORRUPTIONS)
            source = ce.CorruptionSource(order, folder, "generated", names, levels, {})
        plan.corruption_sources[setup.name] = source
    settings = {
        "attack": None,
        "batch_size": plan.request.batch_size,
        **source.to_dict(),
    }
    generated = source.origin == "generated"
    data = {
        "dataset": plan.dataset,
        "split": "test",
        "bass": "dataset" if order == ce.BASS_THEN_CORRUPT else None,
        "bass_strength": plan.target.bass_strength if order != ce.ORDER_NONE else None,
        "corruption_order": order,
        "n_requested": plan.request.n,
        "subset_seed": plan.request.subset_seed,
    }
    record = session.base_record(
        setup, "corruptions", SUITE_SPECS["corruptions"].metric, order, data, settings
    )
    if session.skipped(record):
        return
    began = time.perf_counter()
    n = None if generated else plan.request.n
    table, cells, masks = ce.corruption_outcomes(
        setup.model,
        source,
        n=n,
        subset_seed=plan.request.subset_seed,
        batch_size=plan.request.batch_size,
        context=session.context,
        progress=session.progress,
        desc=f"{setup.name} corruptions ({order})",
    )
    if generated:
        # A generated set holds exactly the evaluated test images, in order, and all are counted.
        record.data.update(choice.to_dict(), indices_of="test set (the images the -C files hold)")
    else:
        record.data.update(cells.to_dict(), indices_of="each corruption file (same positions in all)")
    counted = ce.corruption_table_record(table)
    record = record.replace(
        correct=counted.pop("correct"),
        total=counted.pop("total"),
        accuracy=counted.pop("accuracy"),
        extras={"order": order, **counted},
        seconds=round(time.perf_counter() - began, 3),
        created=utc_now(),
        per_image=PerImage.of_cells(cells.n, masks),
    )
    session.emit(record)
