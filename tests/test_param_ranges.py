"""Search ranges of a family's parameters (issue 15): ``[params.a]`` tables in spec files and
``params={"a": {"default": ..., "range": [...]}}`` registrations, read back as ``spec.ranges``,
and the specs people write wrong, each refused with where, what and how to fix it."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import fmicl_registry as fm
from fmicl_registry import plugins
from fmicl_registry.cli import cli
from fmicl_registry.components import clear
from fmicl_registry.definition import ParamRange, spec_from_mapping

sys.path.insert(0, str(Path(__file__).resolve().parent / "dsl"))  # the held-out table
from heldout import CRESSIE_READ, SKEW_JS

# Amari's own parametrisation (Amari & Nagaoka 2000), as the held-out table writes it.
AMARI_ALPHA = "4/(1 - al**2)*(1 - u**((1 + al)/2))"


def write_spec(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ held-out families

HELDOUT_FAMILIES = [
    # (file text, name, params, ranges)
    (
        f'''name = "amari_alpha"
generator = "{AMARI_ALPHA}"
reference = "Amari & Nagaoka 2000, alpha-divergence"

# al = +-1 are singular (KL and reverse KL as limits): stay inside (-1, 1)
[params.al]
default = 0.5
range = [-0.9, 0.9]
''',
        "amari_alpha",
        {"al": 0.5},
        {"al": ParamRange(-0.9, 0.9)},
    ),
    (
        f'''name = "cressie_read"
generator = "{CRESSIE_READ}"
reference = "Cressie & Read 1984 (JRSS B 46), power divergence"

[params.lam]
default = "2/3"
range = [0.1, 3]
''',
        "cressie_read",
        {"lam": "2/3"},
        {"lam": ParamRange(0.1, 3.0)},
    ),
    (
        f'''name = "skew_js"
generator = "{SKEW_JS}"
reference = "Nielsen 2010, skew Jensen-Shannon"

[params]
p = {{ default = 0.3, range = [0.01, 0.99], log = true }}
''',
        "skew_js",
        {"p": 0.3},
        {"p": ParamRange(0.01, 0.99, log=True)},
    ),
]


@pytest.mark.parametrize(("text", "name", "params", "ranges"), HELDOUT_FAMILIES)
def test_heldout_families_read_back_with_their_ranges(
    tmp_path: Path, text: str, name: str, params: dict[str, Any], ranges: dict[str, ParamRange]
) -> None:
    spec = fm.load_divergence_spec(write_spec(tmp_path, text))
    assert spec.name == name
    assert spec.params == params
    assert spec.ranges == ranges
    # the range is the register callback's form again, and reads back the same
    assert spec_from_mapping(spec.as_kwargs(), "again", spec.plugin) == spec


def test_a_heldout_family_with_a_range_derives_at_its_default_and_elsewhere(
    tmp_path: Path,
) -> None:
    spec = fm.load_divergence_spec(write_spec(tmp_path, HELDOUT_FAMILIES[0][0]))
    d = fm.define_divergence(spec)
    assert d.params == {"al": 0.5} and d.definition.ranges == spec.ranges
    moved = d.with_params(al=-0.2)  # a value a tuner could pick
    assert moved.params == {"al": -0.2} and moved.definition.ranges == spec.ranges


def test_the_plain_form_and_the_table_forms_mix(tmp_path: Path) -> None:
    # [params] with plain numbers, then [params.a] as a sub-table: legal TOML, both kept.
    spec = fm.load_divergence_spec(
        write_spec(
            tmp_path,
            'name = "scaled"\ngenerator = "b*u**a/(a-1)"\nnormalize = true\n'
            "[params]\nb = 2\n[params.a]\ndefault = 1.5\nrange = [1.05, 4.0]\n",
        )
    )
    assert spec.params == {"b": 2, "a": 1.5}
    assert spec.ranges == {"a": ParamRange(1.05, 4.0)}
    # a table with only a default is the plain form
    only_default = fm.load_divergence_spec(
        write_spec(tmp_path, 'name = "t"\ngenerator = "u**a/(a-1)"\n[params.a]\ndefault = 2\n')
    )
    assert only_default.params == {"a": 2} and only_default.ranges == {}


def test_the_bundled_tsallis_declares_its_range() -> None:
    spec = fm.registry().divergence("tsallis")
    assert spec.params == {"a": 1.5}
    assert spec.ranges == {"a": ParamRange(1.05, 4.0)}
    assert all(fm.registry().divergence(n).ranges == {} for n in ("kl", "js", "jeffrey"))
    # both ends derive
    assert fm.get_divergence("tsallis", a=1.05).conjugate_closed_form
    assert fm.get_divergence("tsallis", a=4.0).conjugate_closed_form


# ------------------------------------------------------------------ a plugin, through the hook


@pytest.fixture
def pm() -> Any:
    """A fresh plugin manager; the throwaway plugin vanishes with it."""
    plugins.reset()
    yield plugins.get_plugin_manager()
    plugins.reset()


class RangedFamily:
    @fm.hookimpl
    def register_divergences(self, register: Any) -> None:
        register(
            name="ranged_power",
            generator="(u**(lam + 1) - u - lam*(u - 1))/(lam*(lam + 1))",
            params={"lam": {"default": 1, "range": [0.25, 3.0]}},
        )
        register(
            name="ranged_log",
            generator="s*(u - 1)*log(u)",
            params={"s": {"default": 1.0, "range": [0.1, 10.0], "log": True}},
        )
        register(name="ranged_plain", generator="u**a/(a-1)", params={"a": 2}, normalize=True)


def test_a_plugin_registers_a_range_through_the_hook(pm: Any) -> None:
    pm.register(RangedFamily(), name="ranged")
    clear()
    power = fm.registry().divergence("ranged_power")
    assert power.plugin == "ranged"
    assert power.params == {"lam": 1} and power.ranges == {"lam": ParamRange(0.25, 3.0)}
    assert fm.registry().divergence("ranged_log").ranges == {"s": ParamRange(0.1, 10.0, True)}
    assert fm.registry().divergence("ranged_plain").ranges == {}
    assert fm.get_divergence("ranged_power", lam=2).params == {"lam": 2}


def test_a_wrong_range_in_a_plugin_skips_it_with_the_reason(pm: Any) -> None:
    class Reversed:
        @fm.hookimpl
        def register_divergences(self, register: Any) -> None:
            register(
                name="reversed",
                generator="u**a/(a-1)",
                params={"a": {"default": 1.5, "range": [4.0, 1.05]}},
            )

    pm.register(Reversed(), name="rev")
    clear()
    with pytest.warns(
        plugins.PluginWarning,
        match=r"plugin 'rev': divergence 'reversed' was skipped: parameter 'a': "
        r"range \[4.0, 1.05\] is reversed; write range = \[1.05, 4.0\] \(low first\)",
    ):
        assert "reversed" not in fm.registry().divergences


# ------------------------------------------------------------------ wrong specs

WRONG = [
    # (the [params.a] table's lines, the message after "<file>: parameter 'a': ")
    (
        "default = 1.5\nrange = [4.0, 1.05]",
        r"range [4.0, 1.05] is reversed; write range = [1.05, 4.0] (low first)",
    ),
    (
        "default = 1.5\nrange = [1.5, 1.5]",
        r"range [1.5, 1.5] is empty (low == high); to fix the parameter at 1.5 give it no "
        "range, else widen the range",
    ),
    (
        "default = 5\nrange = [1.05, 4.0]",
        "default 5 is outside its range [1.05, 4.0]; change the default or widen the range",
    ),
    (
        "default = 1.5\nrange = [1.05]",
        "range must be two numbers [low, high], got 1: [1.05]; e.g. range = [1.05, 4.0]",
    ),
    (
        "default = 1.5\nrange = [1.05, 1.5, 4.0]",
        "range must be two numbers [low, high], got 3: [1.05, 1.5, 4.0] (put the default in "
        "default = ..., not in the range); e.g. range = [1.05, 4.0]",
    ),
    (
        "default = 1.5\nrange = 4.0",
        "range must be two numbers [low, high], got float 4.0; e.g. range = [1.05, 4.0]",
    ),
    (
        'default = 1.5\nrange = ["1.05", "4.0"]',
        "range ends must be numbers, got the string '1.05'; write it without quotes, "
        "e.g. range = [1.05, 4.0]",
    ),
    (
        "default = 1.5\nrange = [true, 4.0]",
        "range ends must be numbers, not booleans (True); e.g. range = [1.05, 4.0]",
    ),
    (
        "default = 1.5\nrange = [1.05, inf]",
        "range ends must be finite, got inf; a tuner needs both ends, so write the largest "
        "(or smallest) value worth trying",
    ),
    (
        "default = 1.5\nrange = [nan, 4.0]",
        "range ends must be finite, got nan",
    ),
    (
        "default = 1.5\nrange = [1.05, 1e13]",
        "range end is too large (10000000000000.0); at most 1e+12",
    ),
    (
        "default = true\nrange = [1.05, 4.0]",
        "default must be a number, not a boolean (True)",
    ),
    (
        'default = "abc"\nrange = [1.05, 4.0]',
        "default must be a number (int, float or a fraction like '3/2'), got 'abc'",
    ),
    (
        "default = 1.5\nrnage = [1.05, 4.0]",
        "unknown key 'rnage' (allowed: default, range, log); did you mean 'range'?",
    ),
    (
        "default = 1.5\nmin = 1.05\nmax = 4.0",
        "unknown key 'min' (allowed: default, range, log); write the ends of the search "
        "range as range = [low, high], e.g. [1.05, 4.0]",
    ),
    (
        "default = 1.5\nbounds = [1.05, 4.0]",
        "unknown key 'bounds' (allowed: default, range, log); write the ends of the search "
        "range as range = [low, high]",
    ),
    (
        "defualt = 1.5\nrange = [1.05, 4.0]",
        "unknown key 'defualt' (allowed: default, range, log); did you mean 'default'?",
    ),
    (
        "range = [1.05, 4.0]",
        "its table has no 'default'; add default = <number>, the value used when none is "
        "given (e.g. default = 1.5)",
    ),
    (
        "default = 1.5\nrange = [-1.0, 4.0]\nlog = true",
        "log = true needs a range of positive numbers, but its low end is -1.0; raise the "
        "low end above 0 or drop log = true",
    ),
    (
        "default = 1.5\nrange = [0, 4.0]\nlog = true",
        "log = true needs a range of positive numbers, but its low end is 0",
    ),
    (
        "default = 1.5\nrange = [1.05, 4.0]\nlog = 1",
        "log must be true or false, got 1",
    ),
    (
        "default = 1.5\nlog = true",
        "log = true without a range; add range = [low, high] or drop log",
    ),
]


@pytest.mark.parametrize(("table", "message"), WRONG)
def test_a_wrong_parameter_table_is_refused_saying_where_what_and_how(
    tmp_path: Path, table: str, message: str
) -> None:
    path = write_spec(tmp_path, f'name = "t"\ngenerator = "u**a/(a-1)"\n[params.a]\n{table}\n')
    with pytest.raises(fm.DivergenceSpecError) as caught:
        fm.load_divergence_spec(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: parameter 'a': "), text
    assert message in text, text


@pytest.mark.parametrize(("table", "message"), WRONG)
def test_the_same_mistakes_in_a_registration_name_the_registration(
    table: str, message: str
) -> None:
    import tomllib

    entry = tomllib.loads(table)
    with pytest.raises(fm.DivergenceSpecError) as caught:
        spec_from_mapping(
            {"name": "t", "generator": "u**a/(a-1)", "params": {"a": entry}},
            "register_divergences",
            "p",
        )
    assert str(caught.value).startswith("register_divergences: parameter 'a': ")
    assert message in str(caught.value)


def test_a_tuple_range_in_python_is_accepted() -> None:
    spec = spec_from_mapping(
        {"name": "t", "generator": "u**a/(a-1)", "params": {"a": {"default": 2, "range": (1, 3)}}},
        "register_divergences",
        "p",
    )
    assert spec.ranges == {"a": ParamRange(1.0, 3.0)} and spec.params == {"a": 2}


def test_the_default_at_an_end_of_its_range_is_inside(tmp_path: Path) -> None:
    # 1.05 as a default and as an end are the same decimal (no binary rounding between them)
    path = write_spec(
        tmp_path,
        'name = "t"\ngenerator = "u**a/(a-1)"\n[params.a]\ndefault = 1.05\nrange = [1.05, 4.0]\n',
    )
    assert fm.load_divergence_spec(path).params == {"a": 1.05}
    fraction = fm.load_divergence_spec(
        write_spec(
            tmp_path,
            'name = "t"\ngenerator = "u**a/(a-1)"\n[params.a]\ndefault = "3/2"\nrange = [1.5, 2]\n',
        )
    )
    assert fraction.params == {"a": "3/2"}


def test_a_range_for_a_parameter_the_generator_does_not_use_is_refused_like_a_plain_one(
    tmp_path: Path,
) -> None:
    # As with a plain unused parameter, reading the spec (no sympy) accepts it and deriving
    # it refuses it, with the same message.
    plain = fm.load_divergence_spec(
        write_spec(tmp_path, 'name = "t"\ngenerator = "u*log(u)"\n[params]\nb = 2\n', "a.toml")
    )
    ranged = fm.load_divergence_spec(
        write_spec(
            tmp_path,
            'name = "t"\ngenerator = "u*log(u)"\n[params.b]\ndefault = 2\nrange = [1, 3]\n',
            "b.toml",
        )
    )
    assert ranged.ranges == {"b": ParamRange(1.0, 3.0)}
    messages = []
    for spec in (plain, ranged):
        with pytest.raises(fm.DivergenceSpecError) as caught:
            fm.define_divergence(spec)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert "parameter 'b' does not appear in the generator 'u*log(u)'" in messages[0]


def test_a_param_range_checks_itself() -> None:
    assert ParamRange(1, 3) == ParamRange(1.0, 3.0) and 2 in ParamRange(1, 3)
    assert "2" not in ParamRange(1, 3)
    assert ParamRange(0.1, 10, log=True).as_list() == [0.1, 10.0]
    for low, high, log, message in [
        (3, 1, False, "is reversed"),
        (1, 1, False, "is empty"),
        (0, 1, True, "needs a range of positive numbers"),
        (float("nan"), 1, False, "must be finite"),
        ("1", 2, False, "must be numbers"),
        (True, 2, False, "must be numbers"),
        (1, 2, "yes", "log must be true or false"),
    ]:
        with pytest.raises(fm.DivergenceSpecError, match=message):
            ParamRange(low, high, log)  # type: ignore[arg-type]


def test_a_spec_refuses_a_range_without_its_parameter() -> None:
    with pytest.raises(fm.DivergenceSpecError, match=r"a range for 'b', which is not one of"):
        fm.DivergenceSpec("t", "u**a/(a-1)", {"a": 2}, ranges={"b": ParamRange(1, 2)})
    with pytest.raises(fm.DivergenceSpecError, match="must be a ParamRange, got list"):
        fm.DivergenceSpec("t", "u**a/(a-1)", {"a": 2}, ranges={"a": [1, 3]})  # type: ignore[dict-item]


# ------------------------------------------------------------------ what stays as it was


def test_with_params_keeps_the_ranges_and_allows_values_outside_them() -> None:
    spec = fm.registry().divergence("tsallis")
    moved = spec.with_params(a=2)
    assert moved.params == {"a": 2} and moved.ranges == spec.ranges
    outside = spec.with_params(a=5)  # a range guides a search, it does not forbid
    assert outside.params == {"a": 5} and 5 not in outside.ranges["a"]
    with pytest.raises(fm.DivergenceSpecError, match="has no parameter 'b'"):
        spec.with_params(b=1)
    assert fm.get_divergence("tsallis", a=2).definition.ranges == spec.ranges


def test_specs_with_ranges_pickle_and_compare() -> None:
    spec = fm.registry().divergence("tsallis")
    back = pickle.loads(pickle.dumps(spec))
    assert back == spec and back.ranges == {"a": ParamRange(1.05, 4.0)}
    assert spec != fm.DivergenceSpec(**{**spec.__dict__, "ranges": {}})
    d = fm.get_divergence("tsallis")
    again = pickle.loads(pickle.dumps(d))
    assert again.definition == d.definition and again.definition.ranges == spec.ranges


def test_a_spec_without_ranges_is_as_before() -> None:
    spec = fm.DivergenceSpec(name="sq", generator="(u-1)**2")
    assert spec.ranges == {}
    assert spec.as_kwargs() == {
        "name": "sq",
        "generator": "(u-1)**2",
        "params": {},
        "normalize": False,
        "description": "",
        "reference": "",
    }


# ------------------------------------------------------------------ the command line


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})


def test_show_and_list_print_the_range() -> None:
    shown = run("divergences", "show", "tsallis")
    assert shown.exit_code == 0, shown.output
    assert "a=1.5 in [1.05, 4.0]" in shown.stdout
    data = json.loads(run("divergences", "show", "tsallis", "--json").stdout)
    assert data["params"] == {"a": 1.5}
    assert data["ranges"] == {"a": {"low": 1.05, "high": 4.0, "log": False}}
    listed = run("list", "divergences")
    assert "a=1.5 in [1.05, 4.0]" in listed.stdout
    rows = {row["name"]: row for row in json.loads(run("list", "divergences", "--json").stdout)}
    assert rows["tsallis"]["ranges"] == {"a": {"low": 1.05, "high": 4.0, "log": False}}
    assert rows["kl"]["ranges"] == {}
