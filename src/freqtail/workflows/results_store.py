"""A folder's ``results.json`` and ``results.md``, read and merged under the folder's results lock.

Every process that writes numbers into a folder merges through :meth:`ResultsStore.merge`, which
reads, merges and writes while it holds an exclusive lock (:mod:`freqtail.locks`), so N concurrent
evaluations of one run never lose a record. The records themselves are those of
:mod:`freqtail.evaluate.results`. ``results.md`` marks the records whose checkpoint the run's
pointers no longer name (:mod:`freqtail.train.staleness`); training rewrites it through
:meth:`ResultsStore.refresh_markdown` when it moves a pointer past evaluated numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from freqtail.evaluate.results import load_results, write_results
from freqtail.evaluate.tables import results_markdown
from freqtail.io import atomic_write_text, sweep_leftover_temporaries
from freqtail.locks import exclusive
from freqtail.runs.layout import RunLayout
from freqtail.train.staleness import stale_checkpoints, stale_ids

#: Seconds a process waits for another one to finish merging into ``results.json``.
RESULTS_LOCK_TIMEOUT = 120.0


class ResultsStore:
    """The results files of one folder (:attr:`RunLayout.results`, :attr:`RunLayout.results_md`)."""

    def __init__(self, layout: RunLayout) -> None:
        self.layout = layout

    def records(self) -> list[dict[str, Any]]:
        """The stored records (empty when there is no ``results.json`` yet).

        Raises:
            InputError: the file exists but is damaged (it is never overwritten then).
        """
        path = self.layout.results
        return list(load_results(path)["results"]) if path.exists() else []

    def merge(
        self, records: Iterable[Mapping[str, Any]], warn: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        """Merge ``records`` into ``results.json`` and rewrite ``results.md``, holding the lock.

        ``warn`` receives one sentence per stored number replaced by one measured on other images.

        Returns:
            the whole merged ``results.json`` content.
        """
        layout = self.layout
        with exclusive(layout.results_lock, purpose="merging results.json", timeout=RESULTS_LOCK_TIMEOUT):
            sweep_leftover_temporaries([layout.results, layout.results_md])  # of merges killed mid-write
            merged = write_results(layout.results, records, warn=warn)
            self._write_markdown(merged)
        return merged

    def refresh_markdown(self) -> bool:
        """Rewrite ``results.md`` from ``results.json`` (its stale marks follow the run's pointers now),
        holding the lock; False when the folder has no ``results.json``.

        Raises:
            InputError: ``results.json`` is damaged (nothing is written then).
        """
        layout = self.layout
        if not layout.results.exists():
            return False
        with exclusive(layout.results_lock, purpose="merging results.json", timeout=RESULTS_LOCK_TIMEOUT):
            sweep_leftover_temporaries([layout.results_md])
            self._write_markdown(load_results(layout.results))
        return True

    def _write_markdown(self, data: Mapping[str, Any]) -> None:
        layout = self.layout
        stale = stale_checkpoints(layout.folder, data["results"])
        text = results_markdown(
            data,
            title=f"Evaluation results: {layout.folder.name}",
            stale_notes=[entry.sentence(layout.folder) for entry in stale],
            stale_ids=stale_ids(stale),
        )
        atomic_write_text(layout.results_md, text)
