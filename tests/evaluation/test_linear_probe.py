"""The linear probe against scikit-learn's logistic regression, and its protocol."""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch

from fmicl_registry.evaluation import (
    EvaluationError,
    LinearProbeResult,
    evaluate_features,
    linear_probe,
)


@functools.cache
def _digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's digits, raw pixels, stratified 80/20 split (random_state 0)."""
    datasets = pytest.importorskip("sklearn.datasets")
    selection = pytest.importorskip("sklearn.model_selection")
    x, y = datasets.load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = selection.train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=0
    )
    return (
        torch.tensor(x_train, dtype=torch.float32),
        torch.tensor(y_train),
        torch.tensor(x_test, dtype=torch.float32),
        torch.tensor(y_test),
    )


@functools.cache
def _digits_probe(seed: int = 0) -> LinearProbeResult:
    return linear_probe(*_digits(), seed=seed)


@pytest.mark.slow  # imports scikit-learn's models: a few seconds on a loaded machine
def test_probe_matches_logistic_regression_on_digits_pixels() -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    pipeline = pytest.importorskip("sklearn.pipeline")
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    x_train, y_train, x_test, y_test = _digits()
    reference = pipeline.make_pipeline(
        preprocessing.StandardScaler(), linear_model.LogisticRegression(max_iter=5000)
    ).fit(x_train.numpy(), y_train.numpy())
    want = reference.score(x_test.numpy(), y_test.numpy())
    got = _digits_probe()
    assert abs(got.top1 - want) <= 0.015, (got.top1, want)
    assert got.train_top1 >= 0.98


def test_same_seed_same_result_and_the_seed_is_used() -> None:
    first = _digits_probe()
    again = linear_probe(*_digits(), seed=0)
    assert again == first  # top1, train_top1 and every loss value identical
    other = linear_probe(*_digits(), seed=1, epochs=3)
    assert other.loss_history != linear_probe(*_digits(), seed=0, epochs=3).loss_history


def test_loss_history_decreases_overall() -> None:
    history = _digits_probe().loss_history
    assert len(history) == 100
    assert history[-1] < 0.1 < history[0]
    assert sum(history[-10:]) < sum(history[:10]) / 5
    # With a cosine schedule the late epochs barely move: no spike at the end.
    assert max(history[50:]) < history[10]


def test_result_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        _digits_probe().top1 = 1.0  # type: ignore[misc]


def test_standardisation_makes_feature_scale_irrelevant() -> None:
    x_train, y_train, x_test, y_test = _digits()
    base = linear_probe(x_train, y_train, x_test, y_test, epochs=20)
    for scale, shift in ((1e4, 7.0), (1e-8, 0.0)):
        scaled = linear_probe(
            scale * x_train + shift, y_train, scale * x_test + shift, y_test, epochs=20
        )
        assert abs(scaled.top1 - base.top1) <= 0.01, scale


def test_probe_is_stable_on_512_dim_encoder_features() -> None:
    x_train, y_train, x_test, y_test = _digits()
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(
        torch.nn.Linear(64, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.ReLU()
    )
    with torch.no_grad():
        z_train, z_test = encoder(x_train), encoder(x_test)
    result = linear_probe(z_train, y_train, z_test, y_test, epochs=30)
    assert all(torch.isfinite(torch.tensor(result.loss_history)))
    assert result.top1 >= 0.93
    assert result.train_top1 >= 0.99


def test_constant_and_unused_classes_are_handled() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(120) % 3
    features = torch.randn(120, 4, generator=g) + 4.0 * torch.nn.functional.one_hot(labels, 4)
    features[:, 3] = 5.0  # constant on the training set
    result = linear_probe(
        features[:90], labels[:90], features[90:], labels[90:], epochs=10, num_classes=7
    )
    assert result.top1 == 1.0


def test_diverging_training_is_reported() -> None:
    x_train, y_train, x_test, y_test = _digits()
    with pytest.raises(EvaluationError, match="lower lr"):
        linear_probe(x_train, y_train, x_test, y_test, epochs=2, lr=1e38)


def test_evaluate_features_runs_both_classifiers() -> None:
    x_train, y_train, x_test, y_test = _digits()
    scores = evaluate_features((x_train, y_train), (x_test, y_test), epochs=10)
    assert set(scores) == {"knn_top1", "linear_top1"}
    assert 0.9 <= scores["knn_top1"] <= 1.0
    assert 0.9 <= scores["linear_top1"] <= 1.0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
        ({"weight_decay": -1e-4}, "weight_decay"),
        ({"batch_size": 0}, "batch_size"),
        ({"num_classes": 5}, "num_classes=5"),
    ],
)
def test_invalid_settings_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        linear_probe(*_digits(), **settings)


def test_mismatched_labels_are_refused() -> None:
    x_train, y_train, x_test, y_test = _digits()
    with pytest.raises(EvaluationError, match="test_labels has 359"):
        linear_probe(x_train, y_train, x_test, y_test[:-1])


def test_thread_count_is_restored() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        linear_probe(*_digits(), epochs=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
