"""Subcommands of the ``freqtail`` command line, one module each (see :mod:`freqtail.cli`)."""
