"""The training loop: pretrain an encoder with any registered objective, then evaluate it.

Read :func:`run_spec` from the top: build the run from its spec (:mod:`.build`), make or reopen
its folder (:mod:`.run_folder`), then for every batch of every epoch ``v1, v2 =
views(batch)``, ``loss = model(v1, v2)`` and one optimiser step on the warm-up + cosine
schedule (:mod:`.optim`), with optional bfloat16 autocast and ``torch.compile``. A metrics
line is written every ``train.log_every`` steps and a checkpoint every epoch; a non-finite
loss or gradient stops the run with a message naming the step and the term. Last, the encoder
is evaluated (:mod:`.evaluate`) and the report written. The metrics lines and the report also
go to the loggers ``train.logger`` names (:mod:`.loggers`). Under ``torchrun`` every process
trains on its share of each batch (:mod:`.device`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, cast

import torch
from torch import nn

from .. import distributed
from ..errors import SpecError
from ..hookspecs import RunInfo
from .batches import EpochBatches
from .build import Parts, build
from .device import autocast, global_mean, init_distributed, resolve_device, wrap
from .evaluate import evaluate_run
from .guard import describe_terms, diverged
from .loggers import RunLog, build_loggers, objective_terms
from .optim import Schedule, build_optimizer
from .run_folder import Metrics, RunFolder, open_run
from .spec import Spec


@dataclass
class RunResult:
    """What :func:`~fmicl_registry.training.train` returns: the run folder, the report written
    there and the trained encoder."""

    run_dir: Path
    report: dict[str, Any]
    #: The trained encoder (the backbone, without the projection head), in eval mode.
    encoder: nn.Module | None = None


def run_spec(
    spec: Spec | None,
    out: str | Path = "runs",
    *,
    resume: str | Path | None = None,
    overrides: Sequence[str] = (),
    log: Callable[[str], None] = print,
    monitor: Callable[[int, float], None] | None = None,
) -> RunResult:
    """Pretrain and evaluate as ``spec`` says; write everything into a run folder (the loop
    behind :func:`~fmicl_registry.training.train`, which also takes paths and objects).

    Args:
        spec: a checked spec (:func:`load_spec`).
        out: the folder in which the run folder ``out/<run.name>`` is created.
        resume: a run folder to continue from its last checkpoint (``spec`` is then ignored:
            the run's own ``spec.toml`` is used, with ``overrides``). See
            :func:`.run_folder.open_run` for what may change on resume; a larger
            ``train.epochs`` extends a run.
        overrides: ``section.key=value`` changes to the run's spec on resume.
        log: where the progress messages go.
        monitor: called as ``monitor(epoch, value)`` with each curve point (``eval.every``)
            in the main process; it may stop the run by raising (``fmicl tune`` prunes so).
    """
    opened = open_run(resume, overrides, log) if resume is not None else None
    spec = opened.spec if opened is not None else spec
    if spec is None:
        raise SpecError("train() needs a spec (load_spec) or a run folder to resume")
    cfg = spec.train
    device = resolve_device(spec.run.device)
    init_distributed(device)
    rank, world = distributed.rank(), distributed.world_size()
    main = rank == 0
    # Loggers, data and model first, and the batches' own checks (size, processes): a spec
    # that cannot be built (an unknown logger, missing data, bad options) fails before any run
    # folder exists.
    loggers = build_loggers(spec)
    torch.manual_seed(spec.run.seed)
    parts = build(spec, device=device, rank=rank)
    size = len(cast(Sized, parts.pretrain))  # every data set the build makes has a length
    batches = EpochBatches(
        size,
        batch_size=cfg.batch_size,
        seed=spec.run.seed,
        rank=rank,
        world_size=world,
    )
    if opened is None:  # a new run records every default it uses (a resumed one, its own)
        spec = parts.spec or spec
    folder = opened.folder if opened is not None else RunFolder.create(Path(out), spec)

    model = parts.model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(
        cfg.optimizer, params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    schedule = Schedule.of(cfg, steps_per_epoch=size // cfg.batch_size)
    scheduler = schedule.scheduler(optimizer)
    metrics = Metrics(folder.path / "metrics.jsonl")
    start_epoch, step = 0, 0
    if opened is not None:
        start_epoch, step = opened.resume(model, optimizer, scheduler, schedule, metrics, log)
    record = RunLog(metrics, loggers if main else {})
    loop = _Loop(
        spec=spec,
        parts=parts,
        folder=folder,
        record=record,
        model=model,
        trained=wrap(model, device, compile=cfg.compile),
        params=params,
        optimizer=optimizer,
        scheduler=scheduler,
        schedule=schedule,
        device=device,
        main=main,
        log=log,
        monitor=monitor,
        step=step,
    )
    loader = torch.utils.data.DataLoader(
        parts.pretrain,
        batch_sampler=batches,
        num_workers=spec.dataset.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )

    run = RunInfo(folder.path, spec.run.name, spec.data, start_step=step)
    with record.open(run):  # the loggers are closed however the run ends
        started = time.perf_counter()
        with _progress(cfg.progress and main) as progress:
            task = progress.add_task(
                "train", total=schedule.steps_per_epoch, epoch=0, loss=0.0, rate=0.0
            )
            for epoch in range(start_epoch, cfg.epochs):
                if loop.step >= schedule.total_steps:
                    break
                parts.views.set_epoch(epoch)
                batches.set_epoch(epoch)
                loop.train_epoch(epoch, loader, progress, task)
        seconds = time.perf_counter() - started
        if world > 1:
            torch.distributed.barrier()

        training = {
            "steps": loop.step,
            "epochs": cfg.epochs,
            "seconds": seconds,
            "images_per_s": loop.seen / seconds if seconds > 0 else None,
            "world_size": world,
        }
        report: dict[str, Any] = {}
        if main:
            report = evaluate_run(
                spec,
                parts.evaluation,
                parts.encoder,
                device,
                folder.path,
                training=training,
                log=log,
                scored=lambda scores: record.report(scores, loop.step),
            )
    return RunResult(folder.path, report, parts.encoder.eval())


@dataclass
class _Loop:
    """What the loop steps and records (:func:`run_spec` builds it)."""

    spec: Spec
    parts: Parts
    folder: RunFolder
    #: ``metrics.jsonl`` and the loggers.
    record: RunLog
    model: nn.Module
    #: ``model`` as it is called: under DDP and ``torch.compile`` when the run uses them.
    trained: nn.Module
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    schedule: Schedule
    device: torch.device
    main: bool
    log: Callable[[str], None]
    #: Called with each curve point: ``monitor(epoch, value)``.
    monitor: Callable[[int, float], None] | None = None
    step: int = 0
    seen: int = 0

    def train_epoch(self, epoch: int, loader: Any, progress: Any, task: Any) -> None:
        """One epoch (or what is left of ``train.max_steps``), then :meth:`end_epoch`."""
        cfg, total_steps = self.spec.train, self.schedule.total_steps
        self.model.train()
        total = self.schedule.steps_per_epoch
        progress.reset(task, total=total, epoch=epoch + 1, loss=0.0, rate=0.0)
        loss_sum, steps, tic = 0.0, 0, time.perf_counter()
        for batch in loader:
            v1, v2 = self.parts.views(batch)
            loss = self.optimise(v1, v2, epoch)
            loss_sum, steps, self.seen = loss_sum + loss, steps + 1, self.seen + cfg.batch_size
            rate = steps * cfg.batch_size / (time.perf_counter() - tic)
            progress.update(task, advance=1, loss=loss, rate=rate)
            if self.step % cfg.log_every == 0 or self.step == total_steps:
                terms = objective_terms(self.parts.objective)  # every process: a collective
                if self.main:
                    lr = self.scheduler.get_last_lr()[0]
                    self.record.write(
                        "train",
                        step=self.step,
                        epoch=epoch + 1,
                        loss=loss,
                        **terms,
                        lr=lr,
                        images_per_s=rate,
                    )
            if self.step >= total_steps:
                break
        if self.main:
            self.end_epoch(epoch, loss_sum / max(1, steps), time.perf_counter() - tic)

    def optimise(self, v1: Any, v2: Any, epoch: int) -> float:
        """One step on the loss of the two views; returns the loss (averaged over the
        processes). A non-finite loss or gradient stops the run (:meth:`diverged`)."""
        with autocast(self.spec.train.precision, self.device):
            loss = self.trained(v1, v2)
        value = global_mean(loss.detach().float())
        if not math.isfinite(value):
            self.diverged(epoch, f"the loss is {value}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(self.params, float("inf")))
        if not math.isfinite(norm):
            self.diverged(epoch, f"the gradient norm is {norm}")
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return value

    def end_epoch(self, epoch: int, loss: float, seconds: float) -> None:
        """The epoch's metrics line and log line (a curve point every ``eval.every`` epochs),
        and a checkpoint every ``train.checkpoint_every`` epochs and at the end."""
        cfg, evaluation = self.spec.train, self.parts.evaluation
        line: dict[str, Any] = {
            "step": self.step,
            "epoch": epoch + 1,
            "epoch_loss": loss,
            "epoch_seconds": seconds,
        }
        point = ""
        every = self.spec.eval.every
        if every and (epoch + 1) % every == 0:
            value = evaluation.curve_point(self.parts.encoder, self.device)
            line[evaluation.curve], point = value, f", {evaluation.describe(value)}"
        self.record.write("epoch", **line)
        self.log(f"epoch {epoch + 1}/{cfg.epochs}: loss {loss:.4f}{point}")
        if self.monitor is not None and evaluation.curve in line:
            self.monitor(epoch + 1, line[evaluation.curve])
        last = epoch + 1 == cfg.epochs or self.step >= self.schedule.total_steps
        if (epoch + 1) % cfg.checkpoint_every == 0 or last:
            self.folder.save_checkpoint(
                epoch=epoch + 1,
                step=self.step,
                model=self.model,
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                spec=self.spec,
                inputs=self.parts.inputs,
            )

    def diverged(self, epoch: int, what: str) -> NoReturn:
        """Stop the run (the NaN guard): record the event, and name the step, the objective's
        terms and the last good checkpoint."""
        terms = describe_terms(self.parts.objective)
        if self.main:
            self.record.event(
                step=self.step + 1, epoch=epoch + 1, event="diverged", what=what, terms=terms
            )
        raise diverged(self.folder, step=self.step + 1, epoch=epoch + 1, what=what, terms=terms)


def _progress(enabled: bool) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  {task.fields[rate]:.0f} img/s"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=True,
    )


def evaluate_checkpoint(
    run_dir: str | Path, *, overrides: Sequence[str] = (), log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Rebuild a run from its folder, load its last usable checkpoint and evaluate it again
    (``fmicl eval RUN_DIR``); ``overrides`` may change what :func:`.run_folder.open_run`
    allows (``eval.knn_k=20``, ``data.root=...``). Nothing in the run folder but the report
    changes.
    """
    opened = open_run(run_dir, overrides, log)
    spec, state = opened.spec, opened.state
    device = resolve_device(spec.run.device)
    torch.manual_seed(spec.run.seed)
    parts = build(spec, device=device)
    opened.load_weights(parts.model)
    log(f"evaluating {opened.checkpoint} (epoch {state['epoch']}, step {state['step']})")
    parts.model.to(device)
    folder = opened.folder
    training = folder.previous_training()
    return evaluate_run(
        spec, parts.evaluation, parts.encoder, device, folder.path, training=training, log=log
    )
