"""``python -m freqtail.train.torchrun``: torchrun with freqtail's exit codes, no traceback on Ctrl-C.

It takes exactly torchrun's arguments and runs torchrun's own ``run`` in this process: put
``python -m freqtail.train.torchrun`` where ``torchrun`` stands in a command (docs/guides/training.md,
"Many GPUs and machines", has the full command for ``freqtail train``).

Everything after the training script (or ``-m MODULE``) belongs to the script: this launcher hands
torchrun's parser only the arguments up to the script (:func:`split_arguments`). Plain torchrun
parses the whole line, so a script option that abbreviates torchrun options is refused there
(``--n 500`` is "ambiguous option: --n could match --nnodes, --nproc-per-node, ..."), and one that
abbreviates a single option is taken by torchrun.

Plain ``torchrun`` installs handlers for SIGINT, SIGTERM, SIGHUP and SIGQUIT that raise
``SignalException`` in its agent; the agent logs ``Received <n> death signal, shutting down
workers``, sends the same signal to every worker (each runs in its own session, so a terminal's
Ctrl-C reaches the workers only through torchrun), waits up to ``--shutdown-timeout`` seconds
(default 30) and kills what is left, then lets the exception escape: Python prints its traceback
and torchrun exits 1, whatever the workers did. A worker that exits non-zero on its own makes
torchrun raise ``ChildFailedError``, printed with a traceback and a failure report, exit 1.

This launcher catches both, so the exit status says what happened and no traceback is printed:

- a signal: one line, exit ``128 + signal number`` (130 for Ctrl-C, 143 for SIGTERM); the workers
  of ``freqtail train`` have by then finished their step and written an ``interrupted`` checkpoint
  (unless the shutdown timeout ran out first) and rank 0 has said so;
- workers that failed with one of freqtail's own codes (2: an error they explained in one
  sentence; 130: interrupted): that code, nothing added (workers torchrun then stopped itself
  with SIGTERM are not counted);
- any other failure: torchrun's failure report (without the traceback), exit 1.

torchrun's log lines (``W... Received 2 death signal, shutting down workers``, ``Sending process N
closing signal SIGINT``) are kept: they come from torchrun's logger, not from an exception.

A signal that reaches torchrun (torch 2.14) at the first instruction of its monitoring step makes
its agent fail with ``UnboundLocalError`` (a timer's ``finally`` reads a variable not yet set) while
handling the ``SignalException``; the agent then stops the workers with SIGTERM instead of the
signal it got (``freqtail train`` treats both alike) and logs nothing. This launcher finds the
``SignalException`` behind it and reports the signal as usual.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, record
from torch.distributed.run import get_args_parser
from torch.distributed.run import run as torchrun_run


def main(argv: Sequence[str] | None = None) -> int:
    """Run torchrun with ``argv`` (default ``sys.argv[1:]``); returns the exit status described above."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = get_args_parser()
    own, script_args = split_arguments(args, parser)
    parsed = parser.parse_args(own)
    parsed.training_script_args = script_args
    try:
        record(torchrun_run)(parsed)
    except Exception as err:
        signalled = _in_chain(err, SignalException)
        if signalled is not None:
            signum = int(signalled.sigval)
            name = "Ctrl-C (SIGINT)" if signalled.sigval.name == "SIGINT" else signalled.sigval.name
            print(f"freqtail torchrun: stopped by {name}; the workers were told to stop.", file=sys.stderr)
            return 128 + signum
        if not isinstance(err, ChildFailedError):
            raise
        # -15: a worker torchrun itself stopped with SIGTERM after another one had failed.
        codes = {failure.exitcode for failure in err.failures.values()} - {-15}
        if len(codes) == 1 and codes <= {2, 130}:
            return codes.pop()
        print(err.format_msg().strip(), file=sys.stderr)
        return 1
    return 0


def split_arguments(args: Sequence[str], parser: argparse.ArgumentParser) -> tuple[list[str], list[str]]:
    """``(torchrun's arguments up to and including the training script, the script's arguments)``.

    The script is the first argument that is neither an option of ``parser`` (torchrun's) nor the
    value of one (``--nproc-per-node 2``; ``--opt=value`` is one argument; a flag such as ``-m`` or
    ``--standalone`` takes no value). An option torchrun does not know is left to its parser, which
    refuses it. Without a script, everything is torchrun's.
    """
    takes_value = {
        option: action.nargs != 0 for action in parser._actions for option in action.option_strings
    }
    args = list(args)
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--" or not token.startswith("-") or token == "-":
            script = i + 1 if token == "--" else i
            return args[: script + 1], args[script + 1 :]
        name = token.split("=", 1)[0]
        exact = takes_value.get(name)
        values = {exact} if exact is not None else {v for o, v in takes_value.items() if o.startswith(name)}
        i += 2 if "=" not in token and values == {True} else 1
    return args, []


def _in_chain(err: BaseException, kind: type) -> BaseException | None:
    """``err`` or the exception it was raised while handling, if one is a ``kind``.

    torch's agent wraps its monitoring step in a timer whose ``finally`` reads a variable that a
    signal arriving at the step's first instruction leaves unset; the ``SignalException`` then
    reaches us as the context of an ``UnboundLocalError``.
    """
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, kind):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
