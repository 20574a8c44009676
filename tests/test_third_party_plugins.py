"""Third-party plugins end to end, as a user meets them: installed packages with entry points.

Packages are installed with ``pip install --target`` into throwaway folders and put on
``PYTHONPATH`` of a subprocess, so the test environment itself never changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "plugins" / "examples" / "fmicl-example-plugin"


def _package(folder: Path, name: str, module: str, code: str) -> Path:
    """Write a minimal installable package with one ``fmicl`` entry point."""
    (folder / module).mkdir(parents=True)
    (folder / module / "__init__.py").write_text(textwrap.dedent(code))
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "1.2.3"

        [project.entry-points.fmicl]
        {module} = "{module}"

        [tool.setuptools]
        packages = ["{module}"]
        """)
    )
    return folder


def _install(source: Path, target: Path) -> Path:
    # built from a copy: setuptools writes build/ and *.egg-info into the tree it builds, and
    # two pytest-xdist workers building the shared example at once collide there
    copy = target.with_name(target.name + "-src")
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--target", str(target), str(copy)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return target


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders with the example plugin, a broken plugin and a copycat plugin installed."""
    base = tmp_path_factory.mktemp("plugins")
    missing = "raise ImportError('this plugin needs a package that is not installed')\n"
    broken = _package(base / "src-broken", "fmicl-broken-plugin", "broken_plugin", missing)
    copycat = _package(base / "src-copycat", "fmicl-copycat-plugin", "copycat_plugin", """
        import fmicl_registry as fm

        @fm.hookimpl
        def register_divergences(register):
            register(name="kl", generator="u*log(u)")
        """)  # fmt: skip
    typo = _package(base / "src-typo", "fmicl-typo-plugin", "typo_plugin", """
        import fmicl_registry as fm

        @fm.hookimpl
        def register_divergence(register):  # singular: no such hook
            register(name="never", generator="u*log(u)")
        """)  # fmt: skip
    return {
        "example": _install(EXAMPLE, base / "example"),
        "broken": _install(broken, base / "broken"),
        "copycat": _install(copycat, base / "copycat"),
        "typo": _install(typo, base / "typo"),
    }


def fmicl(*args: str, path: list[Path], **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FMICL_PLUGINS")}
    environment.pop("FMICL_STRICT_PLUGINS", None)
    environment["PYTHONPATH"] = os.pathsep.join(str(p) for p in path)
    environment["COLUMNS"] = "200"
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "fmicl_registry.cli", *args],
        capture_output=True, text=True, env=environment, timeout=300, check=False,
    )  # fmt: skip


def test_example_plugin_is_listed_with_its_distribution_and_hooks(
    installed: dict[str, Path],
) -> None:
    result = fmicl("plugins", "--json", path=[installed["example"]])
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["example"]["distribution"] == "fmicl-example-plugin"
    assert rows["example"]["version"] == "0.1.0"
    assert rows["example"]["hooks"] == [
        "register_divergences", "register_objectives", "register_similarities",
    ]  # fmt: skip
    assert rows["divergences"]["distribution"].startswith("fmicl-registry")


def test_example_components_appear_everywhere_the_builtins_do(installed: dict[str, Path]) -> None:
    listed = fmicl("divergences", "list", path=[installed["example"]])
    assert listed.returncode == 0, listed.stderr
    assert "power" in listed.stdout and "example" in listed.stdout
    kinds = fmicl("list", "similarities", "--json", path=[installed["example"]])
    assert {"name": "laplace", "plugin": "example"}.items() <= json.loads(kinds.stdout)[-1].items()
    checked = fmicl("check", "power", "--max-examples", "30", path=[installed["example"]])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "all 15 properties passed" in checked.stdout


def test_example_objective_trains(installed: dict[str, Path]) -> None:
    code = textwrap.dedent("""
        import torch, fmicl_registry as fm
        torch.manual_seed(0)
        loss_fn = fm.get_component("objectives", "laplace_fmicl")
        direct = fm.get_objective("fmicl", divergence="power", similarity="gaussian", alpha=4.0)
        net = torch.nn.Linear(8, 4)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        x = torch.randn(32, 8)
        losses = []
        for _ in range(20):
            loss = loss_fn(net(x + 0.1 * torch.randn_like(x)), net(x + 0.1 * torch.randn_like(x)))
            opt.zero_grad(); loss.backward(); opt.step(); losses.append(loss.item())
        print(losses[0], losses[-1], float(direct(net(x), net(x))))
    """)
    env = dict(os.environ, PYTHONPATH=str(installed["example"]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    first, last, _ = map(float, out.stdout.split())
    assert last < first


def test_example_plugin_tests_run_with_the_pytest_fixture(installed: dict[str, Path]) -> None:
    env = dict(os.environ, PYTHONPATH=str(installed["example"]))
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        capture_output=True, text=True, env=env, timeout=300, check=False, cwd=EXAMPLE,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 passed" in out.stdout


def test_broken_plugin_leaves_the_cli_working_with_a_warning(installed: dict[str, Path]) -> None:
    result = fmicl("list", "divergences", path=[installed["example"], installed["broken"]])
    assert result.returncode == 0, result.stderr
    assert "power" in result.stdout and "kl" in result.stdout
    assert "warning: fmicl plugin 'broken_plugin' failed and was skipped" in result.stderr
    assert "this plugin needs a package that is not installed" in result.stderr
    assert "Traceback" not in result.stderr
    listing = fmicl("plugins", "--json", path=[installed["broken"]])
    rows = {row["name"]: row for row in json.loads(listing.stdout)}
    assert "ImportError" in rows["broken_plugin"]["error"]


def test_strict_mode_turns_the_broken_plugin_into_an_error(installed: dict[str, Path]) -> None:
    result = fmicl("list", "divergences", path=[installed["broken"]], FMICL_STRICT_PLUGINS="1")
    assert result.returncode == 2
    assert "broken_plugin" in result.stderr and "FMICL_STRICT_PLUGINS" in result.stderr
    assert "Traceback" not in result.stderr


def test_misspelled_hook_is_reported_by_name(installed: dict[str, Path]) -> None:
    result = fmicl("list", "divergences", path=[installed["typo"]])
    assert result.returncode == 0
    assert "typo_plugin" in result.stderr and "register_divergence" in result.stderr


def test_duplicate_names_are_reported_with_both_origins(installed: dict[str, Path]) -> None:
    result = fmicl("list", "divergences", "--json", path=[installed["copycat"]])
    assert result.returncode == 0
    assert (
        "warning: fmicl plugin 'copycat_plugin': divergence 'kl' was skipped: the name is "
        "already registered by plugin 'divergences', whose divergence is kept" in result.stderr
    )
    rows = {row["name"]: row["plugin"] for row in json.loads(result.stdout)}
    assert rows["kl"] == "divergences"
    strict = fmicl("list", "divergences", path=[installed["copycat"]], FMICL_STRICT_PLUGINS="1")
    assert strict.returncode == 2 and "Traceback" not in strict.stderr
    assert "'copycat_plugin': divergence 'kl' was skipped" in strict.stderr


def test_fmicl_plugins_env_limits_entry_points(installed: dict[str, Path]) -> None:
    path = [installed["example"], installed["broken"]]
    only = fmicl("plugins", "--json", path=path, FMICL_PLUGINS="example")
    names = {row["name"] for row in json.loads(only.stdout)}
    assert names == {"divergences", "example"} | (names - {"example", "broken_plugin"})
    assert "broken_plugin" not in names and only.stderr == ""
    none = fmicl("plugins", "--json", path=path, FMICL_PLUGINS="")
    assert "example" not in {row["name"] for row in json.loads(none.stdout)}
