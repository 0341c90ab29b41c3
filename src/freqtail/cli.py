"""The ``freqtail`` command: one entry point, one subcommand per job.

Subcommands live in :mod:`freqtail.commands`, one module each, found automatically. A module
provides ``register(subparsers)`` which adds its parser and sets ``func`` (a callable taking the
parsed ``argparse.Namespace`` and returning an exit code or ``None``). Modules keep heavy imports
(torch, matplotlib) inside their functions so that ``freqtail --help`` stays fast.

Errors the user can fix (:class:`freqtail.errors.FreqtailError`, and operating-system errors such as
a full disk or a file in the way) print one sentence and exit 2; Ctrl-C exits 130; anything else
prints one line (the traceback only with ``FREQTAIL_DEBUG=1``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import re
import signal
import sys
import warnings
from collections.abc import Sequence

import freqtail.commands as commands_pkg

# The order subcommands are listed in ``--help``; modules not named here follow alphabetically.
COMMAND_ORDER = (
    "demo",
    "spectrum",
    "bass",
    "corrupt",
    "download",
    "train",
    "evaluate",
    "compare",
    "sensitivity",
    "landscape",
    "heatmap",
    "report",
    "grid",
    "reproduce",
)


def _command_modules() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(commands_pkg.__path__) if not m.name.startswith("_")]
    known = [n for n in COMMAND_ORDER if n in names]
    return known + sorted(n for n in names if n not in COMMAND_ORDER)


def build_parser() -> argparse.ArgumentParser:
    from freqtail import __version__

    parser = argparse.ArgumentParser(
        prog="freqtail",
        description="Frequency long-tail analysis, Balanced Spectrum Sampling (BaSS), robust training, "
        "honest evaluation and frequency explanations for PyTorch vision models.",
        epilog="Run 'freqtail demo' first: it needs no data and writes a full report. "
        "'freqtail COMMAND --help' shows each command with an example.",
    )
    parser.add_argument("--version", action="version", version=f"freqtail {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _command_modules():
        module = importlib.import_module(f"freqtail.commands.{name}")
        module.register(subparsers)
    _accept_negative_values(parser)
    return parser


#: What argparse must read as a (negative) value, not as an option: -3, -0.5, -.5, -8/255, -1e-3.
_NEGATIVE_VALUE = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?(/\d+\.?\d*)?$")


def _accept_negative_values(parser: argparse.ArgumentParser) -> None:
    """Let ``--eps -8/255`` reach the value's own check (one sentence) instead of argparse's usage
    screen: argparse takes only plain negative numbers (``-3``, ``-0.5``) as values, and offers no
    public way to widen that, so its matcher is replaced in every (sub)parser."""
    parser._negative_number_matcher = _NEGATIVE_VALUE
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _accept_negative_values(sub)


#: Warnings that third-party packages raise while a command imports them: notes for their authors, not
#: for someone running freqtail. The command line hides them; library use keeps Python's defaults.
THIRD_PARTY_IMPORT_WARNINGS = (
    (FutureWarning, r"`torch\.jit\.interface` is deprecated"),  # torch 2.14, when timm is imported
    (UserWarning, r"pkg_resources is deprecated as an API"),  # setuptools, when robustbench 1.1 is imported
    (DeprecationWarning, r"Importing from timm\.models\.\w+ is deprecated"),  # timm, by robustbench
)


def silence_third_party_import_warnings() -> None:
    """Hide :data:`THIRD_PARTY_IMPORT_WARNINGS` in this process (the command line calls it first)."""
    for category, message in THIRD_PARTY_IMPORT_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code (also used by the console script)."""
    from freqtail.errors import FreqtailError

    silence_third_party_import_warnings()

    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        code = args.func(args)
    except FreqtailError as err:
        print(f"freqtail {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"freqtail {args.command}: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `freqtail spectrum | head`
        return 0
    except MemoryError as err:
        print(f"freqtail {args.command}: error: {_memory_sentence(err, args)}", file=sys.stderr)
        return 2
    except OSError as err:  # a missing, unwritable or full destination the user chose: their fix
        from freqtail.errors import os_error_sentence

        print(f"freqtail {args.command}: error: {os_error_sentence(err, 'use')}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("FREQTAIL_DEBUG"):
            raise
        if _is_out_of_memory(err):
            print(f"freqtail {args.command}: error: {_memory_sentence(err, args)}", file=sys.stderr)
            return 2
        print(
            f"freqtail {args.command}: internal error: {type(err).__name__}: {err} "
            "(set FREQTAIL_DEBUG=1 to see the traceback and please report it).",
            file=sys.stderr,
        )
        return 1
    return int(code or 0)


#: Options that make a command's work smaller: their ``args`` names and how a sentence suggests them.
_SMALLER_WORK = (
    ("batch_size", "a smaller --batch-size"),
    ("chunk_size", "a smaller --chunk-size"),
    ("n", "fewer images with --n"),
    ("limit", "fewer images with --limit"),
)


def _is_out_of_memory(err: Exception) -> bool:
    """torch's allocators fail with ``RuntimeError`` (CPU: "can't allocate memory") or its
    ``OutOfMemoryError`` subclass (CUDA), not with Python's ``MemoryError``."""
    return type(err).__name__ == "OutOfMemoryError" or (
        isinstance(err, RuntimeError) and "can't allocate memory" in str(err)
    )


#: How the allocators name the allocation that failed: numpy ("Unable to allocate 48.0 MiB for an
#: array ..."), torch's CUDA allocator ("Tried to allocate 20.00 MiB"), torch's CPU allocator ("you
#: tried to allocate 50331648 bytes").
_ALLOCATION_SIZE = re.compile(
    r"(?:unable|tried) to allocate (\d+ bytes|\d+(?:\.\d+)? (?:[KMGTP]i)?B)\b", re.I
)


def allocation_size(message: str) -> str | None:
    """The size of the allocation an out-of-memory message says failed, as ``"48.0 MiB"``, or None."""
    found = _ALLOCATION_SIZE.search(message)
    if found is None:
        return None
    size = found.group(1)
    if size.endswith(" bytes"):
        return f"{int(size.split()[0]) / 2**20:.1f} MiB"
    return size


def _memory_sentence(err: BaseException, args: argparse.Namespace) -> str:
    """One sentence: how much could not be allocated and how to go smaller."""
    size = allocation_size(str(err))
    detail = f"{size} more could not be allocated" if size else (str(err).strip().splitlines() or [""])[0]
    detail = detail.rstrip(".")
    fixes = []
    for name, spelling in _SMALLER_WORK:
        if hasattr(args, name):
            value = getattr(args, name)
            fixes.append(
                f"{spelling} (now {value})" if value is not None and name == "batch_size" else spelling
            )
    advice = f"; try {' or '.join(fixes)}" if fixes else "; free memory or use a machine with more"
    return f"Ran out of memory ({detail or 'no details given'}){advice}."


def console_main() -> int:
    """The ``freqtail`` program (console script and ``python -m freqtail.cli``): :func:`main`, then
    Ctrl-C ignored while the interpreter shuts down.

    The command has then said its one sentence and saved its work; a Ctrl-C during the second or so
    that torch's teardown takes (a user pressing it again after a training stop) would otherwise end
    the process by SIGINT, status -2 instead of the command's own status.
    """
    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
