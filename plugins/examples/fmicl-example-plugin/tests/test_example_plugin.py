"""The example plugin's own tests: one line each, through fmicl-registry's pytest plugin."""

from __future__ import annotations

from typing import Any

import fmicl_registry as fm


def test_power_divergence_properties(fmicl_check: Any) -> None:
    fmicl_check("power")


def test_power_divergence_with_another_parameter(fmicl_check: Any) -> None:
    fmicl_check(fm.get_divergence("power", lam=2))


def test_components_are_registered() -> None:
    assert "power" in fm.list_divergences()
    assert fm.registry().get("similarities", "laplace").plugin == "example"
    assert fm.registry().get("objectives", "laplace_fmicl").plugin == "example"
