"""Evaluation of learned representations: kNN, linear probe, baselines, feature geometry.

The measurements of the f-MICL paper (Lu et al. 2023: its experiments and its analysis):

- :func:`extract_features` computes a frozen encoder's features once; :func:`raw_features` gives
  the flattened inputs (the raw-input baseline). The random-encoder baseline is
  :func:`extract_features` on an untrained encoder of the same architecture, so a report shows
  what pretraining bought over both.
- :func:`knn_accuracy`: the weighted kNN monitor of Wu et al. 2018 (k = 200, T = 0.1, cosine).
- :func:`linear_probe`: one linear layer trained on standardised frozen features (SGD, cosine
  schedule); :func:`evaluate_features` runs both classifiers.
- :func:`alignment`, :func:`uniformity` (Wang and Isola 2020) and :func:`distance_distribution`
  (the positive and negative pair distances of the paper's Figure 4).
- :func:`sts_spearman`: semantic textual similarity for text encoders, Spearman (and Pearson)
  correlation of the embeddings' cosine similarity with gold scores (SimCSE's STS protocol);
  :func:`encode_sentences` embeds a list of sentences with a frozen encoder and
  :func:`sts_correlation` scores embeddings already computed.

Accuracies are fractions in [0, 1]; reports multiply by 100.

Example:
    >>> import torch
    >>> from fmicl_registry.evaluation import extract_features, knn_accuracy, linear_probe
    >>> labels = torch.arange(100) % 2
    >>> inputs = torch.randn(100, 4, generator=torch.Generator().manual_seed(0))
    >>> inputs[:, 0] += 6.0 * labels
    >>> inputs[:, 1] += 6.0 * (1 - labels)
    >>> data = torch.utils.data.TensorDataset(inputs, labels)
    >>> _ = torch.manual_seed(0)
    >>> encoder = torch.nn.Linear(4, 8)
    >>> z, y = extract_features(encoder, data)
    >>> knn_accuracy(z[:80], y[:80], z[80:], y[80:], k=20) > 0.9
    True
    >>> linear_probe(z[:80], y[:80], z[80:], y[80:], epochs=20).top1 > 0.9
    True
"""

from __future__ import annotations

from .features import EvaluationError, extract_features, raw_features
from .knn import knn_accuracy
from .linear import LinearProbeResult, evaluate_features, linear_probe
from .metrics import alignment, distance_distribution, uniformity
from .sts import STSResult, encode_sentences, sts_correlation, sts_spearman

__all__ = [
    "EvaluationError",
    "LinearProbeResult",
    "STSResult",
    "alignment",
    "distance_distribution",
    "encode_sentences",
    "evaluate_features",
    "extract_features",
    "knn_accuracy",
    "linear_probe",
    "raw_features",
    "sts_correlation",
    "sts_spearman",
    "uniformity",
]
