"""Augmentation recipes: shapes, dtypes, ranges, what each recipe does and does not do."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import fmicl_registry as fm
from fmicl_registry.data import (
    digits,
    eval_transform,
    get_augmentation,
    get_batch_augmentation,
    list_recipes,
    train_transform,
)

MEAN3, STD3 = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


def _steps(transform: Any) -> list[str]:
    """The class names of every step of a v2.Compose, inside RandomApply too."""
    names = []
    for step in transform.transforms:
        names.append(type(step).__name__)
        names.extend(type(inner).__name__ for inner in getattr(step, "transforms", []))
    return names


def _find(transform: Any, name: str, inner: str | None = None) -> Any:
    """The step called ``name`` (with a step ``inner`` inside it), at the top or one level in."""
    for step in transform.transforms:
        inside = getattr(step, "transforms", [])
        if type(step).__name__ == name and (
            inner is None or any(type(t).__name__ == inner for t in inside)
        ):
            return step
        for t in inside:
            if type(t).__name__ == name and inner is None:
                return t
    raise AssertionError(f"no {name} in {transform}")


def _image(shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)


@pytest.mark.parametrize(
    ("recipe", "shape"),
    [
        ("simclr", (3, 32, 32)),
        ("simclr", (3, 96, 96)),
        ("simclr", (1, 28, 28)),
        ("digits", (1, 8, 8)),
        ("none", (3, 32, 32)),
    ],
)
def test_output_shape_dtype_and_range(recipe: str, shape: tuple[int, int, int]) -> None:
    mean, std = (MEAN3, STD3) if shape[0] == 3 else ((0.3,), (0.4,))
    transform = get_augmentation(recipe, shape, mean, std)
    torch.manual_seed(0)
    for seed in range(5):
        out = transform(_image(shape, seed))
        assert out.dtype == torch.float32 and out.shape == shape
        m = torch.tensor(mean).view(-1, 1, 1)
        s = torch.tensor(std).view(-1, 1, 1)
        pixels = out * s + m  # undo Normalize: back in [0, 1]
        assert float(pixels.min()) >= -1e-5 and float(pixels.max()) <= 1 + 1e-5


def test_none_is_exactly_scale_and_normalise() -> None:
    x = _image((3, 4, 5))
    out = get_augmentation("none", (3, 4, 5), MEAN3, STD3)(x)
    want = (x.float() / 255 - torch.tensor(MEAN3).view(3, 1, 1)) / torch.tensor(STD3).view(3, 1, 1)
    torch.testing.assert_close(out, want)


def test_simclr_recipe_steps() -> None:
    small = _steps(get_augmentation("simclr", (3, 32, 32), MEAN3, STD3))
    assert small[:2] == ["RandomResizedCrop", "RandomHorizontalFlip"]
    assert "ColorJitter" in small and "RandomGrayscale" in small
    assert "GaussianBlur" not in small  # blur only for >= 96 pixels
    large = get_augmentation("simclr", (3, 96, 96), MEAN3, STD3)
    assert "GaussianBlur" in _steps(large)
    blur = _find(large, "GaussianBlur")
    assert tuple(blur.kernel_size) == (9, 9) and tuple(blur.sigma) == (0.1, 2.0)
    assert _find(large, "RandomApply", "GaussianBlur").p == 0.5
    jitter = _find(large, "ColorJitter")
    assert tuple(jitter.brightness) == pytest.approx((0.6, 1.4))
    assert tuple(jitter.saturation) == pytest.approx((0.6, 1.4))
    assert tuple(jitter.hue) == pytest.approx((-0.1, 0.1))
    assert _find(large, "RandomApply", "ColorJitter").p == 0.8
    assert _find(large, "RandomGrayscale").p == 0.2
    assert tuple(_find(large, "RandomResizedCrop").scale) == (0.08, 1.0)
    gray = _steps(get_augmentation("simclr", (1, 28, 28), (0.5,), (0.5,)))
    assert "RandomGrayscale" not in gray  # nothing to gray on one channel
    assert "RandomHorizontalFlip" in gray


def _left_minus_right(view: torch.Tensor) -> float:
    return float(view[..., :4].mean() - view[..., 4:].mean())


def test_digits_recipe_never_mirrors() -> None:
    """A digit is not mirror invariant: an image bright on its left must never come out
    bright on its right; the SimCLR recipe's flips do exactly that (so this check can fail)."""
    image = torch.zeros(1, 8, 8, dtype=torch.uint8)
    image[..., :3] = 255
    torch.manual_seed(0)
    recipe = get_augmentation("digits", (1, 8, 8), (0.3,), (0.4,))
    differences = [_left_minus_right(recipe(image)) for _ in range(300)]
    assert min(differences) >= -1e-6
    assert sum(d > 0 for d in differences) >= 290
    assert not {"RandomHorizontalFlip", "RandomVerticalFlip"} & set(_steps(recipe))
    flips = get_augmentation("simclr", (1, 8, 8), (0.3,), (0.4,), crop_scale=(0.6, 1.0))
    assert sum(_left_minus_right(flips(image)) < 0 for _ in range(100)) > 20


def test_digits_recipe_changes_digits_but_keeps_them_recognisable() -> None:
    """Views differ from the image, yet a 1-nearest-neighbour classifier on clean training
    images still names most augmented test digits (chance: 10%; clean: ~98%)."""
    train, test = digits(), digits(split="test")
    clean = eval_transform(train)
    bank = torch.stack([clean(x) for x, _ in train]).flatten(1)

    def accuracy(transform: Any) -> float:
        queries = torch.stack([transform(x) for x, _ in test]).flatten(1)
        predicted = train.labels[torch.cdist(queries, bank).argmin(dim=1)]
        return float((predicted == test.labels).float().mean())

    torch.manual_seed(0)
    recipe = train_transform(test)  # digits' default recipe, "digits"
    image = test[0][0]
    changed = [not torch.equal(recipe(image), clean(image)) for _ in range(20)]
    assert sum(changed) >= 18
    assert accuracy(clean) > 0.95
    assert accuracy(recipe) > 0.3


def test_digits_options_switch_every_step_off() -> None:
    off = {
        "degrees": 0.0,
        "translate_px": 0.0,
        "scale": (1.0, 1.0),
        "shear": 0.0,
        "crop_scale": (1.0, 1.0),
        "crop_ratio": (1.0, 1.0),
        "brightness": 0.0,
        "contrast": 0.0,
    }
    recipe = get_augmentation("digits", (1, 8, 8), (0.3,), (0.4,), **off)
    x = _image((1, 8, 8))
    assert torch.equal(recipe(x), get_augmentation("none", (1, 8, 8), (0.3,), (0.4,))(x))


def test_unknown_recipe_and_option_are_errors() -> None:
    assert list_recipes() == ["digits", "none", "simclr"]
    with pytest.raises(fm.RegistryError, match=r"Did you mean 'simclr'.*digits \(augmentations\)"):
        get_augmentation("simclr_v2", (3, 32, 32), MEAN3, STD3)
    with pytest.raises(fm.AugmentationError, match=r"'degree'.*did you mean 'degrees'"):
        get_augmentation("digits", (1, 8, 8), (0.3,), (0.4,), degree=3)
    with pytest.raises(fm.AugmentationError, match=r"'degree'.*did you mean 'degrees'"):
        get_batch_augmentation("digits", (1, 8, 8), (0.3,), (0.4,), degree=3)
    with pytest.raises(fm.AugmentationError, match=r"\(C, H, W\)"):
        get_augmentation("none", (32, 32), MEAN3, STD3)


def test_same_seed_same_views() -> None:
    transform = get_augmentation("simclr", (3, 32, 32), MEAN3, STD3)
    x = _image((3, 32, 32))
    torch.manual_seed(3)
    first = [transform(x) for _ in range(3)]
    torch.manual_seed(3)
    second = [transform(x) for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not torch.equal(first[0], first[1])
