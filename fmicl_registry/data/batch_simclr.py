"""The ``simclr`` recipe for a whole batch at once, on the batch's device.

The same distribution as :func:`~fmicl_registry.data.augment.simclr_recipe` (torchvision's
``RandomResizedCrop``, ``RandomHorizontalFlip``, ``RandomApply([ColorJitter])``,
``RandomGrayscale``, ``RandomApply([GaussianBlur])``, ``Normalize``), with every image's own
random parameters, drawn on the CPU from an explicit generator for the *global* batch (each
process keeps its rows), so the views depend neither on the device nor on the number of
processes. The per-image recipe works on ``uint8`` images, rounding after each step; this one
works in ``float32`` throughout.

The operations below take per-image parameters and match ``torchvision.transforms.v2.
functional`` image by image (``resized_crop`` with ``antialias=True``, ``adjust_brightness``,
``adjust_contrast``, ``adjust_saturation``, ``adjust_hue``, ``rgb_to_grayscale``,
``gaussian_blur``) on float images in ``[0, 1]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import AugmentationError
from .augment import SimCLROptions, blur_kernel_size, options_signature

#: torchvision's ``RandomResizedCrop`` aspect ratio range (the recipe keeps its default).
CROP_RATIO = (3 / 4, 4 / 3)
#: The colour jitter's operations, in torchvision's numbering (``ColorJitter.make_params``).
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


def _column(values: Tensor, x: Tensor) -> Tensor:
    """Per-image ``values`` ``(B,)`` as ``(B, 1, 1, 1)`` on ``x``'s device and dtype."""
    return values.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def resize_weights(start: Tensor, length: Tensor, size_in: int, size_out: int) -> Tensor:
    """``(B, size_out, size_in)`` weights that resize each image's window ``[start, start +
    length)`` of an axis of ``size_in`` pixels to ``size_out`` pixels, as torch's antialiased
    bilinear resize does (PIL's triangle filter, widened by the scale when shrinking; pixel
    centres at half-integers; the window's edge pixels repeated).

    Example:
        >>> import torch
        >>> w = resize_weights(torch.tensor([1]), torch.tensor([2]), 4, 4)
        >>> w[0]
        tensor([[0.0000, 1.0000, 0.0000, 0.0000],
                [0.0000, 0.7500, 0.2500, 0.0000],
                [0.0000, 0.2500, 0.7500, 0.0000],
                [0.0000, 0.0000, 1.0000, 0.0000]])
    """
    start = start.view(-1, 1, 1).float()
    length = length.view(-1, 1, 1).float()
    scale = length / size_out
    support = scale.clamp(min=1.0)
    out = torch.arange(size_out, device=start.device, dtype=torch.float32).view(1, -1, 1)
    source = torch.arange(size_in, device=start.device, dtype=torch.float32).view(1, 1, -1)
    centre = (out + 0.5) * scale  # in the window's coordinates
    weights = (1 - ((source - start + 0.5 - centre) / support).abs()).clamp(min=0)
    weights = weights * ((source >= start) & (source < start + length))
    return weights / weights.sum(dim=2, keepdim=True)


def resized_crop(
    images: Tensor, top: Tensor, left: Tensor, height: Tensor, width: Tensor, flip: Tensor
) -> Tensor:
    """Crop each image to its box ``(top, left, height, width)``, resize it back to the
    batch's size (antialiased bilinear) and mirror it left-right where ``flip``; one pair of
    batched matrix products for the batch.

    Example:
        >>> import torch
        >>> x = torch.arange(16.0).view(1, 1, 4, 4)
        >>> box = [torch.tensor([v]) for v in (0, 0, 4, 4)]
        >>> torch.equal(resized_crop(x, *box, torch.tensor([True])), x.flip(-1))
        True
    """
    size_y, size_x = images.shape[-2:]
    device = images.device
    rows = resize_weights(top.to(device), height.to(device), size_y, size_y)
    cols = resize_weights(left.to(device), width.to(device), size_x, size_x)
    cols = torch.where(flip.to(device).view(-1, 1, 1), cols.flip(1), cols)
    rows, cols = rows.to(images.dtype), cols.to(images.dtype)
    return rows.unsqueeze(1) @ images @ cols.transpose(1, 2).unsqueeze(1)


def rgb_to_grayscale(images: Tensor) -> Tensor:
    """The luma of RGB images ``(B, 3, H, W)`` (ITU-R 601-2 weights), ``(B, 1, H, W)``.

    Example:
        >>> import torch
        >>> rgb_to_grayscale(torch.ones(1, 3, 1, 1)).item()
        0.9999...
    """
    r, g, b = images.unbind(dim=1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def _blend(images: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """``factor * images + (1 - factor) * other``, clamped to ``[0, 1]``."""
    return torch.lerp(other, images, _column(factor, images)).clamp(0, 1)


def adjust_brightness(images: Tensor, factor: Tensor) -> Tensor:
    """Multiply each image by its ``factor`` ``(B,)``, clamped to ``[0, 1]``.

    Example:
        >>> import torch
        >>> adjust_brightness(torch.full((2, 1, 1, 1), 0.6), torch.tensor([0.5, 2.0])).flatten()
        tensor([0.3000, 1.0000])
    """
    return (images * _column(factor, images)).clamp(0, 1)


def adjust_contrast(images: Tensor, factor: Tensor) -> Tensor:
    """Blend each image with the mean of its grayscale by its ``factor`` ``(B,)``.

    Example:
        >>> import torch
        >>> x = torch.tensor([0.2, 0.6]).view(1, 1, 1, 2)
        >>> adjust_contrast(x, torch.tensor([0.0])).flatten()
        tensor([0.4000, 0.4000])
    """
    grey = rgb_to_grayscale(images) if images.shape[1] == 3 else images
    return _blend(images, grey.mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(images: Tensor, factor: Tensor) -> Tensor:
    """Blend each RGB image with its grayscale by its ``factor`` ``(B,)``; one-channel
    images are returned as they are.

    Example:
        >>> import torch
        >>> x = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
        >>> adjust_saturation(x, torch.tensor([0.0])).flatten()
        tensor([0.2989, 0.2989, 0.2989])
    """
    if images.shape[1] != 3:
        return images
    return _blend(images, rgb_to_grayscale(images), factor)


def adjust_hue(images: Tensor, factor: Tensor) -> Tensor:
    """Rotate each RGB image's hue by its ``factor`` ``(B,)`` (in turns, ``[-0.5, 0.5]``);
    one-channel images are returned as they are.

    The HSV round trip of torchvision's ``adjust_hue`` in closed form: with ``v`` the largest
    channel and ``v * s`` the spread of the channels, channel ``n`` (5 red, 3 green, 1 blue)
    of the result is ``v - v * s * clamp(min(k, 4 - k), 0, 1)``, ``k = (n + 6 h) mod 6``.

    Example:
        >>> import torch
        >>> red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
        >>> adjust_hue(red, torch.tensor([1 / 3])).flatten()
        tensor([0., 1., 0.])
    """
    if images.shape[1] != 3:
        return images
    r, g, b = images.unbind(dim=1)
    low, high = images.aminmax(dim=1)
    spread = high - low
    # The hue in sixths of a turn, as in torchvision's _rgb_to_hsv (any value where spread = 0).
    sector = torch.where(
        high == r, g - b, torch.where(high == g, (b - r) + 2 * spread, (r - g) + 4 * spread)
    )
    hue = sector / spread.clamp(min=1e-12) + (6 * factor).to(images).view(-1, 1, 1)
    channel = torch.tensor([5.0, 3.0, 1.0], device=images.device, dtype=images.dtype)
    k = torch.remainder(hue.unsqueeze(1) + channel.view(1, 3, 1, 1), 6)
    return high.unsqueeze(1) - spread.unsqueeze(1) * torch.minimum(k, 4 - k).clamp(0, 1)


def gaussian_blur(images: Tensor, kernel_size: int, sigma: Tensor) -> Tensor:
    """Blur each image with a Gaussian of its own ``sigma`` ``(B,)`` (square odd kernel,
    reflected borders), as two grouped 1-D convolutions for the batch.

    Example:
        >>> import torch
        >>> x = torch.zeros(1, 1, 5, 5); x[..., 2, 2] = 1
        >>> gaussian_blur(x, 3, torch.tensor([1.0])).sum().item()
        1.0
    """
    n, channels, height, width = images.shape
    half = (kernel_size - 1) / 2
    offsets = torch.linspace(-half, half, kernel_size, device=images.device, dtype=images.dtype)
    s = sigma.to(device=images.device, dtype=images.dtype).view(-1, 1)
    kernel = torch.softmax(-0.5 * (offsets / s) ** 2, dim=1)  # (B, k), each summing to one
    kernel = kernel.repeat_interleave(channels, dim=0)  # one per (image, channel)
    pad = kernel_size // 2
    x = F.pad(images.reshape(1, n * channels, height, width), [pad] * 4, mode="reflect")
    x = F.conv2d(x, kernel.view(-1, 1, kernel_size, 1), groups=n * channels)
    x = F.conv2d(x, kernel.view(-1, 1, 1, kernel_size), groups=n * channels)
    return x.view(n, channels, height, width)


class BatchSimCLR:
    """The ``simclr`` recipe for a batch: every image its own crop, flip, colour jitter (in its
    own random order), grayscale and blur, on the batch's device.

    ``options`` are the fields of :class:`~fmicl_registry.data.augment.SimCLROptions`, as for
    the per-image recipe.

    Example:
        >>> import torch
        >>> aug = BatchSimCLR((3, 32, 32), mean=(0.5,) * 3, std=(0.25,) * 3)
        >>> x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
        >>> g = torch.Generator().manual_seed(0)
        >>> aug(x, g).shape, aug(x, g).dtype
        (torch.Size([4, 3, 32, 32]), torch.float32)
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        mean: Sequence[float],
        std: Sequence[float],
        **options: Any,
    ) -> None:
        self.channels, self.height, self.width = (int(s) for s in input_shape)
        if len(mean) != self.channels or len(std) != self.channels:
            raise AugmentationError(
                f"mean/std need {self.channels} values, got {len(mean)}/{len(std)}"
            )
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.options = o = SimCLROptions(**options)
        strengths = o.jitter if self.channels == 3 else (*o.jitter[:2], 0.0, 0.0)
        #: Each jitter operation's factor range, None where it is off (as ColorJitter's).
        self.ranges: dict[str, tuple[float, float] | None] = {}
        for name, strength in zip(JITTER_OPS, strengths, strict=True):
            low, high = (
                (-strength, strength) if name == "hue" else (max(0, 1 - strength), 1 + strength)
            )
            self.ranges[name] = None if strength == 0 else (low, high)
        self.grayscale_p = o.grayscale_p if self.channels == 3 else 0.0
        self.blur = o.blurs(self.height, self.width)
        self.kernel_size = blur_kernel_size(min(self.height, self.width))

    def crop_boxes(self, n: int, generator: torch.Generator) -> dict[str, Tensor]:
        """``n`` random crop boxes as torchvision's ``RandomResizedCrop`` draws them: up to
        ten tries of an area fraction in ``crop_scale`` and a log-uniform aspect ratio in
        ``[3/4, 4/3]``, the first that fits, else the largest central crop of a ratio in range.
        """
        height, width = self.height, self.width
        tries = 10

        def uniform(low: float, high: float) -> Tensor:
            u = torch.rand(n, tries, generator=generator, dtype=torch.float64)
            return low + (high - low) * u

        area = height * width * uniform(*self.options.crop_scale)
        ratio = torch.exp(uniform(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])))
        w = torch.round(torch.sqrt(area * ratio)).long()
        h = torch.round(torch.sqrt(area / ratio)).long()
        fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = fits.long().argmax(dim=1, keepdim=True)  # the first try that fits
        found = fits.any(dim=1)
        w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]
        # No try fits (torchvision's fallback): the largest central crop of a ratio in range.
        aspect = width / height
        if aspect < CROP_RATIO[0]:
            fw, fh = width, round(width / CROP_RATIO[0])
        elif aspect > CROP_RATIO[1]:
            fw, fh = round(height * CROP_RATIO[1]), height
        else:
            fw, fh = width, height
        w = torch.where(found, w, fw)
        h = torch.where(found, h, fh)
        u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        top = torch.where(found, (u[:, 0] * (height - h + 1)).floor().long(), (height - h) // 2)
        left = torch.where(found, (u[:, 1] * (width - w + 1)).floor().long(), (width - w) // 2)
        return {"top": top, "left": left, "height": h, "width": w}

    def parameters(self, n: int, generator: torch.Generator) -> dict[str, Tensor]:
        """The random parameters of ``n`` images (drawn on CPU, so any device agrees)."""
        o = self.options

        def rand() -> Tensor:
            return torch.rand(n, generator=generator, dtype=torch.float64)

        p = self.crop_boxes(n, generator)
        p["flip"] = rand() < o.flip_p
        p["jitter"] = rand() < o.jitter_p
        # A random order of the four operations per image, as ColorJitter's randperm(4).
        p["order"] = torch.rand(n, 4, generator=generator).argsort(dim=1)
        for name in JITTER_OPS:
            low, high = self.ranges[name] or (0.0, 0.0)
            p[name] = low + (high - low) * rand()
        p["grayscale"] = rand() < self.grayscale_p
        p["blur"] = (rand() < o.blur_p) & self.blur
        p["sigma"] = o.blur_sigma[0] + (o.blur_sigma[1] - o.blur_sigma[0]) * rand()
        return p

    def augment(self, images: Tensor, p: dict[str, Tensor]) -> Tensor:
        """Augment float ``images`` in ``[0, 1]`` with the given parameters (one row each)."""
        x = resized_crop(images, p["top"], p["left"], p["height"], p["width"], p["flip"])
        ops = {
            "brightness": adjust_brightness,
            "contrast": adjust_contrast,
            "saturation": adjust_saturation,
            "hue": adjust_hue,
        }
        for step in range(4):
            for number, name in enumerate(JITTER_OPS):
                if self.ranges[name] is None:
                    continue
                chosen = torch.nonzero(p["jitter"] & (p["order"][:, step] == number))[:, 0]
                if len(chosen):
                    rows = chosen.to(x.device)
                    x[rows] = ops[name](x[rows], p[name][chosen])
        chosen = torch.nonzero(p["grayscale"])[:, 0]
        if len(chosen):
            rows = chosen.to(x.device)
            x[rows] = rgb_to_grayscale(x[rows]).expand(-1, self.channels, -1, -1)
        chosen = torch.nonzero(p["blur"])[:, 0]
        if len(chosen):
            rows = chosen.to(x.device)
            x[rows] = gaussian_blur(x[rows], self.kernel_size, p["sigma"][chosen])
        return x

    def __call__(
        self,
        images: Tensor,
        generator: torch.Generator,
        rows: slice | None = None,
        total: int | None = None,
    ) -> Tensor:
        """Augment ``images`` (``uint8``, or float in ``[0, 1]``, ``(B, C, H, W)``).

        ``rows``, ``total``: these images are rows ``rows`` of a global batch of ``total``
        images; the parameters are drawn for the global batch (default: these images only).
        """
        if images.ndim != 4 or tuple(images.shape[1:]) != (
            self.channels,
            self.height,
            self.width,
        ):
            raise AugmentationError(
                f"simclr: expected images (B, {self.channels}, {self.height}, {self.width}), "
                f"got {tuple(images.shape)}"
            )
        if rows is None:
            p = self.parameters(len(images), generator)
        else:
            if total is None or not 0 <= rows.start < rows.stop <= total:
                raise AugmentationError(f"rows {rows} do not lie in a global batch of {total}")
            if rows.stop - rows.start != len(images):
                raise AugmentationError(f"rows {rows} do not match {len(images)} images")
            p = {k: v[rows] for k, v in self.parameters(total, generator).items()}
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        x = self.augment(x, p)
        return (x - self.mean.to(x.device)) / self.std.to(x.device)


options_signature(BatchSimCLR, SimCLROptions)
