"""Augmentation recipes (torchvision.transforms.v2): ``uint8 (C, H, W)`` in, normalised
``float32 (C, H, W)`` out.

Recipes:

- ``"simclr"``: the SimCLR recipe (Chen et al. 2020, appendix A), which f-MICL uses for its
  image experiments (Lu et al. 2023): random resized crop (scale 0.08-1), horizontal flip,
  colour jitter (0.4, 0.4, 0.4, 0.1) with probability 0.8, grayscale with probability 0.2 and,
  for images of 96 pixels or more, Gaussian blur (kernel ~10% of the size, sigma 0.1-2) with
  probability 0.5. On one-channel images only brightness and contrast are jittered.
- ``"digits"``: for 8x8 grayscale digits: a small random affine map (rotation, ~1 pixel
  translation, mild scale and shear), a gentle random resized crop and brightness/contrast
  jitter. No flips: a mirrored 2, 3, 7 or 9 is not the same digit.
- ``"none"``: evaluation: to float in ``[0, 1]`` and normalise only.

The recipes are registered in the ``augmentations`` kind by the built-in plugin
(``register_augmentations``); a plugin adds its own the same way. Every option of a recipe is
a keyword argument of :func:`get_augmentation`.

Randomness comes from torch's global generator only, so ``torch.manual_seed`` makes the views
reproducible in the main process (``DataLoader(num_workers=0)``). With workers, the DataLoader
seeds worker ``i``'s generator with ``base_seed + i``, where ``base_seed`` is drawn from the
main process's generator when the iterator starts: the views are then reproducible for a fixed
seed and a fixed ``num_workers`` (pass ``generator=`` to the DataLoader to isolate them).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ..errors import AugmentationError

#: What a recipe returns: ``uint8 (C, H, W)`` tensor -> normalised ``float32 (C, H, W)``.
Transform = Callable[[torch.Tensor], torch.Tensor]


class HasStats(Protocol):
    """What :func:`train_transform` and :func:`eval_transform` read from a data set."""

    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    default_recipe: str


def _finish(mean: Sequence[float], std: Sequence[float]) -> list[Any]:
    from torchvision.transforms import v2

    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]


def blur_kernel_size(size: int) -> int:
    """The odd kernel size of the SimCLR blur: about 10% of the image size (23 for 224).

    Example:
        >>> from fmicl_registry.data.augment import blur_kernel_size
        >>> blur_kernel_size(96), blur_kernel_size(224)
        (9, 23)
    """
    kernel = max(3, int(0.1 * size))
    return kernel if kernel % 2 else kernel + 1


def _pair(name: str, value: Any) -> tuple[float, float]:
    """``value`` as two numbers ``(low, high)``, or an error naming the option."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise AugmentationError(f"{name} must be two numbers (low, high), got {value!r}") from None
    return low, high


def _probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise AugmentationError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SimCLROptions:
    """The options of the ``simclr`` recipe, shared by :func:`simclr_recipe` (per image) and
    its batched form :class:`~fmicl_registry.data.batch_simclr.BatchSimCLR`, which check
    them alike.

    ``crop_scale``: the random resized crop's area range, ``0 < low <= high <= 1`` (aspect
    ratio 3/4 to 4/3); ``flip_p``: horizontal flip probability; ``jitter``: colour jitter
    strengths (brightness, contrast, saturation, hue), each factor drawn from
    ``[max(0, 1 - s), 1 + s]`` (hue: ``[-s, s]``, ``s <= 0.5``), the four applied in a random
    order with probability ``jitter_p``; ``grayscale_p``: grayscale probability; ``blur``: a
    Gaussian blur (kernel ~10% of the size, sigma drawn from ``blur_sigma``) with probability
    ``blur_p``, by default (``None``) only for images of 96 pixels or more.

    Example:
        >>> from fmicl_registry.data.augment import SimCLROptions
        >>> SimCLROptions(crop_scale=[0.2, 1]).crop_scale
        (0.2, 1.0)
    """

    crop_scale: tuple[float, float] = (0.08, 1.0)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur: bool | None = None
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)

    def __post_init__(self) -> None:
        low, high = _pair("crop_scale", self.crop_scale)
        if not 0 < low <= high <= 1:
            raise AugmentationError(
                f"crop_scale must satisfy 0 < low <= high <= 1 (fractions of the image's "
                f"area), got {self.crop_scale!r}"
            )
        object.__setattr__(self, "crop_scale", (low, high))
        try:
            jitter = tuple(float(v) for v in self.jitter)
        except (TypeError, ValueError):
            jitter = ()
        if len(jitter) != 4 or min(jitter) < 0 or jitter[3] > 0.5:
            raise AugmentationError(
                "jitter must be four non-negative numbers (brightness, contrast, saturation, "
                f"hue) with hue <= 0.5, got {self.jitter!r}"
            )
        object.__setattr__(self, "jitter", jitter)
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p"):
            object.__setattr__(self, name, _probability(name, getattr(self, name)))
        if self.blur is not None and not isinstance(self.blur, bool):
            raise AugmentationError(
                f"blur must be true, false or left out (blur from 96 pixels), got {self.blur!r}"
            )
        low, high = _pair("blur_sigma", self.blur_sigma)
        if not 0 < low <= high:
            raise AugmentationError(
                f"blur_sigma must satisfy 0 < low <= high, got {self.blur_sigma!r}"
            )
        object.__setattr__(self, "blur_sigma", (low, high))

    def blurs(self, height: int, width: int) -> bool:
        """Whether images of ``height`` x ``width`` are blurred (``blur=None``: from 96 px)."""
        return min(height, width) >= 96 if self.blur is None else self.blur


def simclr_recipe(
    input_shape: Sequence[int], mean: Sequence[float], std: Sequence[float], **options: Any
) -> Transform:
    """The SimCLR recipe; ``options`` are the fields of :class:`SimCLROptions`
    (``blur=None`` blurs only images of 96 pixels or more).

    One-channel images get brightness and contrast jitter only, and no grayscale step (it
    would do nothing).

    Example:
        >>> import torch
        >>> from fmicl_registry.data.augment import simclr_recipe
        >>> t = simclr_recipe((3, 32, 32), mean=(0.5,) * 3, std=(0.25,) * 3)
        >>> t(torch.zeros(3, 32, 32, dtype=torch.uint8)).dtype
        torch.float32
    """
    from torchvision.transforms import v2

    o = SimCLROptions(**options)
    channels, height, width = (int(s) for s in input_shape)
    brightness, contrast, saturation, hue = o.jitter
    steps: list[Any] = [
        v2.RandomResizedCrop((height, width), scale=o.crop_scale, antialias=True),
        v2.RandomHorizontalFlip(p=o.flip_p),
    ]
    if channels == 3:
        colour = v2.ColorJitter(brightness, contrast, saturation, hue)
    else:
        colour = v2.ColorJitter(brightness=brightness, contrast=contrast)
    steps.append(v2.RandomApply([colour], p=o.jitter_p))
    if channels == 3 and o.grayscale_p > 0:
        steps.append(v2.RandomGrayscale(p=o.grayscale_p))
    if o.blurs(height, width):
        kernel = blur_kernel_size(min(height, width))
        steps.append(v2.RandomApply([v2.GaussianBlur(kernel, sigma=o.blur_sigma)], p=o.blur_p))
    return v2.Compose(steps + _finish(mean, std))


@dataclass(frozen=True)
class DigitsOptions:
    """The options of the ``digits`` recipe, shared by :func:`digits_recipe` (per image) and
    its batched form :class:`~fmicl_registry.data.batch.BatchDigits`.

    ``degrees`` (rotation, either way), ``translate_px`` (pixels, either way), ``scale`` (zoom
    range) and ``shear`` (degrees, either way) parametrise a bilinear affine warp;
    ``crop_scale``/``crop_ratio`` a random resized crop back to the full size
    (``crop_scale=(1, 1)`` and ``crop_ratio=(1, 1)`` turn it off); ``brightness``/``contrast``
    (factors drawn from ``[1 - b, 1 + b]``) a colour jitter applied with probability
    ``jitter_p``.

    Example:
        >>> DigitsOptions(degrees=5.0).scale
        (0.9, 1.1)
    """

    degrees: float = 10.0
    translate_px: float = 1.0
    scale: tuple[float, float] = (0.9, 1.1)
    shear: float = 5.0
    crop_scale: tuple[float, float] = (0.7, 1.0)
    crop_ratio: tuple[float, float] = (0.8, 1.25)
    brightness: float = 0.4
    contrast: float = 0.4
    jitter_p: float = 0.8


def digits_recipe(
    input_shape: Sequence[int], mean: Sequence[float], std: Sequence[float], **options: Any
) -> Transform:
    """A recipe for small grayscale digits: affine jitter, gentle crops, no flips.

    ``options`` are the fields of :class:`DigitsOptions`.

    Example:
        >>> import torch
        >>> from fmicl_registry.data.augment import digits_recipe
        >>> t = digits_recipe((1, 8, 8), mean=(0.3,), std=(0.4,), degrees=5.0)
        >>> t(torch.zeros(1, 8, 8, dtype=torch.uint8)).shape
        torch.Size([1, 8, 8])
    """
    from torchvision.transforms import v2

    o = DigitsOptions(**options)

    _, height, width = (int(s) for s in input_shape)
    steps: list[Any] = []
    if o.degrees or o.translate_px or tuple(o.scale) != (1.0, 1.0) or o.shear:
        steps.append(
            v2.RandomAffine(
                degrees=o.degrees,
                translate=(o.translate_px / width, o.translate_px / height)
                if o.translate_px
                else None,
                scale=o.scale,
                shear=o.shear or None,
                interpolation=v2.InterpolationMode.BILINEAR,
            )
        )
    if tuple(o.crop_scale) != (1.0, 1.0) or tuple(o.crop_ratio) != (1.0, 1.0):
        steps.append(
            v2.RandomResizedCrop(
                (height, width), scale=o.crop_scale, ratio=o.crop_ratio, antialias=True
            )
        )
    if (o.brightness or o.contrast) and o.jitter_p > 0:
        jitter = v2.ColorJitter(brightness=o.brightness, contrast=o.contrast)
        steps.append(v2.RandomApply([jitter], p=o.jitter_p))
    return v2.Compose(steps + _finish(mean, std))


def none_recipe(
    input_shape: Sequence[int], mean: Sequence[float], std: Sequence[float]
) -> Transform:
    """No augmentation (evaluation): to ``float32`` in ``[0, 1]``, then normalise.

    Example:
        >>> import torch
        >>> from fmicl_registry.data.augment import none_recipe
        >>> t = none_recipe((1, 1, 2), mean=(0.5,), std=(0.5,))
        >>> t(torch.tensor([[[0, 255]]], dtype=torch.uint8))
        tensor([[[-1.,  1.]]])
    """
    from torchvision.transforms import v2

    del input_shape
    return v2.Compose(_finish(mean, std))


def options_signature(factory: Any, options: type[Any]) -> None:
    """Give a recipe ``factory(input_shape, mean, std, **options)`` (a function or a class)
    the signature that names each field of the ``options`` dataclass, so the registry checks
    its options as any factory's."""
    fixed = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        for name in ("input_shape", "mean", "std")
    ]
    keywords = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default)
        for f in dataclasses.fields(options)
    ]
    setattr(factory, "__signature__", inspect.Signature([*fixed, *keywords]))  # noqa: B010


options_signature(simclr_recipe, SimCLROptions)
options_signature(digits_recipe, DigitsOptions)


def with_batched(factory: Callable[..., Transform], batched: Callable[..., Any]) -> Any:
    """``factory`` with the batched form ``batched`` (see the ``register_augmentations``
    hook): a callable with the same arguments whose result augments a whole ``uint8`` batch
    on its device, ``augment(images, generator)``.

    Example:
        >>> from fmicl_registry.data.augment import digits_recipe, with_batched
        >>> from fmicl_registry.data.batch import BatchDigits
        >>> with_batched(digits_recipe, BatchDigits).batched is BatchDigits
        True
    """

    @functools.wraps(factory)
    def recipe(*args: Any, **kwargs: Any) -> Transform:
        return factory(*args, **kwargs)

    recipe.batched = batched  # type: ignore[attr-defined]
    return recipe


def list_recipes() -> list[str]:
    """The registered augmentation recipes: what :func:`get_augmentation` and a spec's
    ``[augment] name`` accept.

    Example:
        >>> from fmicl_registry.data import list_recipes
        >>> list_recipes()
        ['digits', 'none', 'simclr']
    """
    from ..components import registry

    return registry().names("augmentations")


def _checked_shape(recipe: str, input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise AugmentationError(
            f"augmentation {recipe!r}: input_shape must be (C, H, W), got {shape}"
        )
    return shape


def get_augmentation(
    recipe: str,
    input_shape: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    **options: Any,
) -> Transform:
    """The transform of the registered ``recipe`` for images of ``input_shape`` ``(C, H, W)``.

    ``mean``/``std`` are the per-channel statistics in ``[0, 1]`` units (a data set's
    ``mean``/``std``); ``options`` are the recipe's keyword arguments (see :func:`simclr_recipe`,
    :func:`digits_recipe`). The transform maps a ``uint8`` tensor ``(C, H, W)`` to a normalised
    ``float32`` tensor of the same shape. An unknown recipe is a ``RegistryError`` listing the
    registered ones; an unknown option an :class:`~fmicl_registry.errors.AugmentationError`
    naming the recipe's options.

    Example:
        >>> import torch
        >>> from fmicl_registry.data import get_augmentation
        >>> t = get_augmentation("digits", (1, 8, 8), (0.3,), (0.4,), degrees=5.0)
        >>> t(torch.zeros(1, 8, 8, dtype=torch.uint8)).shape
        torch.Size([1, 8, 8])
    """
    from ..components import build

    shape = _checked_shape(recipe, input_shape)
    return build(
        "augmentations", recipe, input_shape=shape, mean=tuple(mean), std=tuple(std), **options
    )


def get_batch_augmentation(
    recipe: str,
    input_shape: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    **options: Any,
) -> Any:
    """The batched form of the registered ``recipe`` (see :func:`with_batched`), or None when
    it has none (then the per-image transform of :func:`get_augmentation` runs in the data
    loader).

    Example:
        >>> from fmicl_registry.data import get_batch_augmentation
        >>> type(get_batch_augmentation("digits", (1, 8, 8), (0.3,), (0.4,))).__name__
        'BatchDigits'
        >>> type(get_batch_augmentation("simclr", (3, 32, 32), (0.5,) * 3, (0.2,) * 3)).__name__
        'BatchSimCLR'
        >>> print(get_batch_augmentation("none", (3, 32, 32), (0.5,) * 3, (0.2,) * 3))
        None
    """
    from ..components import ComponentSpec, check_options, registry

    spec = registry().get("augmentations", recipe)
    assert isinstance(spec, ComponentSpec)
    batched = getattr(spec.factory, "batched", None)
    if batched is None:
        return None
    shape = _checked_shape(recipe, input_shape)
    arguments = {"input_shape": shape, "mean": tuple(mean), "std": tuple(std), **options}
    check_options("augmentation", recipe, batched, arguments, AugmentationError)
    return batched(**arguments)


def train_transform(dataset: HasStats, recipe: str | None = None, **options: Any) -> Transform:
    """The augmentation for ``dataset``: ``recipe`` (default: its ``default_recipe``) with its
    shape and statistics.

    Example:
        >>> from fmicl_registry.data import digits, train_transform
        >>> ds = digits()
        >>> train_transform(ds)(ds[0][0]).shape
        torch.Size([1, 8, 8])
    """
    return get_augmentation(
        recipe or dataset.default_recipe, dataset.input_shape, dataset.mean, dataset.std, **options
    )


def eval_transform(dataset: HasStats) -> Transform:
    """The evaluation transform of ``dataset``: the ``"none"`` recipe with its statistics.

    Example:
        >>> from fmicl_registry.data import digits, eval_transform
        >>> ds = digits(split="test")
        >>> x = eval_transform(ds)(ds[0][0])
        >>> x.dtype, x.shape
        (torch.float32, torch.Size([1, 8, 8]))
    """
    return get_augmentation("none", dataset.input_shape, dataset.mean, dataset.std)
