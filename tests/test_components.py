"""The registry and the plugin hook: built-ins dogfood it, throwaway plugins exercise it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sympy as sp

import fmicl_registry as fm
from fmicl_registry import plugins
from fmicl_registry.dsl.parse import U


@pytest.fixture
def plugin_manager() -> Iterator[Any]:
    """A fresh manager; plugins registered in the test are gone afterwards."""
    plugins.reset()
    yield plugins.get_plugin_manager()
    plugins.reset()


def register_plugin(pm: Any, name: str, **hooks: Any) -> None:
    for hook in hooks.values():
        fm.hookimpl(hook)
    pm.register(SimpleNamespace(**hooks), name=name)
    from fmicl_registry.components import clear

    clear()


def test_catalog_is_registered_by_the_builtin_plugin(plugin_manager: Any) -> None:
    names = fm.list_divergences()
    assert names == sorted(
        ["kl", "js", "pearson", "sh", "tsallis", "vlc", "reverse_kl", "neyman", "jeffrey"]
    )
    assert {spec.plugin for spec in fm.registry().divergences.values()} == {"divergences"}
    assert plugin_manager.get_plugin("divergences") is not None


def test_catalog_conjugates_match_the_paper() -> None:
    t = sp.Symbol("t", real=True)
    table = {
        "kl": sp.exp(t - 1),
        "js": -sp.log(2 - sp.exp(t)),
        "pearson": t**2 / 4 + t,
        "sh": t / (1 - t),
        "tsallis": t**3 / 27 + 2,  # ((a-1)t/a)^(a/(a-1)) at a = 3/2, plus 1/(a-1) (normalized)
        "vlc": 4 - t - 4 * sp.sqrt(1 - t),
        "reverse_kl": -1 - sp.log(-t),
        "neyman": 2 - 2 * sp.sqrt(1 - t),
    }
    for name, want in table.items():
        got = fm.get_divergence(name).conjugate
        domain = fm.get_divergence(name).conjugate_domain
        for point in (sp.Rational(-5, 2), sp.Rational(-1, 3), sp.Rational(1, 5), 3):
            if domain.contains(point):
                assert sp.N(got.subs(t, point) - want.subs(t, point), 30) == pytest.approx(0)


def test_domains_match_the_paper() -> None:
    want = {
        "kl": sp.Interval(-sp.oo, sp.oo),
        "js": sp.Interval.open(-sp.oo, sp.log(2)),
        "pearson": sp.Interval.open(-2, sp.oo),
        "sh": sp.Interval.open(-sp.oo, 1),
        "tsallis": sp.Interval.open(0, sp.oo),
        "vlc": sp.Interval.open(-3, 1),
        "reverse_kl": sp.Interval.open(-sp.oo, 0),
        "neyman": sp.Interval.open(-sp.oo, 1),
        "jeffrey": sp.Interval(-sp.oo, sp.oo),
    }
    for name, interval in want.items():
        assert fm.get_divergence(name).conjugate_domain == interval, name


def test_parameters_override_defaults() -> None:
    assert fm.get_divergence("tsallis").params == {"a": 1.5}
    d = fm.get_divergence("tsallis", a=2)
    assert d.generator == U**2 - 1 and d.params == {"a": 2}
    with pytest.raises(fm.DivergenceSpecError, match=r"has no parameter 'b'.*its parameters: a"):
        fm.get_divergence("tsallis", b=2)


def test_unknown_name_suggests_close_ones() -> None:
    with pytest.raises(
        fm.RegistryError,
        match=r"no divergence named 'jss'. Did you mean 'js' \(plugin 'divergences'\)",
    ):
        fm.get_divergence("jss")


def test_a_plugin_adds_a_divergence(plugin_manager: Any) -> None:
    def register_divergences(register: Any) -> None:
        register(name="triangular", generator="(u-1)**2/(u+1)", description="VLC again")

    register_plugin(plugin_manager, "throwaway", register_divergences=register_divergences)
    assert "triangular" in fm.list_divergences()
    d = fm.get_divergence("triangular")
    assert d.source == "throwaway" and d.description == "VLC again"


def test_duplicate_names_name_both_plugins(plugin_manager: Any) -> None:
    def register_divergences(register: Any) -> None:
        register(name="kl", generator="u*log(u)")

    register_plugin(plugin_manager, "copycat", register_divergences=register_divergences)
    with pytest.warns(
        plugins.PluginWarning,
        match=r"plugin 'copycat': divergence 'kl' was skipped: the name is already registered "
        r"by plugin 'divergences', whose divergence is kept",
    ):
        assert fm.registry().divergence("kl").plugin == "divergences"


def test_a_plugin_that_raises_is_skipped_with_a_warning(
    plugin_manager: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def register_divergences(register: Any) -> None:
        raise RuntimeError("boom")

    register_plugin(plugin_manager, "broken", register_divergences=register_divergences)
    monkeypatch.delenv("FMICL_STRICT_PLUGINS", raising=False)
    with pytest.warns(plugins.PluginWarning, match="'broken' failed.*boom"):
        names = fm.list_divergences()
    assert "kl" in names
    from fmicl_registry.components import clear

    clear()
    monkeypatch.setenv("FMICL_STRICT_PLUGINS", "1")
    with pytest.raises(plugins.PluginError, match="'broken'"):
        fm.list_divergences()


def test_spec_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "alpha.toml"
    path.write_text(
        'name = "alpha"\ngenerator = "(u**a - a*u + a - 1)/(a*(a-1))"\n'
        'description = "alpha family"\n\n[params]\na = 2\n'
    )
    spec = fm.load_divergence_spec(path)
    assert spec.params == {"a": 2}
    assert fm.define_divergence(spec.with_params(a=3)).generator == sp.expand(
        (U**3 - 3 * U + 2) / 6
    )


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('name = "x"\n', "missing key 'generator'"),
        ('name = "x"\ngenerator = "u**2-1"\ncolour = "red"\n', "unknown key 'colour'"),
        ('name = "x"\ngenerator = 3\n', "'generator' must be a string"),
        (
            'name = "x"\ngenerator = "u**2-1"\nnormalize = "yes"\n',
            "'normalize' must be true or false",
        ),
        ('name = "x y"\ngenerator = "u**2-1"\n', "name 'x y' must be"),
        ('name = "x"\ngenerator = "u**2-1"\n[params]\na = "big"\n', "must be a number"),
        ("name = ", "not valid TOML"),
    ],
)
def test_bad_spec_files_say_file_key_and_expected_type(
    tmp_path: Path, content: str, fragment: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(fm.DivergenceSpecError, match=fragment) as info:
        fm.load_divergence_spec(path)
    assert str(path) in str(info.value)


def test_missing_spec_file() -> None:
    with pytest.raises(fm.DivergenceSpecError, match="cannot read"):
        fm.load_divergence_spec("/nonexistent/spec.toml")


def test_builtin_spec_files_are_shipped_as_package_data() -> None:
    from importlib.resources import files

    shipped = {p.name for p in (files("fmicl_registry.specs") / "divergences").iterdir()}
    assert {"kl.toml", "jeffrey.toml", "tsallis.toml"} <= shipped


def test_params_none_means_no_parameters(plugin_manager: Any) -> None:
    def register_divergences(register: Any) -> None:
        register(name="plain", generator="(u-1)**2", params=None)

    register_plugin(plugin_manager, "documented_way", register_divergences=register_divergences)
    assert fm.get_divergence("plain").params == {}
