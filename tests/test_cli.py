"""The ``fmicl`` command line, through click's CliRunner and as a real subprocess."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sympy as sp
from click.testing import CliRunner, Result

import fmicl_registry as fm
from fmicl_registry.cli import cli, parse_number

CATALOG = ["kl", "js", "pearson", "sh", "tsallis", "vlc", "reverse_kl", "neyman", "jeffrey"]


def run(*args: str) -> Result:
    # pytest-xdist workers export COLUMNS=80, which the CLI honours; ask for a wide table.
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})


def fmicl_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("fmicl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "fmicl_registry.cli"]


def run_process(*args: str, module: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "fmicl_registry.cli"] if module else fmicl_command()
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=300, check=False
    )


# ------------------------------------------------------------------ list


def test_list_shows_every_builtin() -> None:
    result = run("list", "divergences")
    assert result.exit_code == 0, result.output
    for name in CATALOG:
        assert name in result.stdout
    assert "u*log(u) - (u+1)*log((u+1)/2)" in result.stdout  # js, as its spec writes it
    assert "a=1.5" in result.stdout  # tsallis
    assert "Squared Hellinger" in result.stdout


def test_list_json() -> None:
    result = run("list", "divergences", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    by_name = {row["name"]: row for row in rows}
    assert set(CATALOG) <= set(by_name)
    for row in rows:
        assert {"generator", "params", "normalize", "plugin", "description"} <= set(row)
        assert "conjugate" not in row  # nothing is derived without --derive
    assert by_name["tsallis"]["params"] == {"a": 1.5}
    assert by_name["tsallis"]["normalize"] is True
    assert by_name["kl"]["generator"] == "u*log(u)"
    assert by_name["kl"]["plugin"] == "divergences"


def test_list_derive_shows_conjugates() -> None:
    result = run("list", "divergences", "--derive")
    assert result.exit_code == 0, result.output
    for name in CATALOG:
        assert name in result.stdout
    assert "numeric" in result.stdout  # jeffrey
    assert "(-oo, log(2))" in result.stdout  # js


def test_list_derive_json() -> None:
    result = run("list", "divergences", "--derive", "--json")
    assert result.exit_code == 0, result.output
    by_name = {row["name"]: row for row in json.loads(result.stdout)}
    for row in by_name.values():
        assert {"generator", "conjugate", "conjugate_domain", "plugin", "params"} <= set(row)
    assert by_name["js"]["conjugate_domain"] == "(-oo, log(2))"
    assert by_name["js"]["conjugate_closed_form"] is True
    assert by_name["jeffrey"]["conjugate"] == "numeric"
    assert by_name["jeffrey"]["conjugate_closed_form"] is False
    assert by_name["tsallis"]["params"] == {"a": 1.5}


def test_list_is_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fast listing (registrations only) and the registry agree on every field.
    result = run("list", "divergences", "--json")
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    specs = fm.registry().divergences
    assert set(rows) == set(specs)
    for name, spec in specs.items():
        assert rows[name]["generator"] == spec.generator
        assert rows[name]["params"] == spec.params
        assert rows[name]["normalize"] == spec.normalize
        assert rows[name]["description"] == spec.description
        assert rows[name]["plugin"] == spec.plugin
    assert list(rows) == sorted(specs)


@pytest.mark.parametrize("options", [[], ["--json"], ["--derive", "--json"]])
def test_divergences_list_is_list_divergences(options: list[str]) -> None:
    alias = run("divergences", "list", *options)
    assert alias.exit_code == 0, alias.output
    assert alias.stdout == run("list", "divergences", *options).stdout
    assert "The same as fmicl list divergences" in run("divergences", "list", "--help").stdout


def test_derive_lists_divergences_only() -> None:
    result = run("list", "objectives", "--derive")
    assert result.exit_code == 2 and result.stdout == ""
    assert "Error: --derive applies to divergences, not to objectives" in result.stderr


def test_list_other_kinds() -> None:
    rows = {row["name"]: row for row in json.loads(run("list", "objectives", "--json").stdout)}
    assert set(rows["infonce"]) == {"name", "plugin", "description"}
    assert rows["infonce"]["plugin"] == "objectives" and "fmicl" in rows


_IMPORTS = """
import atexit, sys
heavy = ("torch", "sympy", "numpy", "mpmath", "fmicl_registry.divergence", "fmicl_registry.mi")
loaded = lambda: [m for m in heavy if m in sys.modules]
atexit.register(lambda: print("imported:", *loaded(), file=sys.stderr))
from fmicl_registry.cli import main
sys.argv = ["fmicl", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize(
    "args",
    [
        ["list", "divergences"],
        ["list", "divergences", "--json"],
        ["divergences", "list"],
        ["--help"],
        ["bench", "--help"],
        ["bench", "mi", "--help"],
    ],
)
def test_listing_imports_neither_torch_nor_sympy(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTS, *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "imported:", done.stderr
    if args[-1] != "--help":
        assert "kl" in done.stdout
    else:
        assert "Usage: fmicl" in done.stdout


def test_listing_a_bad_registration_goes_through_the_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A registration that is not plain data: the full registry says what is wrong.
    from fmicl_registry import plugins as plugins_module

    class Broken:
        @fm.hookimpl
        def register_divergences(self, register: Any) -> None:
            register(name="kl", generator="u*log(u)")  # the catalog's name again

    def load(pm: Any) -> None:
        pm.register(Broken(), name="broken")

    monkeypatch.setattr(plugins_module, "_load_entry_points", load)
    plugins_module.reset()
    try:
        result = run("list", "divergences")
    finally:
        plugins_module.reset()
    assert result.exit_code == 0
    assert "plugin 'broken': divergence 'kl' was skipped: the name is already registered" in (
        result.output
    )


# ------------------------------------------------------------------ show


def test_show_js() -> None:
    result = run("divergences", "show", "js")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "(-oo, log(2))" in out
    assert "closed form" in out
    assert "log(2*u/(u + 1))" in out  # f'
    assert "log1p(expm1(log_r)/2)" in out  # the stable piece the loss uses
    assert "\x1b[" not in out  # no colour codes outside a terminal
    # a summary that fits a screen; the compiled module is behind --full
    assert "def positive_term(log_r):" not in out
    assert "--full" in out
    assert len(out.splitlines()) <= 40


@pytest.mark.parametrize("command", [("divergences", "show", "js"), ("divergences", "derive")])
def test_full_adds_the_compiled_module(command: tuple[str, ...]) -> None:
    args = [*command] if command[-1] == "js" else [*command, "u*log(u) - (u+1)*log((u+1)/2)"]
    summary = run(*args).stdout
    full = run(*args, "--full")
    assert full.exit_code == 0, full.output
    assert "def positive_term(log_r):" in full.stdout  # the compiled code, plain when piped
    assert full.stdout.startswith(summary.rsplit("the compiled torch module", 1)[0])


def test_show_js_json() -> None:
    result = run("divergences", "show", "js", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout, parse_constant=pytest.fail)  # strict: no Infinity/NaN
    assert data["conjugate_domain"] == {
        "low": "-oo",
        "high": "log(2)",
        "left_open": True,
        "right_open": True,
    }
    assert data["conjugate_domain_text"] == "(-oo, log(2))"
    assert data["conjugate_closed_form"] is True
    assert data["convexity"] == "proved"
    assert "def negative_term(log_r):" in data["source_code"]
    assert data["pieces"]["positive_term"][0][0] == "-inf"
    assert set(data["float32_max_rel_error"]) == {"positive_term", "negative_term"}


def test_show_jeffrey_is_numeric() -> None:
    result = run("divergences", "show", "jeffrey")
    assert result.exit_code == 0, result.output
    assert "numeric" in result.stdout
    assert "LambertW" in result.stdout


def test_show_param_changes_generator() -> None:
    default = json.loads(run("divergences", "show", "tsallis", "--json").stdout)
    result = run("divergences", "show", "tsallis", "--param", "a=2", "--json")
    assert result.exit_code == 0, result.output
    changed = json.loads(result.stdout)
    assert changed["params"] == {"a": 2}
    assert changed["generator"] != default["generator"]
    u = sp.Symbol("u")
    assert sp.simplify(sp.sympify(changed["generator"], locals={"u": u}) - (u**2 - 1)) == 0
    table = run("divergences", "show", "tsallis", "-p", "a=2")
    assert "u**2 - 1" in table.stdout


def test_show_param_fraction_matches_default() -> None:
    default = json.loads(run("divergences", "show", "tsallis", "--json").stdout)
    result = run("divergences", "show", "tsallis", "--param", "a=3/2", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["generator"] == default["generator"]


def test_show_unknown_name_suggests() -> None:
    result = run("divergences", "show", "jss")
    assert result.exit_code == 2
    assert "Did you mean 'js'" in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_show_unknown_parameter() -> None:
    result = run("divergences", "show", "tsallis", "--param", "b=2")
    assert result.exit_code == 2
    assert "no parameter 'b'" in result.stderr


@pytest.mark.parametrize("bad", ["a", "a=x", "a=1/0", "=2", "a b=2", "a=nan", "a=inf"])
def test_malformed_param_is_usage_error(bad: str) -> None:
    result = run("divergences", "show", "tsallis", "--param", bad)
    assert result.exit_code == 2
    assert repr(bad) in result.stderr
    assert "--param" in result.stderr
    assert "Traceback" not in result.output


def test_param_given_twice() -> None:
    result = run("divergences", "derive", "u**a - 1", "-p", "a=2", "-p", "a=3")
    assert result.exit_code == 2
    assert "given twice" in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2", 2), ("-3", -3), ("1.5", 1.5), ("1e-3", 0.001), ("3/2", Fraction(3, 2)), (" 7 ", 7)],
)
def test_parse_number(text: str, expected: Any) -> None:
    value = parse_number(text)
    assert value == expected
    assert type(value) is type(expected)


# ------------------------------------------------------------------ derive


def test_derive_vlc_conjugate() -> None:
    result = run("divergences", "derive", "(u-1)**2/(u+1)", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["conjugate_closed_form"] is True
    assert data["conjugate_domain_text"] == "(-3, 1)"
    t = sp.Symbol("t", real=True)
    conjugate = sp.sympify(data["conjugate"], locals={"t": t})
    expected = 4 - t - 4 * sp.sqrt(1 - t)
    for value in (-2.9, -2.0, -1.0, 0.0, 0.5, 0.99):
        got = float(conjugate.subs(t, value))
        want = float(expected.subs(t, value))
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), (value, got, want)


def test_derive_table_with_name_and_normalize() -> None:
    result = run("divergences", "derive", "u**2", "--normalize", "--name", "sq")
    assert result.exit_code == 0, result.output
    assert "sq" in result.stdout
    assert "u**2 - 1" in result.stdout
    assert "subtracted f(1) = 1" in result.stdout


@pytest.mark.parametrize(
    ("args", "generator"),
    [
        (["-log(u)"], "-log(u)"),  # reverse KL's generator, Amari alpha = -1
        (["-sqrt(u)", "--normalize"], "1 - sqrt(u)"),  # squared Hellinger up to a factor
        (["--normalize", "-sqrt(u)"], "1 - sqrt(u)"),
        (["-p", "a=2", "-(u**a - 1)/(a*(1 - a))"], "u**2/2 - 1/2"),  # Amari alpha = 2
        (["--name", "-x", "-log(u)"], "-log(u)"),  # an option's value is not the EXPR
        (["--", "-log(u)"], "-log(u)"),  # the usual escape still works
        (["-u*log(u) + u - 1 + 2*u*log(u)"], "u*log(u) + u - 1"),
    ],
)
def test_expression_may_start_with_minus(args: list[str], generator: str) -> None:
    result = run("divergences", "derive", "--json", *args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    u = sp.Symbol("u", positive=True)
    expected = sp.sympify(generator, locals={"u": u})
    assert sp.simplify(sp.sympify(data["generator"], locals={"u": u}) - expected) == 0


def test_check_takes_an_expression_starting_with_minus() -> None:
    result = run("check", "-log(u)", "--max-examples", "5")
    assert result.exit_code == 0, result.output
    assert "checking -log(u)" in result.stdout


def test_unknown_long_option_is_still_an_unknown_option() -> None:
    result = run("divergences", "derive", "--nromalize", "-log(u)")
    assert result.exit_code == 2
    assert "No such option '--nromalize'" in result.output


def test_derive_with_param() -> None:
    result = run("divergences", "derive", "(u**a - 1)/(a*(a-1))", "-p", "a=2", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["params"] == {"a": 2}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("u**3 - 3*u**2 + 2", "not convex"),
        ("u**2", "f(1) = 1"),
        ("__import__('os').system('echo hi')", "only the listed functions"),
        ("u**2 +", "not a valid expression"),
    ],
)
def test_derive_rejects(text: str, message: str) -> None:
    result = run("divergences", "derive", text)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.startswith("Error: ")
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_debug_reraises() -> None:
    result = run("--debug", "divergences", "derive", "u**2")
    assert isinstance(result.exception, fm.DivergenceSpecError)


# ------------------------------------------------------------------ check


def test_check_reports_failures_with_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    import fmicl_registry.testing as testing

    results = [
        SimpleNamespace(name="convex", passed=True, detail=""),
        SimpleNamespace(name="lower_bound", passed=False, detail="counterexample: log_r=3.0"),
    ]
    report = SimpleNamespace(passed=False, results=results)
    calls: list[dict[str, Any]] = []

    def fake(d: fm.Divergence, **kwargs: Any) -> SimpleNamespace:
        calls.append({"name": d.name, **kwargs})
        return report

    monkeypatch.setattr(testing, "check_divergence", fake)
    result = run("check", "pearson", "--max-examples", "7")
    assert result.exit_code == 1, result.output
    assert "PASS  convex" in result.stdout
    assert "FAIL  lower_bound" in result.stdout
    assert "counterexample: log_r=3.0" in result.stdout
    assert calls == [{"name": "pearson", "max_examples": 7, "raise_on_failure": False}]

    # An argument that is not a registered name is an expression.
    result = run("check", "(u-1)**2")
    assert result.exit_code == 1
    assert calls[-1]["name"] == "(u-1)**2"


def test_check_unknown_name_suggests() -> None:
    result = run("check", "jss")
    assert result.exit_code == 2
    assert "Did you mean 'js'" in result.stderr


def test_check_bad_expression() -> None:
    result = run("check", "u**2 - 2*u")
    assert result.exit_code == 2
    assert "f(1)" in result.stderr


def test_check_kl_passes() -> None:
    result = run("check", "kl", "--max-examples", "20")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert lines
    assert all(line.startswith("PASS") for line in lines)


# ------------------------------------------------------------------ the real program


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert fm.__version__ in result.stdout


def test_console_script_help_and_show() -> None:
    help_ = run_process("--help")
    assert help_.returncode == 0, help_.stderr
    assert "divergences" in help_.stdout and "check" in help_.stdout
    shown = run_process("divergences", "show", "js")
    assert shown.returncode == 0, shown.stderr
    assert "(-oo, log(2))" in shown.stdout


def test_module_hostile_text_not_run_and_no_traceback() -> None:
    proc = run_process("divergences", "derive", "__import__('os').system('echo hi')", module=True)
    assert proc.returncode == 2
    assert "hi" not in proc.stdout
    assert proc.stderr.startswith("Error: ")
    assert "Traceback" not in proc.stderr


def test_module_debug_shows_traceback() -> None:
    proc = run_process("--debug", "divergences", "derive", "u**2", module=True)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr
    assert "DivergenceSpecError" in proc.stderr


def test_list_augmentations_lists_the_registered_recipes() -> None:
    result = run("list", "augmentations", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row["plugin"] for row in json.loads(result.stdout)}
    assert rows == {"digits": "augmentations", "none": "augmentations", "simclr": "augmentations"}
