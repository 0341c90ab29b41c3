"""Corrupted test sets in the CIFAR-10-C layout: writing them (resumably) and reading them.

Layout of a ``-C`` folder (the published CIFAR-10-C / CIFAR-100-C, and what freqtail writes)::

    <dir>/<corruption>.npy   uint8 (S * N, H, W, 3): S severity blocks of the same N images
    <dir>/labels.npy         int (S * N,): the N labels repeated S times
    <dir>/meta.json          freqtail only: severities, seed, source, versions, finished corruptions,
                             and the SHA-256 digest of every array (``"arrays"``)

The published sets have no ``meta.json`` and hold severities 1..5 in order; freqtail's may hold
any listed subset, in the listed order, and say so in ``meta.json``.

freqtail's sets are verified, never trusted (:mod:`freqtail.data.cache_files`): ``meta.json`` records
the digest of ``labels.npy``, of ``clean.npy`` (written by ``freqtail corrupt``), of each corruption
file and of each of its severity blocks (``"fog.npy:severity-3"``, :func:`block_key`).
:func:`load_corrupted_set` checks the labels and the one block it returns (so a read hashes what it
reads, once); a rerun of :func:`write_corrupted_set` checks each finished corruption it is asked for
and redoes a damaged one. The published sets carry no digests and are read unchecked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from freqtail import __version__
from freqtail.checks import check_int
from freqtail.data.arrays import ArrayDataset
from freqtail.data.cache_files import (
    DIGESTS_KEY,
    ArrayDigest,
    array_digest,
    check_array,
    load_array,
    recorded_digests,
    report_rebuilt,
)
from freqtail.data.corrupted_parts import (
    PARTS_DIR,
    assemble,
    by_corruption,
    chunk_size,
    missing_units,
    plan_units,
    share_units,
    write_units,
)
from freqtail.data.corruptions import CORRUPTIONS, check_corruption_name, check_severity
from freqtail.distributed import (
    DistContext,
    all_gather_json,
    all_reduce_counts,
    barrier,
    raise_together,
    run_on_every_rank,
    run_on_main_and_share,
)
from freqtail.errors import ConfigError, DamagedFileError, DatasetNotFoundError, InputError
from freqtail.images import check_uint8_images
from freqtail.io import atomic_save_npy, atomic_write_json, load_npy, sweep_leftover_temporaries
from freqtail.locks import Lock, try_lock
from freqtail.progress import progress_bar, silent

META_FILE = "meta.json"
LABELS_FILE = "labels.npy"
CLEAN_FILE = "clean.npy"  # the uncorrupted source images, written by `freqtail corrupt` (not by the library)
FORMAT = "freqtail-corrupted-set"
# Also versions the corruption outputs: a folder written with another version is not resumed.
# 2: glass_blur copies instead of swapping and spatter calls OpenCV, as the original script.
# 3: every corruption computes and truncates in the original script's precision.
# 4: meta.json records the digest of every array; a folder of an older version is refused (it cannot be
# verified) with the command that writes it again, and the generated sets of `evaluate --generate-c`,
# keyed by this version, are generated anew.
FORMAT_VERSION = 4
DEFAULT_SEVERITIES = (1, 2, 3, 4, 5)
# Settings that must agree for a folder to be resumed (everything else may change).
_RESUME_KEYS = (
    "format",
    "format_version",
    "num_images",
    "image_shape",
    "severities",
    "seed",
    "source_digest",
)
_HOW_TO_GET = (
    "download CIFAR-10-C (zenodo.org/records/2535967) or CIFAR-100-C (zenodo.org/records/3555552) and unpack "
    "it there, or generate one with `freqtail corrupt --dataset NAME --out DIR`"
)
_CHUNK_VALUES = 1 << 24  # source images read per step: about 16 MiB


def _check_severities(severities: Sequence[int]) -> list[int]:
    values = [check_severity(s) for s in severities]
    if not values:
        raise InputError("At least one corruption severity is needed.")
    if len(set(values)) != len(values):
        raise InputError(f"Corruption severities must not repeat, got {values}.")
    return values


def _source_digest(images: np.ndarray, labels: np.ndarray) -> str:
    """BLAKE2b of the source images and labels, read in chunks (memory-mapped sources stay on disk)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((images.shape, str(images.dtype))).encode())
    step = max(1, _CHUNK_VALUES // int(np.prod(images.shape[1:])))
    for begin in range(0, len(images), step):
        digest.update(np.ascontiguousarray(images[begin : begin + step]).tobytes())
    digest.update(np.ascontiguousarray(labels.astype(np.int64)).tobytes())
    return digest.hexdigest()


def _read_meta(c_dir: Path) -> dict[str, Any] | None:
    path = c_dir / META_FILE
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DamagedFileError(f"The corrupted-set description {path} is damaged ({err}).", path) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DamagedFileError(f"The file {path} is not a freqtail corrupted-set description.", path)
    return meta


def block_key(corruption: str, severity: int) -> str:
    """The name under which ``meta.json`` records the digest of one severity block of ``<corruption>.npy``."""
    return f"{corruption}.npy:severity-{int(severity)}"


def rewrite_advice(c_dir: Path, meta: Mapping[str, Any], corruptions: Sequence[str]) -> str:
    """How to write ``corruptions`` of the set ``c_dir`` again: the ``freqtail corrupt`` command its
    ``meta.json`` describes (the end of a refusal's sentence)."""
    source = meta.get("source") if isinstance(meta.get("source"), Mapping) else {}
    dataset = source.get("dataset")
    if not isinstance(dataset, str):
        out = shlex.quote(str(c_dir))
        return f"write it again with `freqtail corrupt --out {out}` and the options it was written with"
    words = ["freqtail corrupt", f"--dataset {shlex.quote(dataset)}"]
    data_root = source.get("data_root")  # recorded by `freqtail corrupt`
    if isinstance(data_root, str):
        words.append(f"--data-root {shlex.quote(data_root)}")
    elif dataset != "embedded":
        words.append("--data-root DIR")
    words.append(f"--out {shlex.quote(str(c_dir))}")
    if corruptions:
        words.append(f"--corruptions {','.join(corruptions)}")
    words.append(f"--severities {','.join(str(s) for s in meta.get('severities', DEFAULT_SEVERITIES))}")
    if meta.get("seed"):
        words.append(f"--seed {meta['seed']}")
    if source.get("bass") == "dataset":
        words.append("--bass dataset")
    if source.get("limit"):
        words.append(f"--limit {source['limit']}")
    where = " (DIR: the data root it was written from)" if "--data-root DIR" in words else ""
    return f"run `{' '.join(words)}`{where} to write it again"


def _verified_digests(c_dir: Path, meta: Mapping[str, Any] | None) -> dict[str, ArrayDigest] | None:
    """The digests ``meta.json`` records; None for a published set (no ``meta.json``).

    Raises:
        DatasetNotFoundError: a freqtail set of an older format, which recorded none;
            DamagedFileError: a ``meta.json`` of this format without a valid record.
    """
    if meta is None:
        return None
    digests = recorded_digests(meta)
    version = meta.get("format_version")
    if digests is None and isinstance(version, int) and version >= 4:
        path = c_dir / META_FILE
        held = [x for x in meta.get("corruptions", []) if x in CORRUPTIONS]
        raise DamagedFileError(
            f"The file {path} is damaged (its record of the arrays' digests is missing or malformed); "
            f"delete the folder and {rewrite_advice(c_dir, meta, held)}.",
            path,
        )
    if digests is None:
        held = [x for x in meta.get("corruptions", []) if x in CORRUPTIONS]
        raise DatasetNotFoundError(
            f"The corrupted set {c_dir} was written by an older freqtail (corrupted-set format {version}) "
            "that recorded no digests of its arrays, so they cannot be checked; delete the folder and "
            f"{rewrite_advice(c_dir, meta, held)}."
        )
    return digests


def write_corrupted_set(
    images: np.ndarray,
    labels: np.ndarray,
    out_dir: str | os.PathLike,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = DEFAULT_SEVERITIES,
    seed: int = 0,
    progress: bool = True,
    meta: Mapping[str, Any] | None = None,
    context: DistContext | None = None,
    source_file: str | None = None,
) -> dict[str, Any]:
    """Write a corrupted copy of a test set in the CIFAR-10-C layout (resumable; shared by processes).

    Args:
        images: uint8 (N, H, W, 3) source images; a memory-mapped array stays on disk (it is read
            in chunks of about 16 MiB, and each output file is assembled chunk by chunk, so memory
            does not grow with N).
        labels: int (N,) labels.
        out_dir: destination folder (created).
        corruptions: names from :data:`~freqtail.data.corruptions.CORRUPTIONS`; default all 19.
        severities: which severities to write, in block order; default 1..5.
        seed: corruption seed (see :func:`~freqtail.data.corruptions.corrupt`).
        progress: show a progress bar on stderr.
        meta: JSON-serialisable description of the source stored under ``"source"`` in
            ``meta.json`` (e.g. ``{"dataset": "cifar10", "split": "test", "bass": None,
            "classes": [...]}``; ``"classes"`` is used by :func:`load_corrupted_set`).
        context: this process's place among the processes sharing the work (torchrun,
            :func:`freqtail.distributed.init_distributed`); None = one process. Every process calls
            this with the same arguments; the (corruption, severity, image chunk) units still to
            compute are shared by estimated cost (:mod:`freqtail.data.corrupted_parts`,
            :func:`~freqtail.data.corrupted_parts.share_units`), rank 0 alone writes the folder's
            files (``meta.json`` records ``world_size``), and the set is one process's byte for byte.
        source_file: the name of the file in ``out_dir`` that holds ``images`` (``clean.npy`` of
            ``freqtail corrupt``, which writes it), whose digest ``meta.json`` then records too.

    Every file is written atomically, and ``meta.json`` records the SHA-256 digest of every array
    (:func:`block_key`). Running again with the same source and settings checks each finished
    corruption asked for against its digests and skips it (a damaged one is written again, one
    line on the ``freqtail.cache`` logger saying so), skips the units already written (so an
    interrupted run resumes, with any number of processes), and adds any new corruptions asked
    for. A folder written with other settings or from other images is refused. Rank 0 holds the
    folder's lock (:data:`WRITE_LOCK`) while the set is written and first sweeps what killed writes
    left.

    Returns:
        ``{"out_dir", "written", "skipped", "num_images", "severities", "seed", "world_size", "units",
        "units_computed", "seconds"}``: ``units`` of (corruption, severity, image chunk) to write,
        ``units_computed`` of them computed by this call (by all processes; the others were found).

    Raises:
        InputError: bad images, labels, names or severities. ConfigError: the folder holds a
        different set. LockedError: another process writes the folder.
    """
    start = time.perf_counter()
    out = Path(out_dir)
    images = check_uint8_images(images, what="source images", allow_single=False)
    n, h, w, c = images.shape
    if c != 3:
        raise InputError(f"Corruptions need RGB images with 3 channels, but the source images have {c}.")
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(
            f"The labels must be an integer array with one label per image ({n}), not {labels.dtype} "
            f"of shape {labels.shape}."
        )
    names = list(CORRUPTIONS) if corruptions is None else [check_corruption_name(x) for x in corruptions]
    if not names:
        raise InputError("At least one corruption name is needed.")
    names = list(dict.fromkeys(names))
    levels = _check_severities(severities)
    seed = check_int(seed, "The corruption seed", minimum=0)
    try:
        json.dumps(dict(meta or {}), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise InputError(f"The corrupted-set meta must be JSON-serialisable ({err}).") from None
    settings = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "num_images": n,
        "image_shape": [h, w, c],
        "severities": levels,
        "seed": int(seed),
        "source_digest": _source_digest(images, labels),
    }
    context = context or DistContext()
    full_shape = (len(levels) * n, h, w, c)

    def decide() -> dict[str, Any]:
        """Rank 0, holding the folder's lock: check the folder, sweep, write labels and meta, plan."""
        held.append(try_lock(out / WRITE_LOCK, purpose="writing a corrupted set", refusal=_LOCKED))
        done, recorded = _prepare_folder(out, settings)
        tiled = np.tile(labels.astype(np.int64), len(levels))
        digests.update({k: v.to_json() for k, v in recorded.items() if _recorded_for(k, done)})
        digests[LABELS_FILE] = array_digest(tiled).to_json()
        if source_file is not None:
            digests[source_file] = array_digest(images).to_json()
        record.update(settings, freqtail_version=__version__, source=dict(meta or {}), corruptions=done)
        record.update(world_size=context.world_size, **{DIGESTS_KEY: digests})
        atomic_write_json(out / META_FILE, record)  # first: a folder with labels but no meta is foreign
        _write_labels(out / LABELS_FILE, tiled)
        skipped = []
        for name in (x for x in names if x in done):
            try:
                _check_finished(out, name, recorded, full_shape)
                skipped.append(name)
            except DamagedFileError as err:  # written again below, and said so once it is
                damaged[name] = err
        # The units still to compute, found before any process writes one, so that every process
        # shares out the same list (a part written meanwhile by one process must not change it).
        units = plan_units([x for x in names if x not in skipped], levels, n, chunk_size((h, w, c)))
        missing = set(missing_units(units, out, (h, w, c)))
        pending_units = [k for k, unit in enumerate(units) if unit in missing]
        return {
            "skipped": skipped,
            "done": done,
            "source_digest": settings["source_digest"],
            "pending_units": pending_units,
        }

    held: list[Lock] = []
    record: dict[str, Any] = {}
    digests: dict[str, Any] = {}  # rank 0: {file or block name: digest JSON}, recorded in meta.json
    damaged: dict[str, DamagedFileError] = {}  # rank 0: finished corruptions found damaged
    try:
        decision = run_on_main_and_share(decide, context)
        if decision["source_digest"] != settings["source_digest"]:
            failure: Exception | None = InputError(
                f"Process {context.rank} sees other source images than process 0 (digest "
                f"{settings['source_digest']}, not {decision['source_digest']}); give every process the same "
                "data."
            )
        else:
            failure = None
        raise_together(failure, context)
        todo = [x for x in names if x not in decision["skipped"]]
        units = plan_units(todo, levels, n, chunk_size((h, w, c)))
        to_compute = [units[k] for k in decision["pending_units"]]
        mine = share_units(to_compute, context.world_size, (h, w, c))[context.rank]
        bar = (
            progress_bar(total=sum(u.count for u in mine), unit="image", desc="corrupt", enabled=progress)
            if context.is_main
            else silent(total=sum(u.count for u in mine))
        )
        done = list(decision["done"])
        pending = dict(by_corruption(units))  # corruption -> its units, until assembled
        computed = 0

        def assembled_digests(name: str) -> dict[str, Any]:
            """Assemble ``name`` from its parts (all there): its file's and blocks' digest records."""
            missing = missing_units(pending[name], out, (h, w, c))
            if missing:
                raise InputError(
                    f"{len(missing)} part(s) of {name} in {out / PARTS_DIR} are missing or damaged after "
                    "every process finished; run the same command again to redo them."
                )
            assembled = assemble(name, pending[name], out, full_shape)
            found = {assembled.path.name: assembled.digest.to_json()}
            for severity, block in assembled.block_digests.items():
                found[block_key(name, severity)] = block.to_json()
            return found

        def record_finished(finished: Mapping[str, Mapping[str, Any]]) -> None:
            """Rank 0: record the corruptions ``finished`` ({name: digest records}) in meta.json."""
            nonlocal done
            for name, found in finished.items():
                pending.pop(name, None)
                digests.update(found)
                if name in damaged:
                    report_rebuilt(damaged.pop(name), "it")
            done = [x for x in CORRUPTIONS if x in done or x in finished]
            record["corruptions"] = done
            atomic_write_json(out / META_FILE, record)

        def finish(name: str) -> None:
            """One process: assemble ``name`` and record it as finished."""
            record_finished({name: assembled_digests(name)})

        with bar:
            for unit in mine:
                if unit.corruption not in pending:  # assembled already: a resumed run found the rest
                    bar.update(unit.count)
                    continue
                bar.set_description(unit.corruption)
                computed += write_units([unit], images, out, seed, _advance(bar))
                # One process assembles a corruption as soon as its parts are all there (after its last
                # unit, or earlier when a resumed run found the later ones), so each corruption is usable
                # once done. Several assemble at the end: the parts of a rank that has yet to reach them
                # must not be removed under it.
                if context.world_size == 1 and not missing_units(pending[unit.corruption], out, (h, w, c)):
                    finish(unit.corruption)
        barrier(context)
        # Every process assembles its share of the corruptions left (each file written by one process,
        # atomically); rank 0 then records them all in meta.json.
        share = [name for i, name in enumerate(pending) if i % context.world_size == context.rank]
        finished = run_on_every_rank(lambda: {name: assembled_digests(name) for name in share}, context)

        def record_the_rest() -> list[str]:
            record_finished({name: found for part in gathered for name, found in part.items()})
            parts = out / PARTS_DIR
            if parts.is_dir() and not any(parts.iterdir()):
                parts.rmdir()
            return done

        gathered = all_gather_json(finished, context)
        run_on_main_and_share(record_the_rest, context)
        (computed,) = all_reduce_counts([computed], context)
    finally:
        for lock in held:
            lock.release()
    return {
        "out_dir": str(out),
        "written": todo,
        "skipped": decision["skipped"],
        "num_images": n,
        "severities": levels,
        "seed": int(seed),
        "world_size": context.world_size,
        "units": len(units),
        "units_computed": int(computed),
        "seconds": round(time.perf_counter() - start, 3),
    }


#: The lock a writer of a corrupted-set folder holds (rank 0 of its processes), and its refusal.
WRITE_LOCK = ".freqtail-corrupt.lock"
_LOCKED = "The corrupted-set folder {path} is being written by {holder}; wait for it or choose another --out."


def _advance(bar: Any):
    """A unit callback that advances ``bar`` by the unit's images."""
    return lambda unit: bar.update(unit.count)


def _prepare_folder(out: Path, settings: Mapping[str, Any]) -> tuple[list[str], dict[str, ArrayDigest]]:
    """Check that ``out`` holds nothing or this set, sweep what killed writes left; the finished
    corruptions and the digests ``meta.json`` records. Called holding :data:`WRITE_LOCK`."""
    if out.exists() and not out.is_dir():
        raise InputError(f"The output path {out} exists and is not a folder.")
    out.mkdir(parents=True, exist_ok=True)
    sweep_leftover_temporaries(
        [out / META_FILE, out / LABELS_FILE, *(out / f"{name}.npy" for name in CORRUPTIONS)]
    )
    for pattern in ("*/.*.tmp.npy", "*/.*.tmp.json"):  # of parts and of their digest records
        for leftover in (out / PARTS_DIR).glob(pattern):
            leftover.unlink(missing_ok=True)
    old = _read_meta(out)
    if old is None:
        arrays = (p.name for p in out.glob("*.npy") if not p.name.startswith("."))
        foreign = sorted(name for name in arrays if name != CLEAN_FILE)
        if foreign:
            raise ConfigError(
                f"The folder {out} already holds .npy files ({', '.join(foreign[:3])}) without a freqtail "
                "meta.json; choose an empty --out folder."
            )
        return [], {}
    for key in _RESUME_KEYS:
        if old.get(key) != settings[key]:
            raise ConfigError(
                f"The folder {out} already holds a corrupted set made with other settings "
                f"({key.replace('_', ' ')} {old.get(key)!r}, not {settings[key]!r}); "
                "choose another output folder or delete it."
            )
    return [x for x in old.get("corruptions", []) if x in CORRUPTIONS], recorded_digests(old) or {}


def _recorded_for(name: str, corruptions: Sequence[str]) -> bool:
    """True if the digest record ``name`` (a file or :func:`block_key`) is of one of ``corruptions``."""
    return name.split(":")[0] in {f"{x}.npy" for x in corruptions}


def _check_finished(out: Path, corruption: str, digests: Mapping[str, ArrayDigest], shape: tuple) -> None:
    """Check the finished ``<corruption>.npy`` against its recorded digest (read in chunks).

    Raises:
        DamagedFileError: missing, unrecorded, of another shape, or not the bytes that were written.
    """
    path = out / f"{corruption}.npy"
    expected = digests.get(path.name)
    if expected is None or expected.shape != tuple(shape):
        raise DamagedFileError(f"The file {path} is damaged (meta.json records no digest of it).", path)
    load_array(path, expected, mmap=True)


def _write_labels(path: Path, tiled: np.ndarray) -> None:
    try:
        existing = load_npy(path, "labels", mmap=True) if path.exists() else None
    except InputError:  # damaged: rewrite it
        existing = None
    if existing is None or not np.array_equal(existing, tiled):
        atomic_save_npy(path, tiled)


def _require_dir(c_dir: str | os.PathLike) -> Path:
    path = Path(c_dir)
    if not path.is_dir():
        raise DatasetNotFoundError(f"No corrupted test set folder at {path}; {_HOW_TO_GET}.")
    return path


def available_corruptions(c_dir: str | os.PathLike) -> list[str]:
    """Names of the corruptions present in a ``-C`` folder, in the paper's order.

    Raises:
        DatasetNotFoundError: the folder does not exist.
    """
    path = _require_dir(c_dir)
    return [name for name in CORRUPTIONS if (path / f"{name}.npy").is_file()]


def corrupted_set_info(c_dir: str | os.PathLike) -> dict[str, Any]:
    """Describe a ``-C`` folder: ``{"corruptions", "severities", "meta"}`` (``meta`` None if published).

    Severities come from ``meta.json`` when present, else they are the published 1..5.
    """
    path = _require_dir(c_dir)
    meta = _read_meta(path)
    severities = list(meta["severities"]) if meta else list(DEFAULT_SEVERITIES)
    return {"corruptions": available_corruptions(path), "severities": severities, "meta": meta}


def _load(path: Path, what: str, advice: str | None) -> np.ndarray:
    """Memory-map ``path``; a file that is no longer a ``.npy`` array is damaged (``advice`` given:
    a set freqtail wrote) or missing data (a published set)."""
    try:
        return load_npy(path, what, mmap=True)
    except InputError as err:
        if advice is None:
            raise DatasetNotFoundError(str(err)) from None
        reason = "it is no longer a complete .npy array"
        raise DamagedFileError(f"The file {path} is damaged ({reason}); {advice}.", path) from None


def load_labels(c_dir: str | os.PathLike, advice: str | None = None) -> np.ndarray:
    """The labels of a ``-C`` folder, int (S * N,), memory-mapped; checked against their digest
    where ``meta.json`` records one (``advice``: the end of the refusal; default the command that
    writes the set again).

    Raises:
        DatasetNotFoundError: no folder or no labels; DamagedFileError: labels that differ from
        their digest.
    """
    path = _require_dir(c_dir)
    meta = _read_meta(path)
    digests = _verified_digests(path, meta)
    return _labels(path, meta, digests, advice)


def _labels(
    path: Path, meta: Mapping[str, Any] | None, digests: Mapping[str, ArrayDigest] | None, advice: str | None
) -> np.ndarray:
    labels_file = path / LABELS_FILE
    if not labels_file.is_file():
        raise DatasetNotFoundError(f"The corrupted set at {path} has no {LABELS_FILE}; {_HOW_TO_GET}.")
    if digests is None:
        return _load(labels_file, "corruption labels", None)
    advice = advice or rewrite_advice(path, meta or {}, [])
    expected = digests.get(LABELS_FILE)
    if expected is None:
        reason = "meta.json records no digest of it"
        raise DamagedFileError(f"The file {labels_file} is damaged ({reason}); {advice}.", labels_file)
    labels = _load(labels_file, "corruption labels", advice)
    check_array(labels, expected, labels_file, advice)
    return labels


def load_corrupted_set(
    c_dir: str | os.PathLike,
    corruption: str,
    severity: int,
    classes: Sequence[str] | None = None,
    advice: str | None = None,
) -> ArrayDataset:
    """The images of one corruption at one severity from a ``-C`` folder, as an :class:`ArrayDataset`.

    Works on the published CIFAR-10-C / CIFAR-100-C folders (no ``meta.json``: severities 1..5)
    and on folders written by :func:`write_corrupted_set`. Images stay memory-mapped. In a folder
    freqtail wrote, the labels and the returned severity block are checked against the digests
    ``meta.json`` records (hashed in chunks of 16 MiB: the block is read once, in full).

    Args:
        c_dir: the folder.
        corruption: a file name stem, e.g. ``"gaussian_noise"``.
        severity: 1..5 (must be one the folder holds).
        classes: class names; default the ``"classes"`` recorded in ``meta.json``, else "0", "1", ...
        advice: what to do about a damaged file, the end of the refusal's sentence; default the
            ``freqtail corrupt`` command that writes it again (:func:`rewrite_advice`).

    Raises:
        DatasetNotFoundError: missing folder, corruption file or labels, inconsistent files, or a
            freqtail set of an older format (no digests); DamagedFileError (a subclass): a file that
            is not what was written.
        InputError: a severity the folder does not hold.
    """
    severity = check_severity(severity)
    path = _require_dir(c_dir)
    meta = _read_meta(path)
    digests = _verified_digests(path, meta)
    severities = list(meta["severities"]) if meta else list(DEFAULT_SEVERITIES)
    if severity not in severities:
        raise InputError(
            f"The corrupted set at {path} holds severities {', '.join(map(str, severities))}, not {severity}."
        )
    file = path / f"{corruption}.npy"
    if not file.is_file():
        present = available_corruptions(path)
        listing = ", ".join(present) if present else "none"
        raise DatasetNotFoundError(
            f"The corrupted set at {path} has no {corruption}.npy (present: {listing}); {_HOW_TO_GET}."
        )
    if digests is not None:
        advice = advice or rewrite_advice(path, meta or {}, [corruption])
    labels = _labels(path, meta, digests, advice)
    images = _load(file, f"{corruption} images", advice if digests is not None else None)
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[-1] not in (1, 3):
        raise DatasetNotFoundError(
            f"The file {file} must hold uint8 images of shape (S*N, H, W, C), "
            f"not {images.dtype} {images.shape}."
        )
    if labels.ndim != 1 or len(labels) != len(images) or len(images) % len(severities):
        raise DatasetNotFoundError(
            f"The corrupted set at {path} is inconsistent: {file.name} holds {len(images)} images and "
            f"{LABELS_FILE} {labels.shape} labels for {len(severities)} severities."
        )
    per_block = len(images) // len(severities)
    block = severities.index(severity)
    part = slice(block * per_block, (block + 1) * per_block)
    if digests is not None:
        expected = digests.get(block_key(corruption, severity))
        if expected is None:
            raise DamagedFileError(
                f"The file {file} is damaged (meta.json records no digest of it: its writing was "
                f"interrupted); {advice}.",
                file,
            )
        check_array(images[part], expected, file, advice)
    block_labels = np.asarray(labels[part]).astype(np.int64)
    if classes is None:
        recorded = (meta or {}).get("source", {}).get("classes")
        if recorded:
            classes = [str(x) for x in recorded]
        else:
            classes = [str(i) for i in range(int(np.asarray(labels).max()) + 1)]
    return ArrayDataset(
        images[part], block_labels, classes, name=f"{path.name}/{corruption}/severity-{severity}"
    )
