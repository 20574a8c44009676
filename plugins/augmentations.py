"""Built-in plugin: the augmentation recipes: SimCLR's (Chen et al. 2020, which Lu et al. 2023
use for images) and one for small grayscale digits, both with a batched form run on the
device, and the evaluation transform."""

from __future__ import annotations

from typing import Any

from fmicl_registry.hookspecs import hookimpl


@hookimpl
def register_augmentations(register: Any) -> None:
    """``simclr``, ``digits`` and ``none``."""
    from fmicl_registry.data.augment import digits_recipe, none_recipe, simclr_recipe, with_batched
    from fmicl_registry.data.batch import BatchDigits
    from fmicl_registry.data.batch_simclr import BatchSimCLR

    register(
        name="simclr",
        factory=with_batched(simclr_recipe, BatchSimCLR),
        description="SimCLR: random resized crop, flip, colour jitter, grayscale, blur from 96 "
        "px (Chen et al. 2020); batched on the device (crop_scale, flip_p, jitter, jitter_p, "
        "grayscale_p, blur, ...)",
    )
    register(
        name="digits",
        factory=with_batched(digits_recipe, BatchDigits),
        description="small grayscale digits: affine jitter, gentle crops, no flips; batched on "
        "the device (degrees, translate_px, scale, shear, crop_scale, brightness, ...)",
    )
    register(
        name="none",
        factory=none_recipe,
        description="no augmentation (evaluation): to float in [0, 1], then normalise",
    )
