"""Built-in plugin: the loggers a spec names in ``train.logger``: ``tensorboard``, TensorBoard
event files in the run folder (``RUN/tensorboard/``, read by ``tensorboard --logdir``).

The ``tensorboard`` package is an extra (``pip install 'fmicl-registry[tensorboard]'``); it is
imported when a run asks for the logger, never when the plugin is loaded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fmicl_registry.errors import SpecError
from fmicl_registry.hookspecs import RunInfo, hookimpl

#: How to install what the ``tensorboard`` logger needs.
TENSORBOARD_EXTRA = "pip install 'fmicl-registry[tensorboard]'"
#: The folder of the event files, inside the run folder.
TENSORBOARD_DIR = "tensorboard"


class TensorBoardLogger:
    """Scalars, histograms and the report as TensorBoard events in ``RUN/tensorboard/``
    (torch's ``SummaryWriter``), written to disk every ``flush_secs`` seconds and at the end.

    On resume, the events an earlier attempt wrote after the checkpoint's step are purged (the
    writer's ``purge_step``), so TensorBoard shows each step once, in order.
    """

    def __init__(self, flush_secs: float = 10.0) -> None:
        if isinstance(flush_secs, bool) or not isinstance(flush_secs, int | float):
            raise SpecError(
                f"logger 'tensorboard': flush_secs must be a number, got {flush_secs!r}"
            )
        if not (math.isfinite(flush_secs) and flush_secs > 0):
            raise SpecError(
                f"logger 'tensorboard': flush_secs must be a number of seconds above 0, got "
                f"{flush_secs!r}"
            )
        self.flush_secs = float(flush_secs)
        self._writer_class = _summary_writer()
        self._writer: Any = None

    def start(self, run: RunInfo) -> None:
        self._writer = self._writer_class(
            log_dir=str(run.path / TENSORBOARD_DIR),
            # events after the checkpoint's step were written by the attempt being resumed
            purge_step=run.start_step + 1 if run.start_step > 0 else None,
            flush_secs=self.flush_secs,
        )

    def log_scalars(self, scalars: Mapping[str, float], step: int) -> None:
        for tag, value in scalars.items():
            self._writer.add_scalar(tag, value, step)

    def log_histograms(self, histograms: Mapping[str, Any], step: int) -> None:
        for tag, values in histograms.items():
            self._writer.add_histogram(tag, values, step)

    def log_report(self, metrics: Mapping[str, float], step: int) -> None:
        for name, value in metrics.items():
            self._writer.add_scalar(f"report/{name}", value, step)

    def close(self, error: BaseException | None) -> None:
        if self._writer is not None:
            self._writer.close()


def _summary_writer() -> type:
    """torch's ``SummaryWriter``, or an error that says which extra to install."""
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise SpecError(
            f"logger 'tensorboard' needs the tensorboard package, which is not installed "
            f"({err}); install it with `{TENSORBOARD_EXTRA}`, or remove 'tensorboard' from "
            "train.logger"
        ) from None
    return SummaryWriter


@hookimpl
def register_loggers(register: Any) -> None:
    """``tensorboard``."""
    register(
        name="tensorboard",
        factory=TensorBoardLogger,
        description=f"TensorBoard event files in RUN/{TENSORBOARD_DIR}/ (flush_secs); needs "
        "the tensorboard extra",
    )
