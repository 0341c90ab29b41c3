"""Figures and the run report: each module draws one kind of figure from a result object (or its
JSON dict) and writes it atomically, so commands and the report share the same pictures."""
