"""Training throughput: SimCLR on the digits (small CNN), on 32x32 CIFAR-format data and on
96x96 STL-10-format data, through ``fmicl_registry.training.train``, against a bare training
step, with the SimCLR augmentation batched on the device and per image in the data loader.

The reference is the same model, objective and optimiser stepping on pre-made views in a plain
loop (no data loading, no augmentation, no bookkeeping), measured in the same run, so the
ratio loop / bare shows what the loop, the data pipeline and the augmentation cost. Each
image setup runs twice through the loop, ``augment.batched = true`` (the recipe's batched form
on the training device) and ``false`` (torchvision.transforms.v2 per image in the loader, with
the spec's ``data.num_workers``, 0 unless set); batched / per-image is the ratio of the two.
Each loop runs twice (batched and per image alternated) and the bare step in two blocks; the
best of each counts, so a burst of load from other jobs on the machine hurts neither side.
A last table times the augmentation alone on one batch: per image, batched and, where it is
installed, kornia's augmentation module with the same steps.

    python benchmarks/training.py                # every setup
    python benchmarks/training.py --quick        # fewer steps
    python benchmarks/training.py --threads 1    # steadier on a machine shared with other jobs
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "data"))
from data_formats import write_cifar10, write_stl10  # writes the real on-disk formats

from fmicl_registry.data.augment import simclr_recipe
from fmicl_registry.data.batch_simclr import BatchSimCLR
from fmicl_registry.training import load_spec, train
from fmicl_registry.training.build import build


def bare_images_per_s(settings: list[str], steps: int, repeats: int = 2) -> float:
    """Images (pairs of views) per second of the bare step on random views, the best of
    ``repeats`` blocks of ``steps`` steps."""
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
    best = 0.0
    for _ in range(repeats):
        tic = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad()
            model(v1, v2).backward()
            opt.step()
        best = max(best, steps * batch / (time.perf_counter() - tic))
    return best


def loop_images_per_s(settings: list[str], out: Path) -> float:
    spec = load_spec(None, [*settings, "train.progress=false", "eval.baselines=false"])
    result = train(spec, out, log=lambda _: None)
    return float(result.report["training"]["images_per_s"])


def augmentation_images_per_s(size: int, batch: int, repeats: int) -> dict[str, float]:
    """Images per second of the SimCLR augmentation alone (one view of each image)."""
    shape, mean, std = (3, size, size), (0.5,) * 3, (0.25,) * 3
    images = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8)
    per_image = simclr_recipe(shape, mean, std)
    batched = BatchSimCLR(shape, mean, std)
    generator = torch.Generator().manual_seed(0)
    runs: dict[str, Callable[[], object]] = {
        "per image (transforms.v2)": lambda: torch.stack([per_image(x) for x in images]),
        "batched (BatchSimCLR)": lambda: batched(images, generator),
    }
    try:
        import kornia.augmentation as K
    except ImportError:
        pass
    else:
        o = batched.options
        steps = [
            K.RandomResizedCrop((size, size), scale=o.crop_scale),
            K.RandomHorizontalFlip(p=o.flip_p),
            K.ColorJitter(*o.jitter, p=o.jitter_p),
            K.RandomGrayscale(p=o.grayscale_p),
        ]
        if batched.blur:
            kernel = batched.kernel_size
            steps.append(K.RandomGaussianBlur((kernel, kernel), o.blur_sigma, p=o.blur_p))
        steps.append(K.Normalize(torch.tensor(mean), torch.tensor(std)))
        pipeline = K.AugmentationSequential(*steps)
        runs["kornia.augmentation"] = lambda: pipeline(images.float() / 255)
    rates = {}
    for name, run in runs.items():
        run()  # warm-up
        tic = time.perf_counter()
        for _ in range(repeats):
            run()
        rates[name] = repeats * batch / (time.perf_counter() - tic)
    return rates


def image_settings(data: list[str], backbone: list[str], batch: int, steps: int) -> list[str]:
    return [
        *data,
        "augment.name=simclr",
        *backbone,
        "architecture.out_dim=128",
        f"train.batch_size={batch}",
        f"train.max_steps={steps}",
        "train.epochs=1",
        "train.warmup_epochs=0",
        "eval.every=0",
        "eval.linear_epochs=1",
        "eval.knn_k=20",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []  # (setup, pipeline, loop img/s, bare img/s, batched / per-image)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        epochs = 3 if args.quick else 10
        digits = [f"train.epochs={epochs}", "eval.every=0", "eval.linear_epochs=1"]
        rate = max(loop_images_per_s(digits, out / f"d{k}") for k in range(2))
        rows.append(
            (
                "digits 8x8, small CNN, batch 256",
                "batched",
                rate,
                bare_images_per_s(digits, 10),
                None,
            )
        )
        cifar, stl = out / "cifar", out / "stl"
        write_cifar10(cifar, per_batch=200 if args.quick else 400, n_test=100)
        write_stl10(stl, n_train=100, n_test=100, n_unlabeled=300 if args.quick else 700)
        steps = 4 if args.quick else 8
        cifar_data = ["data.name=cifar10", f'data.root="{cifar}"']
        stl_data = ["data.name=stl10", f'data.root="{stl}"']
        resnet = ["backbone.name=resnet18"]
        small = ["backbone.name=small_cnn", "backbone.width=8"]  # augmentation-bound
        setups = [
            ("CIFAR-format 32x32, ResNet-18, batch 64", cifar_data, resnet, 64),
            ("CIFAR-format 32x32, small CNN w8, batch 256", cifar_data, small, 256),
            ("STL-10-format 96x96, ResNet-18, batch 32", stl_data, resnet, 32),
            ("STL-10-format 96x96, small CNN w8, batch 64", stl_data, small, 64),
        ]
        for n, (name, data, backbone, batch) in enumerate(setups):
            settings = image_settings(data, backbone, batch, steps)
            bare = bare_images_per_s(settings, steps)
            batched = per_image = 0.0
            for k in range(2):  # alternated, best of two: a burst of load hurts neither
                b = loop_images_per_s([*settings, "augment.batched=true"], out / f"b{n}{k}")
                p = loop_images_per_s([*settings, "augment.batched=false"], out / f"p{n}{k}")
                batched, per_image = max(batched, b), max(per_image, p)
            rows.append((name, "batched", batched, bare, batched / per_image))
            rows.append((name, "per image", per_image, bare, None))
    print(
        f"{'setup':44} {'augmentation':12} {'loop img/s':>11} {'bare step img/s':>16} "
        f"{'loop/bare':>9} {'batched/per-image':>18}"
    )
    for name, pipeline, ours, bare, speedup in rows:
        ratio = f"{speedup:18.2f}" if speedup is not None else ""
        print(f"{name:44} {pipeline:12} {ours:11.0f} {bare:16.0f} {ours / bare:9.2f} {ratio}")
    print()
    print(f"{'augmentation alone (one view)':44} {'img/s':>11} {'vs per image':>13}")
    for size, batch in ((32, 256), (96, 64)):
        rates = augmentation_images_per_s(size, batch, repeats=2 if args.quick else 5)
        base = rates["per image (transforms.v2)"]
        for name, rate in rates.items():
            label = f"{size}x{size}, batch {batch}: {name}"
            print(f"{label:44} {rate:11.0f} {rate / base:13.2f}")


if __name__ == "__main__":
    main()
