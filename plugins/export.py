"""Built-in plugin: ``fmicl export`` and ``fmicl embed``, the trained encoder put to use
(:mod:`fmicl_registry.encoder_export`, :mod:`fmicl_registry.embeddings`), added to the command
line through the ``register_commands`` hook like any plugin's commands.

Example (shell)::

    fmicl export runs/cifar10_simclr                        # -> cifar10_simclr.safetensors
    fmicl export runs/cifar10_simclr --format torchvision   # a resnet18 state dict (.pth)
    fmicl embed cifar10_simclr.safetensors --data photos/ --out embeddings.parquet
    fmicl embed runs/cifar10_simclr --dataset cifar10 --data ~/data --split test --out test.npy
"""

from __future__ import annotations

from pathlib import Path

import click

from fmicl_registry.hookspecs import hookimpl

_FORMATS = ("safetensors", "torchvision", "torch-export")
_SUFFIXES = (".npy", ".npz", ".pt", ".parquet")


@hookimpl
def register_commands(cli: click.Group) -> None:
    """``fmicl export`` and ``fmicl embed``."""
    cli.add_command(export_command)
    cli.add_command(embed_command)


def _log(message: str) -> None:
    click.echo(message, err=message.startswith("warning:"))


@click.command("export", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False, exists=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_FORMATS),
    default="safetensors",
    show_default=True,
    help="safetensors: tensors + how to rebuild the backbone (fm.load_encoder; never runs "
    "code); torchvision: a state dict for torchvision's resnet18/resnet50; torch-export: a "
    "torch.export program (loading it runs it).",
)
@click.option(
    "--out",
    type=click.Path(),  # a str: a trailing / (a folder meant) is kept
    default=None,
    help="The file to write, or a folder for RUN-NAME.<suffix> [default: the current folder].",
)
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Where the training data is now (data.root=FOLDER): export reads the image shape "
    "and normalisation from it.",
)
def export_command(
    run_dir: str, fmt: str, out: str | None, force: bool, overrides: tuple[str, ...]
) -> None:
    """Write the backbone RUN trained (without the projection head) from its last checkpoint.

    The checkpoint is verified against its recorded checksum and read without unpickling code.
    """
    from fmicl_registry.encoder_export import export

    export(run_dir, fmt, out, force=force, overrides=list(overrides), log=_log)


def _check_out(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    if value.suffix not in _SUFFIXES:
        raise click.BadParameter(
            f"{value}: name the output .npy (features, with a .csv of files and labels beside "
            "it), .npz, .pt or .parquet"
        )
    return value


@click.command("embed", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source", metavar="RUN_OR_EXPORT", type=click.Path(exists=True))
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="The folder of the images (for --dataset: the data set's root).",
)
@click.option(
    "--dataset",
    default=None,
    help="A registered data set to read --data with, e.g. cifar10 [default: images, every "
    "image file under --data].",
)
@click.option("--split", default=None, help="The data set's split [default: pretrain for images].")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    callback=_check_out,
    help="embeddings.npy (+ embeddings.csv), .npz, .pt or .parquet (needs pyarrow).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda.")
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Data-loader worker processes decoding images.",
)
@click.option("--force", is_flag=True, help="Replace the output file(s) if they exist.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="For a run folder: where its training data is now (data.root=FOLDER).",
)
def embed_command(
    source: str,
    data: str,
    dataset: str | None,
    split: str | None,
    out: Path,
    batch_size: int,
    device: str,
    workers: int,
    force: bool,
    overrides: tuple[str, ...],
) -> None:
    """One feature vector per image of --data, with its file name (or index) and label.

    RUN_OR_EXPORT is a run folder or a .safetensors file written by fmicl export; the images
    are read at the size the encoder was trained on and normalised as in training.
    """
    from fmicl_registry.embeddings import embed, output_paths
    from fmicl_registry.encoder_export import check_outputs

    check_outputs(output_paths(out), force)  # before the work, not after it
    result = embed(
        source,
        data,
        dataset=dataset,
        split=split,
        batch_size=batch_size,
        device=device,
        num_workers=workers,
        overrides=list(overrides),
        log=_log,
    )
    for path in result.save(out, force=force):
        click.echo(f"wrote {path}")
