"""Built-in plugin: ``fmicl tune``, the search for the best objective and its settings
(:mod:`fmicl_registry.tuning`), added through the ``register_commands`` hook.

Example (shell)::

    fmicl tune --objectives js,kl,tsallis,infonce --trials 40 --workers 2 --confirm 3
    # a second machine joins the same study:
    fmicl tune --storage postgresql+psycopg://tuner@db-host/fmicl --study digits
"""

from __future__ import annotations

import click

from fmicl_registry.hookspecs import hookimpl


@hookimpl
def register_commands(cli: click.Group) -> None:
    """``fmicl tune``."""
    cli.add_command(tune_command)


def _log(message: str) -> None:
    click.echo(message, err=message.startswith("warning:"))


@click.command("tune", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("spec", required=False)
@click.option(
    "--objectives",
    default=None,
    help="Comma-separated divergences (each run as f-MICL) and objectives (infonce, "
    "align_uniform) to compare [default: kl,js,pearson,sh,tsallis,vlc,infonce].",
)
@click.option(
    "--trials",
    default=20,
    show_default=True,
    type=click.IntRange(min=0),
    help="Finished trials the study should have in all (shared equally by the objectives); "
    "rerun with more to continue.",
)
@click.option(
    "--metric",
    type=click.Choice(["knn", "linear", "sts"]),
    default=None,
    help="What a trial is scored by: the final kNN or linear-probe top-1, or STS "
    "Spearman [default: knn].",
)
@click.option(
    "--storage",
    default=None,
    metavar="URL",
    help="Where the study lives: sqlite:///PATH.db, postgresql+psycopg://USER@HOST/DB or "
    "journal:PATH (shared file system) [default: OUT/study.db]. Workers on other machines "
    "join with the same URL and --study.",
)
@click.option("--study", "study_name", default=None, help="The study's name [default: run.name].")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Trials run at once, in parallel processes on this machine.",
)
@click.option(
    "--pruner",
    type=click.Choice(["median", "hyperband", "none"]),
    default=None,
    help="Stop hopeless trials by their kNN curve, against their objective's other trials "
    "[default: median].",
)
@click.option(
    "--confirm",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Retrain each objective's best setting on this many new seeds; report mean and std.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Change a spec value for every trial (repeatable).",
)
@click.option(
    "--out",
    default="runs/tune",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the trial runs, the study file, the leaderboard, best.toml and plots go.",
)
@click.option("--verbose", is_flag=True, help="Show each trial's own epoch lines.")
def tune_command(
    spec: str | None,
    objectives: str | None,
    trials: int,
    metric: str | None,
    storage: str | None,
    study_name: str | None,
    workers: int,
    pruner: str | None,
    confirm: int,
    overrides: tuple[str, ...],
    out: str,
    verbose: bool,
) -> None:
    """Find the best objective and its settings for SPEC's data (default: the digits).

    Each trial trains SPEC with one objective and settings drawn by Optuna: for an f-MICL
    divergence alpha, gamma, the similarity where its domain allows, and the divergence's own
    parameters that declare a range; for a baseline its own settings (InfoNCE's
    temperature). Every objective gets the same number of trials. Rerunning continues the
    study; leave SPEC, --objectives and --set out to join an existing study with its own.
    """
    from fmicl_registry.tuning import tune

    labels = None
    if objectives is not None:
        labels = [o.strip() for o in objectives.split(",") if o.strip()]
    tune(
        spec,
        objectives=labels,
        trials=trials,
        metric=metric,
        storage=storage,
        study=study_name,
        workers=workers,
        out=out,
        overrides=overrides,
        pruner=pruner,
        confirm=confirm,
        log=_log,
        verbose=verbose,
    )
