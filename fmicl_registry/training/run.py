"""A run from Python: :func:`train`, the function behind ``fmicl train``.

It takes what a user holds: a spec object, the path of a TOML file or a bundled spec's name,
``--set``-style overrides, and objects in place of registered names (a data set, a backbone,
an augmentation: :mod:`.objects`). The loop itself is :func:`.loop.run_spec`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import SpecError
from .loop import RunResult, run_spec
from .objects import given_objects
from .spec import Spec, load_spec


def train(
    spec: Spec | str | Path | None = None,
    out: str | Path = "runs",
    *,
    overrides: Sequence[str] = (),
    resume: str | Path | None = None,
    dataset: Any = None,
    eval_datasets: Sequence[Any] | None = None,
    backbone: Any = None,
    augmentation: Any = None,
    log: Callable[[str], None] = print,
) -> RunResult:
    """Pretrain an encoder and evaluate it; everything is written into a run folder.

    Args:
        spec: a :class:`Spec` (:func:`load_spec`), the path of a TOML spec, the name of a
            bundled spec (``"cifar10_simclr_resnet18"``; ``fmicl specs`` lists them), or None
            for the digits default.
        out: the folder in which the run folder ``out/<run.name>`` is created.
        overrides: ``section.key=value`` changes, as ``--set`` takes them
            (``"train.epochs=5"``, ``"objective.gamma=null"``).
        resume: a run folder to continue from its last checkpoint, with its own ``spec.toml``
            (``spec`` must then be None; ``overrides`` may change what a resume allows, such
            as ``train.epochs`` to train longer).
        dataset: a data set object to pretrain on instead of ``data.name``: an
            ``ImageDataset``, a torchvision data set, or any map-style data set of images or
            ``(image, label)`` pairs (:func:`~fmicl_registry.data.adapt.as_image_dataset`).
        eval_datasets: ``(train, test)``, labelled data set objects for the kNN and linear
            probes of a ``dataset`` run (without them it is scored label-free: alignment,
            uniformity, the distance plots).
        backbone: an ``nn.Module`` with an ``output_dim`` attribute (it is the module trained;
            the untrained baseline is a copy of it as given), or a callable
            ``input_shape -> nn.Module``, instead of ``backbone.name``.
        augmentation: a callable from one ``uint8`` image ``(C, H, W)`` to a normalised float
            tensor, instead of ``augment.name`` (two views are drawn per image).
        log: where the progress messages go.

    Objects are registered as ``python.<ClassName>`` while the run is built, and ``spec.toml``
    names them so; resuming such a run takes the same objects again. An object replaces its
    section: the spec's options for it are dropped, and ``overrides`` of them are refused.

    Returns:
        The :class:`RunResult`: ``run_dir``, ``report`` (``report["metrics"]``) and the
        trained ``encoder``.

    Example (a tiny run on the embedded digits, a few seconds):
        >>> import tempfile, fmicl_registry as fm
        >>> tiny = ["train.epochs=1", "train.warmup_epochs=0.0", "train.progress=false",
        ...         "backbone.width=8", "eval.linear_epochs=1", "eval.baselines=false"]
        >>> result = fm.train("digits", tempfile.mkdtemp(), overrides=tiny, log=lambda m: None)
        >>> 0.0 <= result.report["metrics"]["linear_top1"] <= 1.0, result.run_dir.name
        (True, 'digits')
        >>> image, label = fm.build("datasets", "digits", split="test")[0]
        >>> result.encoder(image[None].float()).shape
        torch.Size([1, 128])
    """
    with given_objects(
        dataset=dataset, eval_datasets=eval_datasets, backbone=backbone, augmentation=augmentation
    ) as given:
        replaced = {item.split(".", 1)[0] for item in given} - {"data"}
        for item in overrides:
            if item.split(".", 1)[0] in replaced:
                raise SpecError(
                    f"{item} does not apply: that section's component is an object given to "
                    "train(); configure the object itself"
                )
        if resume is not None:
            if spec is not None:
                raise ValueError("resume continues with the run's own spec.toml: pass spec=None")
            return run_spec(None, out, resume=resume, overrides=[*overrides, *given], log=log)
        # the objects' names last: a new name drops the spec's options of that component
        if isinstance(spec, Spec):
            loaded = spec.with_overrides([*overrides, *given])
        else:
            loaded = load_spec(spec, [*overrides, *given])
        return run_spec(loaded, out, log=log)
