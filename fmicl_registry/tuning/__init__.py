"""``fmicl tune``: find the best objective and its settings for a data set (Optuna).

Read in this order: ``search.py`` (:func:`tune`: the study, its workers, the results),
``space.py`` (the conditional search space of each objective), ``study.py`` (storage, the
sampler that gives each objective the same budget, the per-objective pruner, a worker's loop
over trials), ``results.py`` (leaderboard, best specs, confirmation on new seeds) and
``plots.py``. Needs the ``tune`` extra: ``pip install 'fmicl-registry[tune]'``.
"""

from __future__ import annotations

try:
    import optuna  # noqa: F401
except ImportError:  # pragma: no cover - the extra is installed in the tests
    from ..errors import SpecError

    raise SpecError("fmicl tune needs Optuna: pip install 'fmicl-registry[tune]'") from None

from .search import DEFAULT_OBJECTIVES, TuneResult, tune
from .study import TuneError

__all__ = ["DEFAULT_OBJECTIVES", "TuneError", "TuneResult", "tune"]
