"""Augmentations applied to a whole batch at once, on the batch's device.

``torchvision.transforms.v2`` draws one set of random parameters per call, so a batch gets
either one shared augmentation or a Python loop over its images. For small images the loop
costs more than the network (8x8 digits: ~0.7 ms an image, the CNN ~0.02 ms), so the
``digits`` recipe also exists in batched form here: every image gets its own random affine
warp (rotation, scale, shear, translation; one ``affine_grid`` + ``grid_sample`` for the batch)
and its own brightness/contrast jitter, drawn from an explicit generator.

The parameters of a batch are drawn for the *global* batch and each process keeps its rows,
so the views do not depend on the number of processes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .augment import DigitsOptions, get_batch_augmentation, options_signature
from .base import DatasetError


class BatchDigits:
    """The ``digits`` recipe for a batch: per-image random affine warp and intensity jitter.

    ``options`` are the fields of :class:`~fmicl_registry.data.augment.DigitsOptions`, as for
    the per-image recipe; the crop is a zoom in by ``1 / sqrt(area)``, so the ranges combine.

    Example:
        >>> import torch
        >>> aug = BatchDigits((1, 8, 8), mean=(0.3,), std=(0.4,))
        >>> x = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
        >>> g = torch.Generator().manual_seed(0)
        >>> aug(x, g).shape, aug(x, g).dtype
        (torch.Size([5, 1, 8, 8]), torch.float32)
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        mean: Sequence[float],
        std: Sequence[float],
        **options: Any,
    ) -> None:
        channels, self.height, self.width = (int(s) for s in input_shape)
        if len(mean) != channels or len(std) != channels:
            raise DatasetError(f"mean/std need {channels} values, got {len(mean)}/{len(std)}")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.options = DigitsOptions(**options)

    def parameters(self, n: int, generator: torch.Generator) -> dict[str, Tensor]:
        """The random parameters of ``n`` images (drawn on CPU, so any device agrees)."""

        o = self.options

        def uniform(low: float, high: float) -> Tensor:
            return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)

        area = uniform(*o.crop_scale)
        ratio = torch.exp(uniform(math.log(o.crop_ratio[0]), math.log(o.crop_ratio[1])))
        return {
            "angle": uniform(-o.degrees, o.degrees) * math.pi / 180,
            "shear": uniform(-o.shear, o.shear) * math.pi / 180,
            "zoom": uniform(*o.scale),
            "crop_x": torch.sqrt(area * ratio),
            "crop_y": torch.sqrt(area / ratio),
            "tx": uniform(-o.translate_px, o.translate_px),
            "ty": uniform(-o.translate_px, o.translate_px),
            "brightness": uniform(1 - o.brightness, 1 + o.brightness),
            "contrast": uniform(1 - o.contrast, 1 + o.contrast),
            "jitter": torch.rand(n, generator=generator, dtype=torch.float64) < o.jitter_p,
        }

    def __call__(
        self,
        images: Tensor,
        generator: torch.Generator,
        rows: slice | None = None,
        total: int | None = None,
    ) -> Tensor:
        """Augment ``images`` (``uint8`` or float in ``[0, 1]``, ``(B, C, H, W)``).

        ``rows``, ``total``: these images are rows ``rows`` of a global batch of ``total``
        images; the parameters are drawn for the global batch (default: these images only).
        """
        if rows is None:
            p = self.parameters(len(images), generator)
        else:
            if total is None or not 0 <= rows.start < rows.stop <= total:
                raise DatasetError(f"rows {rows} do not lie in a global batch of {total}")
            p = {k: v[rows] for k, v in self.parameters(total, generator).items()}
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        # Output pixel -> input pixel: inverse of (zoom * crop-zoom) R(angle) Shear, shifted.
        cos, sin, shear = p["angle"].cos(), p["angle"].sin(), p["shear"].tan()
        sx = 1 / (p["zoom"] / p["crop_x"])
        sy = 1 / (p["zoom"] / p["crop_y"])
        theta = torch.zeros(len(x), 2, 3, dtype=torch.float64)
        theta[:, 0, 0] = sx * cos
        theta[:, 0, 1] = sx * (-sin + shear * cos)
        theta[:, 1, 0] = sy * sin
        theta[:, 1, 1] = sy * (cos + shear * sin)
        theta[:, 0, 2] = -2 * p["tx"] / self.width
        theta[:, 1, 2] = -2 * p["ty"] / self.height
        theta = theta.to(device=x.device, dtype=x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        jitter = p["jitter"].to(x.device).view(-1, 1, 1, 1)
        b = p["brightness"].to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
        c = p["contrast"].to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
        jittered = (x * b).clamp(0, 1)
        grey = jittered.mean(dim=(1, 2, 3), keepdim=True)
        jittered = ((jittered - grey) * c + grey).clamp(0, 1)
        x = torch.where(jitter, jittered, x)
        return (x - self.mean.to(x.device)) / self.std.to(x.device)


options_signature(BatchDigits, DigitsOptions)

__all__ = ["BatchDigits", "get_batch_augmentation"]  # the lookup lives in augment.py
