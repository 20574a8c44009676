"""The mutual-information estimator benchmark: train critics on each divergence's lower bound.

The setting of Poole et al. (2019), "On variational bounds of mutual information", and Song and
Ermon (2020), "Understanding the limitations of variational mutual information estimators":
correlated Gaussians in ``d = 20`` dimensions, batches of 64 pairs, the true (KL) mutual
information stepped through 2, 4, 6, 8 and 10 nats, 4000 Adam steps (lr 5e-4) per level, a
separable and a concatenation critic. One critic per (objective, critic kind) is trained through
the whole staircase, maximising its objective:

- an f-divergence: ``Divergence.lower_bound(log_r_pos, log_r_neg)``, the variational lower bound
  on ``I_f`` (Lu et al. 2023), with the critic's scores as log ratios: the diagonal pairs
  ``(x_i, y_i)`` are the joint samples, the ``B (B - 1)`` off-diagonal pairs ``(x_i, y_j)`` the
  product-of-marginals samples. Scores pass through ``clip * tanh(T / clip)`` (``clip = 40``:
  the identity to within 2% up to ``|T| = 10``) so the exponential terms stay finite in float32;
  any function of ``(x, y)`` gives a valid lower bound, so this does not bias the estimate up;
- InfoNCE, the reference: ``log B + mean_i (T_ii - logsumexp_j T_ij)``, a lower bound on the KL
  mutual information that can never exceed ``log B`` (4.16 nats at B = 64).

Every step's bound on its training batch is the estimate (as in Poole et al.'s plots). Per level,
over the last ``tail`` fraction of its steps: ``bias = mean estimate - truth``, ``variance`` of the
estimates, and ``fraction = mean estimate / truth``. The truth of an f-divergence at each level
is its own ``I_f`` at that correlation (:mod:`fmicl_registry.mi.truth`), of InfoNCE the KL MI.
A step whose bound is not finite is recorded as such and makes no update. A negative mean
estimate is flagged: the constant critic ``log r = 0`` already scores ``f(1) = 0``, so the
critic has collapsed (Pearson, Neyman and Tsallis bounds do this at high MI).

All runs see the same batches (common random numbers); the data stream depends on ``seed`` only
and each critic's initialisation on ``seed``, its objective and its kind, so a run is
reproducible and does not depend on which other objectives are benchmarked with it.

Example:
    >>> from fmicl_registry.mi import BenchConfig, run_benchmark
    >>> config = BenchConfig(levels=(2.0,), steps_per_level=3, hidden=8, embed=4,
    ...                      critics=("separable",), mc_samples=1024)
    >>> result = run_benchmark(["kl"], config)
    >>> [(row.objective, row.critic, round(row.truth.value, 9)) for row in result.rows]
    [('kl', 'separable', 2.0), ('infonce', 'separable', 2.0)]
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..divergence import Divergence
from ..errors import BenchError
from .critics import CRITICS, build_critic
from .gaussians import rho_for_mi, sample_joint
from .truth import Truth, ground_truth, kl_mi

Tensor = torch.Tensor
INFONCE = "infonce"
#: The divergences ``--quick`` benchmarks when none are named (plus InfoNCE).
QUICK_DIVERGENCES = ("kl", "js", "pearson", "sh")


@dataclass(frozen=True)
class BenchConfig:
    """Settings of one benchmark run; the defaults are Poole et al.'s (2019) setting.

    ``levels`` are true KL mutual informations in nats; ``steps_per_level`` Adam steps are run
    at each. ``tail`` is the fraction of each level's last steps that bias and variance are
    computed over. ``mc_samples`` draws per distribution for a Monte-Carlo truth. ``threads``
    sets torch's intra-op threads during the run (None: leave as is) and ``workers`` how many
    processes train critics in parallel (results do not depend on it); ``clip`` bounds the
    critic's log ratios (see the module docstring).
    """

    dim: int = 20
    batch_size: int = 64
    levels: tuple[float, ...] = (2.0, 4.0, 6.0, 8.0, 10.0)
    steps_per_level: int = 4000
    critics: tuple[str, ...] = CRITICS
    hidden: int = 256
    layers: int = 2
    embed: int = 32
    lr: float = 5e-4
    clip: float = 40.0
    tail: float = 0.5
    mc_samples: int = 2**18
    seed: int = 0
    infonce: bool = True
    threads: int | None = 1
    workers: int = 1
    device: str = "cpu"

    @classmethod
    def quick(cls, **overrides: Any) -> BenchConfig:
        """The ``--quick`` setting: all five levels, 300 steps each, 64-unit critics and
        2^16 Monte-Carlo samples; under two minutes on two CPU cores for the quick set."""
        settings: dict[str, Any] = {"steps_per_level": 300, "hidden": 64, "mc_samples": 2**16}
        settings.update(overrides)
        return cls(**settings)

    def validate(self) -> None:
        """Raise :class:`BenchError` naming the first setting that cannot work."""
        checks = [
            (self.dim >= 1, f"dim must be >= 1, got {self.dim}"),
            (self.batch_size >= 2, f"batch_size must be >= 2, got {self.batch_size}"),
            (len(self.levels) >= 1, "at least one MI level is needed"),
            (
                all(math.isfinite(v) and v > 0 for v in self.levels),
                f"MI levels must be finite and > 0 nats, got {list(self.levels)}",
            ),
            (
                self.steps_per_level >= 1,
                f"steps_per_level must be >= 1, got {self.steps_per_level}",
            ),
            (len(self.critics) >= 1, "at least one critic is needed"),
            (
                all(c in CRITICS for c in self.critics),
                f"critics must be among {', '.join(CRITICS)}, got {', '.join(self.critics)}",
            ),
            (len(set(self.critics)) == len(self.critics), "a critic is named twice"),
            (self.hidden >= 1 and self.embed >= 1 and self.layers >= 1, "sizes must be >= 1"),
            (self.lr > 0 and math.isfinite(self.lr), f"lr must be > 0, got {self.lr}"),
            (self.clip > 0, f"clip must be > 0, got {self.clip}"),
            (0 < self.tail <= 1, f"tail must be in (0, 1], got {self.tail}"),
            (self.mc_samples >= 2, f"mc_samples must be >= 2, got {self.mc_samples}"),
            (self.threads is None or self.threads >= 1, "threads must be >= 1"),
            (self.workers >= 1, f"workers must be >= 1, got {self.workers}"),
        ]
        for ok, message in checks:
            if not ok:
                raise BenchError(message)
        try:
            device = torch.device(self.device)
            torch.empty(0, device=device)
        except (RuntimeError, AssertionError) as err:
            raise BenchError(f"device {self.device!r} cannot be used: {err}") from None

    @property
    def tail_steps(self) -> int:
        """How many of each level's last steps the statistics use."""
        return max(1, math.ceil(self.tail * self.steps_per_level))

    def as_dict(self) -> dict[str, Any]:
        """Plain data."""
        data = asdict(self)
        data["levels"] = list(self.levels)
        data["critics"] = list(self.critics)
        return data


@dataclass(frozen=True)
class Objective:
    """One trained objective: a divergence's lower bound, or InfoNCE (``divergence`` None)."""

    name: str
    divergence: Divergence | None
    source: str

    @property
    def kind(self) -> str:
        """``"f-divergence"`` or ``"infonce"``."""
        return "f-divergence" if self.divergence is not None else INFONCE

    def describe(self) -> dict[str, Any]:
        """Name, kind, generator and where it came from."""
        d = self.divergence
        return {
            "name": self.name,
            "kind": self.kind,
            "generator": None if d is None else str(d.generator),
            "params": {} if d is None else dict(d.params),
            "source": self.source,
        }


def resolve_objectives(
    items: Iterable[str | Divergence], *, infonce: bool = True
) -> list[Objective]:
    """Registered names, paths to ``.toml`` divergence specs, or ``Divergence`` objects, as
    objectives; ``"infonce"`` (or ``infonce=True``) appends the InfoNCE reference.

    Raises:
        FmiclError: an unknown name (with the registry's "did you mean"), a spec file that does
            not define a divergence, or a name given twice.
    """
    from ..components import get_divergence, registry
    from ..definition import load_divergence_spec
    from ..divergence import define

    objectives: list[Objective] = []
    for item in items:
        if isinstance(item, Divergence):
            objectives.append(Objective(item.name, item, item.source))
            continue
        text = item.strip()
        if not text:
            continue
        known = registry().divergences
        if text.lower() == INFONCE:
            infonce = True
        elif text not in known and (text.endswith(".toml") or "/" in text or "\\" in text):
            spec = load_divergence_spec(text, plugin=f"file {Path(text).name}")
            objectives.append(Objective(spec.name, define(spec), f"file {Path(text).name}"))
        else:
            plugin = registry().divergence(text).plugin  # "did you mean" when unknown
            objectives.append(Objective(text, get_divergence(text), f"plugin {plugin}"))
    if infonce:
        objectives.append(Objective(INFONCE, None, "reference (van den Oord et al. 2018)"))
    names = [o.name for o in objectives]
    for name in names:
        if names.count(name) > 1:
            raise BenchError(f"objective {name!r} is given twice; give each divergence once")
    if not objectives:
        raise BenchError("no divergence to benchmark: name one, or keep InfoNCE")
    return objectives


@dataclass(frozen=True)
class LevelResult:
    """One (objective, critic, MI level): the truth and the estimate's statistics.

    ``mi`` is the true KL mutual information of the level (nats), ``estimate`` the mean of the
    finite estimates over the level's last ``tail_steps`` steps, ``bias = estimate - truth``,
    ``variance`` their variance, ``fraction = estimate / truth``.
    """

    objective: str
    critic: str
    level: int
    mi: float
    rho: float
    truth: Truth
    estimate: float
    bias: float
    variance: float
    fraction: float
    tail_steps: int
    nonfinite_steps: int
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Flat plain data (the truth's fields prefixed with ``truth_``)."""
        data = {
            "objective": self.objective,
            "critic": self.critic,
            "level": self.level,
            "mi": self.mi,
            "rho": self.rho,
            "truth": self.truth.value,
            "truth_se": self.truth.se,
            "truth_method": self.truth.method,
            "truth_reliable": self.truth.reliable,
            "estimate": self.estimate,
            "bias": self.bias,
            "variance": self.variance,
            "fraction": self.fraction,
            "tail_steps": self.tail_steps,
            "nonfinite_steps": self.nonfinite_steps,
            "notes": list(self.notes),
        }
        return data


@dataclass
class BenchResult:
    """Everything one run produced; :mod:`fmicl_registry.mi.report` writes it out.

    ``histories[(objective, critic)]`` holds the estimate at every step, ``run_seconds`` the
    training time of each critic, ``timings`` the phases (``truth_s``, ``train_s``, ``total_s``).
    """

    config: BenchConfig
    objectives: list[Objective]
    rhos: list[float]
    truths: dict[str, list[Truth]]
    histories: dict[tuple[str, str], list[float]]
    rows: list[LevelResult]
    timings: dict[str, float] = field(default_factory=dict)
    run_seconds: dict[tuple[str, str], float] = field(default_factory=dict)

    @property
    def runtime_s(self) -> float:
        """Wall-clock seconds of the whole run."""
        return self.timings.get("total_s", math.nan)

    def row(self, objective: str, critic: str, level: int) -> LevelResult:
        """The result of one objective, critic and level index."""
        for r in self.rows:
            if (r.objective, r.critic, r.level) == (objective, critic, level):
                return r
        raise KeyError((objective, critic, level))

    def summary(self) -> dict[str, Any]:
        """The JSON report: settings, objectives, per-level truths and results, timings."""
        return {
            "benchmark": "mutual information (Poole et al. 2019; Song and Ermon 2020)",
            "config": self.config.as_dict(),
            "log_batch_size": math.log(self.config.batch_size),
            "levels": [
                {"index": i, "mi": mi, "rho": rho}
                for i, (mi, rho) in enumerate(zip(self.config.levels, self.rhos, strict=True))
            ],
            "objectives": [
                {**o.describe(), "truth": [t.as_dict() for t in self.truths[o.name]]}
                for o in self.objectives
            ],
            "results": [r.as_dict() for r in self.rows],
            "timings": dict(self.timings),
            "run_seconds": [
                {"objective": o, "critic": c, "seconds": s}
                for (o, c), s in self.run_seconds.items()
            ],
        }


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _seed_for(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def infonce_estimate(scores: Tensor) -> Tensor:
    """``log B + mean_i (T_ii - logsumexp_j T_ij)`` (van den Oord et al. 2018; Poole et al.
    2019): at most ``log B`` whatever the critic."""
    n = scores.shape[0]
    return math.log(n) + (scores.diagonal() - torch.logsumexp(scores, dim=1)).mean()


def divergence_estimate(divergence: Divergence, scores: Tensor, clip: float = 40.0) -> Tensor:
    """The divergence's lower bound with the (soft-clipped) scores as log ratios: the diagonal
    as joint pairs, the off-diagonal as product-of-marginals pairs."""
    log_r = clip * torch.tanh(scores / clip)
    off_diagonal = ~torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
    return divergence.lower_bound(log_r.diagonal(), log_r[off_diagonal])


class _Run:
    """One critic and its optimiser, trained on one objective."""

    def __init__(self, objective: Objective, critic: str, config: BenchConfig):
        self.objective = objective
        self.critic = critic
        self.clip = config.clip
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed_for(config.seed, objective.name, critic))
            model = build_critic(
                critic, config.dim, hidden=config.hidden, layers=config.layers, embed=config.embed
            )
        self.model = model.to(config.device)
        self.params = list(self.model.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=config.lr)
        self.history: list[float] = []

    def step(self, x: Tensor, y: Tensor) -> None:
        scores = self.model(x, y)
        d = self.objective.divergence
        estimate = (
            infonce_estimate(scores) if d is None else divergence_estimate(d, scores, self.clip)
        )
        value = float(estimate.detach())
        self.history.append(value)
        self.optimizer.zero_grad(set_to_none=True)
        if not math.isfinite(value):
            return
        (-estimate).backward()
        grads = [p.grad for p in self.params if p.grad is not None]
        if math.isfinite(float(torch.nn.utils.get_total_norm(grads))):
            self.optimizer.step()


def _statistics(
    objective: Objective,
    critic: str,
    level: int,
    history: Sequence[float],
    truth: Truth,
    config: BenchConfig,
    rho: float,
) -> LevelResult:
    steps = config.steps_per_level
    level_values = history[level * steps : (level + 1) * steps]
    tail = torch.tensor(level_values[-config.tail_steps :], dtype=torch.float64)
    finite = tail[torch.isfinite(tail)]
    nonfinite = sum(not math.isfinite(v) for v in level_values)
    estimate = float(finite.mean()) if finite.numel() else math.nan
    variance = float(finite.var()) if finite.numel() > 1 else (0.0 if finite.numel() else math.nan)
    bias = estimate - truth.value
    if math.isinf(truth.value) and math.isfinite(estimate):
        fraction = 0.0
    elif truth.value != 0 and math.isfinite(truth.value):
        fraction = estimate / truth.value
    else:
        fraction = math.nan
    notes: list[str] = []
    if math.isinf(truth.value):
        notes.append("true value is +inf")
    elif not truth.reliable:
        notes.append(f"truth {truth.note}")
    if nonfinite:
        notes.append(f"{nonfinite} of {steps} estimates not finite")
    if not math.isfinite(estimate):
        notes.append("no finite estimate")
    log_b = math.log(config.batch_size)
    if objective.divergence is None and truth.value > log_b:
        notes.append(f"InfoNCE is capped at log B = {log_b:.3f}")
    if finite.numel() > 1 and math.isfinite(bias):
        noise = 3.0 * math.sqrt(variance / finite.numel()) + 3.0 * truth.se
        if bias > noise:
            notes.append("above the truth")
    if math.isfinite(estimate) and estimate < -3.0 * math.sqrt(variance / max(finite.numel(), 1)):
        # The constant critic log r = 0 scores f(1) = 0: a negative bound is worse than that.
        notes.append("below 0: worse than the constant critic")
    return LevelResult(
        objective=objective.name,
        critic=critic,
        level=level,
        mi=config.levels[level],
        rho=rho,
        truth=truth,
        estimate=estimate,
        bias=bias,
        variance=variance,
        fraction=fraction,
        tail_steps=int(tail.numel()),
        nonfinite_steps=nonfinite,
        notes=tuple(notes),
    )


def run_benchmark(
    objectives: Iterable[str | Divergence],
    config: BenchConfig | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Run the benchmark for ``objectives`` (names, ``.toml`` paths or ``Divergence`` objects;
    InfoNCE is added unless ``config.infonce`` is False) and return the results.

    ``progress`` receives a line of text per ground truth and per trained critic.
    """
    config = config or BenchConfig()
    config.validate()
    say = progress or (lambda message: None)
    start = time.perf_counter()
    resolved = resolve_objectives(objectives, infonce=config.infonce)
    rhos = [rho_for_mi(mi, config.dim) for mi in config.levels]
    timings: dict[str, float] = {"setup_s": time.perf_counter() - start}

    with _torch_threads(config.threads):
        tic = time.perf_counter()
        truths: dict[str, list[Truth]] = {}
        for objective in resolved:
            say(f"ground truth: {objective.name}")
            truths[objective.name] = _truths(objective, rhos, config)
        timings["truth_s"] = time.perf_counter() - tic

    tic = time.perf_counter()
    tasks = [(o, critic) for o in resolved for critic in config.critics]
    histories: dict[tuple[str, str], list[float]] = {}
    seconds: dict[tuple[str, str], float] = {}

    def done(objective: Objective, critic: str, outcome: tuple[list[float], float]) -> None:
        histories[(objective.name, critic)], seconds[(objective.name, critic)] = outcome
        elapsed = time.perf_counter() - tic
        say(f"trained {objective.name} / {critic} ({len(histories)}/{len(tasks)}), {elapsed:.0f} s")

    if config.workers == 1 or len(tasks) == 1:
        for objective, critic in tasks:
            done(objective, critic, _timed_training(objective, critic, config))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = multiprocessing.get_context("spawn")
        workers = min(config.workers, len(tasks))
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = {
                pool.submit(_timed_training, objective, critic, config): (objective, critic)
                for objective, critic in tasks
            }
            for future in as_completed(futures):
                done(*futures[future], future.result())
    timings["train_s"] = time.perf_counter() - tic

    rows = [
        _statistics(
            objective,
            critic,
            level,
            histories[(objective.name, critic)],
            truths[objective.name][level],
            config,
            rhos[level],
        )
        for objective, critic in tasks
        for level in range(len(rhos))
    ]
    timings["total_s"] = time.perf_counter() - start
    return BenchResult(
        config=config,
        objectives=resolved,
        rhos=rhos,
        truths=truths,
        histories={(o.name, critic): histories[(o.name, critic)] for o, critic in tasks},
        rows=rows,
        timings=timings,
        run_seconds={(o.name, critic): seconds[(o.name, critic)] for o, critic in tasks},
    )


def _timed_training(
    objective: Objective, critic: str, config: BenchConfig
) -> tuple[list[float], float]:
    tic = time.perf_counter()
    history = train_critic(objective, critic, config)
    return history, time.perf_counter() - tic


def _truths(objective: Objective, rhos: Sequence[float], config: BenchConfig) -> list[Truth]:
    if objective.divergence is None:
        return [Truth(kl_mi(rho, config.dim), 0.0, "closed form (KL MI)", True) for rho in rhos]
    return [
        ground_truth(
            objective.divergence,
            rho,
            config.dim,
            samples=config.mc_samples,
            seed=_seed_for(config.seed, "truth", i),
        )
        for i, rho in enumerate(rhos)
    ]


def train_critic(objective: Objective, critic: str, config: BenchConfig) -> list[float]:
    """Train one critic on one objective through the whole staircase; the estimate (the bound
    on the training batch) at every step.

    The batches depend on ``config.seed`` only, so every critic of a run sees the same data.
    """
    rhos = [rho_for_mi(mi, config.dim) for mi in config.levels]
    with _torch_threads(config.threads):
        run = _Run(objective, critic, config)
        generator = torch.Generator(device=config.device).manual_seed(config.seed)
        for rho in rhos:
            for _ in range(config.steps_per_level):
                x, y = sample_joint(
                    config.batch_size, config.dim, rho, generator=generator, device=config.device
                )
                run.step(x, y)
    return run.history


def quick_config(**overrides: Any) -> BenchConfig:
    """``BenchConfig.quick`` with overrides (``None`` values are ignored)."""
    return BenchConfig.quick(**{k: v for k, v in overrides.items() if v is not None})


def full_config(**overrides: Any) -> BenchConfig:
    """The full (Poole et al.) setting with overrides (``None`` values are ignored)."""
    return replace(BenchConfig(), **{k: v for k, v in overrides.items() if v is not None})
