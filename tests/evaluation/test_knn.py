"""Weighted kNN (Wu et al. 2018) against a Python loop over the neighbours."""

from __future__ import annotations

import pytest
import torch
from evaluation_reference import knn_predictions

from fmicl_registry.evaluation import EvaluationError, knn_accuracy

N_TRAIN, N_TEST, DIM, CLASSES = 50, 23, 6, 4


def _data(
    seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    train = torch.randn(N_TRAIN, DIM, generator=g, dtype=torch.float64)
    test = torch.randn(N_TEST, DIM, generator=g, dtype=torch.float64)
    train_labels = torch.randint(CLASSES, (N_TRAIN,), generator=g)
    test_labels = torch.randint(CLASSES, (N_TEST,), generator=g)
    return train.to(dtype), train_labels, test.to(dtype), test_labels


def _reference(train, train_labels, test, *, k, temperature):
    return torch.tensor(
        knn_predictions(
            train.double().tolist(),
            train_labels.tolist(),
            test.double().tolist(),
            k=k,
            temperature=temperature,
            num_classes=CLASSES,
        )
    )


@pytest.mark.parametrize("k", [1, 5, 17, N_TRAIN, 200])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
@pytest.mark.parametrize("chunk_size", [1, 7, 1024])
def test_knn_matches_loop_reference(k: int, temperature: float, chunk_size: int) -> None:
    train, train_labels, test, test_labels = _data()
    want = _reference(train, train_labels, test, k=k, temperature=temperature)
    # Labelling the test points with the reference's predictions: every prediction must agree.
    assert (
        knn_accuracy(
            train,
            train_labels,
            test,
            want,
            k=k,
            temperature=temperature,
            num_classes=CLASSES,
            chunk_size=chunk_size,
        )
        == 1.0
    )
    got = knn_accuracy(
        train,
        train_labels,
        test,
        test_labels,
        k=k,
        temperature=temperature,
        num_classes=CLASSES,
        chunk_size=chunk_size,
    )
    assert got == pytest.approx(float((want == test_labels).double().mean()), abs=0)


def test_k_larger_than_train_set_is_clamped() -> None:
    train, train_labels, test, _ = _data(seed=1)
    everyone = _reference(train, train_labels, test, k=N_TRAIN, temperature=0.1)
    for k in (N_TRAIN, N_TRAIN + 1, 10_000):
        assert knn_accuracy(train, train_labels, test, everyone, k=k, num_classes=CLASSES) == 1.0


def test_float32_small_temperature_does_not_overflow() -> None:
    # exp(1 / 0.01) = exp(100) is beyond float32; the vote must still follow the reference.
    train, train_labels, test, _ = _data(seed=2, dtype=torch.float32)
    want = _reference(train, train_labels, test, k=10, temperature=0.01)
    got = knn_accuracy(train, train_labels, test, want, k=10, temperature=0.01)
    assert got == 1.0


def test_predictions_do_not_depend_on_chunking_over_many_rows() -> None:
    g = torch.Generator().manual_seed(3)
    train = torch.randn(300, 8, generator=g)
    labels = torch.randint(5, (300,), generator=g)
    test = torch.randn(257, 8, generator=g)
    test_labels = torch.randint(5, (257,), generator=g)
    scores = {
        knn_accuracy(train, labels, test, test_labels, k=30, chunk_size=size)
        for size in (1, 64, 100, 257, 4096)
    }
    assert len(scores) == 1


def test_well_separated_clusters_are_classified_perfectly() -> None:
    g = torch.Generator().manual_seed(4)
    centres = torch.eye(3, 16) * 10.0
    labels = torch.arange(300) % 3
    train = centres[labels] + torch.randn(300, 16, generator=g)
    test_labels = torch.arange(90) % 3
    test = centres[test_labels] + torch.randn(90, 16, generator=g)
    assert knn_accuracy(train, labels, test, test_labels) == 1.0  # defaults: k=200, T=0.1


def test_accuracy_is_a_fraction() -> None:
    train, train_labels, test, _ = _data()
    want = _reference(train, train_labels, test, k=5, temperature=0.1)
    wrong = (want + 1) % CLASSES
    wrong[:5] = want[:5]
    got = knn_accuracy(train, train_labels, test, wrong, k=5, num_classes=CLASSES)
    assert got == pytest.approx(5 / N_TEST)


def test_scale_of_features_does_not_matter() -> None:
    train, train_labels, test, test_labels = _data(seed=5)
    base = knn_accuracy(train, train_labels, test, test_labels, k=7)
    assert knn_accuracy(train * 1e3, train_labels, test * 1e-3, test_labels, k=7) == base


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: {**a, "train_labels": a["train_labels"][:-1]}, "train_labels has 49"),
        (lambda a: {**a, "test_features": a["test_features"][:, :3]}, "features per row"),
        (
            lambda a: {
                **a,
                "train_features": a["train_features"][:0],
                "train_labels": a["train_labels"][:0],
            },
            "train_features is empty",
        ),
        (lambda a: {**a, "test_features": a["test_features"][0]}, "must be 2-D"),
        (lambda a: {**a, "test_labels": a["test_labels"].float()}, "must be integers"),
        (lambda a: {**a, "test_labels": a["test_labels"] - 10}, "non-negative"),
        (lambda a: {**a, "train_features": a["train_features"] * float("nan")}, "NaN"),
        (lambda a: {**a, "k": 0}, "k must be"),
        (lambda a: {**a, "temperature": 0.0}, "temperature must be"),
        (lambda a: {**a, "chunk_size": 0}, "chunk_size must be"),
        (lambda a: {**a, "num_classes": 2}, "num_classes=2"),
    ],
)
def test_invalid_inputs_name_the_problem(change, message: str) -> None:
    train, train_labels, test, test_labels = _data()
    args = {
        "train_features": train,
        "train_labels": train_labels,
        "test_features": test,
        "test_labels": test_labels,
        "k": 5,
        "temperature": 0.1,
        "num_classes": None,
        "chunk_size": 1024,
    }
    with pytest.raises(EvaluationError, match=message):
        knn_accuracy(**change(args))
