"""The training loop: pretrain an encoder with any registered objective, then evaluate it.

One function a reader can follow from top to bottom (:func:`train`): build the data, the
model and the optimiser from a spec; loop over epochs (warm-up + cosine schedule, optional
bfloat16 autocast and ``torch.compile``); write metrics as JSON lines and an atomic checkpoint
every epoch; stop on a non-finite loss or gradient with a message naming the step and the
term; evaluate (kNN, linear probe, alignment and uniformity, distance distributions, raw-input
and random-encoder baselines); write the report and the plots.

Multi-process training runs under ``torchrun`` (gloo on CPU, nccl on GPU): every process takes
a contiguous slice of each global batch, the objectives gather negatives across processes, and
DDP averages the gradients, so two processes follow the one-process run on the global batch.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import distributed
from .._version import __version__
from ..errors import FmiclError, TrainingDiverged
from . import checkpoint as ckpt
from .batches import EpochBatches, SeededViews
from .batches import _seed as seed_of
from .optim import build_optimizer, warmup_cosine
from .spec import Spec, SpecError, load_spec
from .spec_changes import compare_specs


@dataclass
class RunResult:
    """What :func:`train` returns: the run folder and the report written there."""

    run_dir: Path
    report: dict[str, Any]


# ------------------------------------------------------------------------------ building


def _spec(kind: str, name: str) -> Any:
    """The registered component ``name`` of ``kind`` (a ``ComponentSpec``)."""
    from ..components import ComponentSpec, registry

    spec = registry().get(kind, name)
    assert isinstance(spec, ComponentSpec)
    return spec


def _build(kind: str, name: str, options: dict[str, Any], section: str, **fixed: Any) -> Any:
    """A registered component, its options checked against the factory with the spec's
    section named in the error."""
    from ..components import build

    try:
        return build(kind, name, **options, **fixed)
    except FmiclError as err:
        raise SpecError(f"[{section}] {err}") from None


@dataclass
class Parts:
    """Everything a run is built from (also what ``fmicl eval`` rebuilds).

    ``pretrain`` yields ``(view1, view2, label)``, or ``(image, label)`` when the recipe has a
    batched form (``batch_augment``), which the loop then applies to each batch on the device.
    For text (``modality == "text"``) it yields ``(sentence, label)``: the loop feeds the same
    list of sentences as both views (the model's dropout makes them differ), ``test_eval`` is
    the STS data set evaluation scores on, and ``train_eval`` and ``test_views`` are None.
    """

    pretrain: Any
    batch_augment: Any
    train_eval: Any
    test_eval: Any
    test_views: SeededViews | None
    model: nn.Module
    build_encoder: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    modality: str = "image"


def _eval_sets(spec: Spec, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The data set evaluation reads and its options: ``data.eval_name`` (else ``data.name``)
    at ``data.eval_root`` (else ``data.root``)."""
    data = spec["data"]
    root = data["eval_root"] if data["eval_root"] is not None else data["root"]
    if data["eval_name"] is None or data["eval_name"] == data["name"]:
        return data["name"], {**options, "root": root}
    return data["eval_name"], {"root": root, "download": data["download"]}


def _build_model(
    spec: Spec, input_shape: tuple[int, ...] | None
) -> tuple[nn.Module, Callable[[], nn.Module]]:
    """The architecture with its backbone and objective, and a function rebuilding the
    backbone's initialisation (the untrained baseline). ``input_shape`` goes to image
    backbones; text backbones get none."""
    seed = spec["run"]["seed"]
    arch_name, arch_options = spec.component("architecture")
    assert arch_name is not None
    backbone_name, backbone_options = spec.component("backbone")
    if backbone_name is None:
        backbone_name = getattr(_spec("architectures", arch_name).factory, "default_backbone", None)
        if backbone_name is None:
            raise SpecError(
                f"architecture {arch_name!r} has no default backbone: set backbone.name"
            )
    objective_name, objective_options = spec.component("objective")
    assert objective_name is not None
    shape = {} if input_shape is None else {"input_shape": input_shape}

    def build_encoder() -> nn.Module:
        torch.manual_seed(seed)
        return _build("backbones", backbone_name, backbone_options, "backbone", **shape)

    backbone = build_encoder()  # the untrained baseline rebuilds this exact initialisation
    from ..objectives import get_objective

    try:
        objective = get_objective(objective_name, **objective_options)
    except FmiclError as err:
        raise SpecError(f"[objective] {err}") from None
    model = _build(
        "architectures",
        arch_name,
        arch_options,
        "architecture",
        backbone=backbone,
        objective=objective,
    )
    return model, build_encoder


def _build_text(spec: Spec, pretrain_set: Any, options: dict[str, Any]) -> Parts:
    """A text run: sentences for pretraining, an STS data set for evaluation, no augmentation
    (SimCSE: the two views of a sentence are two dropout masks)."""
    recipe, augment_options = spec.component("augment")
    if recipe is not None or augment_options:
        raise SpecError(
            f"[augment] data set {spec['data']['name']!r} is text, which has no augmentation "
            "recipe (the two views are the same sentences, made different by the model's "
            "dropout); remove the [augment] section"
        )
    eval_name, eval_options = _eval_sets(spec, options)
    test_set = _build(
        "datasets", eval_name, {}, "data", split=spec["data"]["eval_split"], **eval_options
    )
    if getattr(test_set, "task", None) != "sts":
        raise SpecError(
            f"[data] a text run is evaluated on an STS data set (sentence pairs with gold "
            f"scores), but {eval_name!r} is not one; set data.eval_name = 'stsb' and "
            "data.eval_root to the STS Benchmark folder"
        )
    model, build_encoder = _build_model(spec, None)
    return Parts(
        pretrain=pretrain_set,
        batch_augment=None,
        train_eval=None,
        test_eval=test_set,
        test_views=None,
        model=model,
        build_encoder=build_encoder,
        input_shape=(),
        modality="text",
    )


def build(spec: Spec) -> Parts:
    """The data sets and the model a spec describes (seeded by ``run.seed``).

    A pretraining data set with ``modality = "text"`` makes a text run (:func:`_build_text`);
    every other data set is images, augmented with ``[augment]``'s recipe.
    """
    from ..data import Transformed, eval_transform, get_augmentation
    from ..data.batch import get_batch_augmentation

    seed = spec["run"]["seed"]
    data = spec["data"]
    options = {"root": data["root"], "download": data["download"], **spec.dataset_options()}
    pretrain_set = _build("datasets", data["name"], {}, "data", split="pretrain", **options)
    if getattr(pretrain_set, "modality", "image") == "text":
        return _build_text(spec, pretrain_set, options)
    eval_name, eval_options = _eval_sets(spec, options)
    train_set = _build("datasets", eval_name, {}, "data", split="train", **eval_options)
    if getattr(train_set, "modality", "image") != "image":
        raise SpecError(
            f"[data] {data['name']!r} is an image data set but evaluation would read "
            f"{eval_name!r}, which is {train_set.modality}; an image run is evaluated on images "
            "(kNN and linear probes): remove data.eval_name, or name an image data set"
        )
    test_set = _build("datasets", eval_name, {}, "data", split=data["eval_split"], **eval_options)
    recipe, augment_options = spec.component("augment")
    batched = augment_options.pop("batched", True)
    if not isinstance(batched, bool):
        raise SpecError(f"augment.batched must be a boolean, got {batched!r}")
    recipe = recipe or pretrain_set.default_recipe
    shape = tuple(pretrain_set.input_shape)
    stats = (shape, pretrain_set.mean, pretrain_set.std)
    try:
        augment = get_augmentation(recipe, *stats, **augment_options)
        batch_augment = get_batch_augmentation(recipe, *stats, **augment_options)
    except (FmiclError, ValueError, TypeError) as err:  # torchvision's own checks included
        raise SpecError(f"[augment] recipe {recipe!r}: {err}") from None
    model, build_encoder = _build_model(spec, shape)
    return Parts(
        pretrain=pretrain_set
        if batched and batch_augment
        else SeededViews(pretrain_set, augment, seed),
        batch_augment=batch_augment if batched else None,
        train_eval=Transformed(train_set, eval_transform(train_set)),
        test_eval=Transformed(test_set, eval_transform(test_set)),
        test_views=SeededViews(test_set, augment, seed + 1),
        model=model,
        build_encoder=build_encoder,
        input_shape=shape,
    )


# ------------------------------------------------------------------------------ helpers


def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise SpecError("run.device = 'cuda' but no CUDA device is available; use 'auto'")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if name != "cpu":
        raise SpecError(f"run.device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    return torch.device("cpu")


def _autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise SpecError(f"train.precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    return contextlib.nullcontext()


def init_distributed(device: torch.device) -> None:
    """Join the process group ``torchrun`` describes (no-op in a single process)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        distributed.join(backend)


def _unique_dir(out: Path, name: str) -> Path:
    """``out/name``, or ``out/name-2``... : an existing run is never overwritten."""
    candidate, n = out / name, 1
    while os.path.lexists(candidate):  # a dangling symlink is taken too
        n += 1
        candidate = out / f"{name}-{n}"
    return candidate


class _Metrics:
    """``metrics.jsonl``: one JSON object per line, flushed as written."""

    def __init__(self, path: Path, keep_until_step: int | None) -> None:
        self.path = path
        if keep_until_step is not None and path.exists():  # resume: drop the lost tail
            kept = []
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:  # a line cut short by the kill
                    continue
                if record.get("step", 0) <= keep_until_step:
                    kept.append(line)
            path.write_text("".join(line + "\n" for line in kept))

    def write(self, **record: Any) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


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


def _bad_terms(model: nn.Module) -> str:
    """Which part of the objective went bad (for the NaN guard's message)."""
    objective = getattr(model, "objective", None)
    terms = getattr(objective, "last_terms", None)
    if not terms:
        return "the objective gives no per-term values"
    values = {name: float(value) for name, value in terms.items()}
    parts = [f"{name} = {value:.6g}" for name, value in values.items()]
    bad = [name for name, value in values.items() if not math.isfinite(value)]
    return (f"non-finite: {', '.join(bad)}; " if bad else "") + ", ".join(parts)


# ------------------------------------------------------------------------------ the loop


def train(
    spec: Spec | None,
    out: str | Path = "runs",
    *,
    resume: str | Path | None = None,
    overrides: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> RunResult:
    """Pretrain and evaluate as ``spec`` says; write everything into a run folder.

    Args:
        spec: a checked spec (:func:`load_spec`).
        out: the folder in which the run folder ``out/<run.name>`` is created.
        resume: a run folder to continue from its last checkpoint (``spec`` is then ignored:
            the run's own ``spec.toml`` is used, with ``overrides``). See :func:`_open_run`
            for what may change on resume; a larger ``train.epochs`` extends a run.
        overrides: ``section.key=value`` changes to the run's spec on resume.
        log: where the progress messages go.

    Example::

        from fmicl_registry.training import load_spec, train
        result = train(load_spec(None, ["train.epochs=2"]), "runs")
        print(result.report["metrics"]["linear_top1"])
    """
    opened: _Opened | None = None
    if resume is not None:
        run_dir = Path(resume)
        opened = _open_run(run_dir, overrides, log)
        spec = opened.spec
    if spec is None:
        raise SpecError("train() needs a spec (load_spec) or a run folder to resume")
    device = _device(spec["run"]["device"])
    init_distributed(device)
    rank, world = distributed.rank(), distributed.world_size()
    main = rank == 0
    # Data and model first: a spec that cannot be built (missing data, bad options) fails
    # before any run folder exists.
    seed = spec["run"]["seed"]
    torch.manual_seed(seed)
    parts = build(spec)
    # the batches' own checks (size, processes), before the run folder exists
    EpochBatches(len(parts.pretrain), batch_size=spec["train"]["batch_size"], seed=seed,
                 rank=rank, world_size=world)  # fmt: skip

    if resume is None:
        run_dir = _unique_dir(Path(out), spec["run"]["name"]) if main else Path(out)
        if world > 1:  # every process must agree on the folder
            names = [str(run_dir)]
            torch.distributed.broadcast_object_list(names, src=0)
            run_dir = Path(names[0])
        if main:
            try:
                run_dir.mkdir(parents=True)
            except OSError as err:
                raise SpecError(
                    f"cannot create the run folder {run_dir}: {err.strerror}; choose another --out"
                ) from None
            (run_dir / "spec.toml").write_text(spec.to_toml())
    checkpoints = run_dir / "checkpoints"
    model = parts.model.to(device)
    cfg = spec["train"]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(
        cfg["optimizer"],
        params,
        lr=cfg["lr"],
        momentum=cfg["momentum"],
        weight_decay=cfg["weight_decay"],
    )
    batches = EpochBatches(
        len(parts.pretrain), batch_size=cfg["batch_size"], seed=seed, rank=rank, world_size=world
    )
    steps_per_epoch = len(parts.pretrain) // cfg["batch_size"]
    total_steps = cfg["epochs"] * steps_per_epoch
    if cfg["max_steps"]:
        total_steps = min(total_steps, cfg["max_steps"])
    warmup = round(cfg["warmup_epochs"] * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, warmup_steps=warmup, total_steps=total_steps)
    )

    start_epoch, step = 0, 0
    if opened is not None:
        state, path = opened.state, opened.path
        _load_weights(model, state, path, opened.spec_file)
        try:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        except (ValueError, KeyError, TypeError, RuntimeError) as err:
            raise ckpt.CheckpointError(
                f"checkpoint {path}: its optimiser or scheduler state does not fit the "
                f"optimiser {opened.spec_file} describes ({type(err).__name__}: {err})"
            ) from None
        ckpt.set_rng_state(state["rng"])
        start_epoch, step = state["epoch"], state["step"]
        # The schedule is the one of the spec resumed with: the same as before, or, with more
        # epochs, the cosine over the new total from this step on (a warm restart).
        for group, base in zip(optimizer.param_groups, scheduler.base_lrs, strict=True):
            group["lr"] = base * warmup_cosine(step, warmup_steps=warmup, total_steps=total_steps)
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
        log(f"resuming {run_dir} from {path.name} (epoch {start_epoch}, step {step})")
        if main:
            _settle_resumed_folder(run_dir, opened, log)
    metrics = _Metrics(run_dir / "metrics.jsonl", step if resume is not None else None)
    if main and opened is not None and opened.changes:
        metrics.write(
            step=step,
            epoch=start_epoch,
            event="resumed",
            changed={key: list(values) for key, values in opened.changes.items()},
        )

    trained: nn.Module = model
    if world > 1:
        trained = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg["compile"]:
        trained = torch.compile(trained)  # type: ignore[assignment]
    loader = torch.utils.data.DataLoader(
        parts.pretrain,
        batch_sampler=batches,
        num_workers=spec["data"]["num_workers"],
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    eval_every = spec["eval"]["every"]
    started = time.perf_counter()
    seen = 0
    with _progress(cfg["progress"] and main) as progress:
        task = progress.add_task("train", total=steps_per_epoch, epoch=0, loss=0.0, rate=0.0)
        for epoch in range(start_epoch, cfg["epochs"]):
            if step >= total_steps:
                break
            if isinstance(parts.pretrain, SeededViews):
                parts.pretrain.set_epoch(epoch)
            batches.set_epoch(epoch)
            model.train()
            progress.reset(task, total=steps_per_epoch, epoch=epoch + 1, loss=0.0, rate=0.0)
            epoch_loss, epoch_steps, tic = 0.0, 0, time.perf_counter()
            for index, batch in enumerate(loader):
                if parts.modality == "text":  # the same sentences twice: dropout makes the views
                    view1 = view2 = list(batch[0])
                elif parts.batch_augment is None:
                    view1 = batch[0].to(device, non_blocking=True)
                    view2 = batch[1].to(device, non_blocking=True)
                else:  # one generator per global batch; this process keeps its rows
                    images = batch[0].to(device, non_blocking=True)
                    generator = torch.Generator().manual_seed(seed_of(seed, epoch, index))
                    rows = slice(rank * len(images), (rank + 1) * len(images))
                    total = cfg["batch_size"]
                    view1 = parts.batch_augment(images, generator, rows, total)
                    view2 = parts.batch_augment(images, generator, rows, total)
                with _autocast(cfg["precision"], device):
                    loss = trained(view1, view2)
                value = _global_mean(loss.detach().float())
                if not math.isfinite(value):
                    _diverged(metrics, run_dir, step, epoch, f"the loss is {value}", model)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                norm = float(torch.nn.utils.clip_grad_norm_(params, float("inf")))
                if not math.isfinite(norm):
                    _diverged(metrics, run_dir, step, epoch, f"the gradient norm is {norm}", model)
                optimizer.step()
                scheduler.step()
                step += 1
                epoch_steps += 1
                epoch_loss += value
                seen += cfg["batch_size"]
                rate = epoch_steps * cfg["batch_size"] / (time.perf_counter() - tic)
                progress.update(task, advance=1, loss=value, rate=rate)
                if main and (step % cfg["log_every"] == 0 or step == total_steps):
                    metrics.write(
                        step=step,
                        epoch=epoch + 1,
                        loss=value,
                        lr=scheduler.get_last_lr()[0],
                        images_per_s=rate,
                    )
                if step >= total_steps:
                    break
            record: dict[str, Any] = {
                "step": step,
                "epoch": epoch + 1,
                "epoch_loss": epoch_loss / max(1, epoch_steps),
                "epoch_seconds": time.perf_counter() - tic,
            }
            if main and eval_every and (epoch + 1) % eval_every == 0:
                if parts.modality == "text":
                    record["sts_spearman"] = _sts(spec, parts, model.encoder)["sts_spearman"]
                else:
                    record["knn_top1"] = _knn(spec, parts, model, device)
            if main:
                metrics.write(**record)
                knn = f", kNN {100 * record['knn_top1']:.2f}%" if "knn_top1" in record else ""
                if "sts_spearman" in record:
                    knn = f", STS Spearman {100 * record['sts_spearman']:.2f}"
                log(f"epoch {epoch + 1}/{cfg['epochs']}: loss {record['epoch_loss']:.4f}{knn}")
                every = cfg["checkpoint_every"]
                if (epoch + 1) % every == 0 or epoch + 1 == cfg["epochs"] or step >= total_steps:
                    ckpt.rotate_and_save(
                        {
                            "format": ckpt.FORMAT,
                            "version": __version__,
                            "epoch": epoch + 1,
                            "step": step,
                            "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(),
                            "rng": ckpt.rng_state(),
                            "spec": spec.data,  # what a resume is compared with
                        },
                        checkpoints,
                    )
    seconds = time.perf_counter() - started
    if world > 1:
        torch.distributed.barrier()
    training = {
        "steps": step,
        "epochs": cfg["epochs"],
        "seconds": seconds,
        "images_per_s": seen / seconds if seconds > 0 else None,
        "world_size": world,
    }
    report: dict[str, Any] = {}
    if main:
        report = evaluate_run(spec, parts, model, device, run_dir, training=training, log=log)
    return RunResult(run_dir, report)


def _global_mean(x: torch.Tensor) -> float:
    if distributed.is_initialized():
        x = x.clone()
        torch.distributed.all_reduce(x)
        x /= distributed.world_size()
    return float(x)


def _diverged(
    metrics: _Metrics, run_dir: Path, step: int, epoch: int, what: str, model: nn.Module
) -> None:
    terms = _bad_terms(model)
    last = ckpt.latest(run_dir / "checkpoints")
    metrics.write(step=step + 1, epoch=epoch + 1, event="diverged", what=what, terms=terms)
    kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
    raise TrainingDiverged(
        f"training stopped at step {step + 1} (epoch {epoch + 1}): {what} ({terms}); {kept}. "
        "Lower train.lr, use train.precision = 'fp32', or a smaller gamma/alpha, and start the "
        f"run again (fmicl train {run_dir / 'spec.toml'} --set ...): a run resumes only with "
        "the spec it was trained with."
    )


def _knn(spec: Spec, parts: Parts, model: nn.Module, device: torch.device) -> float:
    from ..evaluation import extract_features, knn_accuracy

    encoder: nn.Module = model.encoder  # type: ignore[assignment]
    size = spec["eval"]["batch_size"]
    train_x, train_y = extract_features(encoder, parts.train_eval, batch_size=size, device=device)
    test_x, test_y = extract_features(encoder, parts.test_eval, batch_size=size, device=device)
    return knn_accuracy(
        train_x,
        train_y,
        test_x,
        test_y,
        k=spec["eval"]["knn_k"],
        temperature=spec["eval"]["knn_temperature"],
    )


# ------------------------------------------------------------------------------ evaluation


def _probe(
    spec: Spec, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor]
) -> dict[str, float]:
    from ..evaluation import knn_accuracy, linear_probe

    cfg = spec["eval"]
    knn = knn_accuracy(*train, *test, k=cfg["knn_k"], temperature=cfg["knn_temperature"])
    probe = linear_probe(*train, *test, epochs=cfg["linear_epochs"], seed=spec["run"]["seed"])
    return {"knn_top1": knn, "linear_top1": probe.top1, "linear_train_top1": probe.train_top1}


def _pairs(
    encoder: nn.Module, views: SeededViews, device: torch.device, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of two views of every test image (for alignment and the distance plots); each
    pair of views is drawn once and both go through the encoder in the same batch."""
    from ..evaluation import extract_features

    both, _ = extract_features(
        _EachView(encoder), _BothViews(views), batch_size=batch_size, device=device
    )
    z1, z2 = both.chunk(2, dim=1)
    return z1, z2


class _BothViews(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """The two views of :class:`SeededViews` stacked, ``(2, C, H, W)``, as an ``(input, label)``
    data set."""

    def __init__(self, views: SeededViews) -> None:
        self.views = views

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        first, second, label = self.views[index]
        return torch.stack([first, second]), label


class _EachView(nn.Module):
    """``encoder`` applied to each view of a ``(B, 2, ...)`` batch: ``(B, 2 * F)`` features,
    the first view's then the second's."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.flatten(0, 1)).reshape(len(x), -1)


def evaluate_run(
    spec: Spec,
    parts: Parts,
    model: nn.Module,
    device: torch.device,
    run_dir: Path,
    *,
    training: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Evaluate the trained encoder (and the baselines), write ``report.json``, ``report.md``
    and the plots into ``run_dir``; return the report. A text run is scored on STS
    (:func:`_evaluate_sts`), an image run by kNN and linear probes."""
    from ..evaluation import alignment, distance_distribution, extract_features, uniformity
    from ..evaluation import raw_features as raw
    from .report import write_report

    if parts.modality == "text":
        return _evaluate_sts(spec, parts, model, device, run_dir, training=training, log=log)
    assert parts.test_views is not None
    cfg = spec["eval"]
    size = cfg["batch_size"]
    tic = time.perf_counter()
    encoder: nn.Module = model.encoder  # type: ignore[assignment]
    train = extract_features(encoder, parts.train_eval, batch_size=size, device=device)
    test = extract_features(encoder, parts.test_eval, batch_size=size, device=device)
    metrics = _probe(spec, train, test)
    parts.test_views.set_epoch(0)
    z1, z2 = _pairs(encoder, parts.test_views, device, size)
    metrics["alignment"] = alignment(z1, z2)
    metrics["uniformity"] = uniformity(torch.cat([z1, z2]))
    distances = {"pretrained": distance_distribution(z1, z2)}
    baselines: dict[str, dict[str, float]] = {}
    if cfg["baselines"]:
        baselines["raw_input"] = _probe(spec, raw(parts.train_eval), raw(parts.test_eval))
        random_encoder = parts.build_encoder().to(device)
        baselines["random_encoder"] = _probe(
            spec,
            extract_features(random_encoder, parts.train_eval, batch_size=size, device=device),
            extract_features(random_encoder, parts.test_eval, batch_size=size, device=device),
        )
        r1, r2 = _pairs(random_encoder, parts.test_views, device, size)
        baselines["random_encoder"]["alignment"] = alignment(r1, r2)
        baselines["random_encoder"]["uniformity"] = uniformity(torch.cat([r1, r2]))
        distances["random encoder"] = distance_distribution(r1, r2)
    report = _report(spec, run_dir, device, metrics, baselines, training, tic)
    write_report(report, run_dir, distances=distances)
    log(
        f"kNN top-1 {100 * metrics['knn_top1']:.2f}%, linear top-1 "
        f"{100 * metrics['linear_top1']:.2f}%"
        + (
            f" (raw input: {100 * baselines['raw_input']['linear_top1']:.2f}% linear)"
            if baselines
            else ""
        )
    )
    log(f"report: {run_dir / 'report.md'}")
    return report


def _report(
    spec: Spec,
    run_dir: Path,
    device: torch.device,
    metrics: dict[str, float],
    baselines: dict[str, dict[str, float]],
    training: dict[str, Any] | None,
    tic: float,
) -> dict[str, Any]:
    return {
        "run": spec["run"]["name"],
        "run_dir": str(run_dir),
        "metrics": metrics,
        "baselines": baselines,
        "training": training or _previous_training(run_dir),
        "evaluation_seconds": time.perf_counter() - tic,
        "spec": spec.data,
        "environment": {
            "fmicl_registry": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "device": str(device),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        },
    }


#: STS pairs at least this similar (0-5 scale) are the positive pairs of the alignment, as in
#: SimCSE's analysis (Gao, Yao and Chen 2021, section 5: STS-B pairs scored above 4).
STS_POSITIVE_SCORE = 4.0


def _sts(spec: Spec, parts: Parts, encoder: Any) -> dict[str, Any]:
    """STS metrics of ``encoder`` on the evaluation pairs, and its embeddings of them."""
    from ..evaluation import alignment, encode_sentences, sts_correlation, uniformity

    pairs = parts.test_eval
    size = spec["eval"]["batch_size"]
    z1 = encode_sentences(encoder, pairs.sentences1, batch_size=size)
    z2 = encode_sentences(encoder, pairs.sentences2, batch_size=size)
    result = sts_correlation(z1, z2, pairs.scores)
    out: dict[str, Any] = {"sts_spearman": result.spearman, "sts_pearson": result.pearson}
    positive = torch.as_tensor(pairs.scores) >= STS_POSITIVE_SCORE
    if int(positive.sum()) >= 1:
        out["alignment"] = alignment(z1[positive], z2[positive])
    out["uniformity"] = uniformity(torch.cat([z1, z2]))
    out["_positive"] = (z1[positive], z2[positive])
    return out


def _evaluate_sts(
    spec: Spec,
    parts: Parts,
    model: nn.Module,
    device: torch.device,
    run_dir: Path,
    *,
    training: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """A text run's evaluation: STS Spearman and Pearson (SimCSE's protocol: cosine of frozen
    embeddings against the gold scores), alignment on the pairs scored at least 4 and
    uniformity on every sentence (SimCSE's section 5), for the trained encoder and, as the
    baseline, the same encoder before training (for ``minilm``: the pretrained model as
    loaded); write the report."""
    from ..evaluation import distance_distribution
    from .report import write_report

    tic = time.perf_counter()
    distances: dict[str, dict[str, Any]] = {}

    def score(encoder: Any, label: str) -> dict[str, float]:
        out = _sts(spec, parts, encoder)
        z1, z2 = out.pop("_positive")
        if len(z1) >= 2:
            distances[label] = distance_distribution(z1, z2)
        return out

    metrics = score(model.encoder, "after training")
    baselines: dict[str, dict[str, float]] = {}
    if spec["eval"]["baselines"]:
        before = parts.build_encoder().to(device)
        baselines["before_training"] = score(before, "before training")
    report = _report(spec, run_dir, device, metrics, baselines, training, tic)
    write_report(report, run_dir, distances=distances)
    pairs = parts.test_eval
    log(
        f"STS Spearman {100 * metrics['sts_spearman']:.2f} on {pairs.name} {pairs.split} "
        f"({len(pairs)} pairs)"
        + (
            f" (before training: {100 * baselines['before_training']['sts_spearman']:.2f})"
            if baselines
            else ""
        )
    )
    log(f"report: {run_dir / 'report.md'}")
    return report


def _previous_training(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "report.json"
    if path.is_file():
        with contextlib.suppress(ValueError, KeyError):
            return dict(json.loads(path.read_text())["training"])
    return {}


def evaluate_checkpoint(
    run_dir: str | Path, *, overrides: Sequence[str] = (), log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Rebuild a run from its folder, load its last usable checkpoint and evaluate it again
    (``fmicl eval RUN_DIR``); ``overrides`` may change what :func:`_open_run` allows
    (``eval.knn_k=20``, ``data.root=...``). Nothing in the run folder but the report changes.
    """
    run_dir = Path(run_dir)
    opened = _open_run(run_dir, overrides, log)
    spec, state, path = opened.spec, opened.state, opened.path
    device = _device(spec["run"]["device"])
    torch.manual_seed(spec["run"]["seed"])
    parts = build(spec)
    _load_weights(parts.model, state, path, opened.spec_file)
    log(f"evaluating {path} (epoch {state['epoch']}, step {state['step']})")
    return evaluate_run(spec, parts, parts.model.to(device), device, run_dir, log=log)


@dataclass
class _Opened:
    """A run folder opened for resuming or evaluation: its spec (with the overrides), the
    checkpoint read, and the allowed changes from the spec that checkpoint recorded."""

    spec: Spec
    spec_file: Path
    state: dict[str, Any]
    path: Path
    changes: dict[str, tuple[Any, Any]]


def _open_run(run_dir: Path, overrides: Sequence[str], log: Callable[[str], None]) -> _Opened:
    """Read ``run_dir/spec.toml`` with ``overrides`` and the last usable checkpoint
    (:func:`checkpoint.load_latest`: verified, never unpickling code, ``previous.pt`` when
    ``last.pt`` is bad), and compare the spec with the one the checkpoint was trained with
    (:func:`checkpoint.compare_specs`).

    The rule: keys that leave the run meaningful may change and are logged (``train.epochs``
    when it grows, every ``[eval]`` key, ``train.progress``, ``train.log_every``,
    ``train.checkpoint_every``, ``data.num_workers``, ``data.root``, ``data.eval_*``,
    ``run.device``, ``run.name``); any other change (objective, divergence, backbone,
    architecture, augmentation, data set, lr, batch size, seed, optimiser, ...) is refused
    by :class:`checkpoint.SpecChanged` naming each key with its old and new value.
    """
    spec_file = run_dir / "spec.toml"
    if not spec_file.is_file():
        raise ckpt.CheckpointError(f"{run_dir} is not a run folder (no spec.toml in it)")
    spec = load_spec(spec_file, list(overrides))
    state, path = ckpt.load_latest(run_dir / "checkpoints", warn=log)
    against = f"{spec_file}" + (" with --set " + " ".join(overrides) if overrides else "")
    changes = compare_specs(state["spec"], spec.data, checkpoint=path, against=against)
    for key, (old, new) in changes.items():
        log(f"changed since the checkpoint: {key} = {new!r} (was {old!r})")
    return _Opened(spec, spec_file, state, path, changes)


def _load_weights(model: nn.Module, state: dict[str, Any], path: Path, spec_file: Path) -> None:
    """The checkpoint's weights into ``model``; a named error when they do not fit it."""
    weights, expected = state["model"], model.state_dict()
    problems = [f"{k} is missing" for k in expected if k not in weights]
    problems += [f"{k} is not in the model" for k in weights if k not in expected]
    problems += [
        f"{k} has shape {list(weights[k].shape)} in the checkpoint, {list(v.shape)} in the model"
        for k, v in expected.items()
        if k in weights and weights[k].shape != v.shape
    ]
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ckpt.CheckpointError(
            f"checkpoint {path} does not fit the model {spec_file} describes: "
            f"{'; '.join(problems[:5])}{more}. It was written for another backbone, "
            "architecture or version of them"
        )
    model.load_state_dict(weights)


def _settle_resumed_folder(run_dir: Path, opened: _Opened, log: Callable[[str], None]) -> None:
    """On resume (main process): set an unusable ``last.pt`` aside, remove the temporary
    files of a killed save, and write the spec with its allowed changes to ``spec.toml``."""
    folder = run_dir / "checkpoints"
    last = folder / "last.pt"
    if opened.path.name == "previous.pt" and os.path.lexists(last):
        log(f"set aside the unusable {last} as {ckpt.set_aside(last).name}")
    stale = ckpt.remove_stale(folder)
    if stale:
        log(f"removed {len(stale)} unfinished checkpoint file(s) of a killed save")
    if opened.changes:
        tmp = run_dir / ".spec.toml.tmp"
        tmp.write_text(opened.spec.to_toml())
        os.replace(tmp, opened.spec_file)
