"""Weighted k-nearest-neighbour classification of frozen features (the kNN monitor).

The classifier of Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance
Discrimination", CVPR 2018 (section 3.4), as used by solo-learn and lightly and by the f-MICL paper
(Lu et al. 2023, k = 200): features are L2-normalised, the k training examples with the largest
cosine similarity ``s`` to a test example vote for their class with weight ``exp(s / T)``, and the
class with the largest total weight is the prediction.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .features import EvaluationError, _check_train_test, _float_dtype

__all__ = ["knn_accuracy"]


def _check_knn_settings(k: int, temperature: float, chunk_size: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise EvaluationError(f"k must be a positive integer, got {k!r}")
    if not isinstance(temperature, int | float) or not temperature > 0:
        raise EvaluationError(f"temperature must be a positive number, got {temperature!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise EvaluationError(f"chunk_size must be a positive integer, got {chunk_size!r}")


def _knn_predict(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    *,
    k: int,
    temperature: float,
    num_classes: int,
    chunk_size: int,
) -> Tensor:
    """Predicted class (int64, on the CPU) of each test row; inputs already validated."""
    device = train_features.device
    dtype = _float_dtype(train_features, test_features)
    bank = torch.nn.functional.normalize(train_features.to(dtype), dim=1)
    bank_labels = train_labels.to(device, torch.int64)
    k = min(k, bank.shape[0])
    predictions = []
    for start in range(0, test_features.shape[0], chunk_size):
        chunk = test_features[start : start + chunk_size].to(device, dtype)
        similarity = torch.nn.functional.normalize(chunk, dim=1) @ bank.T
        top_similarity, top_index = similarity.topk(k, dim=1)
        # exp(s / T) up to a factor per row: subtracting the row's largest similarity changes no
        # argmax and keeps exp from overflowing for small temperatures.
        weights = torch.exp((top_similarity - top_similarity[:, :1]) / temperature)
        votes = torch.zeros(chunk.shape[0], num_classes, dtype=dtype, device=device)
        votes.scatter_add_(1, bank_labels[top_index], weights)
        predictions.append(votes.argmax(dim=1).cpu())
    return torch.cat(predictions)


def knn_accuracy(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    *,
    k: int = 200,
    temperature: float = 0.1,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> float:
    """Top-1 accuracy, as a fraction in [0, 1], of the weighted kNN classifier of Wu et al. 2018.

    For each test row: cosine similarity ``s`` to every (L2-normalised) training row, the ``k``
    largest, a vote of weight ``exp(s / T)`` for each neighbour's class, and the class with the
    largest summed weight as the prediction (ties between classes go to the smallest class index).
    This is the kNN monitor of InstDisc, solo-learn and lightly, and the kNN column of the f-MICL
    paper (k = 200, Lu et al. 2023); multiply by 100 for the percentages printed in reports.

    Args:
        train_features, train_labels: the memory bank, ``(N, F)`` floats and ``(N,)`` integer
            labels.
        test_features, test_labels: the rows to classify, ``(M, F)`` and ``(M,)``.
        k: number of neighbours; when larger than the training set it is clamped to ``N``
            (every training row votes).
        temperature: ``T`` of the vote weight ``exp(s / T)``; smaller values trust the nearest
            neighbours more.
        num_classes: number of classes; by default one more than the largest label seen.
        chunk_size: test rows handled at once; memory is ``O(chunk_size * N)`` whatever ``M`` is.

    The computation runs on ``train_features``' device, in float64 if either feature tensor is
    float64 and in float32 otherwise.

    Raises:
        EvaluationError: empty or non-2-D features, labels that do not match their features in
            length or are not non-negative integers, train and test with different feature sizes,
            NaN or infinite features, or invalid ``k``, ``temperature``, ``num_classes``,
            ``chunk_size``.

    Example:
        >>> import torch
        >>> train = torch.tensor([[1.0, 0.1], [0.9, -0.1], [-1.0, 0.2], [-0.8, -0.1]])
        >>> labels = torch.tensor([0, 0, 1, 1])
        >>> test = torch.tensor([[2.0, 0.0], [-3.0, 0.5]])
        >>> knn_accuracy(train, labels, test, torch.tensor([0, 1]), k=3)
        1.0
    """
    _check_knn_settings(k, temperature, chunk_size)
    train_features, train_labels, test_features, test_labels, num_classes = _check_train_test(
        train_features, train_labels, test_features, test_labels, num_classes
    )
    predicted = _knn_predict(
        train_features,
        train_labels,
        test_features,
        k=k,
        temperature=temperature,
        num_classes=num_classes,
        chunk_size=chunk_size,
    )
    return float((predicted == test_labels.cpu()).double().mean())
