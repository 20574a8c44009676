"""fmicl-registry: f-MICL contrastive learning with any f-divergence (Lu et al., TMLR 2023).

The public API::

    import fmicl_registry as fm
    d = fm.define_divergence("u*log(u)", name="my_kl")   # from text, safely
    d = fm.get_divergence("js")                          # from the registry
    fm.list_divergences()                                # registered names

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
    from .components import (
        ComponentSpec,
        build,
        get_component,
        get_divergence,
        list_divergences,
        registry,
    )
    from .definition import DivergenceSpec, load_divergence_spec
    from .divergence import Divergence, define_divergence
    from .objectives import get_objective
    from .similarities import get_similarity

_LAZY = {
    "Divergence": "divergence",
    "define_divergence": "divergence",
    "ComponentSpec": "components",
    "DivergenceSpec": "definition",
    "get_component": "components",
    "build": "components",
    "get_divergence": "components",
    "list_divergences": "components",
    "load_divergence_spec": "definition",
    "registry": "components",
    "get_objective": "objectives",
    "get_similarity": "similarities",
}


__getattr__, __dir__ = _lazy_names(__name__, _LAZY)

__all__ = [
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
    "ObjectiveError",
    "RegistryError",
    "SimilarityError",
    "SpecError",
    "TrainingDiverged",
    "__version__",
    "build",
    "define_divergence",
    "get_component",
    "get_divergence",
    "get_objective",
    "get_similarity",
    "hookimpl",
    "list_divergences",
    "load_divergence_spec",
    "registry",
]
