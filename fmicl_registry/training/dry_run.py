"""A dry run: build everything a spec describes, train nothing, write nothing.

``fmicl train --dry-run`` reads the data, builds the model and checks the batches as
:func:`~fmicl_registry.training.train` would, then says what the run would be: the resolved
spec with every default filled in (:mod:`.resolve`), the data's size, the steps, the model's
size and the device. A spec that cannot run fails here with the error ``train`` gives.
``--print-spec`` (:func:`resolved_spec`) needs the data only for the data set's default
augmentation recipe. Neither downloads anything.
"""

from __future__ import annotations

from collections.abc import Sized
from dataclasses import dataclass
from typing import cast

import torch

from ..errors import SpecError
from .batches import EpochBatches
from .build import Parts, _backbone_name, build
from .device import resolve_device
from .loggers import build_loggers
from .optim import Schedule
from .resolve import resolve
from .spec import Spec


@dataclass(frozen=True)
class DryRun:
    """What a run of a spec would be (:func:`dry_run`)."""

    #: The spec with every default filled in: what the run folder's ``spec.toml`` would hold.
    spec: Spec
    device: str
    #: Items in the pretraining data set.
    pretrain_size: int
    input_shape: tuple[int, ...]
    steps_per_epoch: int
    total_steps: int
    #: Trainable parameters of the whole model (encoder, heads), and of the encoder alone.
    parameters: int
    encoder_parameters: int

    def summary(self) -> list[str]:
        """The plan in a few lines."""
        cfg = self.spec.train
        shape = "x".join(map(str, self.input_shape)) or "text"
        return [
            f"data: {self.spec.dataset.name}, {self.pretrain_size} items ({shape}) for pretraining",
            f"steps: {self.steps_per_epoch} per epoch x {cfg.epochs} epochs = {self.total_steps}"
            f" (batch {cfg.batch_size})"
            + (f", stopped at train.max_steps = {cfg.max_steps}" if cfg.max_steps else ""),
            f"model: {self.parameters:,} trainable parameters "
            f"(encoder {self.encoder_parameters:,})",
            f"device: {self.device}",
        ]


def dry_run(spec: Spec) -> DryRun:
    """Build the run ``spec`` describes on its device and say what it would do. Nothing is
    downloaded (``data.download`` is recorded, not acted on) or written.

    Example:
        >>> from fmicl_registry.training import load_spec
        >>> from fmicl_registry.training.dry_run import dry_run
        >>> plan = dry_run(load_spec(None, ["train.epochs=3", "train.warmup_epochs=0"]))
        >>> plan.pretrain_size, plan.steps_per_epoch, plan.total_steps
        (1437, 5, 15)
        >>> plan.spec["backbone"]["name"], plan.spec["augment"]["degrees"]
        ('small_cnn', 20.0)
    """
    device = resolve_device(spec.run.device)
    build_loggers(spec)  # an unknown logger, a bad option or a missing package fails here too
    torch.manual_seed(spec.run.seed)
    parts = _build_without_download(spec, device)
    size = len(cast(Sized, parts.pretrain))
    cfg = spec.train
    EpochBatches(size, batch_size=cfg.batch_size, seed=spec.run.seed)  # the batches' checks
    schedule = Schedule.of(cfg, steps_per_epoch=size // cfg.batch_size)
    return DryRun(
        spec=_with_download(parts.spec or spec, spec.dataset.download),
        device=str(device),
        pretrain_size=size,
        input_shape=parts.input_shape,
        steps_per_epoch=schedule.steps_per_epoch,
        total_steps=schedule.total_steps,
        parameters=_count(parts.model),
        encoder_parameters=_count(parts.encoder),
    )


def resolved_spec(spec: Spec) -> Spec:
    """``spec`` with every default filled in (``fmicl train --print-spec``), from the built
    run when its data can be opened; else from the registry alone, without the data set's
    default augmentation recipe (a comment says why). Nothing is downloaded or written.

    Example:
        >>> from fmicl_registry.training import load_spec
        >>> from fmicl_registry.training.dry_run import resolved_spec
        >>> spec = resolved_spec(load_spec("cifar10_simclr_resnet18", ["data.root=/nowhere"]))
        >>> spec["backbone"]["name"], spec["augment"]["name"], spec.comments["augment"]
        ('resnet18', 'simclr', 'blur: not set, the component chooses')
    """
    build_loggers(spec)
    try:
        parts = _build_without_download(spec, torch.device("cpu"))
    except SpecError as err:
        if not str(err).startswith("[data]"):
            raise
        resolved = resolve(spec, backbone=_backbone_name(spec), recipe=spec.augment.name)
        if spec.augment.name is None:
            resolved.comments["augment"] = (
                "name not set: the data set's default recipe (the data set could not be "
                "opened to say which; fmicl train --dry-run says why)"
            )
        return resolved
    return _with_download(parts.spec or spec, spec.dataset.download)


def _build_without_download(spec: Spec, device: torch.device) -> Parts:
    if not spec.dataset.download:
        return build(spec, device=device)
    try:
        return build(spec.with_overrides(["data.download=false"]), device=device)
    except SpecError as err:
        raise SpecError(
            f"{err} (a dry run does not download: the run itself will, as data.download is true)"
        ) from None


def _with_download(spec: Spec, download: bool) -> Spec:
    data = {**spec.data, "data": {**spec.data["data"], "download": download}}
    return Spec(data, source=spec.source, comments=spec.comments)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
