"""Training throughput: SimCLR on the digits (small CNN) and on 32x32 CIFAR-format data
(ResNet-18), through ``fmicl_registry.training.train``, against a bare training step.

The reference is the same model, objective and optimiser stepping on pre-made views in a plain
loop (no data loading, no augmentation, no bookkeeping), measured in the same run, so the
ratio shows what the loop, the data pipeline and the augmentation cost.

    python benchmarks/training.py            # digits, and CIFAR-format with ResNet-18
    python benchmarks/training.py --quick    # fewer steps
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "data"))
from data_formats import write_cifar10  # writes CIFAR's real pickled format

from fmicl_registry.training import load_spec, train
from fmicl_registry.training.build import build


def bare_images_per_s(settings: list[str], steps: int) -> float:
    """Images (pairs of views) per second of the bare step on random views."""
    spec = load_spec(None, settings)
    parts = build(spec)
    model = parts.model
    model.train()
    batch = spec.train.batch_size
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    v1 = torch.randn(batch, *parts.input_shape)
    v2 = torch.randn(batch, *parts.input_shape)
    for _ in range(2):  # warm-up
        opt.zero_grad()
        model(v1, v2).backward()
        opt.step()
    tic = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        model(v1, v2).backward()
        opt.step()
    return steps * batch / (time.perf_counter() - tic)


def loop_images_per_s(settings: list[str], out: Path) -> float:
    spec = load_spec(None, [*settings, "train.progress=false", "eval.baselines=false"])
    result = train(spec, out, log=lambda _: None)
    return float(result.report["training"]["images_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        epochs = 3 if args.quick else 10
        digits = [f"train.epochs={epochs}", "eval.every=0", "eval.linear_epochs=1"]
        name = "digits, small CNN, batch 256"
        rows.append((name, loop_images_per_s(digits, out / "d"), bare_images_per_s(digits, 10)))
        root = out / "cifar"
        write_cifar10(root, per_batch=100 if args.quick else 400, n_test=100)
        steps = 2 if args.quick else 6
        cifar = [
            "data.name=cifar10",
            f'data.root="{root}"',
            "augment.name=simclr",
            "backbone.name=resnet18",
            "architecture.out_dim=128",
            "train.batch_size=64",
            f"train.max_steps={steps}",
            "train.epochs=1",
            "eval.every=0",
            "eval.linear_epochs=1",
            "eval.knn_k=20",
        ]
        name = "CIFAR-format 32x32, ResNet-18, batch 64"
        rows.append((name, loop_images_per_s(cifar, out / "c"), bare_images_per_s(cifar, steps)))
    print(f"{'setup':42} {'loop img/s':>11} {'bare step img/s':>16} {'ratio':>6}")
    for name, ours, bare in rows:
        print(f"{name:42} {ours:11.0f} {bare:16.0f} {ours / bare:6.2f}")


if __name__ == "__main__":
    main()
