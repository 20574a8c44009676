"""Evaluation on a CUDA device gives what it gives on the CPU."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    from fmicl_registry.evaluation import (
        distance_distribution,
        extract_features,
        knn_accuracy,
        linear_probe,
        uniformity,
    )

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(400) % 4
    inputs = torch.randn(400, 8, generator=g) + 2.0 * torch.nn.functional.one_hot(labels, 8)
    data = torch.utils.data.TensorDataset(inputs, labels)
    torch.manual_seed(0)
    encoder = torch.nn.Linear(8, 32)
    z_cpu, y = extract_features(encoder, data)
    z_gpu, y_gpu = extract_features(encoder.cuda(), data, device="cuda")
    assert z_gpu.device.type == "cpu" and torch.equal(y, y_gpu)
    torch.testing.assert_close(z_gpu, z_cpu, atol=1e-4, rtol=1e-4)
    train, test = (z_cpu[:300], y[:300]), (z_cpu[300:], y[300:])
    on_gpu = (z_cpu[:300].cuda(), y[:300].cuda())
    assert knn_accuracy(*on_gpu, *test, k=20) == pytest.approx(knn_accuracy(*train, *test, k=20))
    cpu = linear_probe(*train, *test, epochs=20)
    gpu = linear_probe(*train, *test, epochs=20, device="cuda")
    assert abs(gpu.top1 - cpu.top1) <= 0.03
    assert uniformity(z_cpu.cuda()) == pytest.approx(uniformity(z_cpu), abs=1e-4)
    far = distance_distribution(z_cpu.cuda(), z_cpu.cuda(), max_negatives=1000)["negative"]
    assert far.shape == (1000,)
