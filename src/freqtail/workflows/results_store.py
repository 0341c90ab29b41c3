"""A folder's ``results.json`` and ``results.md``, read and merged under the folder's results lock.

Every process that writes numbers into a folder merges through :meth:`ResultsStore.merge`, which
reads, merges and writes while it holds an exclusive lock (:mod:`freqtail.locks`), so N concurrent
evaluations of one run never lose a record. The records themselves are those of
:mod:`freqtail.evaluate.results`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from freqtail.evaluate.results import load_results, write_results
from freqtail.evaluate.tables import results_markdown
from freqtail.io import atomic_write_text, sweep_leftover_temporaries
from freqtail.locks import exclusive
from freqtail.runs.layout import RunLayout

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
            title = f"Evaluation results: {layout.folder.name}"
            atomic_write_text(layout.results_md, results_markdown(merged, title=title))
        return merged
