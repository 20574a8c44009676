"""The build step: a spec -> everything a run is made of (:class:`Parts`).

The data sets, the views of a batch (:mod:`.views`), the model (backbone, architecture and
objective, all registered components) and the evaluation (:mod:`.evaluate`), seeded by
``run.seed``. A pretraining data set with ``modality = "text"`` makes a text run (sentences,
evaluated on STS); every other data set is images, augmented with ``[augment]``'s recipe and
evaluated by kNN and linear probes (by alignment and uniformity alone when the evaluation
data set has no labels). ``fmicl eval`` rebuilds a run the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ..errors import FmiclError, SpecError
from .evaluate import Evaluation
from .evaluate_images import ImageEvaluation, LabelFreeEvaluation
from .evaluate_text import TextEvaluation
from .resolve import resolve
from .spec import Spec
from .views import BatchViews, PairedViews, SeededViews, SentenceViews, Views

CPU = torch.device("cpu")


@dataclass
class Parts:
    """Everything a run is built from (also what ``fmicl eval`` rebuilds)."""

    #: What the data loader reads: images (or sentences) and labels, or two views of each.
    pretrain: Dataset[Any]
    #: A loader batch -> the model's two views, on the device.
    views: Views
    #: The architecture, holding the backbone and the objective: ``model(v1, v2)`` is the loss.
    model: nn.Module
    #: ``model.encoder``: the features evaluation scores.
    encoder: nn.Module
    #: The objective inside the model (its ``last_terms`` name a term that goes bad).
    objective: nn.Module
    #: How the encoder is scored: kNN and linear probes (images) or STS (text).
    evaluation: Evaluation
    #: The shape of one input image; ``()`` for text.
    input_shape: tuple[int, ...]
    #: The spec with every default it was built with filled in (:mod:`.resolve`): what the
    #: run folder's ``spec.toml`` records and ``fmicl train --print-spec`` shows.
    spec: Spec | None = None
    #: What the encoder's inputs are (images: ``input_shape``, ``mean``, ``std``), recorded in
    #: each checkpoint so that ``fmicl export`` does not need the data again.
    inputs: dict[str, list[Any]] | None = None


def build(spec: Spec, *, device: torch.device = CPU, rank: int = 0) -> Parts:
    """The data sets, the model and the evaluation ``spec`` describes; the views move each
    batch to ``device`` (process ``rank`` of the run keeps its rows of a global batch)."""
    data = spec.dataset
    options = {"root": data.root, "download": data.download, **spec.dataset_options()}
    pretrain_set = _build("datasets", data.name, {}, "data", split="pretrain", **options)
    recipe: str | None = None
    if getattr(pretrain_set, "modality", "image") == "text":
        parts = _build_text(spec, pretrain_set, options)
    else:
        parts = _build_images(spec, pretrain_set, options, device, rank)
        recipe = spec.augment.name or pretrain_set.default_recipe
        parts.inputs = {
            "input_shape": [int(v) for v in pretrain_set.input_shape],
            "mean": [float(v) for v in pretrain_set.mean],
            "std": [float(v) for v in pretrain_set.std],
        }
    batched = isinstance(parts.views, BatchViews) if recipe is not None else None
    parts.spec = resolve(spec, backbone=_backbone_name(spec), recipe=recipe, batched=batched)
    return parts


def _backbone_name(spec: Spec) -> str:
    """``backbone.name``, else the architecture's default backbone."""
    from ..architectures import default_backbone

    if spec.backbone.name is not None:
        return spec.backbone.name
    assert spec.architecture.name is not None  # the schema's default
    try:
        return default_backbone(spec.architecture.name)
    except FmiclError as err:
        raise SpecError(f"[architecture] {err} (set backbone.name)") from None


def _build(kind: str, name: str, options: dict[str, Any], section: str, **fixed: Any) -> Any:
    """A registered component, its options checked against the factory with the spec's
    section named in the error."""
    from ..components import build, registry
    from .objects import PREFIX

    try:
        return build(kind, name, **options, **fixed)
    except FmiclError as err:
        if name.startswith(PREFIX) and name not in registry().names(kind):
            raise SpecError(
                f"[{section}] {name!r} was an object passed from Python (fm.train(..., "
                f"{section if section != 'data' else 'dataset'}=...)), not a registered "
                "name; pass the same object again: fm.train(resume=RUN, ...)"
            ) from None
        raise SpecError(f"[{section}] {err}") from None


def _eval_set(
    spec: Spec, options: dict[str, Any], split: str, *, image_size: int | None = None
) -> Any:
    """A split of the data set evaluation reads: ``data.eval_name`` (else ``data.name``) at
    ``data.eval_root`` (else ``data.root``). Another data set than the pretraining one gets
    ``image_size`` (the pretraining images' side) when its factory takes one, so that its
    images have the shape the encoder was built for."""
    data = spec.dataset
    root = data.eval_root if data.eval_root is not None else data.root
    if data.eval_name is None or data.eval_name == data.name:
        name, given = data.name, {**options, "root": root}
    else:
        name, given = data.eval_name, {"root": root, "download": data.download}
        if image_size is not None and _takes(name, "image_size"):
            given["image_size"] = image_size
    return _build("datasets", name, {}, "data", split=split, **given)


def _takes(name: str, option: str) -> bool:
    """Whether the registered data set ``name`` has the option ``option`` (False when there
    is no such data set: building it then gives the error listing the registered ones)."""
    import inspect

    from ..components import registry

    try:
        factory = registry().get("datasets", name).factory  # type: ignore[union-attr]
    except FmiclError:
        return False
    return option in inspect.signature(factory).parameters


#: The seed of the held-out split (``eval.holdout``): one split for every run and seed, so
#: that runs compared on it are scored on the same images.
HOLDOUT_SEED = 0


def _held_out(dataset: Any, fraction: float) -> tuple[Any, Any]:
    """``(rest, held_out)``: ``fraction`` of ``dataset`` drawn at random (the same draw for
    every run), and the rest."""
    if not hasattr(dataset, "subset"):
        raise SpecError(
            f"eval.holdout needs an image data set that can be split (an ImageDataset); "
            f"{type(dataset).__name__} cannot: set eval.holdout = 0"
        )
    n = len(dataset)
    k = round(fraction * n)
    if k < 1 or k >= n:
        raise SpecError(
            f"eval.holdout = {fraction:g} of {n} images holds out {k}: it must leave at least "
            "one image on each side"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(HOLDOUT_SEED))
    return dataset.subset(order[k:].sort().values), dataset.subset(order[:k].sort().values)


def _labelled(dataset: Any) -> bool:
    """Whether every item of ``dataset`` has a class label (kNN and linear probes need one)."""
    labels = getattr(dataset, "labels", None)
    if getattr(dataset, "num_classes", 0) < 1 or labels is None:
        return False
    return bool((torch.as_tensor(labels) >= 0).all())


@dataclass
class _Model:
    model: nn.Module
    encoder: nn.Module
    objective: nn.Module
    #: Rebuilds the backbone's initialisation (the untrained baseline).
    build_encoder: Callable[[], nn.Module]


def _build_model(spec: Spec, input_shape: tuple[int, ...] | None) -> _Model:
    """The architecture with its backbone and objective. ``input_shape`` goes to image
    backbones; text backbones get none."""
    architecture, backbone = spec.architecture, spec.backbone
    assert architecture.name is not None and spec.objective.name is not None
    backbone_name = _backbone_name(spec)
    shape = {} if input_shape is None else {"input_shape": input_shape}

    def build_encoder() -> nn.Module:
        torch.manual_seed(spec.run.seed)
        return _build("backbones", backbone_name, backbone.options, "backbone", **shape)

    encoder = build_encoder()  # the untrained baseline rebuilds this exact initialisation
    objective = _build("objectives", spec.objective.name, spec.objective.options, "objective")
    model = _build(
        "architectures",
        architecture.name,
        architecture.options,
        "architecture",
        backbone=encoder,
        objective=objective,
    )
    features = getattr(model, "encoder", None)  # the architectures' contract (hookspecs)
    if not isinstance(features, nn.Module):
        raise SpecError(
            f"[architecture] {architecture.name!r} has no encoder attribute (the module whose "
            "features evaluation scores)"
        )
    return _Model(model, features, objective, build_encoder)


def _build_images(
    spec: Spec, pretrain_set: Any, options: dict[str, Any], device: torch.device, rank: int
) -> Parts:
    """An image run: the recipe's views of the pretraining images; kNN and linear probes on
    the evaluation data set's train and test splits, or, when its test split has no labels,
    alignment and uniformity only (:class:`.evaluate_images.LabelFreeEvaluation`)."""
    from ..data import Transformed, eval_transform, get_augmentation
    from ..data.batch import get_batch_augmentation

    seed, data = spec.run.seed, spec.dataset
    eval_name = data.eval_name or data.name
    shape = tuple(pretrain_set.input_shape)
    side = {"image_size": shape[-1]} if len(shape) == 3 and shape[1] == shape[2] else {}
    bank = None
    if spec.eval.holdout:
        bank, test_set = _held_out(_eval_set(spec, options, "train", **side), spec.eval.holdout)
    else:
        test_set = _eval_set(spec, options, data.eval_split, **side)
    if getattr(test_set, "modality", "image") != "image":
        raise SpecError(
            f"[data] {data.name!r} is an image data set but evaluation would read "
            f"{eval_name!r}, which is {test_set.modality}; an image run is evaluated on "
            "images (kNN and linear probes): remove data.eval_name, or name an image data set"
        )
    if tuple(test_set.input_shape) != shape:
        raise SpecError(
            f"[data] evaluation reads {eval_name!r} images of shape "
            f"{tuple(test_set.input_shape)}, but the encoder is built for the pretraining "
            f"images of {data.name!r}, {shape}; make them equal (image_size, or another "
            "data.eval_name)"
        )
    labelled = _labelled(test_set)
    train_set = bank
    if train_set is None and labelled:
        train_set = _eval_set(spec, options, "train", **side)
    if train_set is not None and not _labelled(train_set):
        labelled = False
    augment_options = dict(spec.augment.options)
    batched = augment_options.pop("batched", True)
    if not isinstance(batched, bool):
        raise SpecError(f"augment.batched must be a boolean, got {batched!r}")
    recipe = spec.augment.name or pretrain_set.default_recipe
    stats = (shape, pretrain_set.mean, pretrain_set.std)
    try:
        augment = get_augmentation(recipe, *stats, **augment_options)
        batch_augment = get_batch_augmentation(recipe, *stats, **augment_options)
    except (FmiclError, ValueError, TypeError) as err:  # torchvision's own checks included
        raise SpecError(f"[augment] recipe {recipe!r}: {err}") from None
    built = _build_model(spec, shape)
    views: Views
    if batched and batch_augment is not None:
        pretrain: Dataset[Any] = pretrain_set
        views = BatchViews(batch_augment, seed, spec.train.batch_size, device, rank)
    else:
        pretrain = SeededViews(pretrain_set, augment, seed)
        views = PairedViews(pretrain, device)
    untrained = built.build_encoder if spec.eval.baselines else None
    sources = [pretrain_set, test_set, *([train_set] if train_set is not None else [])]
    evaluation: Evaluation
    if labelled and train_set is not None:
        evaluation = ImageEvaluation(
            train_set=Transformed(train_set, eval_transform(train_set)),
            test_set=Transformed(test_set, eval_transform(test_set)),
            test_views=SeededViews(test_set, augment, seed + 1),
            settings=spec.eval,
            seed=seed,
            untrained=untrained,
            sources=sources,
        )
    else:
        which = "train" if train_set is not None else data.eval_split
        evaluation = LabelFreeEvaluation(
            test_views=SeededViews(test_set, augment, seed + 1),
            settings=spec.eval,
            reason=(
                f"the evaluation data set {eval_name!r} ({which} split) has no labels; to "
                "probe, set data.eval_name (and data.eval_root) to a labelled data set, such "
                "as 'imagefolder' with one folder per class"
            ),
            untrained=untrained,
            sources=sources,
        )
    return Parts(pretrain, views, built.model, built.encoder, built.objective, evaluation, shape)


def _build_text(spec: Spec, pretrain_set: Any, options: dict[str, Any]) -> Parts:
    """A text run: sentences for pretraining, an STS data set for evaluation, no augmentation
    (SimCSE: the two views of a sentence are two dropout masks)."""
    if spec.augment.name is not None or spec.augment.options:
        raise SpecError(
            f"[augment] data set {spec.dataset.name!r} is text, which has no augmentation "
            "recipe (the two views are the same sentences, made different by the model's "
            "dropout); remove the [augment] section"
        )
    if spec.eval.holdout:
        raise SpecError(
            "eval.holdout splits an image data set; a text run selects on its STS data set's "
            "dev split instead: set data.eval_split = 'dev' and eval.holdout = 0"
        )
    test_set = _eval_set(spec, options, spec.dataset.eval_split)
    if getattr(test_set, "task", None) != "sts":
        raise SpecError(
            f"[data] a text run is evaluated on an STS data set (sentence pairs with gold "
            f"scores), but {spec.dataset.eval_name or spec.dataset.name!r} is not one; set "
            "data.eval_name = 'stsb' and data.eval_root to the STS Benchmark folder"
        )
    built = _build_model(spec, None)
    evaluation = TextEvaluation(
        pairs=test_set,
        batch_size=spec.eval.batch_size,
        untrained=built.build_encoder if spec.eval.baselines else None,
    )
    return Parts(
        pretrain_set, SentenceViews(), built.model, built.encoder, built.objective, evaluation, ()
    )
