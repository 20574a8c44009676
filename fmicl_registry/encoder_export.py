"""Export a run's trained encoder, and load an exported one back without running its code.

:func:`export` writes the backbone a run trained (the architecture's ``encoder``, without the
projection head) from the run folder's last usable checkpoint, in one of three formats:

- ``"safetensors"`` (default): ``<run>.safetensors``, the encoder's state dict plus, in the
  file's own metadata, how to rebuild it with the registry (:class:`EncoderInfo`: the backbone's
  registered name and options, the input shape, the normalisation, the feature size, the
  objective, the run and the fmicl-registry version) and the SHA-256 of the tensors.
  :func:`load_encoder` reads it: safetensors holds tensors and text only, so nothing in the
  file is executed; the backbone is rebuilt with ``fm.build("backbones", name, **options)``
  and the tensors are loaded strictly. The description lives inside the file (not in a JSON
  beside it) so that it cannot be separated from, or mismatched with, its tensors.
- ``"torchvision"``: ``<run>.pth``, a plain ``torch.save``'d state dict (tensors only; it loads
  with ``torch.load(weights_only=True)``) for the ResNet backbones, which is torchvision's
  ``resnet18()`` / ``resnet50()`` without ``fc``: set ``model.fc = nn.Identity()`` and, for
  the CIFAR stem, ``model.conv1`` (3x3, stride 1) and ``model.maxpool = nn.Identity()``
  (:func:`torchvision_recipe` prints the lines for a given export).
- ``"torch-export"``: ``<run>.pt2``, a ``torch.export`` program of the encoder (batch size
  free), loaded with ``torch.export.load(path).module()`` with no fmicl-registry installed.
  Loading it runs the program it holds: load only files you trust (a safetensors export holds
  no program). ``torch.export`` replaces TorchScript, whose ``torch.jit.script`` is deprecated.

Export needs the data set the run was trained on, at ``data.root``, to read its image shape and
normalisation (``--set data.root=FOLDER`` points at a moved copy).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from ._version import __version__
from .errors import BackboneError, CheckpointError, FmiclError

#: The export formats and the suffix of the file each writes.
FORMATS = {"safetensors": ".safetensors", "torchvision": ".pth", "torch-export": ".pt2"}
#: The metadata key of a safetensors export (and the extra file of a torch-export one).
INFO_KEY = "fmicl_export"
#: The metadata key of the tensors' SHA-256 in a safetensors export.
DIGEST_KEY = "fmicl_tensors_sha256"
#: Bumped when :class:`EncoderInfo` changes incompatibly.
INFO_FORMAT = 1
#: The backbones that are torchvision models (``--format torchvision``).
TORCHVISION_BACKBONES = ("resnet18", "resnet50")


@dataclass(frozen=True)
class EncoderInfo:
    """What an exported encoder is and how to feed it (the metadata of a safetensors export).

    Attributes:
        backbone: the registered backbone name (``fm.build("backbones", backbone, ...)``).
        options: the backbone's options, without ``input_shape``.
        input_shape: ``(C, H, W)`` of the images it was trained on; None for a text encoder.
        mean, std: the per-channel normalisation of its inputs (None for text).
        output_dim: the feature size.
        objective: the run's objective, for information (``{"name": ..., **options}``).
        architecture: the run's architecture, for information.
        run: the run folder's name; epoch, step: of the checkpoint exported.
        version: the fmicl-registry version that exported it.
    """

    backbone: str
    options: dict[str, Any]
    input_shape: tuple[int, int, int] | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    output_dim: int
    objective: dict[str, Any] = field(default_factory=dict)
    architecture: str = ""
    run: str = ""
    epoch: int = 0
    step: int = 0
    version: str = __version__

    @property
    def preprocess(self) -> str:
        """How to turn an image into the encoder's input, in words."""
        if self.input_shape is None:
            return "a list of sentences (str); the encoder tokenises them itself"
        c, h, w = self.input_shape
        return (
            f"images of {c} channel(s), {h}x{w} pixels, as float32 in [0, 1] (uint8 / 255), "
            f"then normalised per channel: (x - mean) / std with mean {list(self.mean or ())} "
            f"and std {list(self.std or ())}"
        )

    def to_json(self) -> str:
        """The JSON stored in an export (with ``format`` and ``preprocess``)."""
        data = asdict(self)
        for key in ("input_shape", "mean", "std"):
            data[key] = None if data[key] is None else list(data[key])
        return json.dumps({"format": INFO_FORMAT, **data, "preprocess": self.preprocess})

    @classmethod
    def from_json(cls, text: str, where: str) -> EncoderInfo:
        """Parse and check the JSON of an export; :class:`CheckpointError` names what is wrong."""
        try:
            data = json.loads(text)
        except ValueError as err:
            raise CheckpointError(f"{where}: its {INFO_KEY} metadata is not JSON ({err})") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"{where}: its {INFO_KEY} metadata is not a JSON object")
        found = data.get("format")
        if found != INFO_FORMAT:
            newer = isinstance(found, int) and found > INFO_FORMAT
            raise CheckpointError(
                f"{where}: export format {found!r}, this fmicl-registry ({__version__}) reads "
                f"format {INFO_FORMAT}" + ("; upgrade fmicl-registry" if newer else "")
            )

        def bad(key: str, what: str) -> CheckpointError:
            return CheckpointError(
                f"{where}: its {INFO_KEY} metadata has {key} = {data.get(key)!r}, which is not "
                f"{what}; the file was altered: export the run again (fmicl export RUN)"
            )

        if not isinstance(data.get("backbone"), str) or not data["backbone"]:
            raise bad("backbone", "a registered backbone name")
        if not isinstance(data.get("options"), dict):
            raise bad("options", "a table of backbone options")
        shape = data.get("input_shape")
        if shape is not None and not (
            isinstance(shape, list) and len(shape) == 3 and all(_is_count(v) for v in shape)
        ):
            raise bad("input_shape", "[channels, height, width] or null")
        stats: dict[str, tuple[float, ...] | None] = {}
        for key in ("mean", "std"):
            value = data.get(key)
            ok = value is None if shape is None else _floats(value, shape[0])
            if not ok:
                raise bad(key, "one number per channel" if shape else "null (a text encoder)")
            stats[key] = None if value is None else tuple(float(v) for v in value)
        if stats["mean"] is not None and not all(math.isfinite(v) for v in stats["mean"]):
            raise bad("mean", "finite numbers")
        if stats["std"] is not None and not all(math.isfinite(v) and v > 0 for v in stats["std"]):
            raise bad("std", "positive numbers (images are divided by them)")
        if not _is_count(data.get("output_dim")):
            raise bad("output_dim", "a feature size >= 1")
        for key, kind, what in (
            ("objective", dict, "a table"),
            ("architecture", str, "a name"),
            ("run", str, "a name"),
            ("version", str, "a version"),
        ):
            if not isinstance(data.get(key, kind()), kind):
                raise bad(key, what)
        for key in ("epoch", "step"):
            value = data.get(key, 0)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise bad(key, "a count")
        return cls(
            backbone=data["backbone"],
            options=data["options"],
            input_shape=None if shape is None else (shape[0], shape[1], shape[2]),
            mean=stats["mean"],
            std=stats["std"],
            output_dim=data["output_dim"],
            objective=data.get("objective", {}),
            architecture=data.get("architecture", ""),
            run=data.get("run", ""),
            epoch=data.get("epoch", 0),
            step=data.get("step", 0),
            version=data.get("version", "unknown"),
        )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _floats(value: Any, n: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == n
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )


# ------------------------------------------------------------------------------ the run


def encoder_from_run(
    run_dir: str | os.PathLike[str],
    *,
    overrides: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> tuple[nn.Module, EncoderInfo, bool]:
    """The trained encoder of a run folder (eval mode, on the CPU), what it is, and whether it
    is the registered backbone itself (so that ``fm.build("backbones", ...)`` rebuilds it).

    The checkpoint is read verified (:func:`.training.run_folder.open_run`: checksum,
    weights-only, ``previous.pt`` when ``last.pt`` is unusable); the model is rebuilt from the
    run's ``spec.toml`` through the registry and loaded strictly. The image shape and
    normalisation are those the checkpoint records; a checkpoint of an older version records
    none, and the pretraining data set is opened for them (not read through).
    """
    from .architectures import default_backbone
    from .components import build
    from .training.run_folder import open_run

    opened = open_run(Path(run_dir), list(overrides), log)
    spec = opened.spec
    recorded = _recorded_inputs(opened.state.get("inputs"))
    if recorded is not None:  # what the checkpoint says the inputs are: no data needed
        pretrain: Any = recorded
    else:
        pretrain = _open_pretrain(opened, build)
    text = getattr(pretrain, "modality", "image") == "text"
    shape = None if text else tuple(int(v) for v in pretrain.input_shape)
    architecture, objective = spec.architecture.name, spec.objective.name
    assert architecture is not None and objective is not None
    name = spec.backbone.name or default_backbone(architecture)
    _refuse_python_object(opened.folder.path, "backbone", name)
    options = dict(spec.backbone.options)
    backbone = build(
        "backbones", name, **options, **({} if shape is None else {"input_shape": shape})
    )
    model = build(
        "architectures",
        architecture,
        **spec.architecture.options,
        backbone=backbone,
        objective=build("objectives", objective, **spec.objective.options),
    )
    opened.load_weights(model)
    encoder = model.encoder
    assert isinstance(encoder, nn.Module)
    encoder.eval()
    info = EncoderInfo(
        backbone=name,
        options=options,
        input_shape=None if shape is None else (shape[0], shape[1], shape[2]),
        mean=None if text else tuple(float(v) for v in pretrain.mean),
        std=None if text else tuple(float(v) for v in pretrain.std),
        output_dim=int(getattr(encoder, "output_dim", 0)),
        objective={"name": objective, **spec.objective.options},
        architecture=architecture,
        run=opened.folder.path.resolve().name,
        epoch=int(opened.state["epoch"]),
        step=int(opened.state["step"]),
    )
    return encoder, info, encoder is backbone


def _refuse_python_object(run: Path, section: str, name: str | None) -> None:
    """A :class:`CheckpointError` when the run's ``section`` (``backbone`` or ``data``) was a
    Python object given to ``fm.train`` (``python.<Class>``, not registered now): the run
    folder records its name only, so nothing can rebuild it."""
    from .components import registry
    from .training.objects import PREFIX

    kind, what, given = (
        ("datasets", "data set", "dataset")
        if section == "data"
        else ("backbones", section, section)
    )
    if name is None or not name.startswith(PREFIX) or name in registry().names(kind):
        return
    if section == "backbone":
        how = (
            "From Python, the trained module is `result.encoder` (result = fm.train(...)): "
            "save it with torch.save(result.encoder.state_dict(), 'encoder.pt') or "
            "safetensors.torch.save_file(result.encoder.state_dict(), 'encoder.safetensors'), "
            "and load those weights into your own class"
        )
    else:
        how = (
            "its checkpoint predates the recorded input shape and normalisation; pass the "
            "same object again from Python: fm.train(resume=RUN, dataset=...)"
        )
    raise CheckpointError(
        f"{run}: the run's {what} {name!r} was an object passed to fm.train({given}=...), "
        f"not a registered {what}; the run folder holds its name, not its code, so fmicl "
        f"export / fmicl embed / fm.load_encoder cannot rebuild it. {how}"
    )


def _open_pretrain(opened: Any, build: Callable[..., Any]) -> Any:
    """The run's pretraining data set, opened for its shape and statistics (runs whose
    checkpoints do not record them)."""
    spec = opened.spec
    data = spec.dataset
    _refuse_python_object(opened.folder.path, "data", data.name)
    try:
        return build(
            "datasets",
            data.name,
            root=data.root,
            download=False,
            split="pretrain",
            **spec.dataset_options(),
        )
    except FmiclError as err:
        raise CheckpointError(
            f"{opened.folder.path}: the encoder's input shape and normalisation are read from "
            f"the data set it was trained on ({data.name!r}), which cannot be opened: {err}. "
            "Point at it with --set data.root=FOLDER (Python: overrides=['data.root=FOLDER'])"
        ) from None


def _recorded_inputs(value: Any) -> Any:
    """The ``inputs`` a checkpoint recorded (image shape, mean, std), or None when it has
    none or they are malformed (the data set is then opened instead)."""
    if not isinstance(value, dict):
        return None
    shape, mean, std = value.get("input_shape"), value.get("mean"), value.get("std")
    if not (isinstance(shape, list) and len(shape) == 3 and all(map(_is_count, shape))):
        return None
    if not (isinstance(mean, list) and isinstance(std, list)):
        return None
    if not (_floats(mean, shape[0]) and _floats(std, shape[0])):
        return None
    return SimpleNamespace(input_shape=tuple(shape), mean=tuple(mean), std=tuple(std))


# ------------------------------------------------------------------------------ writing


def _target(out: str | os.PathLike[str] | None, run_dir: Path, fmt: str, force: bool) -> Path:
    """Where an export of ``run_dir`` goes: ``out`` (a file, or a folder to put
    ``<run><suffix>`` in), by default ``<run><suffix>`` in the current folder; checked by
    :func:`check_outputs` (an existing file is replaced only with ``force``)."""
    name = f"{run_dir.resolve().name}{FORMATS[fmt]}"
    path = Path.cwd() / name if out is None else Path(out).expanduser()
    if out is not None and str(out).endswith(("/", os.sep)) and not path.is_dir():
        raise FmiclError(
            f"--out {out}: the folder {path} does not exist; create it first (mkdir -p "
            f"{path}) or name the file to write"
        )
    if path.is_dir():
        path = path / name
    check_outputs([path], force, run_dir=run_dir)
    return path


def check_outputs(
    paths: Sequence[Path], force: bool, *, run_dir: str | os.PathLike[str] | None = None
) -> None:
    """An :class:`FmiclError` saying what is wrong when one of ``paths`` cannot be written,
    checked before any work (and before any of them is written): its folder must exist, be a
    folder and be writable; the path must not be a folder; it must not lie in a run folder's
    ``checkpoints/`` (links resolved), nor in ``run_dir``'s; an existing file is replaced only
    with ``force`` (:func:`refuse_existing`).

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> (folder / "p1.toml").write_text("")
        0
        >>> try:
        ...     check_outputs([folder / "p1.toml" / "x.npy"], force=False)
        ... except FmiclError as err:
        ...     print("is a file, not a folder" in str(err))
        True
    """
    checked: set[Path] = set()
    for path in paths:
        _refuse_checkpoints(path, run_dir)
        if path.is_dir():
            raise FmiclError(
                f"{path} is a folder, not a file; the output must be a file name: choose "
                "another output path (or remove or rename that folder)"
            )
        parent = path.parent
        if parent in checked:
            continue
        checked.add(parent)
        if not parent.is_dir():
            raise FmiclError(_missing_folder(path))
        _check_writable(parent)
    refuse_existing(paths, force)


def _missing_folder(path: Path) -> str:
    """Why ``path`` cannot be written when its folder is not a folder."""
    for above in path.parents:
        if os.path.lexists(above) and not above.is_dir():
            return (
                f"cannot write {path}: {above} is a file, not a folder; choose an output path "
                "in a folder"
            )
        if above.is_dir():
            break
    return (
        f"cannot write {path}: the folder {path.parent} does not exist; create it first "
        f"(mkdir -p {path.parent}) or choose an output path in an existing folder"
    )


def _check_writable(folder: Path) -> None:
    """An :class:`FmiclError` when a file cannot be created in ``folder`` (one is created
    and removed to tell)."""
    probe = folder / f".fmicl-write-check.{secrets.token_hex(4)}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as err:
        raise FmiclError(
            f"cannot write in the folder {folder}: {err.strerror or err}; choose an output "
            "path in a folder you can write to"
        ) from None
    probe.unlink(missing_ok=True)


def _refuse_checkpoints(path: Path, run_dir: str | os.PathLike[str] | None) -> None:
    """An :class:`FmiclError` when ``path`` lies in the ``checkpoints/`` folder of a run folder
    (``run_dir``'s, or any that ``fmicl train`` wrote), as written or with links resolved: an
    output there would replace or sit among the run's checkpoints."""
    from .data._image_files import is_run_folder

    written = Path(os.path.abspath(path))
    resolved = path.resolve()
    folders = [Path(run_dir).resolve() / "checkpoints"] if run_dir is not None else []
    for candidate in (written, resolved):
        folders += [
            above.resolve()
            for above in candidate.parents
            if above.name == "checkpoints" and is_run_folder(above.parent)
        ]
    for folder in folders:
        if resolved == folder or folder in resolved.parents:
            raise FmiclError(
                f"{path} is in the checkpoints folder of the run {folder.parent} "
                f"({folder}); an output there would replace the run's own checkpoints: choose "
                "an output path outside it"
            )


def refuse_existing(paths: Sequence[Path], force: bool) -> None:
    """An :class:`FmiclError` when one of ``paths`` exists and ``force`` is false."""
    taken = [str(p) for p in paths if os.path.lexists(p)]
    if taken and not force:
        raise FmiclError(
            f"{', '.join(taken)} already exists; choose another output path, or pass "
            "--force (Python: force=True) to replace it"
        )


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` into a temporary file beside ``path``, then rename it to ``path``: a
    reader never sees half a file, and a failed write leaves nothing behind."""
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # umask applies
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise FmiclError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as separate, contiguous CPU tensors (safetensors refuses shared ones)."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """A SHA-256 of named tensors (name, dtype, shape and bytes, by name), whatever the file
    layout that holds them."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{list(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def export(
    run_dir: str | os.PathLike[str],
    format: str = "safetensors",
    out: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    overrides: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> Path:
    """Write the trained backbone of ``run_dir`` (without the projection head) as ``format``.

    Args:
        run_dir: a run folder (``fmicl train`` made it); its last usable checkpoint is read.
        format: ``"safetensors"`` (loads with :func:`load_encoder`, any backbone),
            ``"torchvision"`` (a state dict for torchvision's ResNets) or ``"torch-export"``
            (a ``torch.export`` program; loading it runs it). See the module's docstring.
        out: the file to write, or a folder for ``<run name><suffix>``; default: the current
            folder.
        force: replace an existing file (else an :class:`~fmicl_registry.errors.FmiclError`).
        overrides: allowed spec changes, e.g. ``["data.root=/elsewhere"]``.
        log: where the progress messages go.

    Returns the path written.

    Example (a tiny run on the embedded digits, exported and loaded back):
        >>> import tempfile, torch, fmicl_registry as fm
        >>> tiny = ["train.epochs=1", "train.warmup_epochs=0.0", "train.progress=false",
        ...         "backbone.width=8",
        ...         "eval.linear_epochs=1", "eval.baselines=false"]
        >>> run = fm.train(fm.load_spec(None, tiny), tempfile.mkdtemp(), log=lambda m: None)
        >>> path = fm.export(run.run_dir, out=tempfile.mkdtemp(), log=lambda m: None)
        >>> path.name
        'digits.safetensors'
        >>> encoder = fm.load_encoder(path)
        >>> encoder(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 128])
    """
    if format not in FORMATS:
        raise FmiclError(f"no export format {format!r}; choose from {', '.join(FORMATS)}")
    path = _target(out, Path(run_dir).expanduser(), format, force)  # before the work
    encoder, info, is_backbone = encoder_from_run(run_dir, overrides=overrides, log=log)
    if format == "safetensors":
        _write_safetensors(encoder, info, is_backbone, path)
    elif format == "torchvision":
        _write_torchvision(encoder, info, is_backbone, path)
    else:
        _write_program(encoder, info, path)
    log(f"wrote {path} ({format}: backbone {info.backbone}, {info.output_dim} features)")
    if format == "safetensors":
        log(f"load it: fmicl_registry.load_encoder({str(path)!r})\ninputs: {info.preprocess}")
    elif format == "torchvision":
        log(f"load it into torchvision:\n{torchvision_recipe(info, path)}")
    else:
        log(f"load it (this runs the program it holds): torch.export.load({str(path)!r}).module()")
    return path


def _not_the_backbone(info: EncoderInfo, fmt: str) -> BackboneError:
    return BackboneError(
        f"architecture {info.architecture!r} evaluates an encoder that is not the backbone "
        f"{info.backbone!r} itself, so its weights would not load into "
        f"fm.build('backbones', {info.backbone!r}); --format {fmt} cannot describe it: use "
        "--format torch-export"
    )


def _write_safetensors(
    encoder: nn.Module, info: EncoderInfo, is_backbone: bool, path: Path
) -> None:
    from safetensors.torch import save

    if not is_backbone:
        raise _not_the_backbone(info, "safetensors")
    tensors = _tensors(encoder)
    metadata = {"format": "pt", INFO_KEY: info.to_json(), DIGEST_KEY: tensors_sha256(tensors)}
    data = save(tensors, metadata=metadata)  # bytes (save_file would make the file 0600)
    write_atomic(path, lambda tmp: _write_bytes(tmp, data))


def _write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _write_torchvision(
    encoder: nn.Module, info: EncoderInfo, is_backbone: bool, path: Path
) -> None:
    if info.backbone not in TORCHVISION_BACKBONES:
        raise BackboneError(
            f"--format torchvision is for the backbones that are torchvision models "
            f"({', '.join(TORCHVISION_BACKBONES)}); this run's backbone is {info.backbone!r}: "
            "use --format safetensors (loads with fm.load_encoder) or --format torch-export"
        )
    if not is_backbone:
        raise _not_the_backbone(info, "torchvision")
    tensors = _tensors(encoder)
    write_atomic(path, lambda tmp: torch.save(tensors, tmp))


def torchvision_recipe(info: EncoderInfo, path: str | os.PathLike[str]) -> str:
    """The Python lines that load a ``torchvision`` export into the plain torchvision model.

    Example:
        >>> info = EncoderInfo("resnet18", {}, (3, 32, 32), (0.5,) * 3, (0.25,) * 3, 512)
        >>> print(torchvision_recipe(info, "run.pth"))
        import torch, torchvision
        model = torchvision.models.resnet18()
        model.fc = torch.nn.Identity()  # the 512 features, not ImageNet's classes
        model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)  # the CIFAR stem
        model.maxpool = torch.nn.Identity()
        model.load_state_dict(torch.load('run.pth'))
        # inputs: images of 3 channel(s), 32x32 pixels, ...
    """
    assert info.input_shape is not None
    channels, height, _ = info.input_shape
    cifar = info.options.get("cifar_stem")
    cifar = height <= 64 if cifar is None else bool(cifar)
    lines = [
        "import torch, torchvision",
        f"model = torchvision.models.{info.backbone}()",
        f"model.fc = torch.nn.Identity()  # the {info.output_dim} features, not ImageNet's classes",
    ]
    if cifar:
        lines += [
            f"model.conv1 = torch.nn.Conv2d({channels}, 64, 3, 1, 1, bias=False)  # the CIFAR stem",
            "model.maxpool = torch.nn.Identity()",
        ]
    elif channels != 3:
        lines.append(f"model.conv1 = torch.nn.Conv2d({channels}, 64, 7, 2, 3, bias=False)")
    lines.append(f"model.load_state_dict(torch.load({str(path)!r}))")
    lines.append(f"# inputs: {info.preprocess}")
    return "\n".join(lines)


def _write_program(encoder: nn.Module, info: EncoderInfo, path: Path) -> None:
    if info.input_shape is None:
        raise BackboneError(
            f"backbone {info.backbone!r} takes a list of sentences, which torch.export cannot "
            "trace (it exports programs of tensors): use --format safetensors"
        )
    example = torch.zeros(2, *info.input_shape)
    batch = torch.export.Dim("batch", min=1)
    try:
        program = torch.export.export(encoder, (example,), dynamic_shapes=({0: batch},))
    except Exception as err:  # torch.export's many failure types
        first = (str(err).strip().splitlines() or [""])[0][:300]
        raise BackboneError(
            f"backbone {info.backbone!r} cannot be exported with torch.export "
            f"({type(err).__name__}: {first}): use --format safetensors"
        ) from None
    extra = {f"{INFO_KEY}.json": info.to_json()}
    write_atomic(path, lambda tmp: torch.export.save(program, tmp, extra_files=extra))


# ------------------------------------------------------------------------------ loading


def read_info(path: str | os.PathLike[str]) -> EncoderInfo:
    """What a safetensors export holds, read from its header only (no tensor is loaded).

    Example:
        >>> import tempfile
        >>> try:
        ...     read_info(tempfile.mkdtemp())
        ... except CheckpointError as err:
        ...     print("not a file" in str(err))
        True
    """
    return _open_safetensors(Path(path), tensors=False)[0]


def _open_safetensors(
    path: Path, *, tensors: bool
) -> tuple[EncoderInfo, dict[str, torch.Tensor], str]:
    """The info, the tensors (when asked) and the recorded digest of a safetensors export."""
    from safetensors import safe_open

    if not path.is_file():
        raise CheckpointError(
            f"{path} is not a file" + (" (it does not exist)" if not path.exists() else "")
        )
    if _is_program(path):
        raise CheckpointError(
            f"{path} is a torch-export program (.pt2, fmicl export --format torch-export); "
            "fmicl embed and fm.load_encoder do not read it, because loading it runs the "
            "program it holds (load it yourself, if you trust it, with "
            "torch.export.load(path).module()). Give the safetensors export instead (fmicl "
            "export RUN, the default format) or the run folder"
        )
    loaded: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            if tensors:
                loaded = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except Exception as err:  # safetensors' own errors: a bad header, a short file
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(
            f"{path} is not a readable safetensors file: it is truncated, corrupted or of "
            f"another format ({type(err).__name__}: {first}); nothing in it was run. Export "
            "the run again: fmicl export RUN"
        ) from None
    if INFO_KEY not in metadata:
        raise CheckpointError(
            f"{path} is a safetensors file but not an encoder exported by fmicl-registry (its "
            f"metadata has no {INFO_KEY!r} entry saying how to rebuild it); export one with "
            "fmicl export RUN"
        )
    info = EncoderInfo.from_json(metadata[INFO_KEY], str(path))
    return info, loaded, metadata.get(DIGEST_KEY, "")


def _is_program(path: Path) -> bool:
    """Whether ``path`` is a torch-export program: named ``.pt2``, or a zip archive with a
    torch-export ``archive_format`` entry (only the archive's list of names is read)."""
    import zipfile

    if path.suffix.lower() == ".pt2":
        return True
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
    return any(n == "archive_format" or n.endswith("/archive_format") for n in names)


def load_encoder(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    overrides: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> nn.Module:
    """The encoder in a safetensors export (or a run folder's trained encoder), in eval mode.

    A ``.safetensors`` file is read without running anything in it: the backbone its metadata
    names is rebuilt with ``fm.build("backbones", name, **options)`` and its tensors are loaded
    strictly, after their SHA-256 is checked against the one recorded at export. A run folder
    is rebuilt from its checkpoint (``overrides`` as for :func:`export`). The module has an
    ``encoder_info`` attribute (:class:`EncoderInfo`: input shape, normalisation, ...).

    An image backbone is first built on the meta device (no memory) and its tensors' names and
    shapes compared with the file's, so that altered options cannot make it allocate a huge
    model. A torch-export program (``.pt2``) is refused unread: loading it runs it.

    A file that is not such an export, was altered or truncated, names a backbone that is not
    registered, or holds tensors that do not fit it, is a
    :class:`~fmicl_registry.errors.CheckpointError` saying which.

    Example:
        >>> import tempfile, fmicl_registry as fm
        >>> try:
        ...     fm.load_encoder(tempfile.mkdtemp())
        ... except fm.CheckpointError as err:
        ...     print("no spec.toml" in str(err))
        True
    """
    source = Path(path)
    if source.is_dir():
        encoder, info, _ = encoder_from_run(source, overrides=overrides, log=log)
    else:
        info, tensors, digest = _open_safetensors(source, tensors=True)
        if digest != tensors_sha256(tensors):
            raise CheckpointError(
                f"{source}: its tensors do not match the SHA-256 recorded when it was exported "
                f"({digest[:12] or 'none recorded'}...): the file was altered or corrupted; "
                "export the run again (fmicl export RUN)"
            )
        encoder = _rebuild(info, tensors, source)
    setattr(encoder, "encoder_info", info)  # noqa: B010
    return encoder.to(device).eval()


def _rebuild(info: EncoderInfo, tensors: dict[str, torch.Tensor], source: Path) -> nn.Module:
    """The backbone ``info`` names with ``tensors`` loaded strictly. An image backbone is first
    built on the meta device (no memory) and its names and shapes compared with the file's,
    so that options altered to ask for a huge model are refused before anything is
    allocated (a text backbone loads its pretrained files: it is built directly)."""
    if "input_shape" in info.options:
        raise CheckpointError(
            f"{source}: its metadata gives input_shape among the backbone options; it belongs "
            "in input_shape: the file was altered, export the run again"
        )
    if info.input_shape is not None:
        try:
            with torch.device("meta"):
                meta = _build_backbone(info, source, meta=True)
        except CheckpointError:
            raise
        except Exception:  # a plugin backbone whose construction needs real tensors
            meta = None  # (it is then checked once built, as before)
        if meta is not None:
            _check_fits(info, meta.state_dict(), tensors, source)
            _check_output_dim(info, meta, source)
    encoder = _build_backbone(info, source)
    _check_fits(info, encoder.state_dict(), tensors, source)
    _check_output_dim(info, encoder, source)
    encoder.load_state_dict(tensors, strict=True)
    return encoder


def _build_backbone(info: EncoderInfo, source: Path, *, meta: bool = False) -> nn.Module:
    """``fm.build("backbones", ...)`` as ``info`` says; a failure is a
    :class:`CheckpointError` (other than an FmiclError's, raised as is when ``meta``)."""
    from .components import build

    shape = {} if info.input_shape is None else {"input_shape": info.input_shape}
    try:
        encoder = build("backbones", info.backbone, **info.options, **shape)
    except Exception as err:
        if meta and not isinstance(err, FmiclError):
            raise
        what = str(err) if isinstance(err, FmiclError) else f"{type(err).__name__}: {err}"
        raise CheckpointError(
            f"{source}: cannot rebuild its backbone {info.backbone!r} with options "
            f"{info.options} and input shape {info.input_shape}: {what}"
        ) from None
    if not isinstance(encoder, nn.Module):
        raise CheckpointError(
            f"{source}: backbone {info.backbone!r} built a {type(encoder).__name__}, not an "
            "nn.Module"
        )
    return encoder


def _check_fits(
    info: EncoderInfo,
    expected: Mapping[str, torch.Tensor],
    tensors: Mapping[str, torch.Tensor],
    source: Path,
) -> None:
    """A :class:`CheckpointError` naming each tensor that the backbone lacks, has and the file
    lacks, or has of another shape."""
    from .training.checkpoint_file import state_dict_problems

    problems = state_dict_problems(
        expected, tensors, given_in="the file", expected_in="the backbone"
    )
    if problems:
        raise CheckpointError(
            f"{source}: its tensors do not fit backbone {info.backbone!r} built with options "
            f"{info.options} and input shape {info.input_shape}: {problems}. The metadata was "
            "altered, or the backbone's code changed since the export"
        )


def _check_output_dim(info: EncoderInfo, encoder: nn.Module, source: Path) -> None:
    built = getattr(encoder, "output_dim", None)
    if isinstance(built, int) and built != info.output_dim:
        raise CheckpointError(
            f"{source}: its metadata says output_dim = {info.output_dim}, but backbone "
            f"{info.backbone!r} built with options {info.options} gives {built} features: the "
            "file was altered, export the run again (fmicl export RUN)"
        )
