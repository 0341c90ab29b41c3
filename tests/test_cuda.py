"""The CUDA paths, against the CPU: run with ``python -m pytest -m cuda`` on a GPU machine (skipped
without one; ``benchmarks/gpu_check.py`` runs them)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_bass_uint8_path_on_cuda_matches_the_cpu(natural_crops):
    from freqtail.bass import balance_spectrum

    images = torch.from_numpy(natural_crops(32, 2, seed=0)).permute(0, 3, 1, 2).contiguous()
    cpu = balance_spectrum(images)
    gpu = balance_spectrum(images.cuda())
    assert gpu.device.type == "cuda"
    diff = (gpu.cpu().int() - cpu.int()).abs()
    assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) < 1e-3


def test_the_device_pipeline_gives_the_cpu_batches_on_cuda():
    from freqtail.train import load_config
    from freqtail.train.device_data import build_device_train_data

    config = load_config(
        overrides={"bass": "augment", "gamma": 0.5, "pad_mode": "reflect", "train_subset": 256}
    )
    cpu = build_device_train_data(config, "cpu")
    gpu = build_device_train_data(config, "cuda")
    positions = list(range(0, 256, 3))
    for epoch in (0, 3):
        x_cpu, y_cpu, _ = cpu.batch(epoch, positions)
        x_gpu, y_gpu, _ = gpu.batch(epoch, positions)
        assert torch.equal(x_gpu.cpu(), x_cpu) and torch.equal(y_gpu.cpu(), y_cpu)


def test_bf16_channels_last_training_runs_and_its_checkpoint_loads_on_the_cpu(tmp_path):
    from freqtail.train import load_config
    from freqtail.workflows import load_model_from_run
    from freqtail.workflows.training import TrainRequest, train_run

    config = load_config(
        overrides={
            "device": "cuda",
            "amp": "bf16",
            "channels_last": True,
            "steps": 6,
            "batch_size": 64,
            "train_subset": 384,
            "test_subset": 64,
            "progress": False,
        }
    )
    result = train_run(TrainRequest(config, tmp_path / "run", log=lambda message: None))
    assert result.status == "complete" and np.isfinite(result.history[-1]["train_loss"])
    model, _ = load_model_from_run(tmp_path / "run", device="cpu")
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 16)


def test_evaluation_counts_on_cuda_match_the_cpu():
    from freqtail.evaluate import EvaluationRequest, EvaluationTarget, evaluate_model
    from freqtail.models import FreqtailModel, create_model

    torch.manual_seed(0)
    model = FreqtailModel(create_model("small-cnn", 16, width=8)).eval()
    request = EvaluationRequest.of(suites="clean,pgd20", n=64, masking_n=0, batch_size=32)
    target = EvaluationTarget("embedded")
    cpu = {r["metric"]: r["correct"] for r in evaluate_model(model, request, target)}
    gpu = {r["metric"]: r["correct"] for r in evaluate_model(model.cuda(), request, target)}
    assert gpu["clean"] == cpu["clean"]
    # Sign-gradient steps may flip on float rounding near zero: a couple of images may differ.
    assert abs(gpu["pgd-20-ce"] - cpu["pgd-20-ce"]) <= 2


def test_compiled_model_on_cuda_agrees_with_eager():
    from freqtail.models import FreqtailModel, create_model
    from freqtail.models.execution import ExecutionOptions, prepare_model

    torch.manual_seed(0)
    owner = FreqtailModel(create_model("resnet18", 10)).cuda().eval()
    x = torch.rand(8, 3, 32, 32, device="cuda")
    with torch.no_grad():
        eager = owner(x)
        compiled = prepare_model(owner, ExecutionOptions(compile=True, channels_last=True))(x)
    scale = float(eager.abs().max())
    assert float((compiled - eager).abs().max()) <= 1e-3 * scale
