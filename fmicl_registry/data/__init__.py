"""Data sets and augmentations for contrastive pretraining and evaluation.

Every data set factory (registered in the ``datasets`` kind by the built-in plugin) has the
signature ``factory(root=None, split="train", download=False, **options)`` and returns an
:class:`ImageDataset` of ``(image, label)`` pairs, ``image`` a ``uint8`` tensor ``(C, H, W)``
and ``label`` an ``int`` (``-1`` when unlabeled)::

    import fmicl_registry as fm
    from fmicl_registry.data import TwoViews, eval_transform, train_transform

    train = fm.get_component("datasets", "digits", split="pretrain")    # embedded, no download
    pairs = TwoViews(train, train_transform(train))    # (view1, view2, label), train.default_recipe
    test = fm.get_component("datasets", "cifar10", split="test", download=True)
    x = eval_transform(test)(test[0][0])                 # normalised float32 (3, 32, 32)

Data sets: ``digits`` (scikit-learn's 8x8 digits), ``cifar10``, ``cifar100``, ``stl10``
(``pretrain`` = train + unlabeled), ``imagefolder`` (TinyImageNet, ImageNet) and ``images``
(any folder of your own images, unlabelled; ``dataset.files`` names each); and text:
``textlines`` (one sentence per line, :class:`TextLines`) and ``stsb`` (the STS Benchmark,
:class:`SentencePairs`), which declare ``modality = "text"``. Files live
under ``root`` (default :func:`default_root`: ``$FMICL_DATA_DIR`` or
``~/.cache/fmicl-registry/data``); when they are missing and ``download`` is false, a
:class:`DatasetError` says where they should be and how to get them.

Augmentation recipes (registered in the ``augmentations`` kind; :func:`get_augmentation`):
``"simclr"`` and ``"digits"`` (both with a batched form run on the device), ``"none"``.
"""

from __future__ import annotations

from .augment import (
    Transform,
    eval_transform,
    get_augmentation,
    get_batch_augmentation,
    list_recipes,
    train_transform,
    with_batched,
)
from .base import SPLITS, DatasetError, ImageDataset, default_root
from .cifar import cifar10, cifar100
from .digits import digits
from .imagefolder import imagefolder
from .images import images
from .stl10 import stl10
from .text import SentencePairs, TextLines, stsb, textlines
from .views import Transformed, TwoViews

__all__ = [
    "SPLITS",
    "DatasetError",
    "ImageDataset",
    "SentencePairs",
    "TextLines",
    "Transform",
    "Transformed",
    "TwoViews",
    "cifar10",
    "cifar100",
    "default_root",
    "digits",
    "eval_transform",
    "get_augmentation",
    "get_batch_augmentation",
    "imagefolder",
    "images",
    "list_recipes",
    "stl10",
    "stsb",
    "textlines",
    "train_transform",
    "with_batched",
]
