"""The run folder: where a run keeps its spec, metrics and checkpoints, and how it is reopened.

``out/<run.name>/`` holds ``spec.toml`` (the resolved spec), ``metrics.jsonl`` (one JSON
object a line: the loss every ``train.log_every`` steps, one line per epoch, the events),
``checkpoints/`` (:mod:`.checkpoint`) and the report (:mod:`.report`). A new run never takes
an existing folder; a resumed or re-evaluated one is reopened with :func:`open_run`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import distributed
from .._version import __version__
from ..errors import CheckpointError, SpecError
from . import checkpoint as ckpt
from .checkpoint_file import state_dict_problems
from .optim import Schedule
from .spec import Spec, load_spec
from .spec_changes import compare_specs


@dataclass
class RunFolder:
    """A run folder (``path``), and what the run reads and writes there."""

    path: Path

    @property
    def spec_file(self) -> Path:
        return self.path / "spec.toml"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @classmethod
    def create(cls, out: Path, spec: Spec) -> RunFolder:
        """A new folder ``out/<run.name>`` (``-2``, ``-3``, ... when taken) with the spec in
        it; every process of a multi-process run gets the folder the main process made."""
        path = unique_dir(out, spec.run.name) if distributed.rank() == 0 else out
        if distributed.world_size() > 1:  # every process must agree on the folder
            names = [str(path)]
            torch.distributed.broadcast_object_list(names, src=0)
            path = Path(names[0])
        folder = cls(path)
        if distributed.rank() == 0:
            try:
                path.mkdir(parents=True)
            except OSError as err:
                raise SpecError(
                    f"cannot create the run folder {path}: {err.strerror}; choose another --out"
                ) from None
            folder.spec_file.write_text(spec.to_toml())
        return folder

    def save_checkpoint(
        self,
        *,
        epoch: int,
        step: int,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        spec: Spec,
        inputs: dict[str, Any] | None = None,
    ) -> Path:
        """Everything a resume needs, as ``checkpoints/last.pt`` (the last one kept as
        ``previous.pt``), and what the encoder's ``inputs`` are (for ``fmicl export``)."""
        state = {
            "format": ckpt.FORMAT,
            "version": __version__,
            "epoch": epoch,
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": ckpt.rng_state(),
            "spec": spec.data,  # what a resume is compared with
        }
        if inputs is not None:
            state["inputs"] = inputs
        return ckpt.rotate_and_save(state, self.checkpoints)

    def last_checkpoint(self) -> Path | None:
        """The checkpoint a resume would start with, without reading it."""
        return ckpt.latest(self.checkpoints)

    def previous_training(self) -> dict[str, Any]:
        """How training went, as the report already in the folder says (``{}``: no report)."""
        path = self.path / "report.json"
        if path.is_file():
            with contextlib.suppress(ValueError, KeyError):
                return dict(json.loads(path.read_text())["training"])
        return {}


def unique_dir(out: Path, name: str) -> Path:
    """``out/name``, or ``out/name-2``... : an existing run is never overwritten (the folder a
    new run would get; ``fmicl train --dry-run`` names it)."""
    candidate, n = out / name, 1
    while os.path.lexists(candidate):  # a dangling symlink is taken too
        n += 1
        candidate = out / f"{name}-{n}"
    return candidate


@dataclass
class Metrics:
    """``metrics.jsonl``: one JSON object per line, flushed as written."""

    path: Path

    def write(self, **record: Any) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    def drop_after(self, step: int) -> None:
        """Drop the lines after ``step`` (on resume: the resumed run writes them again)."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # a line cut short by the kill
                continue
            if record.get("step", 0) <= step:
                kept.append(line)
        self.path.write_text("".join(line + "\n" for line in kept))


# ------------------------------------------------------------------------------ reopening


@dataclass
class OpenedRun:
    """A run folder opened for resuming or evaluation: its spec (with the overrides), the
    checkpoint read, and the allowed changes from the spec that checkpoint recorded."""

    folder: RunFolder
    spec: Spec
    state: dict[str, Any]
    checkpoint: Path
    changes: dict[str, tuple[Any, Any]]

    def load_weights(self, model: nn.Module) -> None:
        """The checkpoint's weights into ``model``; a named error when they do not fit it."""
        weights = self.state["model"]
        problems = state_dict_problems(
            model.state_dict(), weights, given_in="the checkpoint", expected_in="the model"
        )
        if problems:
            raise CheckpointError(
                f"checkpoint {self.checkpoint} does not fit the model {self.folder.spec_file} "
                f"describes: {problems}. It was written for another backbone, architecture or "
                "version of them"
            )
        model.load_state_dict(weights)

    def resume(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        schedule: Schedule,
        metrics: Metrics,
        log: Callable[[str], None],
    ) -> tuple[int, int]:
        """Restore the model, the optimiser, the scheduler (at ``schedule``'s learning rate)
        and the random generators as the checkpoint left them, and settle the folder
        (:meth:`settle`, main process only); returns the epoch and the step to go on from."""
        self.load_weights(model)
        try:
            optimizer.load_state_dict(self.state["optimizer"])
            scheduler.load_state_dict(self.state["scheduler"])
        except (ValueError, KeyError, TypeError, RuntimeError) as err:
            raise CheckpointError(
                f"checkpoint {self.checkpoint}: its optimiser or scheduler state does not fit "
                f"the optimiser {self.folder.spec_file} describes ({type(err).__name__}: {err})"
            ) from None
        ckpt.set_rng_state(self.state["rng"])
        epoch, step = self.state["epoch"], self.state["step"]
        schedule.restart(optimizer, scheduler, step)
        log(f"resuming {self.folder.path} from {self.checkpoint.name} (epoch {epoch}, step {step})")
        if distributed.rank() == 0:
            self.settle(metrics, step, log)
        return epoch, step

    def settle(self, metrics: Metrics, step: int, log: Callable[[str], None]) -> None:
        """Set an unusable ``last.pt`` aside, remove the temporary files of a killed save,
        drop the metrics written after the checkpoint, and record the allowed changes of the
        spec in ``spec.toml`` and ``metrics.jsonl``."""
        folder = self.folder.checkpoints
        last = folder / "last.pt"
        if self.checkpoint.name == "previous.pt" and os.path.lexists(last):
            log(f"set aside the unusable {last} as {ckpt.set_aside(last).name}")
        stale = ckpt.remove_stale(folder)
        if stale:
            log(f"removed {len(stale)} unfinished checkpoint file(s) of a killed save")
        if self.changes:
            tmp = self.folder.path / ".spec.toml.tmp"
            tmp.write_text(self.spec.to_toml())
            os.replace(tmp, self.folder.spec_file)
        metrics.drop_after(step)  # the resumed run writes them again
        if self.changes:
            changed = {key: list(values) for key, values in self.changes.items()}
            metrics.write(step=step, epoch=self.state["epoch"], event="resumed", changed=changed)


def open_run(
    run_dir: str | Path, overrides: Sequence[str], log: Callable[[str], None]
) -> OpenedRun:
    """Read ``run_dir/spec.toml`` with ``overrides`` and the last usable checkpoint
    (:func:`.checkpoint.load_latest`: verified, never unpickling code, ``previous.pt`` when
    ``last.pt`` is bad), and compare the spec with the one the checkpoint was trained with
    (:func:`.spec_changes.compare_specs`).

    The rule: keys that leave the run meaningful may change and are logged (``train.epochs``
    when it grows, every ``[eval]`` key, ``train.progress``, ``train.log_every``,
    ``train.checkpoint_every``, ``data.num_workers``, ``data.root``, ``data.eval_*``,
    ``run.device``, ``run.name``); any other change (objective, divergence, backbone,
    architecture, augmentation, data set, lr, batch size, seed, optimiser, ...) is refused
    by :class:`~fmicl_registry.errors.SpecChanged` naming each key with its old and new value.
    """
    folder = RunFolder(Path(run_dir))
    if not folder.spec_file.is_file():
        raise CheckpointError(f"{folder.path} is not a run folder (no spec.toml in it)")
    spec = load_spec(folder.spec_file, list(overrides))
    state, path = ckpt.load_latest(folder.checkpoints, warn=log)
    against = f"{folder.spec_file}" + (" with --set " + " ".join(overrides) if overrides else "")
    changes = compare_specs(state["spec"], spec.data, checkpoint=path, against=against)
    for key, (old, new) in changes.items():
        log(f"changed since the checkpoint: {key} = {new!r} (was {old!r})")
    return OpenedRun(folder, spec, state, path, changes)
