"""What a run records, and where: ``metrics.jsonl`` always, and the loggers ``train.logger``
names (registered components, :class:`~fmicl_registry.hookspecs.Logger`), fed together.

The loop hands each metrics line to :meth:`RunLog.write`: the line goes to ``metrics.jsonl``
as it is, and its numbers to every logger as ``group/key`` scalars at the line's step
(``loss`` of a step line is ``train/loss``, ``epoch_loss`` of an epoch line ``epoch/loss``).
Once the run is evaluated, :meth:`RunLog.report` gives the loggers the report's metrics and the
distance distributions. Only the main process records.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .. import distributed
from ..components import build, registry
from ..errors import FmiclError, RegistryError, SpecError
from ..hookspecs import Logger, RunInfo
from ..plugins import PluginWarning
from .evaluate import Scores
from .guard import ReportsTerms
from .run_folder import Metrics
from .schema import LOGGER_OPTIONS
from .spec import Spec


def logger_names(value: str | list[str] | None) -> list[str]:
    """``train.logger`` as a list: ``"tensorboard"`` -> ``["tensorboard"]``, None -> ``[]``."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def build_loggers(spec: Spec) -> dict[str, Logger]:
    """The loggers ``train.logger`` names, made with the options of their ``[logger.NAME]``
    tables: before anything is trained or written, so that an unknown name (with the closest
    registered ones), a wrong option or a missing package is a :class:`SpecError`."""
    names = logger_names(spec.train.logger)
    options: Mapping[str, dict[str, Any]] = spec.data.get(LOGGER_OPTIONS, {})
    for name in names:
        _check_name(name, "train.logger")
    for name in options:  # a misspelled table would otherwise be ignored without a word
        _check_name(name, f"[logger.{name}]")
    loggers: dict[str, Logger] = {}
    for name in names:
        try:
            logger = build("loggers", name, **options.get(name, {}))
        except FmiclError as err:
            raise SpecError(f"[logger.{name}] {err}") from None
        if not isinstance(logger, Logger):
            missing = [m for m in vars(Logger) if _is_method(m) and not hasattr(logger, m)]
            raise SpecError(
                f"logger {name!r} (plugin {registry().get('loggers', name).plugin!r}) made a "
                f"{type(logger).__name__}, which has no {', '.join(missing)}: a logger "
                "factory must return a fmicl_registry.hookspecs.Logger"
            )
        loggers[name] = logger
    return loggers


def _check_name(name: str, where: str) -> None:
    """A :class:`SpecError` naming ``where`` when no logger is called ``name`` (the
    registry's message: the closest names, what there is, how to add one)."""
    try:
        registry().get("loggers", name)
    except RegistryError as err:
        raise SpecError(f"{where}: {err}") from None


def _is_method(name: str) -> bool:
    return not name.startswith("_") and callable(getattr(Logger, name, None))


def objective_terms(objective: nn.Module) -> dict[str, float]:
    """The objective's terms at its last call (its ``last_terms``: f-MICL's positive and
    negative terms) as ``positive_term`` and ``negative_term``, averaged over the processes;
    ``{}`` for an objective without them (InfoNCE). Every process of a multi-process run calls
    it at the same steps (the average is a collective); it waits for the device once."""
    if not isinstance(objective, ReportsTerms) or not objective.last_terms:
        return {}
    names = [name.replace(" ", "_") for name in objective.last_terms]
    values = torch.stack(
        [term.detach().float().reshape(()) for term in objective.last_terms.values()]
    )
    if distributed.is_initialized():
        torch.distributed.all_reduce(values)
        values /= distributed.world_size()
    return dict(zip(names, values.tolist(), strict=True))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class RunLog:
    """``metrics.jsonl`` and the run's loggers (none in the processes other than the main one).

    A logger whose method raises is warned about (``PluginWarning``) and gets nothing more but
    its ``close``: a tracker that loses its connection does not stop a long run, and
    ``metrics.jsonl`` keeps every number.
    """

    metrics: Metrics
    loggers: dict[str, Logger] = field(default_factory=dict)
    _active: dict[str, Logger] = field(init=False, default_factory=dict)

    @contextlib.contextmanager
    def open(self, run: RunInfo) -> Iterator[RunLog]:
        """Start the loggers; close each one started (even if its start failed) once when the
        block ends, with the error that ended it (None when it finished)."""
        started: dict[str, Logger] = {}
        try:
            for name, logger in self.loggers.items():
                started[name] = logger  # closed even when its start fails half-way
                try:
                    logger.start(run)
                except FmiclError:
                    raise
                except Exception as err:
                    raise SpecError(
                        f"logger {name!r} could not start: {type(err).__name__}: {err}"
                    ) from err
        except BaseException as error:
            self._close(started, error)
            raise
        self._active = dict(started)
        try:
            yield self
        except BaseException as error:
            self._close(started, error)
            raise
        self._close(started, None)

    def write(self, group: str, **record: Any) -> None:
        """A metrics line (with its ``step``): to ``metrics.jsonl`` as it is, and its numbers to
        the loggers as ``group/key``, with ``group_`` dropped from the front of a key."""
        self.metrics.write(**record)
        scalars = {
            f"{group}/{key.removeprefix(group + '_')}": float(value)
            for key, value in record.items()
            if key not in ("step", "epoch") and _number(value)
        }
        self._each("log_scalars", scalars, record["step"])

    def event(self, **record: Any) -> None:
        """An event line (``diverged``): ``metrics.jsonl`` only."""
        self.metrics.write(**record)

    def report(self, scores: Scores, step: int) -> None:
        """The evaluated run: its metrics (a baseline's as ``<baseline>/<metric>``) and the
        distance distributions (``distances/<encoder>/<positive|negative>``)."""
        metrics = {k: float(v) for k, v in scores.metrics.items() if _number(v)}
        for baseline, values in scores.baselines.items():
            metrics.update({f"{baseline}/{k}": float(v) for k, v in values.items() if _number(v)})
        histograms = {
            f"distances/{encoder.replace(' ', '_')}/{which}": values
            for encoder, pairs in scores.distances.items()
            for which, values in pairs.items()
        }
        self._each("log_report", metrics, step)
        self._each("log_histograms", histograms, step)

    def _each(self, method: str, *args: Any) -> None:
        for name, logger in list(self._active.items()):
            try:
                getattr(logger, method)(*args)
            except Exception as err:  # a logger's trouble must not stop the training
                del self._active[name]
                _warn(
                    f"logger {name!r} failed in {method} and gets nothing more in this run "
                    f"({type(err).__name__}: {err}); metrics.jsonl has every number"
                )

    def _close(self, loggers: dict[str, Logger], error: BaseException | None) -> None:
        self._active = {}
        for name, logger in loggers.items():
            try:
                logger.close(error)
            except Exception as err:
                _warn(f"logger {name!r} failed to close ({type(err).__name__}: {err})")


def _warn(message: str) -> None:
    warnings.warn(message, PluginWarning, stacklevel=3)
