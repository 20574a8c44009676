"""The package surface: a small curated API, cheap to import, installable with its data."""

from __future__ import annotations

import subprocess
import sys

import fmicl_registry as fm


def test_import_is_light() -> None:
    code = "import sys, fmicl_registry; print('torch' in sys.modules, 'sympy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_public_names_resolve_to_the_documented_objects() -> None:
    from fmicl_registry import components

    assert fm.registry is components.registry and callable(fm.registry)
    assert fm.get_divergence is components.get_divergence
    assert set(fm.__all__) <= set(dir(fm))
    assert issubclass(fm.DivergenceSpecError, ValueError)


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        _ = fm.no_such_thing  # type: ignore[attr-defined]
    except AttributeError as err:
        assert "no_such_thing" in str(err)
    else:
        raise AssertionError("expected AttributeError")


def test_lazy_names_load_once_and_list_the_public_api() -> None:
    # in a fresh interpreter: the names load their module on first use, then live on the package
    code = """
import sys, fmicl_registry.mi as mi
assert "rho_for_mi" not in vars(mi) and "fmicl_registry.mi.gaussians" not in sys.modules
f = mi.rho_for_mi
assert vars(mi)["rho_for_mi"] is f and "fmicl_registry.mi.gaussians" in sys.modules
assert dir(mi) == sorted(mi.__all__)
try:
    mi.nothing_here
except AttributeError as err:
    assert "'fmicl_registry.mi' has no attribute 'nothing_here'" in str(err), err
else:
    raise AssertionError("no AttributeError")
"""
    subprocess.run([sys.executable, "-c", code], check=True)
