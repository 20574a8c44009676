"""Evaluation behind one interface: the image run's probes and the text run's STS scores, each
with its baselines only when asked for, and the test views encoded once per pair."""

from __future__ import annotations

import torch

from fmicl_registry.data import SentencePairs
from fmicl_registry.training.evaluate import Evaluation
from fmicl_registry.training.evaluate_images import ImageEvaluation, paired_features
from fmicl_registry.training.evaluate_text import TextEvaluation
from fmicl_registry.training.schema import EvalSection
from fmicl_registry.training.views import SeededViews

CPU = torch.device("cpu")


def test_pairs_encode_each_test_image_twice_from_one_draw_of_its_views() -> None:
    images = [(torch.rand(1, 8, 8), i % 3) for i in range(7)]
    calls = {"n": 0}

    def augment(x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return x + torch.rand(())

    views = SeededViews(images, augment, seed=3)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 5))
    z1, z2 = paired_features(encoder, views, CPU, batch_size=3)
    assert calls["n"] == 2 * len(images)  # each view drawn once
    with torch.no_grad():
        want1 = torch.stack([encoder(views[i][0][None])[0] for i in range(7)])
        want2 = torch.stack([encoder(views[i][1][None])[0] for i in range(7)])
    torch.testing.assert_close(z1, want1)
    torch.testing.assert_close(z2, want2)


def _encoder() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4))


def _images(untrained: bool) -> ImageEvaluation:
    g = torch.Generator().manual_seed(1)
    data = [(torch.rand(1, 4, 4, generator=g) + i % 2, i % 2) for i in range(24)]
    return ImageEvaluation(
        train_set=data[:16],
        test_set=data[16:],
        test_views=SeededViews(data[16:], lambda x: x + 0.1 * torch.rand(()), seed=2),
        settings=EvalSection(knn_k=3, linear_epochs=2, batch_size=8),
        seed=0,
        untrained=_encoder if untrained else None,
    )


def test_an_image_run_is_scored_by_probes_with_baselines_only_when_asked() -> None:
    evaluation: Evaluation = _images(untrained=False)
    encoder = _encoder()
    scores = evaluation.score(encoder, CPU)
    assert set(scores.metrics) == {
        "knn_top1", "linear_top1", "linear_train_top1", "alignment", "uniformity"
    }  # fmt: skip
    assert scores.baselines == {} and list(scores.distances) == ["pretrained"]
    assert evaluation.curve_point(encoder, CPU) == scores.metrics[evaluation.curve]
    assert "raw input" not in evaluation.summary(scores)

    with_baselines = _images(untrained=True).score(encoder, CPU)
    assert list(with_baselines.baselines) == ["raw_input", "random_encoder"]
    assert list(with_baselines.distances) == ["pretrained", "random encoder"]
    assert with_baselines.metrics == scores.metrics


class _Letters(torch.nn.Module):
    """Sentences -> counts of some letters (a stand-in for a sentence encoder)."""

    def __init__(self, letters: str) -> None:
        super().__init__()
        self.letters = letters

    def forward(self, sentences: list[str]) -> torch.Tensor:
        return torch.tensor([[s.count(c) + 0.1 for c in self.letters] for s in sentences])


def test_a_text_run_is_scored_on_sts_beside_the_encoder_before_training() -> None:
    pairs = SentencePairs(
        "toy",
        ["a cat sat", "a dog ran", "the sun", "big red box", "rain falls"],
        ["a cat sits", "a dog runs", "the moon", "small blue car", "rain fell"],
        [4.8, 4.5, 2.0, 0.5, 4.2],
    )
    trained = _Letters("acdgnorstu")
    alone = TextEvaluation(pairs=pairs, batch_size=2)
    scores = alone.score(trained, CPU)
    assert {"sts_spearman", "sts_pearson", "alignment", "uniformity"} == set(scores.metrics)
    assert scores.baselines == {} and list(scores.distances) == ["after training"]
    assert alone.curve_point(trained, CPU) == scores.metrics["sts_spearman"]
    assert alone.summary(scores).endswith("on toy test (5 pairs)")

    beside = TextEvaluation(pairs=pairs, batch_size=2, untrained=lambda: _Letters("xyz"))
    scores = beside.score(trained, CPU)
    assert list(scores.baselines) == ["before_training"]
    assert list(scores.distances) == ["after training", "before training"]
    assert "(before training: " in beside.summary(scores)
