"""Backbones: feature shapes and ``output_dim`` on the image sizes of the demos and the paper,
the CIFAR stem, ViT-S's configuration, clear errors, registration."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import pytest
import torch
from torch import nn

import fmicl_registry as fm
from fmicl_registry.backbones import BackboneError, get_backbone, resnet18, resnet50, vit_small

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 96, 96)]
NAMES = ["small_cnn", "resnet18", "resnet50", "vit_small"]
# ResNet-50 takes seconds to build and run on a CPU.
NAMES_MARKED = [pytest.param(n, marks=pytest.mark.slow) if n == "resnet50" else n for n in NAMES]
EXPECTED_DIM = {"small_cnn": 128, "resnet18": 512, "resnet50": 2048, "vit_small": 384}


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", NAMES_MARKED)
def test_features_have_output_dim_columns(name: str, shape: tuple[int, int, int]) -> None:
    shallow = {"num_layers": 1} if name == "vit_small" else {}
    torch.manual_seed(0)
    net = fm.get_component("backbones", name, input_shape=shape, **shallow)
    assert net.output_dim == EXPECTED_DIM[name]
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(2, *shape))
    assert out.shape == (2, EXPECTED_DIM[name])
    assert torch.isfinite(out).all()


def test_small_cnn_options() -> None:
    net = get_backbone("small_cnn", input_shape=(1, 28, 28), width=8, output_dim=24)
    assert net.output_dim == 24
    assert net(torch.randn(4, 1, 28, 28)).shape == (4, 24)
    assert net.features[0][0].in_channels == 1 and net.features[0][0].out_channels == 8


def _layer1_input_size(net: nn.Module, shape: tuple[int, int, int]) -> tuple[int, int]:
    seen: list[tuple[int, int]] = []
    net.layer1.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape[-2:])))
    with torch.no_grad():
        net.eval()(torch.randn(1, *shape))
    return seen[0]


@pytest.mark.parametrize("factory", [resnet18, pytest.param(resnet50, marks=pytest.mark.slow)])
def test_cifar_stem_is_3x3_stride_1_without_max_pool(factory: object) -> None:
    net = factory(input_shape=(3, 16, 16))  # type: ignore[operator]
    assert net.cifar_stem is True
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert net.conv1.padding == (1, 1) and net.conv1.in_channels == 3
    assert isinstance(net.maxpool, nn.Identity)
    assert isinstance(net.fc, nn.Identity)
    assert _layer1_input_size(net, (3, 16, 16)) == (16, 16)  # no downsampling before layer1


def test_imagenet_stem_above_64_pixels_and_forced_stems() -> None:
    net = resnet18(input_shape=(3, 96, 96))
    assert net.cifar_stem is False
    assert net.conv1.kernel_size == (7, 7) and net.conv1.stride == (2, 2)
    assert isinstance(net.maxpool, nn.MaxPool2d)
    assert _layer1_input_size(net, (3, 96, 96)) == (24, 24)
    forced = resnet18(input_shape=(3, 96, 96), cifar_stem=True)
    assert forced.conv1.kernel_size == (3, 3) and isinstance(forced.maxpool, nn.Identity)
    grey = resnet18(input_shape=(1, 128, 128), cifar_stem=False)
    assert grey.conv1.in_channels == 1 and grey.conv1.kernel_size == (7, 7)
    with pytest.raises(BackboneError, match="cifar_stem must be"):
        resnet18(cifar_stem="yes")  # type: ignore[arg-type]


def test_resnet_state_dict_keeps_torchvision_names() -> None:
    import torchvision

    ours = resnet18(input_shape=(3, 224, 224))
    reference = torchvision.models.resnet18(weights=None)
    result = reference.load_state_dict(ours.state_dict(), strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"]
    assert result.unexpected_keys == []


def test_vit_small_default_configuration() -> None:
    # Inspect the full-size model; no forward pass through 12 layers.
    net = vit_small(input_shape=(3, 224, 224))
    assert (net.image_size, net.patch_size, net.hidden_dim, net.mlp_dim) == (224, 16, 384, 1536)
    assert len(net.encoder.layers) == 12
    block = net.encoder.layers[0]
    assert block.self_attention.num_heads == 6 and block.self_attention.embed_dim == 384
    assert block.mlp[0].out_features == 1536
    assert net.conv_proj.in_channels == 3 and net.conv_proj.kernel_size == (16, 16)
    assert isinstance(net.heads, nn.Identity)
    assert net.output_dim == 384
    assert net.seq_length == 14 * 14 + 1


def test_vit_small_patch_4_for_small_images_and_other_channels() -> None:
    net = vit_small(input_shape=(3, 32, 32), num_layers=1)
    assert net.patch_size == 4 and net.seq_length == 8 * 8 + 1
    grey = vit_small(input_shape=(1, 28, 28), num_layers=1)
    assert grey.conv_proj.in_channels == 1 and grey.conv_proj.kernel_size == (4, 4)
    assert grey(torch.randn(2, 1, 28, 28)).shape == (2, 384)
    small = vit_small(
        input_shape=(3, 16, 16), patch_size=8, num_layers=2, hidden_dim=24, num_heads=2
    )
    assert small(torch.randn(2, 3, 16, 16)).shape == (2, 24) and small.output_dim == 24


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"input_shape": (3, 30, 30)}, r"30 is not divisible by patch_size 4.*\(here: 2\)"),
        ({"input_shape": (3, 32, 64)}, "square images"),
        ({"input_shape": (3, 32, 32), "hidden_dim": 100}, "divisible by num_heads 6"),
        ({"input_shape": (3, 32, 32), "num_layers": 0}, "num_layers must be an int >= 1"),
        ({"input_shape": (3, 32, 32), "dropout": 1.5}, r"dropout must be in \[0, 1\)"),
        ({"input_shape": (32, 32)}, r"input_shape must be \(channels, height, width\)"),
    ],
)
def test_vit_small_refuses_what_it_cannot_build(options: dict[str, object], message: str) -> None:
    with pytest.raises(BackboneError, match=message):
        vit_small(**options)  # type: ignore[arg-type]


def test_wrong_image_size_at_forward_is_torchvisions_error() -> None:
    net = vit_small(input_shape=(3, 32, 32), num_layers=1)
    with pytest.raises(AssertionError, match="Expected 32 but got 16"):
        net(torch.randn(1, 3, 16, 16))


def test_registered_names_and_misspelled_options() -> None:
    assert set(NAMES) <= set(fm.registry().names("backbones"))
    for name in NAMES:
        assert fm.registry().get("backbones", name).plugin == "backbones"
    with pytest.raises(BackboneError, match=r"did you mean 'width' for 'widht'"):
        get_backbone("small_cnn", widht=8)
    with pytest.raises(BackboneError, match=r"did you mean 'cifar_stem'.*its options"):
        get_backbone("resnet18", cifar_steem=True)
    with pytest.raises(fm.RegistryError, match="Did you mean 'resnet18'"):
        get_backbone("resnet-18")
    with pytest.raises(BackboneError, match="width must be an int >= 1"):
        get_backbone("small_cnn", width=0)


@pytest.mark.slow  # a fresh interpreter importing torch
def test_importing_the_layers_does_not_import_torchvision() -> None:
    code = (
        "import sys, fmicl_registry.backbones, fmicl_registry.architectures\n"
        "assert 'torchvision' not in sys.modules, 'torchvision imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "name",
    [
        "fmicl_registry.backbones",
        "fmicl_registry.backbones.small_cnn",
        "fmicl_registry.backbones.resnet",
        "fmicl_registry.backbones.vit",
    ],
)
def test_docstring_examples(name: str) -> None:
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(importlib.import_module(name), optionflags=flags)
    assert result.attempted > 0 and result.failed == 0
