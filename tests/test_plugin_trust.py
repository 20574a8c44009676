"""Plugins a user did not write: hanging, exiting, interrupting, misregistering and duplicate
plugins, each driven through the real CLI (a subprocess) or the library, with its exact outcome.

An entry point is installed without pip: a folder on ``PYTHONPATH`` with the module and a
``*.dist-info`` holding ``METADATA`` and ``entry_points.txt``, which ``importlib.metadata``
finds as an installed distribution.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import fmicl_registry as fm
from fmicl_registry import plugins
from fmicl_registry.cli import cli
from fmicl_registry.components import clear

STRICT = " (FMICL_STRICT_PLUGINS is set, so this is an error; unset it to skip with a warning)"
HINT = " (set FMICL_STRICT_PLUGINS=1 to make this an error)"
COMPONENT_FORM = "takes register(name=<str>, factory=<callable>, description=<str>)"
#: What register_objectives takes: an objective may also declare its tuned options.
OBJECTIVE_FORM = (
    "takes register(name=<str>, factory=<callable>, description=<str>, search_space=<dict>)"
)

GOOD = """
import fmicl_registry as fm

@fm.hookimpl
def register_objectives(register):
    register(name="good_obj", factory=dict, description="from the good plugin")
"""
SLEEPY = "import time\ntime.sleep(600)\n"
EXITER = "import sys\nsys.exit(7)\n"
INTERRUPTER = "raise KeyboardInterrupt\n"
MISREGISTERS = """
import fmicl_registry as fm

@fm.hookimpl
def register_backbones(register):
    register(name="badbone", factory=42)
    register(name="goodbone", factory=dict)

@fm.hookimpl
def register_divergences(register):
    register(name="bad_gen", generator=12345)
    register(name="half_pearson", generator="(u-1)**2/2")
"""
COPYCAT = """
import fmicl_registry as fm

@fm.hookimpl
def register_divergences(register):
    register(name="kl", generator="u**2 - 1")
"""
HOOK_EXITS = """
import sys
import fmicl_registry as fm

@fm.hookimpl
def register_divergences(register):
    register(name="before_exit", generator="(u-1)**2")
    sys.exit(3)
"""
HOOK_INTERRUPTS = """
import fmicl_registry as fm

@fm.hookimpl
def register_divergences(register):
    raise KeyboardInterrupt
"""


def install(root: Path, module: str, code: str) -> Path:
    """Make ``module`` an installed distribution with an ``fmicl`` entry point under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(code))
    info = root / f"fmicl_{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fmicl-{module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[fmicl]\n{module} = {module}\n")
    return root


def run(
    args: list[str], root: Path, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``fmicl ARGS`` (or ``python -c`` with ``args[0] == "-c"``) with the plugins of
    ``root`` installed."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FMICL_PLUGIN")}
    environment.pop("FMICL_STRICT_PLUGINS", None)
    environment.update(PYTHONPATH=str(root), COLUMNS="200", **env)
    command = args if args[0] == "-c" else ["-m", "fmicl_registry.cli", *args]
    return subprocess.run(
        [sys.executable, *command], capture_output=True, text=True, env=environment,
        timeout=timeout, check=False,
    )  # fmt: skip


def warnings_about(stderr: str, fragment: str) -> list[str]:
    lines = stderr.splitlines()
    return [line for line in lines if line.startswith("warning:") and fragment in line]


def refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit 2, the message on stderr, no traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------ a plugin that hangs


@pytest.fixture(scope="module")
def sleepy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sleepy")
    install(root, "good", GOOD)
    return install(root, "sleepy", SLEEPY)


SHORT = {"FMICL_PLUGIN_NOTICE": "0.5", "FMICL_PLUGIN_TIMEOUT": "2"}
NOTICE = (
    "fmicl: waiting for plugin 'sleepy' (sleepy) to finish importing (0.5 s so far); it is "
    "skipped after 2 s (FMICL_PLUGIN_TIMEOUT). To skip it, run with FMICL_PLUGINS='good', "
    "which loads the other plugins only."
)
GAVE_UP = (
    "warning: fmicl plugin 'sleepy' failed and was skipped: PluginTimeout: its import did not "
    "finish within 2 s (FMICL_PLUGIN_TIMEOUT); skip it with FMICL_PLUGINS='good'" + HINT
)


@pytest.mark.parametrize(
    ("args", "shows"),
    [
        (["plugins", "--json"], '"name": "good"'),
        (["list", "divergences", "--json"], '"name": "kl"'),
        (["list", "objectives", "--json"], '"name": "good_obj"'),
        (["-c", "import fmicl_registry as fm; print(fm.get_divergence('js').name)"], "js"),
    ],
)
def test_a_hanging_import_is_named_then_skipped(sleepy: Path, args: list[str], shows: str) -> None:
    start = time.monotonic()
    result = run(args, sleepy, timeout=60, **SHORT)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert shows in result.stdout
    lines = result.stderr.splitlines()
    assert lines.count(NOTICE) == 1, result.stderr
    if args[0] == "-c":  # the library: a PluginWarning through Python's warnings
        warning = "PluginWarning: " + GAVE_UP.removeprefix("warning: ")
        assert result.stderr.count(warning) == 1, result.stderr
    else:  # the command line: one 'warning:' line, nothing else
        assert lines == [NOTICE, GAVE_UP], result.stderr
    assert elapsed < 30  # the process exits although the import thread still sleeps


def test_the_notice_names_the_way_out_and_it_works(sleepy: Path) -> None:
    result = run(["list", "objectives", "--json"], sleepy, FMICL_PLUGINS="good", **SHORT)
    assert result.returncode == 0 and result.stderr == ""
    assert "good_obj" in result.stdout


def test_a_hanging_import_in_strict_mode_is_refused(sleepy: Path) -> None:
    result = run(["list", "objectives"], sleepy, FMICL_STRICT_PLUGINS="1", **SHORT)
    refused(result, "Error: fmicl plugin 'sleepy' failed and was skipped: PluginTimeout:")
    assert result.stderr.rstrip().endswith(STRICT.strip())
    assert result.stdout == ""


@pytest.mark.parametrize("value", ["soon", "0", "-1", "inf"])
def test_a_bad_plugin_timeout_is_refused(sleepy: Path, value: str) -> None:
    result = run(["list", "objectives"], sleepy, FMICL_PLUGIN_TIMEOUT=value)
    refused(
        result, f"Error: FMICL_PLUGIN_TIMEOUT must be a number of seconds above 0, got {value!r}"
    )


# ------------------------------------------------------------------ exiting, interrupting


@pytest.fixture(scope="module")
def unruly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unruly")
    for module, code in [
        ("exiter", EXITER),
        ("interrupter", INTERRUPTER),
        ("hook_exits", HOOK_EXITS),
        ("hook_interrupts", HOOK_INTERRUPTS),
    ]:
        install(root, module, code)
    return root


UNRULY = {
    "exiter": "failed and was skipped: it called sys.exit(7), which a plugin must not do",
    "interrupter": "failed and was skipped: it raised KeyboardInterrupt itself (no Ctrl-C was "
    "pressed)",
    "hook_exits": "failed in register_divergences and was skipped: it called sys.exit(3), "
    "which a plugin must not do",
    "hook_interrupts": "failed in register_divergences and was skipped: it raised "
    "KeyboardInterrupt itself (no Ctrl-C was pressed)",
}


@pytest.mark.parametrize("args", [["list", "divergences", "--json"], ["plugins", "--json"]])
def test_exiting_and_interrupting_plugins_are_skipped_with_one_warning_each(
    unruly: Path, args: list[str]
) -> None:
    result = run(args, unruly)
    assert result.returncode == 0, result.stderr
    for plugin, why in UNRULY.items():
        assert warnings_about(result.stderr, f"'{plugin}'") == [
            f"warning: fmicl plugin {plugin!r} {why}{HINT}"
        ]
    assert "Aborted!" not in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 4
    if args[0] == "list":
        names = {row["name"] for row in json.loads(result.stdout)}
        assert "kl" in names and "before_exit" not in names  # the exiting hook is undone
    else:
        rows = {row["name"]: row for row in json.loads(result.stdout)}
        assert rows["exiter"]["error"] == "it called sys.exit(7), which a plugin must not do"


def test_an_exiting_plugin_in_strict_mode_is_refused_with_exit_2(unruly: Path) -> None:
    result = run(["list", "datasets"], unruly, FMICL_STRICT_PLUGINS="1", FMICL_PLUGINS="exiter")
    refused(result, f"Error: fmicl plugin 'exiter' {UNRULY['exiter']}{STRICT}")


# ------------------------------------------------------------------ misregistering, duplicates


@pytest.fixture(scope="module")
def misregisters(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("misregisters")
    install(root, "copycat", COPYCAT)
    return install(root, "misreg", MISREGISTERS)


BADBONE = (
    "warning: fmicl plugin 'misreg': backbone 'badbone' was skipped: factory must be callable "
    "(a function or class that builds the backbone), got int 42; register_backbones "
    f"{COMPONENT_FORM}{HINT}"
)
BAD_GEN = (
    "warning: fmicl plugin 'misreg': divergence 'bad_gen' was skipped: key 'generator' must be a "
    "string (an expression in u), got int 12345; register_divergences takes register(name=<str>, "
    "generator=<str>, params=<dict or None>, normalize=<bool>, description=<str>, "
    f"reference=<str>){HINT}"
)
COPIED_KL = (
    "warning: fmicl plugin 'copycat': divergence 'kl' was skipped: the name is already "
    "registered by plugin 'divergences', whose divergence is kept; rename it or uninstall one "
    f"of the two plugins{HINT}"
)


def test_a_bad_backbone_is_skipped_and_the_rest_of_the_plugin_loads(misregisters: Path) -> None:
    result = run(["list", "backbones", "--json"], misregisters)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row["plugin"] for row in json.loads(result.stdout)}
    assert rows["goodbone"] == "misreg" and rows["resnet18"] == "backbones"
    assert "badbone" not in rows
    # each kind's hooks run when the kind is used: the backbones' warning, not the others'
    assert result.stderr.splitlines() == [BADBONE]


@pytest.mark.parametrize("args", [["list", "divergences", "--json"], ["list", "divergences"]])
def test_a_bad_divergence_and_a_duplicate_keep_the_builtin(
    misregisters: Path, args: list[str]
) -> None:
    result = run(args, misregisters)
    assert result.returncode == 0, result.stderr
    # each skipped divergence is one warning, once; other kinds' hooks do not run
    assert sorted(result.stderr.splitlines()) == sorted([BAD_GEN, COPIED_KL])
    if "--json" in args:
        rows = {row["name"]: row for row in json.loads(result.stdout)}
        assert rows["kl"]["plugin"] == "divergences" and rows["kl"]["generator"] == "u*log(u)"
        assert rows["half_pearson"]["plugin"] == "misreg" and "bad_gen" not in rows


def test_skipped_components_are_listed_by_fmicl_plugins(misregisters: Path) -> None:
    result = run(["plugins", "--json"], misregisters)
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["misreg"]["error"] is None
    assert [s.split(":")[0] for s in rows["misreg"]["skipped"]] == [
        "divergence 'bad_gen'", "backbone 'badbone'",
    ]  # fmt: skip
    assert rows["copycat"]["skipped"] == [
        "divergence 'kl': the name is already registered by plugin 'divergences', whose "
        "divergence is kept; rename it or uninstall one of the two plugins"
    ]
    table = run(["plugins"], misregisters)
    assert "loaded; skipped divergence 'bad_gen', backbone 'badbone'" in table.stdout


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        ("misreg", BAD_GEN.removeprefix("warning: ").removesuffix(HINT)),
        ("copycat", COPIED_KL.removeprefix("warning: ").removesuffix(HINT)),
    ],
)
def test_strict_mode_refuses_a_bad_or_duplicate_component(
    misregisters: Path, plugin: str, message: str
) -> None:
    result = run(
        ["list", "divergences"], misregisters, FMICL_STRICT_PLUGINS="1", FMICL_PLUGINS=plugin
    )
    refused(result, f"Error: {message}{STRICT}")
    assert result.stdout == ""


def test_an_unrelated_training_run_works_beside_a_misregistering_plugin(
    misregisters: Path, tmp_path: Path
) -> None:
    tiny = [
        "train.epochs=1", "train.batch_size=128", "train.warmup_epochs=0.0",
        "train.progress=false", "backbone.width=8", "backbone.output_dim=16",
        "architecture.out_dim=16", "eval.linear_epochs=2", "eval.baselines=false", "eval.every=0",
    ]  # fmt: skip
    sets = [a for s in tiny for a in ("--set", s)]
    result = run(["train", *sets, "--out", str(tmp_path)], misregisters, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "kNN top-1" in result.stdout
    assert (tmp_path / "digits" / "report.json").is_file()
    assert sorted(warnings_about(result.stderr, "'misreg'")) == sorted([BAD_GEN, BADBONE])


# ------------------------------------------------------------------ plugins' commands

GREETER = """
import click
import fmicl_registry as fm

@fm.hookimpl
def register_commands(cli):
    @cli.command()
    def greet():
        \"\"\"Say hello.\"\"\"
        click.echo("hello from a plugin")
"""
COMMAND_FAILS = """
import click
import fmicl_registry as fm

@fm.hookimpl
def register_commands(cli):
    cli.add_command(click.Command("half_done", callback=lambda: None))
    raise RuntimeError("no commands today")

@fm.hookimpl
def register_divergences(register):
    register(name="still_here", generator="(u-1)**2")
"""
COMMAND_FAILED = (
    "warning: fmicl plugin 'command_fails' failed in register_commands and was skipped: "
    f"RuntimeError: no commands today{HINT}"
)


@pytest.fixture(scope="module")
def commands(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("commands")
    install(root, "greeter", GREETER)
    return install(root, "command_fails", COMMAND_FAILS)


def test_a_plugin_command_runs_beside_a_plugin_whose_register_commands_fails(
    commands: Path,
) -> None:
    listed = run(["--help"], commands)
    assert listed.returncode == 0, listed.stderr
    assert "greet " in listed.stdout and "bench " in listed.stdout
    assert "half_done" not in listed.stdout  # the failing hook is undone
    assert listed.stderr.splitlines() == [COMMAND_FAILED]
    greeted = run(["greet"], commands)
    assert (greeted.returncode, greeted.stdout) == (0, "hello from a plugin\n")
    assert greeted.stderr.splitlines() == [COMMAND_FAILED]
    # its other hook still registers
    kinds = run(["list", "divergences", "--json"], commands)
    assert "still_here" in {row["name"] for row in json.loads(kinds.stdout)}
    rows = {row["name"]: row for row in json.loads(run(["plugins", "--json"], commands).stdout)}
    assert rows["greeter"]["hooks"] == ["register_commands"] and rows["greeter"]["error"] is None
    assert rows["command_fails"]["error"] == "RuntimeError: no commands today"
    assert rows["bench_mi"]["distribution"] == "fmicl-registry (built-in)"


def test_a_failing_register_commands_in_strict_mode_is_refused(commands: Path) -> None:
    result = run(["--help"], commands, FMICL_STRICT_PLUGINS="1")
    message = COMMAND_FAILED.removeprefix("warning: ").removesuffix(HINT)
    refused(result, f"Error: {message}{STRICT}")


# ------------------------------------------------------------------ in process


@pytest.fixture
def pm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.delenv("FMICL_STRICT_PLUGINS", raising=False)
    plugins.reset()
    yield plugins.get_plugin_manager()
    plugins.reset()


def add(pm: Any, name: str, **hooks: Any) -> None:
    for hook in hooks.values():
        fm.hookimpl(hook)
    pm.register(SimpleNamespace(**hooks), name=name)
    clear()


@pytest.mark.parametrize(
    ("kwargs", "what", "problem"),
    [
        (
            {"name": "x", "factory": 42},
            "objective 'x'",
            "factory must be callable (a function or class that builds the objective), got int 42",
        ),
        ({"name": "x"}, "objective 'x'", "missing key 'factory'; got keys name"),
        (
            {"name": "x", "factory": dict, "colour": "red"},
            "objective 'x'",
            "unknown key 'colour'; got keys name, factory, colour",
        ),
        (
            {"name": 5, "factory": dict},
            "an objective (unnamed)",
            "name must be a string of 1-64 letters, digits, '_', '-' or '.', got int 5",
        ),
        (
            {"name": "x", "factory": dict, "description": None},
            "objective 'x'",
            "description must be a string, got NoneType None",
        ),
    ],
)
def test_each_bad_register_call_is_one_warning_naming_plugin_and_component(
    pm: Any, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], what: str, problem: str
) -> None:
    def register_objectives(register: Any) -> None:
        register(**kwargs)
        register(name="fine", factory=dict)

    add(pm, "wrong", register_objectives=register_objectives)
    message = f"fmicl plugin 'wrong': {what} was skipped: {problem}; register_objectives "
    with pytest.warns(plugins.PluginWarning) as caught:
        names = fm.registry().names("objectives")
    assert [str(w.message) for w in caught] == [f"{message}{OBJECTIVE_FORM}{HINT}"]
    assert "fine" in names and "x" not in names and "infonce" in names
    clear()
    monkeypatch.setenv("FMICL_STRICT_PLUGINS", "1")
    with pytest.raises(plugins.PluginError) as info:
        fm.registry().names("objectives")
    assert str(info.value) == f"{message}{OBJECTIVE_FORM}{STRICT}"


def test_a_duplicate_between_two_plugins_keeps_the_first(pm: Any) -> None:
    def first(register: Any) -> None:
        register(name="mine", generator="(u-1)**2", description="first")

    def second(register: Any) -> None:
        register(name="mine", generator="u*log(u)", description="second")

    add(pm, "first", register_divergences=first)
    add(pm, "second", register_divergences=second)
    with pytest.warns(plugins.PluginWarning) as caught:
        spec = fm.registry().divergence("mine")
    assert spec.description == "first" and spec.plugin == "first"
    assert [str(w.message) for w in caught] == [
        "fmicl plugin 'second': divergence 'mine' was skipped: the name is already registered "
        f"by plugin 'first', whose divergence is kept; rename it or uninstall one of the two "
        f"plugins{HINT}"
    ]


def test_a_trylast_plugin_cannot_take_a_builtin_name(pm: Any) -> None:
    def register_divergences(register: Any) -> None:
        register(name="js", generator="u**2 - 1")

    fm.hookimpl(trylast=True)(register_divergences)
    pm.register(SimpleNamespace(register_divergences=register_divergences), name="sneaky")
    clear()
    with pytest.warns(plugins.PluginWarning, match="plugin 'sneaky': divergence 'js' was skipped"):
        assert fm.registry().divergence("js").plugin == "divergences"


def test_strict_mode_is_kept_when_the_hook_swallows_the_error(
    pm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def register_objectives(register: Any) -> None:
        try:
            register(name="x", factory=42)
        except Exception:  # a plugin that hides the strict error from us
            return

    add(pm, "swallower", register_objectives=register_objectives)
    monkeypatch.setenv("FMICL_STRICT_PLUGINS", "1")
    with pytest.raises(plugins.PluginError, match="plugin 'swallower': objective 'x' was skipped"):
        fm.registry().names("objectives")


def test_a_failing_hook_is_undone_and_named(pm: Any) -> None:
    def register_objectives(register: Any) -> None:
        register(name="half_done", factory=dict)
        raise RuntimeError("boom")

    add(pm, "broken", register_objectives=register_objectives)
    with pytest.warns(plugins.PluginWarning) as caught:
        names = fm.registry().names("objectives")
    assert "half_done" not in names and "infonce" in names
    assert [str(w.message) for w in caught] == [
        f"fmicl plugin 'broken' failed in register_objectives and was skipped: RuntimeError: boom"
        f"{HINT}"
    ]


def test_a_real_ctrl_c_during_a_hook_still_stops(pm: Any) -> None:
    def register_objectives(register: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the signal interrupts this

    add(pm, "slow_hook", register_objectives=register_objectives)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        fm.registry().names("objectives")
    assert signal.getsignal(signal.SIGINT) is before


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})


def adds(*names: str, fail: BaseException | None = None) -> Any:
    """A ``register_commands`` that adds a command per name (each prints its plugin's words)
    and then raises ``fail``, if given."""

    def register_commands(cli: click.Group) -> None:
        for name in names:
            cli.add_command(click.Command(name, callback=lambda n=name: click.echo(f"mine: {n}")))
        if fail is not None:
            raise fail

    return register_commands


@pytest.mark.parametrize(
    ("fail", "why"),
    [
        (RuntimeError("boom"), "RuntimeError: boom"),
        (SystemExit(3), "it called sys.exit(3), which a plugin must not do"),
        (KeyboardInterrupt(), "it raised KeyboardInterrupt itself (no Ctrl-C was pressed)"),
    ],
)
def test_a_failing_register_commands_is_undone_and_the_other_commands_work(
    pm: Any, fail: BaseException, why: str
) -> None:
    add(pm, "broken", register_commands=adds("half_done", fail=fail))
    add(pm, "fine", register_commands=adds("works"))
    result = invoke("works")
    assert (result.exit_code, result.stdout) == (0, "mine: works\n"), result.output
    assert result.stderr.splitlines() == [
        f"warning: fmicl plugin 'broken' failed in register_commands and was skipped: {why}{HINT}"
    ]
    assert invoke("half_done").exit_code == 2  # no such command
    assert invoke("bench", "mi", "--help").exit_code == 0


def test_a_command_cannot_take_a_builtin_name(pm: Any) -> None:
    def register_commands(cli: click.Group) -> None:
        adds("train", "bench", "fresh")(cli)

    fm.hookimpl(tryfirst=True)(register_commands)  # first in pluggy's order: still after
    pm.register(SimpleNamespace(register_commands=register_commands), name="copycat")
    result = invoke("train", "--help")
    assert result.exit_code == 0 and "Pretrain an encoder" in result.stdout
    assert result.stderr.splitlines() == [
        "warning: fmicl plugin 'copycat': command 'train' was skipped: the name is taken by fmicl "
        f"itself (a built-in command), which is kept; rename the command or uninstall one of the "
        f"two plugins{HINT}",
        "warning: fmicl plugin 'copycat': command 'bench' was skipped: the name is taken by plugin "
        "'bench_mi', which is kept; rename the command or uninstall one of the two plugins"
        f"{HINT}",
    ]
    assert "Benchmarks: fmicl bench mi" in invoke("bench", "--help").stdout
    assert invoke("fresh").stdout == "mine: fresh\n"  # its other command is added


def test_two_plugins_with_one_command_name_keep_the_first(pm: Any) -> None:
    add(pm, "first", register_commands=adds("twin"))
    add(pm, "second", register_commands=adds("twin", "other"))
    result = invoke("twin")
    assert result.stdout == "mine: twin\n"
    assert "command 'twin' was skipped: the name is taken by plugin 'first'" in result.stderr
    assert invoke("other").stdout == "mine: other\n"


def test_a_command_clash_in_strict_mode_is_refused(
    pm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(pm, "copycat", register_commands=adds("list"))
    monkeypatch.setenv("FMICL_STRICT_PLUGINS", "1")
    result = invoke("list", "objectives")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("Error: fmicl plugin 'copycat': command 'list' was skipped")
    assert result.stderr.rstrip().endswith(STRICT.strip())
