"""Built-in plugin: the data sets of Lu et al. 2023's experiments, the embedded default (digits),
and the text data of the SimCSE-style runs (textlines, stsb)."""

from __future__ import annotations

from typing import Any

from fmicl_registry.hookspecs import hookimpl


@hookimpl
def register_datasets(register: Any) -> None:
    """``digits``, ``cifar10``, ``cifar100``, ``stl10``, ``imagefolder``, ``images`` (your own
    folder of images) and the text sets ``textlines`` and ``stsb``."""
    from fmicl_registry.data import (
        cifar10,
        cifar100,
        digits,
        imagefolder,
        images,
        stl10,
        stsb,
        textlines,
    )

    register(
        name="digits",
        factory=digits,
        description="scikit-learn's 8x8 handwritten digits, 1x8x8, 10 classes; embedded, "
        "fixed stratified 1437/360 split",
    )
    register(
        name="cifar10",
        factory=cifar10,
        description="CIFAR-10, 3x32x32, 10 classes (root, download)",
    )
    register(
        name="cifar100",
        factory=cifar100,
        description="CIFAR-100, 3x32x32, 100 fine classes (root, download)",
    )
    register(
        name="stl10",
        factory=stl10,
        description="STL-10, 3x96x96, 10 classes; pretrain = train + 100k unlabeled "
        "(root, download, folds)",
    )
    register(
        name="imagefolder",
        factory=imagefolder,
        description="class folders train/ and val/ (TinyImageNet, ImageNet), resized and "
        "center-cropped to image_size (root, image_size)",
    )
    register(
        name="images",
        factory=images,
        description="any folder of image files, searched recursively, unlabelled (for "
        "pretraining); unreadable files skipped; test = at most test_size of them (root, "
        "image_size, test_size)",
    )
    register(
        name="textlines",
        factory=textlines,
        description="one sentence per line of a UTF-8 file (SimCSE's wiki1m_for_simcse.txt), "
        "for text pretraining (file, or root and filename)",
    )
    register(
        name="stsb",
        factory=stsb,
        description="STS Benchmark sentence pairs with gold scores 0-5, original sts-*.csv or "
        "GLUE STS-B/*.tsv; splits train, dev, test (root)",
    )
