"""Features for evaluation: computed once from a frozen encoder, or the raw inputs themselves.

The evaluation protocol of self-supervised learning (kNN monitor, linear probe; Lu et al. 2023)
freezes the pretrained encoder, computes one feature vector per example, and fits only a classifier
on top. :func:`extract_features` computes those vectors; :func:`raw_features` gives the flattened
inputs, the baseline that shows what pretraining bought. The other baseline, a randomly initialised
(untrained) encoder of the same architecture, is :func:`extract_features` applied to that encoder.

Example:
    >>> import torch
    >>> from fmicl_registry.evaluation import extract_features, raw_features
    >>> data = [(torch.full((1, 2, 2), float(i)), i % 2) for i in range(5)]
    >>> encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> features, labels = extract_features(encoder, data, batch_size=2)
    >>> features.shape, features.dtype, labels.tolist()
    (torch.Size([5, 3]), torch.float32, [0, 1, 0, 1, 0])
    >>> raw_features(data)[0].shape
    torch.Size([5, 4])
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import EvaluationError

__all__ = ["EvaluationError", "extract_features", "raw_features"]

Device = str | torch.device


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise EvaluationError(f"batch_size must be a positive integer, got {batch_size!r}")


def _loader(dataset: Any, batch_size: int, num_workers: int) -> Iterable[Any]:
    _check_batch_size(batch_size)
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise EvaluationError(f"num_workers must be a non-negative integer, got {num_workers!r}")
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers
    )


def _split_batch(batch: Any) -> tuple[Tensor, Tensor]:
    if not isinstance(batch, list | tuple) or len(batch) != 2:
        raise EvaluationError(
            "the dataset must yield (input, label) pairs; got a batch of type "
            f"{type(batch).__name__}"
        )
    inputs, labels = batch
    if not isinstance(inputs, Tensor) or not inputs.is_floating_point():
        raise EvaluationError(
            "the dataset's inputs must be float tensors (already transformed); got "
            f"{getattr(inputs, 'dtype', type(inputs).__name__)}"
        )
    labels = torch.as_tensor(labels)
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise EvaluationError(f"the dataset's labels must be integers; got {labels.dtype}")
    if labels.dim() > 1 and labels[0].numel() != 1:
        raise EvaluationError(
            f"each label must be one integer; got labels of shape {tuple(labels.shape[1:])}"
        )
    return inputs, labels.reshape(-1).to(torch.int64)


def _collect(
    dataset: Any,
    batch_size: int,
    num_workers: int,
    transform: Callable[[Tensor], Tensor],
) -> tuple[Tensor, Tensor]:
    feature_batches: list[Tensor] = []
    label_batches: list[Tensor] = []
    for batch in _loader(dataset, batch_size, num_workers):
        inputs, labels = _split_batch(batch)
        out = transform(inputs)
        if not isinstance(out, Tensor):
            raise EvaluationError(
                f"the encoder must return a tensor, got {type(out).__name__}; wrap it so that it "
                "returns the representation to evaluate"
            )
        if out.shape[0] != labels.shape[0]:
            raise EvaluationError(
                f"the encoder returned {out.shape[0]} rows for a batch of {labels.shape[0]} inputs"
            )
        feature_batches.append(out.detach().reshape(out.shape[0], -1).to("cpu", torch.float32))
        label_batches.append(labels.cpu())
    if not feature_batches:
        raise EvaluationError("the dataset is empty: there is nothing to evaluate")
    return torch.cat(feature_batches), torch.cat(label_batches)


def _check_encoder_device(encoder: nn.Module, device: torch.device) -> None:
    first = next(itertools.chain(encoder.parameters(), encoder.buffers()), None)
    if first is None:
        return
    here = first.device
    if here.type != device.type or (device.index is not None and here.index != device.index):
        raise EvaluationError(
            f"the encoder is on {here} but device={str(device)!r}: move the encoder there "
            "first (extract_features does not move it) or pass its device"
        )


def extract_features(
    encoder: nn.Module,
    dataset: Any,
    *,
    batch_size: int = 256,
    device: Device = "cpu",
    num_workers: int = 0,
) -> tuple[Tensor, Tensor]:
    """Compute the frozen encoder's features for every example of ``dataset``, in order.

    Args:
        encoder: any module mapping a batch of inputs to a tensor whose first dimension is the
            batch (extra dimensions are flattened). It must already be on ``device``; it is not
            moved. It runs in eval mode (batch norm uses its running statistics, dropout is off)
            under :func:`torch.no_grad`; each submodule's train/eval flag is restored afterwards.
        dataset: a map-style or iterable dataset (or a list) yielding ``(input, label)`` with the
            input a float tensor, already transformed, and the label an integer.
        batch_size: examples per forward pass.
        device: where the forward passes run.
        num_workers: :class:`torch.utils.data.DataLoader` worker processes.

    Returns:
        ``(features, labels)``: float32 ``(N, F)`` and int64 ``(N,)``, both on the CPU, not
        requiring grad (ordinary tensors, usable later with autograd, e.g. by
        :func:`~fmicl_registry.evaluation.linear_probe`).

    The random-encoder baseline is this function applied to an untrained encoder of the same
    architecture; the raw-input baseline is :func:`raw_features`.

    Raises:
        EvaluationError: an empty dataset, items that are not ``(float tensor, int)`` pairs, an
            encoder that does not return one row per input, or an encoder on another device.

    Example:
        >>> import torch
        >>> encoder = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Dropout(0.5))
        >>> data = torch.utils.data.TensorDataset(torch.randn(6, 2), torch.arange(6) % 3)
        >>> z, y = extract_features(encoder, data)
        >>> tuple(z.shape), z.requires_grad, encoder.training
        ((6, 4), False, True)
    """
    device = torch.device(device)
    _check_encoder_device(encoder, device)
    modes = [(module, module.training) for module in encoder.modules()]
    encoder.eval()
    try:
        with torch.no_grad():
            return _collect(
                dataset, batch_size, num_workers, lambda x: encoder(x.to(device, non_blocking=True))
            )
    finally:
        for module, training in modes:
            module.training = training


def raw_features(
    dataset: Any, *, batch_size: int = 256, num_workers: int = 0
) -> tuple[Tensor, Tensor]:
    """The raw-input baseline: each input flattened into a float32 feature vector.

    ``linear_probe(*raw_features(train), *raw_features(test))`` is the raw-pixel baseline of a
    report; it shows how far a linear classifier gets without any learned representation.

    Args:
        dataset: yields ``(input float tensor, int label)`` pairs, as for :func:`extract_features`.
        batch_size: examples per batch while reading the dataset.
        num_workers: :class:`torch.utils.data.DataLoader` worker processes.

    Returns:
        ``(features, labels)``: float32 ``(N, prod(input shape))`` and int64 ``(N,)`` on the CPU.

    Example:
        >>> import torch
        >>> data = torch.utils.data.TensorDataset(torch.zeros(4, 1, 8, 8), torch.arange(4))
        >>> x, y = raw_features(data)
        >>> tuple(x.shape), y.dtype
        ((4, 64), torch.int64)
    """
    return _collect(dataset, batch_size, num_workers, lambda x: x)


# Validation shared by the classifiers (knn.py, linear.py) and the metrics.


def _check_features(features: Any, name: str) -> Tensor:
    if not isinstance(features, Tensor):
        raise EvaluationError(f"{name} must be a tensor, got {type(features).__name__}")
    if features.dim() != 2:
        raise EvaluationError(
            f"{name} must be 2-D (examples, features), got shape {tuple(features.shape)}"
        )
    if features.shape[0] == 0:
        raise EvaluationError(f"{name} is empty: it has no rows")
    if features.shape[1] == 0:
        raise EvaluationError(f"{name} has rows of length 0")
    if not features.is_floating_point():
        raise EvaluationError(f"{name} must be a floating point tensor, got {features.dtype}")
    if not bool(torch.isfinite(features).all()):
        raise EvaluationError(f"{name} contains NaN or infinite values")
    return features.detach()


def _check_labelled(features: Any, labels: Any, name: str) -> tuple[Tensor, Tensor]:
    """Check one ``(features, labels)`` set; ``name`` is ``"train"`` or ``"test"``."""
    features = _check_features(features, f"{name}_features")
    if not isinstance(labels, Tensor):
        raise EvaluationError(f"{name}_labels must be a tensor, got {type(labels).__name__}")
    if labels.dim() != 1:
        raise EvaluationError(f"{name}_labels must be 1-D, got shape {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise EvaluationError(f"{name}_labels must be integers, got {labels.dtype}")
    if labels.shape[0] != features.shape[0]:
        raise EvaluationError(
            f"{name}_features has {features.shape[0]} rows but {name}_labels has {labels.shape[0]}"
        )
    if int(labels.min()) < 0:
        raise EvaluationError(f"{name}_labels must be non-negative class indices")
    return features, labels.detach().to(torch.int64)


def _check_train_test(
    train_features: Any,
    train_labels: Any,
    test_features: Any,
    test_labels: Any,
    num_classes: int | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """Validate a train/test split; return the tensors and the number of classes."""
    train_features, train_labels = _check_labelled(train_features, train_labels, "train")
    test_features, test_labels = _check_labelled(test_features, test_labels, "test")
    if train_features.shape[1] != test_features.shape[1]:
        raise EvaluationError(
            f"train_features have {train_features.shape[1]} features per row but test_features "
            f"have {test_features.shape[1]}"
        )
    largest = max(int(train_labels.max()), int(test_labels.max()))
    if num_classes is None:
        num_classes = largest + 1
    elif isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise EvaluationError(f"num_classes must be a positive integer, got {num_classes!r}")
    elif largest >= num_classes:
        raise EvaluationError(f"a label is {largest} but num_classes={num_classes}")
    return train_features, train_labels, test_features, test_labels, num_classes


def _float_dtype(*tensors: Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32 (half precision is promoted)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
