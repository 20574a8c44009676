"""fmicl-registry: f-MICL contrastive learning with any f-divergence (Lu et al., TMLR 2023).

What users do, each from the top level::

    import fmicl_registry as fm

    # the objective, in your own training loop (lightly-style)
    loss_fn = fm.FMICL(divergence="js", similarity="gaussian", gamma=1.0)
    loss = loss_fn(z1, z2)                         # two views' projections, (N, D) each
    loss = fm.fmicl_loss(z1, z2, fm.get_divergence("kl"), fm.get_similarity("gaussian"))

    # your own f-divergence, from the text of its generator f(u) (parsed, never evaluated)
    d = fm.define_divergence("u**a/(a-1)", name="tsallis", params={"a": 1.5}, normalize=True)
    fm.check_divergence(d)                         # the property kit (needs [testing])

    # a whole run: pretrain, evaluate, report
    result = fm.train(fm.load_spec(None, ["train.epochs=5"]), out="runs")

    # the trained encoder: exported (safetensors, torchvision, torch.export), loaded, used
    path = fm.export("runs/cifar10-simclr-resnet18")   # the backbone, no projection head
    encoder = fm.load_encoder(path)                    # nothing in the file runs
    result = fm.embed(path, "photos/")                 # features, labels and files of a folder

    # the registry that plugins fill (hookspecs.py is the contract)
    fm.list_divergences(); fm.build("backbones", "resnet18"); fm.get_backbone("small_cnn")

Importing the package is cheap: torch and sympy load on first use of a name that needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names as _lazy_names
from ._version import __version__
from .errors import (
    ArchitectureError,
    AugmentationError,
    BackboneError,
    CheckpointError,
    DatasetError,
    DivergenceSpecError,
    EvaluationError,
    FmiclError,
    ObjectiveError,
    RegistryError,
    SimilarityError,
    SpecError,
    TrainingDiverged,
)
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from .backbones import get_backbone
    from .components import (
        ComponentSpec,
        build,
        get_component,
        get_divergence,
        list_divergences,
        registry,
    )
    from .definition import DivergenceSpec, ParamRange, load_divergence_spec
    from .divergence import Divergence, define_divergence
    from .embeddings import embed
    from .encoder_export import export, load_encoder
    from .objectives import FMICL, InfoNCE, fmicl_loss, get_objective
    from .similarities import get_similarity
    from .testing import check_divergence
    from .training import load_spec, train
    from .tuning import tune

_LAZY = {
    "Divergence": "divergence",
    "define_divergence": "divergence",
    "DivergenceSpec": "definition",
    "ParamRange": "definition",
    "load_divergence_spec": "definition",
    "ComponentSpec": "components",
    "build": "components",
    "get_component": "components",
    "get_divergence": "components",
    "list_divergences": "components",
    "registry": "components",
    "FMICL": "objectives",
    "InfoNCE": "objectives",
    "fmicl_loss": "objectives",
    "get_objective": "objectives",
    "get_similarity": "similarities",
    "get_backbone": "backbones",
    "export": "encoder_export",
    "load_encoder": "encoder_export",
    "embed": "embeddings",
    "check_divergence": "testing",
    "load_spec": "training",
    "train": "training",
    "tune": "tuning",
}


__getattr__, __dir__ = _lazy_names(__name__, _LAZY)

__all__ = [
    "FMICL",
    "ArchitectureError",
    "AugmentationError",
    "BackboneError",
    "CheckpointError",
    "ComponentSpec",
    "DatasetError",
    "Divergence",
    "DivergenceSpec",
    "DivergenceSpecError",
    "EvaluationError",
    "FmiclError",
    "InfoNCE",
    "ObjectiveError",
    "ParamRange",
    "RegistryError",
    "SimilarityError",
    "SpecError",
    "TrainingDiverged",
    "__version__",
    "build",
    "check_divergence",
    "define_divergence",
    "embed",
    "export",
    "fmicl_loss",
    "get_backbone",
    "get_component",
    "get_divergence",
    "get_objective",
    "get_similarity",
    "hookimpl",
    "list_divergences",
    "load_divergence_spec",
    "load_encoder",
    "load_spec",
    "registry",
    "train",
    "tune",
]
