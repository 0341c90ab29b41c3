"""freqtail.locks with real processes: refusal naming the holder, waiting, takeover after SIGKILL,
and read-merge-write under ``exclusive`` losing no update."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from freqtail.errors import FreqtailError, LockedError
from freqtail.locks import UNKNOWN_HOLDER, exclusive, holder_path, read_holder, try_lock

#: A process that takes the lock ``argv[1]``, writes ``argv[2]`` (its "ready" marker), waits until
#: ``argv[3]`` exists, appends "released" to ``argv[4]`` and releases the lock.
HOLDER = """
import os, sys, time
from pathlib import Path
from freqtail.locks import try_lock

lock = try_lock(sys.argv[1], purpose="holding for a test")
Path(sys.argv[2]).write_text(str(os.getpid()))
while not Path(sys.argv[3]).exists():
    time.sleep(0.01)
with open(sys.argv[4], "a") as log:
    log.write("released\\n")
lock.release()
"""

#: ``argv[3]`` times: under ``exclusive(argv[1])``, read the counter in ``argv[2]``, add one, write.
INCREMENT = """
import json, sys
from pathlib import Path
from freqtail.io import atomic_write_json
from freqtail.locks import exclusive

counter = Path(sys.argv[2])
for _ in range(int(sys.argv[3])):
    with exclusive(sys.argv[1], purpose="counting", timeout=120):
        value = json.loads(counter.read_text())["n"] if counter.exists() else 0
        atomic_write_json(counter, {"n": value + 1})
"""


def _wait_for(path, process, limit=120):
    deadline = time.monotonic() + limit  # a bound for a broken build, not a race
    while not path.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.01)


@pytest.fixture()
def holder_process(tmp_path):
    """Start :data:`HOLDER` on ``tmp_path/x.lock``; yields ``(process, paths)`` once it holds the lock."""
    paths = {name: tmp_path / name for name in ("x.lock", "ready", "release", "log")}
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, *(str(paths[n]) for n in ("x.lock", "ready", "release", "log"))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(paths["ready"], process)
        yield process, paths
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_a_held_lock_is_refused_naming_its_holder(holder_process):
    process, paths = holder_process
    with pytest.raises(LockedError) as info:
        try_lock(paths["x.lock"], purpose="second", refusal="The thing {path} is busy: {holder}.")
    holder = info.value.holder
    assert (holder.pid, holder.host, holder.purpose) == (
        process.pid,
        socket.gethostname(),
        "holding for a test",
    )
    assert holder.command.startswith("-c ")
    assert str(info.value) == f"The thing {paths['x.lock']} is busy: {holder.describe()}."
    assert (
        holder.describe()
        == f"process {process.pid} on host {holder.host} since {holder.since} ({holder.command})"
    )
    assert holder.since.endswith("Z") and len(holder.since) == 20
    paths["release"].touch()
    assert process.wait(timeout=120) == 0
    assert not holder_path(paths["x.lock"]).exists()  # removed on release
    with try_lock(paths["x.lock"], purpose="after") as lock:
        assert lock.stale is None and lock.stale_message() is None
        assert read_holder(paths["x.lock"]) == lock.holder


def test_two_locks_exclude_each_other_inside_one_process(tmp_path):
    with try_lock(tmp_path / "y.lock", purpose="first") as first:
        with pytest.raises(LockedError, match=f"process {os.getpid()} on host"):
            try_lock(tmp_path / "y.lock", purpose="second")
        assert first.held
    assert not first.held
    first.release()  # a second release does nothing


def test_exclusive_waits_for_the_holder(holder_process):
    process, paths = holder_process
    acquired = threading.Event()

    def wait_for_lock():
        with exclusive(paths["x.lock"], purpose="waiting", timeout=120):
            with open(paths["log"], "a") as log:
                log.write("acquired\n")
            acquired.set()

    waiter = threading.Thread(target=wait_for_lock)
    waiter.start()
    paths["release"].touch()
    waiter.join(timeout=180)
    assert acquired.is_set() and process.wait(timeout=120) == 0
    # the waiter got the lock only after the holder released it
    assert paths["log"].read_text().splitlines() == ["released", "acquired"]


def test_exclusive_gives_up_after_its_timeout_naming_the_holder(holder_process):
    process, paths = holder_process
    with pytest.raises(LockedError, match=rf"stayed locked by process {process.pid} on host .* for 0.2 s"):
        with exclusive(paths["x.lock"], purpose="impatient", timeout=0.2):
            raise AssertionError("never reached")


def test_the_lock_of_a_killed_holder_is_taken_over_and_reported(holder_process):
    process, paths = holder_process
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=120)
    assert read_holder(paths["x.lock"]).pid == process.pid  # the dead holder's record is still there
    with try_lock(paths["x.lock"], purpose="successor") as lock:
        assert lock.stale.pid == process.pid
        assert lock.stale_message() == (
            f"Took over the lock {paths['x.lock']} from {lock.stale.describe()}, "
            "which no longer holds it (it ended without releasing it)."
        )
        assert read_holder(paths["x.lock"]).pid == os.getpid()


def test_a_holder_without_a_record_is_another_process(tmp_path):
    import filelock

    raw = filelock.FileLock(str(tmp_path / "z.lock"))
    with raw:
        with pytest.raises(LockedError) as info:
            try_lock(tmp_path / "z.lock", purpose="x")
    assert UNKNOWN_HOLDER in str(info.value) and info.value.holder is None


def test_read_merge_write_under_exclusive_loses_no_update(tmp_path):
    lock, counter = tmp_path / "c.lock", tmp_path / "counter.json"
    workers = [
        subprocess.Popen([sys.executable, "-c", INCREMENT, str(lock), str(counter), "25"]) for _ in range(4)
    ]
    assert [w.wait(timeout=300) for w in workers] == [0, 0, 0, 0]
    assert json.loads(counter.read_text()) == {"n": 100}
    assert not holder_path(lock).exists()


def test_an_unwritable_lock_file_is_one_sentence(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(FreqtailError, match=r"^The lock file .* cannot be created or locked \(.*\)\.$"):
        try_lock(blocker / "x.lock", purpose="x")
