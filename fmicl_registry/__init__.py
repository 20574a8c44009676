"""fmicl-registry: f-MICL contrastive learning with any f-divergence (Lu et al., TMLR 2023).

The public API::

    import fmicl_registry as fm
    d = fm.define_divergence("u*log(u)", name="my_kl")   # from text, safely
    d = fm.get_divergence("js")                          # from the registry
    fm.list_divergences()                                # registered names
"""

from ._version import __version__
from .divergence import Divergence, define_divergence
from .errors import DivergenceSpecError
from .hookspecs import hookimpl
from .registry import (
    DivergenceSpec,
    get_divergence,
    list_divergences,
    load_divergence_spec,
    registry,
)

__all__ = [
    "Divergence",
    "DivergenceSpec",
    "DivergenceSpecError",
    "__version__",
    "define_divergence",
    "get_divergence",
    "hookimpl",
    "list_divergences",
    "load_divergence_spec",
    "registry",
]
