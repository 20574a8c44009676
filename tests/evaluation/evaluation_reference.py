"""Loop references for the evaluation tests: plain Python over lists of floats, in double.

Nothing here uses the library or torch's linear algebra; each function follows its paper's
definition term by term: the weighted kNN vote of Wu et al. 2018 (section 3.4), alignment and
uniformity of Wang and Isola 2020 (eq. 4-5), and pair distances on the unit sphere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Vector = list[float]


def unit(row: Sequence[float]) -> Vector:
    norm = math.sqrt(sum(v * v for v in row))
    return [v / norm for v in row]


def distance(x: Sequence[float], y: Sequence[float]) -> float:
    return math.sqrt(sum((a - b) ** 2 for a, b in zip(x, y, strict=True)))


def knn_predictions(
    train: Sequence[Sequence[float]],
    train_labels: Sequence[int],
    test: Sequence[Sequence[float]],
    *,
    k: int,
    temperature: float,
    num_classes: int,
) -> list[int]:
    """Per test point: cosine to every train point, sort, top k, sum exp(s / T) per class."""
    bank = [unit(row) for row in train]
    predictions = []
    for row in test:
        query = unit(row)
        sims = [
            (sum(a * b for a, b in zip(query, item, strict=True)), label)
            for item, label in zip(bank, train_labels, strict=True)
        ]
        sims.sort(key=lambda pair: pair[0], reverse=True)
        votes = [0.0] * num_classes
        for sim, label in sims[: min(k, len(sims))]:
            votes[label] += math.exp(sim / temperature)
        predictions.append(max(range(num_classes), key=lambda c: (votes[c], -c)))
    return predictions


def alignment(z1: Sequence[Sequence[float]], z2: Sequence[Sequence[float]], alpha: float) -> float:
    """mean_i ||x_i - y_i|| ** alpha on unit rows."""
    terms = [distance(unit(x), unit(y)) ** alpha for x, y in zip(z1, z2, strict=True)]
    return sum(terms) / len(terms)


def uniformity(z: Sequence[Sequence[float]], t: float) -> float:
    """log mean_{i<j} exp(-t ||z_i - z_j||^2) on unit rows, the log-mean taken with a max shift."""
    rows = [unit(row) for row in z]
    exponents = [
        -t * distance(rows[i], rows[j]) ** 2
        for i in range(len(rows))
        for j in range(i + 1, len(rows))
    ]
    top = max(exponents)
    return top + math.log(sum(math.exp(e - top) for e in exponents) / len(exponents))


def negative_distances(z: Sequence[Sequence[float]]) -> list[float]:
    """||x_i - x_j|| over ordered pairs i != j, i then j."""
    rows = [unit(row) for row in z]
    return [
        distance(rows[i], rows[j]) for i in range(len(rows)) for j in range(len(rows)) if i != j
    ]
