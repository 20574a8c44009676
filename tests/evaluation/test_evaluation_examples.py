"""The docstring examples of the evaluation modules run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch

MODULES = ["__init__", "features", "knn", "linear", "metrics"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(
        "fmicl_registry.evaluation" + ("" if name == "__init__" else f".{name}")
    )
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


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
