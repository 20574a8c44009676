"""Built-in plugin: ``fmicl bench mi``, the mutual-information estimator benchmark of
:mod:`fmicl_registry.mi` (an application of the library, added to the command line through the
``register_commands`` hook like any plugin's command).

Example (shell)::

    fmicl bench mi --quick                          # kl, js, pearson, sh + InfoNCE, < 2 min
    fmicl bench mi -d js -d my_div.toml --out out/  # a registered name and a TOML spec
    fmicl bench mi --json > summary.json            # the JSON summary on stdout
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fmicl_registry.hookspecs import hookimpl

if TYPE_CHECKING:
    from fmicl_registry.mi.bench import BenchResult


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def bench() -> None:
    """Benchmarks: fmicl bench mi (do the f-MI bounds estimate what they claim?)."""


@hookimpl
def register_commands(cli: click.Group) -> None:
    """``fmicl bench`` with its one command, ``mi``."""
    cli.add_command(bench)


def _split(values: tuple[str, ...]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _parse_levels(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    levels = []
    for part in value.split(","):
        try:
            level = float(part)
        except ValueError:
            raise click.BadParameter(f"{part.strip()!r} is not a number of nats") from None
        if not (math.isfinite(level) and level > 0):
            raise click.BadParameter(f"{part.strip()!r}: a level must be finite and > 0 nats")
        levels.append(level)
    return tuple(levels)


def _parse_critics(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    from fmicl_registry.mi.critics import CRITICS

    if value is None:
        return None
    critics = tuple(part.strip() for part in value.split(",") if part.strip())
    for critic in critics:
        if critic not in CRITICS:
            raise click.BadParameter(f"no critic {critic!r}; choose from {', '.join(CRITICS)}")
    if not critics or len(set(critics)) != len(critics):
        raise click.BadParameter("name each critic once, e.g. separable,concat")
    return critics


def print_result(result: BenchResult, paths: dict[str, Path]) -> None:
    """The per-level table, the fraction overview and where the files went, with rich."""
    from rich.table import Table

    from fmicl_registry.cli import console
    from fmicl_registry.mi.report import TABLE_HEADER, fraction_rows, table_rows

    screen = console()
    c = result.config
    table = Table(
        title=f"f-MI estimates (d = {c.dim}, batch {c.batch_size}, "
        f"{c.steps_per_level} steps per level; statistics over the last {c.tail_steps})"
    )
    for column in TABLE_HEADER:
        table.add_column(column, overflow="fold", no_wrap=column in ("objective", "critic"))
    rows = table_rows(result)
    for i, cells in enumerate(rows):
        last_of_group = i + 1 == len(rows) or rows[i + 1][:2] != cells[:2]
        table.add_row(*cells, end_section=last_of_group)
    screen.print(table)
    overview = Table(title="fraction of the true value reached")
    for column in ["objective", "critic", *[f"{v:g} nats" for v in c.levels]]:
        overview.add_column(column)
    for cells in fraction_rows(result):
        overview.add_row(*cells)
    screen.print(overview)
    click.echo(f"runtime {result.runtime_s:.1f} s")
    for key in ("markdown", "csv", "json", "history", "plot"):
        if key in paths:
            click.echo(f"wrote {paths[key]}")  # not through rich: a path must not be folded


@bench.command("mi")
@click.option(
    "--divergences",
    "-d",
    multiple=True,
    metavar="NAMES",
    help="Registered divergence names or paths to .toml divergence specs, comma-separated or "
    "repeated [default: every registered divergence; with --quick: kl, js, pearson, sh].",
)
@click.option(
    "--quick",
    is_flag=True,
    help="A smoke-test setting: 300 steps per level, 64-unit critics (< 2 min on 2 cores).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON summary to stdout.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("mi-bench"),
    show_default=True,
    help="Folder for results.{json,csv,md}, history.json and mi_estimates.png.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for data and critics.")
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="Adam steps per MI level [default: 4000; --quick: 300].",
)
@click.option(
    "--levels",
    callback=_parse_levels,
    default=None,
    metavar="NATS",
    help="True KL mutual informations, comma-separated [default: 2,4,6,8,10].",
)
@click.option(
    "--critics",
    callback=_parse_critics,
    default=None,
    metavar="KINDS",
    help="separable and/or concat, comma-separated [default: both].",
)
@click.option("--dim", type=click.IntRange(min=1), default=None, help="Dimension d [default: 20].")
@click.option(
    "--batch-size", type=click.IntRange(min=2), default=None, help="Batch size [default: 64]."
)
@click.option(
    "--hidden",
    type=click.IntRange(min=1),
    default=None,
    help="Hidden width of the critic MLPs [default: 256; --quick: 64].",
)
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="[default: 5e-4]"
)
@click.option(
    "--mc-samples",
    type=click.IntRange(min=2),
    default=None,
    help="Draws per distribution for a Monte-Carlo truth [default: 2^18; --quick: 2^16].",
)
@click.option("--no-infonce", is_flag=True, help="Leave out the InfoNCE reference.")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="torch intra-op threads per process (the critics are small; use --workers to "
    "spread the critics over cores).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes training critics in parallel (the results do not depend on it).",
)
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda.")
@click.option("--no-plot", is_flag=True, help="Skip the PNG plot.")
def mi_command(
    divergences: tuple[str, ...],
    quick: bool,
    as_json: bool,
    out: Path,
    seed: int,
    steps: int | None,
    levels: tuple[float, ...] | None,
    critics: tuple[str, ...] | None,
    dim: int | None,
    batch_size: int | None,
    hidden: int | None,
    lr: float | None,
    mc_samples: int | None,
    no_infonce: bool,
    threads: int,
    workers: int,
    device: str,
    no_plot: bool,
) -> None:
    """Benchmark the lower bound of each divergence as a mutual-information estimator.

    Correlated Gaussians (d = 20), the true KL MI stepped through 2, 4, 6, 8, 10 nats, batch 64,
    a separable and a concatenation critic trained by maximising each divergence's variational
    lower bound, InfoNCE as the reference (Poole et al. 2019; Song and Ermon 2020). Reports, per
    divergence and level, the bias, variance and fraction of the true f-MI reached.
    """
    from fmicl_registry.cli import CommandError
    from fmicl_registry.mi.bench import QUICK_DIVERGENCES, full_config, quick_config, run_benchmark
    from fmicl_registry.mi.report import json_report, write_report

    names = _split(divergences)
    make = quick_config if quick else full_config
    config = make(
        seed=seed,
        steps_per_level=steps,
        levels=levels,
        critics=critics,
        dim=dim,
        batch_size=batch_size,
        hidden=hidden,
        lr=lr,
        mc_samples=mc_samples,
        infonce=not no_infonce,
        threads=threads,
        workers=workers,
        device=device,
    )
    if not names:
        if quick:
            names = list(QUICK_DIVERGENCES)
        else:
            from fmicl_registry.components import list_divergences

            names = list_divergences()
    result = run_benchmark(names, config, progress=lambda line: click.echo(line, err=True))
    try:
        paths = write_report(result, out, plot=not no_plot)
    except OSError as err:
        raise CommandError(f"cannot write the report to {out}: {err.strerror}") from None
    if as_json:
        click.echo(json_report(result), nl=False)
    else:
        print_result(result, paths)
