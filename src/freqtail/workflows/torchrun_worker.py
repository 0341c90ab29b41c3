"""The program each of the K training processes of :mod:`freqtail.workflows.torchrun_training` runs.

``python -m freqtail.workflows.torchrun_worker CONFIG.yaml RUN_DIR`` (started by torchrun, which sets
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``) trains the config into the run folder with resume:
:func:`~freqtail.workflows.training.train_run`, which joins the process group
(:func:`freqtail.distributed.init_distributed`) and on Ctrl-C / SIGTERM stops after the step with an
``interrupted`` checkpoint. Exit statuses, as ``freqtail train`` and :mod:`freqtail.train.torchrun`
use them: 0 done, 2 an error explained in one line starting with
:data:`~freqtail.workflows.torchrun_training.ERROR_PREFIX`, 130 interrupted; any other failure: exit 1
with that line naming the exception.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from freqtail.errors import FreqtailError, os_error_sentence
from freqtail.train.config import load_config
from freqtail.workflows.torchrun_training import ERROR_PREFIX
from freqtail.workflows.training import TrainRequest, train_run


def _say_error(sentence: str) -> None:
    """The one error line, in one write: the K processes share the launcher's pipe, and ``print``'s
    separate write of the newline let two ranks' lines run together."""
    sys.stderr.write(f"{ERROR_PREFIX}{sentence}\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Train ``argv = [CONFIG.yaml, RUN_DIR]`` (default ``sys.argv[1:]``); returns the exit status."""
    config_file, run_dir = list(sys.argv[1:] if argv is None else argv)
    try:
        result = train_run(TrainRequest(load_config(config_file), Path(run_dir), resume=True))
    except FreqtailError as err:
        _say_error(str(err))
        return 2
    except KeyboardInterrupt:
        return 130
    except OSError as err:  # a full disk, a folder in the way: one sentence, as the command line says it
        _say_error(os_error_sentence(err, "use"))
        return 2
    except Exception as err:  # noqa: BLE001 - one line for the launcher instead of a traceback per rank
        first = (str(err).strip().splitlines() or ["no message"])[0]
        _say_error(f"The training process raised {type(err).__name__}: {first}")
        return 1
    return 130 if result.status == "interrupted" else 0


if __name__ == "__main__":  # pragma: no cover - run by torchrun
    sys.exit(main())
