"""Every hook: a throwaway plugin per hook, the documented examples run, and two meta-tests
(in the style of datasette and llm) so that a new hook cannot land untested or undocumented."""

from __future__ import annotations

import inspect
import re
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import torch
from click.testing import CliRunner

import fmicl_registry as fm
from fmicl_registry import hookspecs, plugins
from fmicl_registry.cli import cli
from fmicl_registry.components import clear
from fmicl_registry.data import (
    get_augmentation,
    get_batch_augmentation,
    list_recipes,
    with_batched,
)

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(
    name
    for name, value in vars(hookspecs).items()
    if callable(value) and hasattr(value, "fmicl_spec")
)


@pytest.fixture
def pm() -> Iterator[Any]:
    """A fresh plugin manager; throwaway plugins vanish with it."""
    plugins.reset()
    yield plugins.get_plugin_manager()
    plugins.reset()


def add_plugin(pm: Any, name: str, plugin: object) -> None:
    pm.register(plugin, name=name)
    clear()


class ThrowawayDivergences:
    @fm.hookimpl
    def register_divergences(self, register: Any) -> None:
        register(name="throwaway_div", generator="(u - 1)**2/2", description="half Pearson")


class ThrowawaySimilarities:
    @fm.hookimpl
    def register_similarities(self, register: Any) -> None:
        class Dot:
            kind = "critic"

            def value_range(self) -> tuple[float, float]:
                return (-1.0, 1.0)

            def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
                return a @ b.T

            def paired(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
                return (a * b).sum(-1)

        register(name="throwaway_sim", factory=Dot, description="dot product")


class ThrowawayObjectives:
    @fm.hookimpl
    def register_objectives(self, register: Any) -> None:
        register(name="throwaway_obj", factory=lambda: torch.nn.MSELoss(), description="mse")


class ThrowawayBackbones:
    @fm.hookimpl
    def register_backbones(self, register: Any) -> None:
        def linear(output_dim: int = 3) -> torch.nn.Module:
            net = torch.nn.Linear(5, output_dim)
            net.output_dim = output_dim  # type: ignore[assignment]
            return net

        register(name="throwaway_backbone", factory=linear)


class ThrowawayArchitectures:
    @fm.hookimpl
    def register_architectures(self, register: Any) -> None:
        register(name="throwaway_arch", factory=lambda backbone, objective: backbone)


class ThrowawayDatasets:
    @fm.hookimpl
    def register_datasets(self, register: Any) -> None:
        def ones(root: str | None = None, split: str = "train", download: bool = False) -> Any:
            return torch.utils.data.TensorDataset(torch.ones(4, 2), torch.zeros(4))

        register(name="throwaway_data", factory=ones)


class ThrowawayAugmentations:
    @fm.hookimpl
    def register_augmentations(self, register: Any) -> None:
        def invert(input_shape: Any, mean: Any, std: Any, strength: float = 1.0) -> Any:
            return lambda image: (255 - image).float() / 255 * strength

        def invert_batch(input_shape: Any, mean: Any, std: Any, strength: float = 1.0) -> Any:
            return lambda images, generator: (255 - images).float() / 255 * strength

        register(name="invert", factory=invert, description="negative image")
        register(name="invert_batched", factory=with_batched(invert, invert_batch))


class ThrowawayLoggers:
    @fm.hookimpl
    def register_loggers(self, register: Any) -> None:
        class Collect:
            def __init__(self, prefix: str = "") -> None:
                self.prefix, self.seen, self.closed = prefix, [], False

            def start(self, run: hookspecs.RunInfo) -> None:
                self.seen.append(("start", run.start_step))

            def log_scalars(self, scalars: Any, step: int) -> None:
                self.seen += [(self.prefix + name, step) for name in scalars]

            def log_histograms(self, histograms: Any, step: int) -> None:
                self.seen += [(self.prefix + name, step) for name in histograms]

            def log_report(self, metrics: Any, step: int) -> None:
                self.seen += [(self.prefix + name, step) for name in metrics]

            def close(self, error: BaseException | None) -> None:
                self.closed = True

        register(name="collect", factory=Collect, description="keeps the names it is given")


class ThrowawayCommands:
    @fm.hookimpl
    def register_commands(self, cli: click.Group) -> None:
        @cli.command()
        @click.argument("name")
        def conjugate(name: str) -> None:
            """Print the conjugate of the registered divergence NAME."""
            click.echo(fm.get_divergence(name).conjugate)


def test_register_divergences(pm: Any) -> None:
    add_plugin(pm, "t", ThrowawayDivergences())
    assert (
        fm.get_divergence("throwaway_div").generator == fm.define_divergence("(u-1)**2/2").generator
    )
    assert fm.registry().get("divergences", "throwaway_div").plugin == "t"


def test_register_similarities(pm: Any) -> None:
    add_plugin(pm, "t", ThrowawaySimilarities())
    sim = fm.get_component("similarities", "throwaway_sim")
    assert isinstance(sim, hookspecs.Similarity)
    assert sim.pairwise(torch.eye(2), torch.eye(2)).tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_register_objectives(pm: Any) -> None:
    add_plugin(pm, "t", ThrowawayObjectives())
    loss = fm.get_component("objectives", "throwaway_obj")
    assert float(loss(torch.ones(2), torch.zeros(2))) == 1.0


def test_register_backbones(pm: Any) -> None:
    add_plugin(pm, "t", ThrowawayBackbones())
    assert fm.get_component("backbones", "throwaway_backbone", output_dim=7).output_dim == 7


def test_register_architectures(pm: Any) -> None:
    add_plugin(pm, "t", ThrowawayArchitectures())
    arch = fm.get_component("architectures", "throwaway_arch", backbone="b", objective="o")
    assert arch == "b"


def test_register_datasets(pm: Any) -> None:
    add_plugin(pm, "t", ThrowawayDatasets())
    assert len(fm.get_component("datasets", "throwaway_data", split="test")) == 4


def test_register_augmentations(pm: Any, tmp_path: Path) -> None:
    add_plugin(pm, "t", ThrowawayAugmentations())
    assert {"invert", "invert_batched", "simclr"} <= set(list_recipes())
    image = torch.zeros(1, 8, 8, dtype=torch.uint8)
    assert get_augmentation("invert", (1, 8, 8), (0.5,), (0.5,), strength=2.0)(image).max() == 2
    assert get_batch_augmentation("invert", (1, 8, 8), (0.5,), (0.5,)) is None
    batched = get_batch_augmentation("invert_batched", (1, 8, 8), (0.5,), (0.5,))
    assert batched(image[None], torch.Generator()).shape == (1, 1, 8, 8)
    with pytest.raises(fm.AugmentationError, match="did you mean 'strength'"):
        get_augmentation("invert", (1, 8, 8), (0.5,), (0.5,), strenght=2.0)
    # a spec names the plugin's recipe in [augment], and training uses it
    from fmicl_registry.training import load_spec, train

    spec = load_spec(
        None,
        [
            "train.epochs=1", "train.batch_size=256", "train.warmup_epochs=0.0",
            "train.progress=false", "backbone.width=8", "backbone.output_dim=16",
            "architecture.out_dim=16", "eval.linear_epochs=1", "eval.baselines=false",
            "eval.every=0", "augment.name=invert",
        ],
    )  # fmt: skip
    result = train(spec, tmp_path)
    assert result.report["spec"]["augment"]["name"] == "invert"
    assert (result.run_dir / "report.json").is_file()


def test_register_loggers(pm: Any, tmp_path: Path) -> None:
    add_plugin(pm, "t", ThrowawayLoggers())
    assert "collect" in fm.registry().names("loggers")
    logger = fm.get_component("loggers", "collect", prefix="x/")
    assert isinstance(logger, hookspecs.Logger)
    logger.start(hookspecs.RunInfo(tmp_path, "run", {}, start_step=0))
    logger.log_scalars({"loss": 1.0}, 3)
    logger.close(None)
    assert (logger.seen, logger.closed) == ([("start", 0), ("x/loss", 3)], True)
    with pytest.raises(fm.FmiclError, match="did you mean 'prefix'"):
        fm.get_component("loggers", "collect", prefx="x/")
    # a spec names the plugin's logger in train.logger, and training feeds it (the whole
    # story is in tests/training/test_loggers.py)


def test_register_commands(pm: Any) -> None:
    add_plugin(pm, "t", ThrowawayCommands())
    result = CliRunner().invoke(cli, ["conjugate", "kl"])
    assert (result.exit_code, result.stdout) == (0, "exp(t - 1)\n"), result.output
    listed = CliRunner().invoke(cli, ["--help"]).stdout
    assert re.search(
        r"^  conjugate +Print the conjugate of the registered divergence", listed, re.M
    )
    assert re.search(r"^  bench ", listed, re.M) and re.search(r"^  train ", listed, re.M)
    unknown = CliRunner().invoke(cli, ["conjugate", "jss"])  # an FmiclError: one line, exit 2
    assert unknown.exit_code == 2 and "Traceback" not in unknown.output
    assert unknown.stderr.startswith("Error: no divergence named 'jss'. Did you mean 'js'")


def test_a_register_call_with_the_wrong_shape_names_the_plugin(pm: Any) -> None:
    class Wrong:
        @fm.hookimpl
        def register_objectives(self, register: Any) -> None:
            register(name="x", factory="not callable")

    add_plugin(pm, "wrong", Wrong())
    with pytest.warns(
        plugins.PluginWarning,
        match=r"plugin 'wrong': objective 'x' was skipped: factory must be callable .*"
        r"got str 'not callable'; register_objectives takes",
    ):
        assert "x" not in fm.registry().names("objectives")


def test_unknown_component_lists_what_there_is(pm: Any) -> None:
    add_plugin(pm, "t", ThrowawayObjectives())
    with pytest.raises(fm.RegistryError, match=r"Did you mean 'throwaway_obj' \(plugin 't'\)"):
        fm.get_component("objectives", "throwaway_ob")
    with pytest.raises(fm.RegistryError, match="no kind 'losses'"):
        fm.registry().names("losses")


def _example(hook: str) -> str:
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    block = doc.split("Example::", 1)[1]
    return textwrap.dedent("\n".join(block.splitlines()[1:]))


@pytest.mark.parametrize("hook", HOOKS)
def test_the_documented_example_of_each_hook_works(pm: Any, hook: str, tmp_path: Path) -> None:
    # The examples are our own documentation (never user input): run each as a plugin module.
    module = types.ModuleType(f"example_{hook}")
    exec(compile(_example(hook), f"<{hook} example>", "exec"), module.__dict__)
    add_plugin(pm, f"example_{hook}", module)
    if hook == "register_commands":
        result = CliRunner().invoke(cli, ["generator", "js"])
        assert result.stdout == "u*log(u) - (u+1)*log((u+1)/2)\n", result.output
        return
    kind = hook.removeprefix("register_")
    names = fm.registry().names(kind)
    mine = [n for n in names if fm.registry().get(kind, n).plugin == f"example_{hook}"]
    assert len(mine) == 1
    if kind == "divergences":
        assert fm.get_divergence(mine[0]).conjugate_domain.sup == 1
    elif kind == "architectures":
        backbone = torch.nn.Linear(4, 6)
        backbone.output_dim = 6  # type: ignore[assignment]
        arch = fm.get_component(kind, mine[0], backbone=backbone, objective=torch.nn.MSELoss())
        assert arch(torch.ones(3, 4), torch.ones(3, 4)).shape == ()
    elif kind == "augmentations":
        transform = fm.get_component(kind, mine[0], input_shape=(1, 4, 4), mean=(0.5,), std=(0.5,))
        assert transform(torch.zeros(1, 4, 4, dtype=torch.uint8)).shape == (1, 4, 4)
    elif kind == "loggers":
        logger = fm.get_component(kind, mine[0])
        assert isinstance(logger, hookspecs.Logger)
        logger.start(hookspecs.RunInfo(tmp_path, "run", {}, start_step=0))
        logger.log_scalars({"train/loss": -1.5}, 2)
        logger.log_histograms({"distances/pretrained/positive": torch.ones(3).numpy()}, 2)
        logger.log_report({"knn_top1": 0.5}, 2)
        logger.close(None)
        written = [line for path in tmp_path.iterdir() for line in path.read_text().splitlines()]
        assert len(written) == 3 and '"train/loss": -1.5' in written[0]
    else:
        assert fm.get_component(kind, mine[0]) is not None


def test_the_guide_and_readme_show_the_tested_example_of_register_commands() -> None:
    tested = _example("register_commands").replace("'''", '"""').strip()
    for document in (ROOT / "docs" / "plugins.md", ROOT / "README.md"):
        blocks = re.findall(r"^```python\n(.*?)^```", document.read_text(), re.M | re.S)
        shown = [b for b in blocks if "def register_commands(cli)" in b]
        assert len(shown) == 1, document.name
        assert shown[0].replace("\n\n\n", "\n\n").strip() == tested, document.name


def _arguments(hook: str) -> str:
    return ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)


def test_meta_every_hook_has_a_throwaway_plugin_test() -> None:
    source = Path(__file__).read_text()
    for hook in HOOKS:
        assert f"def test_{hook}(" in source, f"{hook} has no test"
        assert f"def {hook}(self, {_arguments(hook)}" in source, f"{hook} has no throwaway plugin"


def test_meta_every_hook_is_in_the_plugin_guide() -> None:
    guide = (ROOT / "docs" / "plugins.md").read_text()
    for hook in HOOKS:
        heading = rf"^### `{hook}\({_arguments(hook)}\)`"
        assert re.search(heading, guide, re.M), f"{hook} is not documented"


def test_meta_hooks_are_the_documented_kinds() -> None:
    # A hook with a ``register`` callback registers a kind of component, and every kind has one.
    component_hooks = [hook for hook in HOOKS if _arguments(hook) == "register"]
    assert sorted(f"register_{k}" for k in hookspecs.KINDS) == component_hooks
    assert "register_commands" in HOOKS and "commands" not in hookspecs.KINDS
