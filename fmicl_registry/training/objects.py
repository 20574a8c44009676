"""Objects instead of registered names: ``fm.train(spec, dataset=..., backbone=...)``.

A spec names its components; a user driving a run from Python may hold the component itself.
Each object given is registered, for the duration of the call, as a component named
``python.<ClassName>`` by a plugin of its own, and the spec names it: the build, the resolved
spec and the report then treat it as any registered component. The run folder's ``spec.toml``
records that name; resuming or re-evaluating such a run takes the same objects again
(``fm.train(resume=RUN, backbone=...)``), and the command line, which has no objects, says so.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

from torch import nn

from ..errors import SpecError

#: The prefix of the names objects are registered under.
PREFIX = "python."


def object_name(value: Any) -> str:
    """``python.<ClassName>`` (a function's name for a function), at most 64 characters."""
    kind = value if isinstance(value, type) else type(value)
    label = getattr(value, "__name__", None) if callable(value) else None
    if not isinstance(label, str) or isinstance(value, nn.Module) or not label.isidentifier():
        label = kind.__name__
    return (PREFIX + label)[:64]


@contextlib.contextmanager
def given_objects(
    *,
    dataset: Any = None,
    eval_datasets: Sequence[Any] | None = None,
    backbone: Any = None,
    augmentation: Any = None,
) -> Iterator[list[str]]:
    """Register the objects given and yield the ``--set`` overrides that make a spec use
    them; they are unregistered on exit.

    ``dataset`` is pretrained on (:func:`~fmicl_registry.data.adapt.as_image_dataset`);
    ``eval_datasets`` = ``(train, test)`` are the labelled sets of the kNN and linear probes
    (without them the run is scored on the pretraining images, label-free: alignment,
    uniformity and the distance plots). ``backbone`` is an ``nn.Module`` with ``output_dim``
    (the run trains this module; the untrained baseline is a copy of it as given) or a callable
    ``input_shape -> nn.Module``. ``augmentation`` maps one ``uint8`` image ``(C, H, W)`` to a
    normalised float tensor (the training loop makes two views per image with it).
    """
    from .. import hookimpl, plugins
    from ..components import clear

    overrides: list[str] = []
    registrations: dict[str, list[tuple[str, Callable[..., Any], str]]] = {}

    if eval_datasets is not None and dataset is None:
        raise SpecError("eval_datasets are the probes of a dataset object: pass dataset= too")
    if dataset is not None:
        name = object_name(dataset)
        registrations["datasets"] = [
            (name, _dataset_factory(dataset, eval_datasets, name), "a data set object")
        ]
        overrides += [f"data.name={name}", "data.eval_name=null", "data.eval_root=null"]
    if backbone is not None:
        name = object_name(backbone)
        registrations["backbones"] = [(name, _backbone_factory(backbone), "a backbone object")]
        overrides.append(f"backbone.name={name}")
    if augmentation is not None:
        if not callable(augmentation):
            raise SpecError(
                f"augmentation must be a callable (a transform of one image), got "
                f"{type(augmentation).__name__}"
            )
        name = object_name(augmentation)
        registrations["augmentations"] = [
            (name, _augmentation_factory(augmentation), "an augmentation object")
        ]
        overrides.append(f"augment.name={name}")
    if not registrations:
        yield overrides
        return

    class PythonObjects:
        """The objects of one ``train`` call, as a plugin."""

        @hookimpl
        def register_datasets(self, register: Any) -> None:
            self._register(register, "datasets")

        @hookimpl
        def register_backbones(self, register: Any) -> None:
            self._register(register, "backbones")

        @hookimpl
        def register_augmentations(self, register: Any) -> None:
            self._register(register, "augmentations")

        def _register(self, register: Any, kind: str) -> None:
            for name, factory, description in registrations.get(kind, []):
                register(name=name, factory=factory, description=description)

    manager = plugins.get_plugin_manager()
    plugin = PythonObjects()
    manager.register(plugin, name="python-objects")
    clear()
    try:
        yield overrides
    finally:
        manager.unregister(plugin)
        clear()


def _dataset_factory(dataset: Any, eval_datasets: Sequence[Any] | None, name: str) -> Any:
    from ..data import ImageDataset
    from ..data.adapt import as_image_dataset

    pretrain = as_image_dataset(dataset, name)
    probes = None
    if eval_datasets is not None:
        if len(eval_datasets) != 2:
            raise SpecError("eval_datasets is a pair (train, test) of labelled data sets")
        probes = [as_image_dataset(d, name) for d in eval_datasets]
        for probe, which in zip(probes, ("train", "test"), strict=True):
            if probe.num_classes < 1:
                raise SpecError(f"eval_datasets: the {which} set has no labels")
    # Without probes: at most 1024 evenly spaced pretraining images, unlabelled, for the
    # label-free scores (uniformity costs O(n^2)).
    picks = sorted({round(i * (len(pretrain) - 1) / 1023) for i in range(1024)})
    sample = pretrain.subset(picks)
    unlabelled = ImageDataset(
        name,
        sample.images,
        [-1] * len(sample),
        num_classes=0,
        mean=sample.mean,
        std=sample.std,
        input_shape=sample.input_shape,
        default_recipe=sample.default_recipe,
        split="test",
    )

    def factory(root: Any = None, split: str = "pretrain", download: bool = False) -> Any:
        if split == "pretrain":
            return pretrain
        if probes is not None:
            return probes[0] if split == "train" else probes[1]
        return unlabelled

    return factory


def _backbone_factory(backbone: Any) -> Any:
    if isinstance(backbone, nn.Module):
        if not isinstance(getattr(backbone, "output_dim", None), int):
            raise SpecError(
                f"the backbone {type(backbone).__name__} needs an int attribute output_dim "
                "(the size of its features), which the projection head is built for"
            )
        initial = copy.deepcopy(backbone)  # the untrained baseline: the weights as given
        handed = False

        def from_module(input_shape: Any = None) -> nn.Module:
            nonlocal handed  # the first build trains the module given; later ones, copies
            if handed:
                return copy.deepcopy(initial)
            _check_features(backbone, input_shape, type(backbone).__name__)
            handed = True
            return cast(nn.Module, backbone)

        return from_module
    if callable(backbone):
        label = getattr(backbone, "__name__", type(backbone).__name__)

        def from_callable(input_shape: Any = None) -> nn.Module:
            try:
                made = backbone(input_shape)
            except TypeError as err:
                raise SpecError(
                    f"the backbone callable {label} must take the input shape (C, H, W) and "
                    f"return an nn.Module: calling it with {input_shape} failed ({err})"
                ) from None
            if not isinstance(made, nn.Module):
                raise SpecError(
                    f"the backbone callable {label} returned a {type(made).__name__}, not an "
                    "nn.Module"
                )
            _check_features(made, input_shape, label)
            return made

        return from_callable
    raise SpecError(
        f"backbone must be an nn.Module or a callable input_shape -> nn.Module, got "
        f"{type(backbone).__name__}"
    )


def _check_features(module: Any, input_shape: Any, label: str) -> None:
    """``module`` has an int ``output_dim`` and gives that many features for a batch of
    ``input_shape`` (checked once, in eval mode, before any training)."""
    dim = getattr(module, "output_dim", None)
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise SpecError(
            f"the backbone {label} needs an int attribute output_dim (the size of its "
            "features), which the projection head is built for"
        )
    if input_shape is None:
        return
    import torch

    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            features = module(torch.zeros(2, *input_shape))
    except Exception as err:  # the user's module: say what it was given
        raise SpecError(
            f"the backbone {label} failed on a batch of images of shape (2, "
            f"{', '.join(map(str, input_shape))}): {type(err).__name__}: {err}"
        ) from None
    finally:
        module.train(was_training)
    if not isinstance(features, torch.Tensor) or tuple(features.shape) != (2, dim):
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features)
        raise SpecError(
            f"the backbone {label} says output_dim = {dim}, but for 2 images of shape "
            f"{tuple(input_shape)} it returns {shape}, not (2, {dim}): set output_dim to its "
            "feature size, or flatten its output"
        )


def _augmentation_factory(augmentation: Callable[..., Any]) -> Any:
    def factory(input_shape: Any, mean: Any, std: Any) -> Callable[..., Any]:
        return augmentation

    return factory
