"""Feature extraction from a frozen encoder, and the raw-input baseline."""

from __future__ import annotations

import pytest
import torch

from fmicl_registry.evaluation import (
    EvaluationError,
    extract_features,
    linear_probe,
    raw_features,
)


def _dataset(n: int = 13, seed: int = 0) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.TensorDataset(torch.randn(n, 1, 4, 4, generator=g), torch.arange(n) % 3)


def _encoder() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3),
        torch.nn.BatchNorm2d(2),
        torch.nn.Dropout(0.5),
        torch.nn.ReLU(),
    )


def test_features_are_the_eval_mode_outputs_in_order() -> None:
    data = _dataset()
    encoder = _encoder()
    features, labels = extract_features(encoder, data, batch_size=5)  # 5 does not divide 13
    inputs, want_labels = data.tensors
    with torch.no_grad():
        want = encoder.eval()(inputs).reshape(13, -1)
    torch.testing.assert_close(features, want)
    assert labels.tolist() == want_labels.tolist()
    assert features.dtype == torch.float32 and labels.dtype == torch.int64
    assert features.device.type == "cpu" and labels.device.type == "cpu"
    assert not features.requires_grad
    assert not features.is_inference()  # usable with autograd later (the linear probe)


def test_train_mode_is_restored_and_batch_norm_statistics_untouched() -> None:
    encoder = _encoder().train()
    encoder[2].eval()  # a submodule already in eval mode stays so
    norm = encoder[1]
    assert isinstance(norm, torch.nn.BatchNorm2d) and norm.running_mean is not None
    running_mean = norm.running_mean.clone()
    extract_features(encoder, _dataset(), batch_size=4)
    assert encoder.training and encoder[0].training and norm.training
    assert not encoder[2].training
    torch.testing.assert_close(norm.running_mean, running_mean)
    encoder.eval()
    extract_features(encoder, _dataset())
    assert not any(module.training for module in encoder.modules())


def test_mode_is_restored_when_the_encoder_fails() -> None:
    class Failing(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    encoder = Failing().train()
    with pytest.raises(RuntimeError, match="boom"):
        extract_features(encoder, _dataset())
    assert encoder.training


def test_no_gradient_is_recorded() -> None:
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    extract_features(encoder, _dataset())
    assert all(p.grad is None for p in encoder.parameters())


def test_float64_encoder_and_plain_list_dataset() -> None:
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).double()
    data = [(torch.ones(2, 2, dtype=torch.float64) * i, i % 2) for i in range(6)]
    features, labels = extract_features(encoder, data, batch_size=4)
    assert features.dtype == torch.float32 and features.shape == (6, 2)
    assert labels.tolist() == [0, 1, 0, 1, 0, 1]


def test_extracted_features_feed_the_probe() -> None:
    # The random-encoder baseline: an untrained encoder's features through the linear probe.
    data = _dataset(n=60)
    features, labels = extract_features(_encoder(), data)
    result = linear_probe(features[:40], labels[:40], features[40:], labels[40:], epochs=2)
    assert 0.0 <= result.top1 <= 1.0


def test_raw_features_are_the_flattened_inputs() -> None:
    data = _dataset()
    features, labels = raw_features(data, batch_size=4)
    torch.testing.assert_close(features, data.tensors[0].reshape(13, 16))
    assert labels.tolist() == data.tensors[1].tolist()
    assert features.dtype == torch.float32


def test_encoder_on_another_device_is_refused() -> None:
    encoder = torch.nn.Linear(16, 2, device="meta")
    with pytest.raises(EvaluationError, match="encoder is on meta"):
        extract_features(encoder, _dataset())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "empty"),
        ([(torch.zeros(2), 0, "extra")], r"\(input, label\) pairs"),
        ([(torch.zeros(2, dtype=torch.long), 0)], "float tensors"),
        ([(torch.zeros(2), 0.5)], "labels must be integers"),
    ],
)
def test_bad_datasets_are_refused(data: list, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        raw_features(data)


def test_encoder_must_return_one_row_per_input() -> None:
    class Pooled(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=0, keepdim=True)

    with pytest.raises(EvaluationError, match="returned 1 rows for a batch of 4"):
        extract_features(Pooled(), _dataset(), batch_size=4)

    class Pair(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x

    with pytest.raises(EvaluationError, match="must return a tensor"):
        extract_features(Pair(), _dataset())
