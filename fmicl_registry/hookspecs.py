"""The plugin contract: every hook fmicl-registry calls, in one file.

A plugin is a module (or any object) with functions decorated by ``fmicl_registry.hookimpl``
and named after these specs. Third-party plugins are found through the entry-point group
``fmicl``::

    # pyproject.toml of a third-party package
    [project.entry-points.fmicl]
    my_plugin = "my_package.fmicl_plugin"

Every component hook receives one argument, ``register``: call it once per component. The
built-in components are registered by built-in plugins through these very hooks. Names are
unique per kind; a second registration of a name is skipped (the built-in, or the first, is
kept) with a warning that names both plugins. ``register_commands`` receives the ``fmicl``
command line instead, a click group, and adds commands to it (``fmicl bench mi`` is one).

Besides divergences (declared by the text of their generator), a component is a *factory*: a
callable that takes keyword options and returns the component. The protocols below say what
each factory must return.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import pluggy

if TYPE_CHECKING:
    import click
    import numpy as np
    import torch

hookspec = pluggy.HookspecMarker("fmicl")
#: Mark a plugin function as the implementation of a hook (``@fm.hookimpl``).
hookimpl = pluggy.HookimplMarker("fmicl")

#: Every kind of component, in the order the layers build on each other.
KINDS = (
    "divergences",
    "similarities",
    "objectives",
    "backbones",
    "architectures",
    "datasets",
    "augmentations",
    "loggers",
)

#: The keywords of a divergence registration: key -> (accepted types, the words that say so).
#: ``name`` and ``generator`` are required; ``params = None`` counts as no parameters.
DIVERGENCE_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "name": (str, "a string"),
    "generator": (str, "a string (an expression in u)"),
    "params": (
        dict,
        "a table of numbers or of parameter tables, e.g. [params] a = 1.5, or [params.a] "
        "with default = 1.5 and range = [1.05, 4.0]",
    ),
    "normalize": (bool, "true or false"),
    "description": (str, "a string"),
    "reference": (str, "a string"),
}


class RegisterDivergence(Protocol):
    """The ``register`` callback of ``register_divergences``."""

    def __call__(
        self,
        *,
        name: str,
        generator: str,
        params: dict[str, Any] | None = None,
        normalize: bool = False,
        description: str = "",
        reference: str = "",
    ) -> None: ...


class RegisterComponent(Protocol):
    """The ``register`` callback of every other hook: a name, a factory and a description."""

    def __call__(
        self, *, name: str, factory: Callable[..., Any], description: str = ""
    ) -> None: ...


@runtime_checkable
class Similarity(Protocol):
    """What a similarity factory returns (``factory(**options)``).

    ``kind`` says how the f-MICL objective uses the values (Lu et al. 2023): a
    ``"log_ratio"`` is a log density ratio ``log_r`` fed to ``positive_term``/``negative_term``
    (the f-Gaussian similarity); a ``"critic"`` is the critic value ``s`` itself, used as
    ``s`` for positives and ``f*(s)`` for negatives. ``value_range`` is the closed interval the
    values lie in for L2-normalised inputs; for a critic, the objective refuses a divergence
    whose conjugate domain does not contain it; for a log ratio, the objective uses the
    divergence's terms specialised to it (``Divergence.terms_on``), so ``pairwise`` and
    ``paired`` must not return values outside it (clamp rounding errors back in).

    Optional: a class attribute ``symmetric = True`` declares ``pairwise(a, b) ==
    pairwise(b, a).T`` with nothing learning inside; the objective then differentiates a batch
    against itself through one side and doubles the gradient (one matrix product fewer).
    Absent means ``False``; a subclass that overrides ``pairwise`` must declare it again (it
    does not inherit the declaration). A similarity holding tensors that learn (``requires_grad``
    attributes, or an ``nn.Module``'s parameters) gets the general forms of the terms, since
    its range moves as it learns.
    """

    kind: Literal["log_ratio", "critic"]

    def value_range(self) -> tuple[float, float]: ...

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``(N, D), (M, D) -> (N, M)``: the value for every pair of rows."""
        ...

    def paired(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``(N, D), (N, D) -> (N,)``: the value for row ``i`` of ``a`` with row ``i`` of ``b``."""
        ...


@dataclass(frozen=True)
class RunInfo:
    """What a :class:`Logger` is told when its run starts (``logger.start(run)``)."""

    #: The run folder: a logger that writes files puts them under it (``path / "tensorboard"``).
    path: Path
    #: The run's name (``run.name``, also the folder's name unless it was taken).
    name: str
    #: The resolved spec as plain tables, what the run folder's ``spec.toml`` holds (a
    #: tracker's "config" or "params").
    config: Mapping[str, Mapping[str, Any]]
    #: 0 for a new run. On ``--resume``, the step of the checkpoint the run goes on from: what
    #: an earlier attempt logged after it is logged again, so a logger hides or drops it.
    start_step: int


@runtime_checkable
class Logger(Protocol):
    """What a logger factory returns (``factory(**options)``, with the options of the spec's
    ``[logger.NAME]`` table): somewhere a run's numbers go while it trains, beside
    ``metrics.jsonl``, which is always written.

    Training calls, in the main process only (rank 0 under ``torchrun``): :meth:`start` once,
    then :meth:`log_scalars` every ``train.log_every`` steps and at the end of every epoch,
    :meth:`log_report` and :meth:`log_histograms` once the run is evaluated, and :meth:`close`
    exactly once, also when the run fails, diverges or is interrupted, or ``start`` raised.
    The factory runs before anything is trained or written, in every process (it should fail
    there, e.g. on a missing package); ``start`` opens files or connections. A logging method
    that raises is reported with a warning and the logger gets nothing more but its ``close``
    (training goes on; ``metrics.jsonl`` keeps everything).

    The names are ``group/key``: ``train/loss``, ``train/lr``, ``train/images_per_s`` and the
    objective's terms (``train/positive_term``, ``train/negative_term`` for f-MICL) every few
    steps; ``epoch/loss``, ``epoch/seconds`` and the curve metric (``epoch/knn_top1``) per
    epoch; the report's metrics; the distance distributions as
    ``distances/<encoder>/<positive|negative>``. ``step`` is the optimiser step (the
    ``step`` of ``metrics.jsonl``).
    """

    def start(self, run: RunInfo) -> None:
        """The run begins (or resumes: ``run.start_step > 0``)."""
        ...

    def log_scalars(self, scalars: Mapping[str, float], step: int) -> None:
        """Numbers at ``step``, by name."""
        ...

    def log_histograms(self, histograms: Mapping[str, np.ndarray], step: int) -> None:
        """1-D arrays of values at ``step``, by name (one histogram each)."""
        ...

    def log_report(self, metrics: Mapping[str, float], step: int) -> None:
        """The evaluated run's final metrics (``knn_top1``, ``linear_top1``, ...; a
        baseline's as ``<baseline>/<metric>``), at the last step."""
        ...

    def close(self, error: BaseException | None) -> None:
        """The run ended: ``error`` is None when it finished, else what stopped it
        (``TrainingDiverged``, ``KeyboardInterrupt``, ...)."""
        ...


@hookspec
def register_divergences(register: RegisterDivergence) -> None:
    """Register f-divergences by the text of their generator ``f(u)``.

    ``params`` gives each parameter's default value (users override them with
    ``get_divergence(name, a=2)``): a number, or a table that also declares the range a tuner
    searches, ``{"a": {"default": 1.5, "range": [1.05, 4.0]}}`` (``"log": True`` for a log
    scale), read back as ``spec.ranges``. ``normalize=True`` subtracts ``f(1)``. Nothing is
    derived until the divergence is first used. A package can also ship TOML spec files and register
    them with ``register(**fm.load_divergence_spec(path).as_kwargs())``.

    Example::

        import fmicl_registry as fm

        @fm.hookimpl
        def register_divergences(register):
            register(
                name="triangular",
                generator="(u-1)**2/(u+1)",
                description="Vincze-Le Cam",
                reference="Le Cam 1986",
            )
    """


@hookspec
def register_similarities(register: RegisterComponent) -> None:
    """Register similarities: ``factory(**options)`` returns a :class:`Similarity`.

    Example::

        import torch
        import fmicl_registry as fm

        class Laplace:
            kind = "log_ratio"

            def __init__(self, gamma=1.0):
                self.gamma = gamma

            def value_range(self):
                return (-2.0 * self.gamma, 0.0)  # ||x - y|| <= 2 on the unit sphere

            def pairwise(self, a, b):
                return -self.gamma * torch.cdist(a, b)

            def paired(self, a, b):
                return -self.gamma * (a - b).norm(dim=-1)

        @fm.hookimpl
        def register_similarities(register):
            register(name="laplace", factory=Laplace, description="log r = -gamma ||x - y||")
    """


@hookspec
def register_objectives(register: RegisterComponent) -> None:
    """Register objectives: ``factory(**options)`` returns a ``torch.nn.Module`` whose
    ``forward(z1, z2)`` takes the two views' projections ``(N, D)`` and returns a scalar loss.
    An objective may also declare the options ``fmicl tune`` searches, with their ranges:
    ``register(..., search_space={"temperature": {"range": [0.02, 1.0], "log": True}})``.

    Example::

        import torch
        import fmicl_registry as fm

        class Alignment(torch.nn.Module):
            def forward(self, z1, z2):
                z1 = torch.nn.functional.normalize(z1, dim=-1)
                z2 = torch.nn.functional.normalize(z2, dim=-1)
                return (z1 - z2).pow(2).sum(-1).mean()

        @fm.hookimpl
        def register_objectives(register):
            register(name="alignment", factory=Alignment, description="alignment only")
    """


@hookspec
def register_backbones(register: RegisterComponent) -> None:
    """Register encoders: ``factory(**options)`` returns a ``torch.nn.Module`` mapping a batch
    of inputs to ``(N, output_dim)`` features, with an ``output_dim`` attribute (the projection
    head reads its input size from it).

    Example::

        import torch
        import fmicl_registry as fm

        def tiny_mlp(in_features=64, output_dim=32):
            net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(in_features, output_dim))
            net.output_dim = output_dim
            return net

        @fm.hookimpl
        def register_backbones(register):
            register(name="tiny_mlp", factory=tiny_mlp, description="one linear layer")
    """


@hookspec
def register_architectures(register: RegisterComponent) -> None:
    """Register training architectures: ``factory(backbone=..., objective=..., **options)``
    returns a ``torch.nn.Module`` whose ``forward(view1, view2)`` returns the loss and whose
    ``encoder`` attribute maps inputs to the features that evaluation uses.

    Example::

        import torch
        import fmicl_registry as fm

        class TwoViews(torch.nn.Module):
            def __init__(self, backbone, objective, dim=16):
                super().__init__()
                self.encoder = backbone
                self.head = torch.nn.Linear(backbone.output_dim, dim)
                self.objective = objective

            def forward(self, view1, view2):
                z1, z2 = self.head(self.encoder(view1)), self.head(self.encoder(view2))
                return self.objective(z1, z2)

        @fm.hookimpl
        def register_architectures(register):
            register(name="two_views", factory=TwoViews, description="shared encoder and head")
    """


@hookspec
def register_datasets(register: RegisterComponent) -> None:
    """Register data sets: ``factory(root=None, split="train", download=False, **options)``
    returns a ``torch.utils.data.Dataset`` of ``(input, label)`` pairs. Without data at
    ``root`` and without ``download``, it raises an error that says where the data should be.

    Example::

        import torch
        import fmicl_registry as fm

        def noise(root=None, split="train", download=False, size=64):
            generator = torch.Generator().manual_seed(0 if split == "train" else 1)
            x = torch.randn(size, 8, generator=generator)
            return torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())

        @fm.hookimpl
        def register_datasets(register):
            register(name="noise", factory=noise, description="Gaussian noise, sign labels")
    """


@hookspec
def register_augmentations(register: RegisterComponent) -> None:
    """Register augmentation recipes (the ``name`` of a spec's ``[augment]`` section):
    ``factory(input_shape, mean, std, **options)`` returns a transform that maps one ``uint8``
    image ``(C, H, W)`` to a normalised ``float32`` tensor of the same shape, drawing its
    randomness from torch's global generator (``mean`` and ``std`` are the data set's
    per-channel statistics in ``[0, 1]`` units). Training calls it twice per image, in the
    data loader's workers, to make the two views.

    A recipe may also have a batched form, run on the whole batch on the training device: give
    the factory an attribute ``batched``, a callable with the same arguments whose result is
    called as ``augment(images, generator)`` on a ``uint8`` batch ``(N, C, H, W)`` and returns
    the normalised views, each image with its own random parameters drawn from ``generator``
    (``fmicl_registry.data.with_batched(factory, batched)`` sets it).

    Example::

        import torch
        import fmicl_registry as fm

        def noisy(input_shape, mean, std, sigma=0.05):
            mean = torch.tensor(mean).view(-1, 1, 1)
            std = torch.tensor(std).view(-1, 1, 1)

            def transform(image):
                x = image.float() / 255 + sigma * torch.randn(image.shape)
                return (x.clamp(0, 1) - mean) / std

            return transform

        @fm.hookimpl
        def register_augmentations(register):
            register(name="noisy", factory=noisy, description="Gaussian pixel noise (sigma)")
    """


@hookspec
def register_loggers(register: RegisterComponent) -> None:
    """Register loggers (``train.logger`` in a spec): ``factory(**options)`` returns a
    :class:`Logger`; a spec gives the options in its ``[logger.NAME]`` table. Import what the
    logger needs (``wandb``, ``mlflow``) in the factory, not at the top of the plugin's module.

    Example::

        import json
        import fmicl_registry as fm

        class JsonLines:
            def __init__(self, filename="events.jsonl"):
                self.filename = filename

            def start(self, run):
                self.file = open(run.path / self.filename, "a")

            def log_scalars(self, scalars, step):
                print(json.dumps({"step": step, **scalars}), file=self.file)

            def log_histograms(self, histograms, step):
                sizes = {name: len(values) for name, values in histograms.items()}
                print(json.dumps({"step": step, "histogram sizes": sizes}), file=self.file)

            def log_report(self, metrics, step):
                print(json.dumps({"step": step, "report": dict(metrics)}), file=self.file)

            def close(self, error):
                self.file.close()

        @fm.hookimpl
        def register_loggers(register):
            register(name="jsonlines", factory=JsonLines, description="one JSON line per call")
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``fmicl`` command line: ``cli`` is its top-level click group.

    Runs for every plugin each time ``fmicl`` starts (``fmicl --help`` included), so import
    heavy modules (torch, the library's components) inside the command function, never in the
    hook or at the top of the plugin's module. A command whose name is taken (by a built-in
    command or a plugin loaded earlier) is skipped with a warning, and the first one is kept.
    An ``fm.FmiclError`` or ``fmicl_registry.cli.CommandError`` raised by a command is printed
    as ``Error: <message>`` with exit code 2 and no traceback (``fmicl --debug`` shows the
    traceback of an ``FmiclError``).

    Example::

        import click
        import fmicl_registry as fm

        @fm.hookimpl
        def register_commands(cli):
            @cli.command()
            @click.argument("name")
            def generator(name):
                '''Print the generator f(u) of the registered divergence NAME.'''
                click.echo(fm.registry().divergence(name).generator)
    """
