"""Figures and the run report: each module draws one kind of figure from a result object (or its
JSON dict) and writes it atomically, so commands and the report share the same pictures;
:mod:`~freqtail.report.paper_table` lays a grid's measured cells beside the paper's published tables."""
