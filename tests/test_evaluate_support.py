"""Shared helpers of the evaluation tests (no tests here): tiny trained run folders and a shared cache.

The run folders are written with the trainer's checkpoint API (``freqtail.train.save_checkpoint``)
after a few hundred SGD steps of a width-8 small-cnn on the embedded dataset (about 3 s each), so
the models are clearly better than chance and attacks, corruptions and threat models give
different, meaningful numbers.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from filelock import FileLock

from freqtail.distributed import DistContext
from freqtail.evaluate import (
    EvaluationRequest,
    EvaluationTarget,
    evaluate_model,
    plan_evaluation,
    run_evaluation,
)
from session_support import shared_session_folder

STEPS = 150
_TARGET_FIELDS = {f.name for f in fields(EvaluationTarget)}


def request_and_target(**options) -> tuple[EvaluationRequest, EvaluationTarget]:
    """Flat keyword options of a test split into the request (what is asked) and the target (what
    is evaluated), as a caller builds them."""
    target = {key: value for key, value in options.items() if key in _TARGET_FIELDS}
    asked = {key: value for key, value in options.items() if key not in _TARGET_FIELDS}
    return EvaluationRequest.of(**asked), EvaluationTarget(**target)


def make_plan(**options):
    """``plan_evaluation`` of flat keyword options (see :func:`request_and_target`)."""
    return plan_evaluation(*request_and_target(**options))


def evaluate(model, **options) -> list[dict]:
    """``evaluate_model`` of flat keyword options (see :func:`request_and_target`)."""
    return evaluate_model(model, *request_and_target(**options))


def _gloo_worker(rank, world, init_file, run_dir, cache, options, out_file):
    os.environ["FREQTAIL_CACHE"] = cache
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model, _ = load_run(run_dir)
        records = run_evaluation(
            make_plan(**options), model, context=DistContext(rank, world, torch.device("cpu"))
        )
        if rank == 0:
            with open(out_file, "w", encoding="utf-8") as handle:
                json.dump(records, handle)
    finally:
        dist.destroy_process_group()


def evaluate_in_two_processes(run_dir, options: dict, cache, tmp_path) -> list[dict]:
    """Rank 0's records of the evaluation ``options`` (flat, see :func:`make_plan`) of the run in
    ``run_dir``, run by two real gloo processes on the CPU, forked from this one (a spawned process
    spends seconds of CPU importing torch first)."""
    out_file = tmp_path / "records.json"
    mp.start_processes(
        _gloo_worker,
        args=(2, str(tmp_path / "init"), str(run_dir), str(cache), options, str(out_file)),
        nprocs=2,
        join=True,
        start_method="fork",
    )
    return json.loads(out_file.read_text(encoding="utf-8"))


def make_run(folder, bass: str | None, steps: int = STEPS, **config_keys):
    """Train a tiny model on the embedded set (BaSS-converted for ``bass="dataset"``) and save a run
    (``config_keys`` go into its training config, e.g. ``bass_strength=0.0``)."""
    from freqtail.data import build_dataset, dataset_info
    from freqtail.models import build_model_from_spec, model_spec
    from freqtail.train import config_from_dict, save_checkpoint

    torch.manual_seed(0)
    x, y = build_dataset("embedded", "train", bass=bass).tensors()
    info = dataset_info("embedded")
    spec = model_spec(
        "small-cnn",
        16,
        32,
        normalize=(info.mean, info.std),
        bass_front=True if bass == "dataset" else None,
        options={"width": 8},
    )
    model = build_model_from_spec(spec, with_front=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        batch = torch.randint(0, len(x), (64,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    config = config_from_dict(
        {
            "dataset": "embedded",
            "bass": bass,
            "model": "small-cnn",
            "model_options": {"width": 8},
            **config_keys,
        }
    )
    save_checkpoint(
        folder / "checkpoints",
        model_state=model.state_dict(),
        info={
            "global_step": steps,
            "epoch": 1,
            "model_spec": spec,
            "config": config.to_dict(),
            "history": [],
            "complete": True,
        },
        pointers=("last", "best"),
    )
    return folder


@pytest.fixture(scope="session")
def eval_cache(tmp_path_factory):
    """One freqtail cache for all evaluation tests of the session, every xdist worker's included (the
    embedded set and its BaSS variant, built once; the cache's writers lock what they write)."""
    return shared_session_folder(tmp_path_factory, "evaluate-cache")


@pytest.fixture
def shared_cache(_isolated_cache, eval_cache, monkeypatch):
    """Point FREQTAIL_CACHE at the shared evaluation cache (after conftest's per-test cache)."""
    monkeypatch.setenv("FREQTAIL_CACHE", str(eval_cache))
    return eval_cache


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, eval_cache):
    """``{"standard": run folder trained on raw images, "bass": run folder trained with bass=dataset}``,
    trained once for all xdist workers of the session (tests read them, and copy them or give
    ``--out`` before anything is written)."""
    root = shared_session_folder(tmp_path_factory, "evaluate-runs")
    runs = {"standard": root / "erm", "bass": root / "erm-bass"}
    done = root / "trained"
    with FileLock(str(root.with_suffix(".lock"))), pytest.MonkeyPatch.context() as patch:
        if not done.is_file():
            patch.setenv("FREQTAIL_CACHE", str(eval_cache))
            make_run(runs["standard"], None)
            make_run(runs["bass"], "dataset")
            done.touch()
    return runs


def load_run(folder):
    """(model without front, info) of a tiny run, via the trainer's loader."""
    from freqtail.workflows import load_model_from_run

    return load_model_from_run(folder, with_front=False)
