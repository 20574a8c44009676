"""A tiny digits run for the training tests: small enough to finish in seconds on CPU."""

from __future__ import annotations

TINY = [
    "train.epochs=2",
    "train.batch_size=128",
    "train.lr=0.05",
    "train.warmup_epochs=0.0",
    "train.log_every=2",
    "train.progress=false",
    "backbone.width=8",
    "backbone.output_dim=16",
    "architecture.out_dim=16",
    "eval.linear_epochs=5",
    "eval.knn_k=20",
    "eval.baselines=false",
    "eval.every=1",
]
