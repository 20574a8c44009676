"""The batched SimCLR recipe: each operation equals torchvision's per-image one, the random
parameters follow the per-image recipe's distribution, and the views depend only on the
generator and the image's row in the global batch."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from data_formats import write_cifar10
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

import fmicl_registry as fm
from fmicl_registry.data import get_augmentation, get_batch_augmentation
from fmicl_registry.data.batch_simclr import (
    BatchSimCLR,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    gaussian_blur,
    resized_crop,
    rgb_to_grayscale,
)

MEAN3, STD3 = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
TOL = {"atol": 2e-6, "rtol": 0}  # float32 rounding of a few operations on values in [0, 1]


def _floats(n: int, shape: tuple[int, int, int], seed: int = 0, levels: int = 0) -> torch.Tensor:
    """Images in [0, 1]; ``levels``: quantised to that many levels (ties between channels,
    grey pixels, pure black and white), as images decoded from ``uint8`` are."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *shape, generator=g)
    return (x * levels).round() / levels if levels else x


def _factors(n: int, low: float, high: float, seed: int = 1) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=torch.Generator().manual_seed(seed))


def _per_image(op: Any, x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    return torch.stack([op(image, float(f)) for image, f in zip(x, factors, strict=True)])


@pytest.mark.parametrize("levels", [0, 5, 255])
@pytest.mark.parametrize("channels", [3, 1])
def test_colour_operations_equal_torchvisions_per_image(levels: int, channels: int) -> None:
    x = _floats(12, (channels, 9, 7), levels=levels)
    x[0] = 0.0  # black
    x[1] = 0.5  # flat grey
    f = _factors(12, 0.0, 2.0)
    hue = _factors(12, -0.5, 0.5)
    torch.testing.assert_close(adjust_brightness(x, f), _per_image(TF.adjust_brightness, x, f))
    torch.testing.assert_close(adjust_contrast(x, f), _per_image(TF.adjust_contrast, x, f), **TOL)
    torch.testing.assert_close(
        adjust_saturation(x, f), _per_image(TF.adjust_saturation, x, f), **TOL
    )
    torch.testing.assert_close(adjust_hue(x, hue), _per_image(TF.adjust_hue, x, hue), **TOL)
    if channels == 3:
        torch.testing.assert_close(rgb_to_grayscale(x), TF.rgb_to_grayscale(x), **TOL)


def test_hue_turns_colours_around_the_wheel() -> None:
    """Independent of torchvision: a third of a turn maps red to green to blue to red."""
    red, green, blue = torch.eye(3).view(3, 3, 1, 1)
    third = torch.full((3,), 1 / 3)
    out = adjust_hue(torch.stack([red, green, blue]), third)
    torch.testing.assert_close(out, torch.stack([green, blue, red]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("kernel", [3, 9])
def test_blur_with_a_sigma_per_image_equals_torchvisions(kernel: int) -> None:
    x = _floats(6, (3, 20, 16))
    sigma = _factors(6, 0.1, 2.0)
    want = torch.stack(
        [TF.gaussian_blur(x[i], [kernel] * 2, [float(sigma[i])] * 2) for i in range(6)]
    )
    torch.testing.assert_close(gaussian_blur(x, kernel, sigma), want, **TOL)


@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 96, 96), (1, 20, 28)])
def test_resized_crop_and_flip_equal_torchvisions_per_image(shape: tuple[int, int, int]) -> None:
    aug = BatchSimCLR(shape, (0.5,) * shape[0], (0.25,) * shape[0])
    x = _floats(16, shape)
    box = aug.crop_boxes(16, torch.Generator().manual_seed(0))
    flip = torch.arange(16) % 2 == 1
    got = resized_crop(x, box["top"], box["left"], box["height"], box["width"], flip)
    size = list(shape[1:])
    for i in range(16):
        t, left, h, w = (int(box[k][i]) for k in ("top", "left", "height", "width"))
        want = TF.resized_crop(x[i], t, left, h, w, size, antialias=True)
        want = TF.horizontal_flip(want) if flip[i] else want
        torch.testing.assert_close(got[i], want, **TOL)


def _reference_view(aug: BatchSimCLR, image: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
    """One image through torchvision's functional ops in the recipe's order with ``p``."""
    size = [aug.height, aug.width]
    x = TF.resized_crop(image, *(int(p[k]) for k in ("top", "left", "height", "width")), size)
    if p["flip"]:
        x = TF.horizontal_flip(x)
    ops = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    names = ["brightness", "contrast", "saturation", "hue"]
    if p["jitter"]:
        for number in p["order"].tolist():
            if aug.ranges[names[number]] is not None:
                x = ops[number](x, float(p[names[number]]))
    if p["grayscale"]:
        x = TF.rgb_to_grayscale(x, num_output_channels=3)
    if p["blur"]:
        x = TF.gaussian_blur(x, [aug.kernel_size] * 2, [float(p["sigma"])] * 2)
    mean = torch.tensor(MEAN3[: aug.channels]).view(-1, 1, 1)
    std = torch.tensor(STD3[: aug.channels]).view(-1, 1, 1)
    return (x - mean) / std


@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 96, 96), (1, 28, 28)])
def test_whole_recipe_equals_torchvisions_ops_in_the_recipes_order(
    shape: tuple[int, int, int],
) -> None:
    """The parameters drawn for a batch, applied image by image with torchvision's functional
    ops in the per-image recipe's order (crop, flip, jitter in the drawn order, grayscale,
    blur, normalise), give the batched views."""
    c = shape[0]
    aug = BatchSimCLR(shape, MEAN3[:c], STD3[:c], jitter_p=0.9, grayscale_p=0.3, blur_p=0.5)
    x = _floats(24, shape, levels=255)
    out = aug(x, torch.Generator().manual_seed(5))
    p = aug.parameters(24, torch.Generator().manual_seed(5))
    assert p["jitter"].any() and p["flip"].any() and not p["flip"].all()
    assert (p["blur"].any() and c == 3 and shape[1] == 96) or not p["blur"].any()
    for i in range(24):
        want = _reference_view(aug, x[i], {k: v[i] for k, v in p.items()})
        torch.testing.assert_close(out[i], want, atol=2e-5, rtol=0)


def _binomial_ok(hits: torch.Tensor, p: float) -> bool:
    """The rate of ``hits`` is ``p`` within 4.5 standard errors (a false alarm ~1e-5)."""
    n = hits.numel()
    return abs(float(hits.float().mean()) - p) <= 4.5 * math.sqrt(p * (1 - p) / n) + 1e-12


def _means_agree(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Two samples' means agree within 4.5 standard errors of their difference."""
    a, b = a.double(), b.double()
    se = math.sqrt(float(a.var()) / len(a) + float(b.var()) / len(b))
    return abs(float(a.mean() - b.mean())) <= 4.5 * se


N = 20_000


@pytest.mark.parametrize("scale", [(0.08, 1.0), (0.5, 0.9)])
def test_crop_boxes_follow_torchvisions_random_resized_crop(scale: tuple[float, float]) -> None:
    height, width = 32, 40
    aug = BatchSimCLR((3, height, width), MEAN3, STD3, crop_scale=scale)
    box = aug.crop_boxes(N, torch.Generator().manual_seed(0))
    top, left, h, w = box["top"], box["left"], box["height"], box["width"]
    assert bool(((top >= 0) & (left >= 0) & (top + h <= height) & (left + w <= width)).all())
    # Each box comes from an area and an aspect ratio in range, rounded to whole pixels.
    lo_area, hi_area = (h - 0.5) * (w - 0.5), (h + 0.5) * (w + 0.5)
    area = height * width
    assert bool(((hi_area >= scale[0] * area) & (lo_area <= scale[1] * area)).all())
    lo_ratio, hi_ratio = (w - 0.5) / (h + 0.5), (w + 0.5) / (h - 0.5)
    assert bool(((hi_ratio >= 3 / 4) & (lo_ratio <= 4 / 3)).all())
    # Against torchvision's own draws: mean area, log-aspect and position.
    torch.manual_seed(0)
    crop = v2.RandomResizedCrop((height, width), scale=scale)
    image = tv_tensors.Image(torch.zeros(3, height, width))
    ref = [crop.make_params([image]) for _ in range(4000)]
    ref_h = torch.tensor([r["height"] for r in ref], dtype=torch.float64)
    ref_w = torch.tensor([r["width"] for r in ref], dtype=torch.float64)
    ref_top = torch.tensor([r["top"] for r in ref], dtype=torch.float64)
    ref_left = torch.tensor([r["left"] for r in ref], dtype=torch.float64)
    assert _means_agree((h * w).double() / area, ref_h * ref_w / area)
    assert _means_agree((w.double() / h).log(), (ref_w / ref_h).log())
    assert _means_agree(top + h / 2, ref_top + ref_h / 2)
    assert _means_agree(left + w / 2, ref_left + ref_w / 2)
    assert _means_agree(h.double(), ref_h) and _means_agree(w.double(), ref_w)


@pytest.mark.parametrize("shape", [(3, 8, 64), (3, 64, 8)])
def test_when_no_try_fits_the_crop_is_torchvisions_central_fallback(
    shape: tuple[int, int, int],
) -> None:
    """A long thin image whose crops of 90-100% of its area never fit in ten tries."""
    aug = BatchSimCLR(shape, MEAN3, STD3, crop_scale=(0.9, 1.0))
    box = aug.crop_boxes(50, torch.Generator().manual_seed(0))
    want = v2.RandomResizedCrop(shape[1:], scale=(0.9, 1.0)).make_params(
        [tv_tensors.Image(torch.zeros(shape))]
    )
    for key in ("top", "left", "height", "width"):
        assert set(box[key].tolist()) == {want[key]}


def test_random_choices_happen_at_the_recipes_rates() -> None:
    options = {"flip_p": 0.3, "jitter_p": 0.7, "grayscale_p": 0.2, "blur_p": 0.4}
    aug = BatchSimCLR((3, 96, 96), MEAN3, STD3, jitter=(0.4, 0.3, 0.2, 0.1), **options)
    p = aug.parameters(N, torch.Generator().manual_seed(1))
    assert _binomial_ok(p["flip"], 0.3)
    assert _binomial_ok(p["jitter"], 0.7)
    assert _binomial_ok(p["grayscale"], 0.2)
    assert _binomial_ok(p["blur"], 0.4)
    for name, (low, high) in [
        ("brightness", (0.6, 1.4)),
        ("contrast", (0.7, 1.3)),
        ("saturation", (0.8, 1.2)),
        ("hue", (-0.1, 0.1)),
        ("sigma", (0.1, 2.0)),
    ]:
        values = p[name]
        assert low <= float(values.min()) and float(values.max()) <= high
        # Uniform: the mean and the fraction below the midpoint.
        se = (high - low) / math.sqrt(12 * N)
        assert abs(float(values.mean()) - (low + high) / 2) <= 4.5 * se
        assert _binomial_ok(values < (low + high) / 2, 0.5)
    # Every operation is equally likely at every step of the jitter's random order.
    order = p["order"]
    assert torch.equal(order.sort(dim=1).values, torch.arange(4).expand(N, 4))
    for step in range(4):
        for op in range(4):
            assert _binomial_ok(order[:, step] == op, 0.25)


def test_small_and_one_channel_images_get_only_their_recipes_steps() -> None:
    small = BatchSimCLR((3, 32, 32), MEAN3, STD3).parameters(2000, torch.Generator())
    assert not small["blur"].any()  # blur only from 96 pixels, as the per-image recipe
    forced = BatchSimCLR((3, 32, 32), MEAN3, STD3, blur=True).parameters(2000, torch.Generator())
    assert _binomial_ok(forced["blur"], 0.5)
    grey = BatchSimCLR((1, 28, 28), (0.5,), (0.5,))
    assert grey.ranges["saturation"] is None and grey.ranges["hue"] is None
    assert not grey.parameters(2000, torch.Generator())["grayscale"].any()
    off = BatchSimCLR((3, 8, 8), MEAN3, STD3, jitter=(0.0, 0.5, 0.0, 0.0))
    assert [n for n, r in off.ranges.items() if r is not None] == ["contrast"]


def test_strong_jitter_ranges_start_at_zero_as_torchvisions() -> None:
    aug = BatchSimCLR((3, 8, 8), MEAN3, STD3, jitter=(1.5, 0.4, 0.4, 0.5))
    jitter = v2.ColorJitter(1.5, 0.4, 0.4, 0.5)
    assert aug.ranges == {
        "brightness": jitter.brightness,
        "contrast": pytest.approx(jitter.contrast),
        "saturation": pytest.approx(jitter.saturation),
        "hue": jitter.hue,
    }


def test_same_generator_same_views_and_rank_slices_are_rows_of_the_global_batch() -> None:
    aug = BatchSimCLR((3, 32, 32), MEAN3, STD3)
    x = (_floats(8, (3, 32, 32)) * 255).round().to(torch.uint8)
    whole = aug(x, torch.Generator().manual_seed(3))
    assert torch.equal(whole, aug(x, torch.Generator().manual_seed(3)))
    assert not torch.allclose(whole, aug(x, torch.Generator().manual_seed(4)))
    g = torch.Generator().manual_seed(3)  # the two views of a batch: one generator, twice
    first, second = aug(x, g), aug(x, g)
    assert torch.equal(first, whole) and not torch.allclose(first, second)
    for ranks in (2, 4):
        size = 8 // ranks
        parts = [
            aug(
                x[r * size : (r + 1) * size],
                torch.Generator().manual_seed(3),
                slice(r * size, (r + 1) * size),
                8,
            )
            for r in range(ranks)
        ]
        torch.testing.assert_close(torch.cat(parts), whole, atol=1e-6, rtol=0)


def test_uint8_and_float_images_give_the_same_views() -> None:
    aug = BatchSimCLR((3, 96, 96), MEAN3, STD3)
    x = (_floats(6, (3, 96, 96)) * 255).round().to(torch.uint8)
    a = aug(x, torch.Generator().manual_seed(0))
    b = aug(x.float() / 255, torch.Generator().manual_seed(0))
    assert a.dtype == b.dtype == torch.float32 and a.shape == (6, 3, 96, 96)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    pixels = a * torch.tensor(STD3).view(1, 3, 1, 1) + torch.tensor(MEAN3).view(1, 3, 1, 1)
    assert float(pixels.min()) >= -1e-5 and float(pixels.max()) <= 1 + 1e-5


def test_options_are_checked_alike_for_both_forms() -> None:
    shape, mean, std = (3, 32, 32), MEAN3, STD3
    bad: list[tuple[dict[str, Any], str]] = [
        ({"crop_scale": (0.9, 0.1)}, r"crop_scale must satisfy 0 < low <= high <= 1"),
        ({"crop_scale": (0.0, 1.0)}, r"crop_scale"),
        ({"crop_scale": 0.5}, r"crop_scale must be two numbers"),
        ({"flip_p": 1.5}, r"flip_p must be a probability"),
        ({"jitter_p": "often"}, r"jitter_p must be a probability"),
        ({"jitter": (0.4, 0.4, 0.4, 0.6)}, r"hue <= 0.5"),
        ({"jitter": (0.4, -0.1, 0.4, 0.1)}, r"four non-negative"),
        ({"jitter": (0.4, 0.4)}, r"four non-negative"),
        ({"blur": "yes"}, r"blur must be true, false"),
        ({"blur_sigma": (0.0, 2.0)}, r"blur_sigma must satisfy"),
        ({"crop_scal": (0.2, 1.0)}, r"'crop_scal'.*did you mean 'crop_scale'"),
    ]
    for options, message in bad:
        with pytest.raises(fm.AugmentationError, match=message):
            get_augmentation("simclr", shape, mean, std, **options)
        with pytest.raises(fm.AugmentationError, match=message):
            get_batch_augmentation("simclr", shape, mean, std, **options)
    good = {"crop_scale": [0.2, 1], "flip_p": 0, "jitter": [0.8, 0.8, 0.8, 0.2], "blur": True}
    assert isinstance(get_batch_augmentation("simclr", shape, mean, std, **good), BatchSimCLR)
    with pytest.raises(fm.AugmentationError, match=r"mean/std need 3 values"):
        BatchSimCLR(shape, (0.5,), (0.5,))


def test_wrong_images_and_rows_are_errors() -> None:
    aug = BatchSimCLR((3, 32, 32), MEAN3, STD3)
    with pytest.raises(fm.AugmentationError, match=r"expected images \(B, 3, 32, 32\)"):
        aug(torch.zeros(2, 3, 16, 16), torch.Generator())
    with pytest.raises(fm.AugmentationError, match=r"do not lie in a global batch of 4"):
        aug(torch.zeros(2, 3, 32, 32), torch.Generator(), slice(3, 5), 4)
    with pytest.raises(fm.AugmentationError, match=r"do not match 2 images"):
        aug(torch.zeros(2, 3, 32, 32), torch.Generator(), slice(0, 3), 4)


def test_training_uses_the_batched_recipe_unless_told_not_to(tmp_path: Path) -> None:
    from fmicl_registry.training import load_spec
    from fmicl_registry.training.build import build
    from fmicl_registry.training.views import BatchViews, PairedViews

    write_cifar10(tmp_path, per_batch=4, n_test=4)
    settings = [
        "data.name=cifar10",
        f'data.root="{tmp_path}"',
        "augment.name=simclr",
        "augment.grayscale_p=0.5",
        "backbone.name=small_cnn",
        "train.batch_size=8",
    ]
    parts = build(load_spec(None, settings))
    assert isinstance(parts.views, BatchViews) and isinstance(parts.views.augment, BatchSimCLR)
    assert parts.views.augment.options.grayscale_p == 0.5
    images = torch.stack([parts.pretrain[i][0] for i in range(8)])
    assert images.dtype == torch.uint8  # what the loader gives
    first, second = parts.views((images, torch.zeros(8)))
    assert first.shape == second.shape == (8, 3, 32, 32) and not torch.allclose(first, second)
    per_image = build(load_spec(None, [*settings, "augment.batched=false"]))
    assert isinstance(per_image.views, PairedViews)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_views_equal_cpu_views() -> None:
    aug = BatchSimCLR((3, 96, 96), MEAN3, STD3)
    x = (_floats(16, (3, 96, 96)) * 255).round().to(torch.uint8)
    cpu = aug(x, torch.Generator().manual_seed(0))
    cuda = aug(x.cuda(), torch.Generator().manual_seed(0))
    assert cuda.device.type == "cuda"
    torch.testing.assert_close(cuda.cpu(), cpu, atol=1e-4, rtol=0)
