"""Compiled code: dtypes, devices, torch.func, torch.compile, the numeric conjugate, the cache."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from torch.func import grad, vmap

import fmicl_registry as fm
from fmicl_registry import divergence as divergence_module
from fmicl_registry.dsl import catalog
from fmicl_registry.dsl import compile as compile_module
from fmicl_registry.dsl.catalog import regenerate


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_compiled_functions_keep_the_dtype(catalog_name: str, dtype: torch.dtype) -> None:
    d = fm.get_divergence(catalog_name)
    u = torch.tensor([0.5, 1.0, 2.0], dtype=dtype)
    for fn, arg in ((d.f, u), (d.f_prime, u), (d.positive_term, torch.log(u))):
        assert fn(arg).dtype == dtype


def test_compiled_code_is_device_agnostic(catalog_name: str) -> None:
    # The meta device computes shapes only: it fails on any hard-coded CPU tensor.
    d = fm.get_divergence(catalog_name)
    x = torch.empty(7, device="meta")
    for fn in (d.f, d.f_prime, d.positive_term, d.negative_term):
        out = fn(x)
        assert out.device.type == "meta" and out.shape == (7,)


def test_torch_func_grad_and_vmap(catalog_name: str) -> None:
    d = fm.get_divergence(catalog_name)
    u = torch.tensor([0.3, 1.0, 2.5], dtype=torch.float64)
    # d/du f(u) == f'(u) and d/du f'(u) == f''(u), per element through vmap(grad(...)).
    assert torch.allclose(vmap(grad(d.f))(u), d.f_prime(u), rtol=1e-10)
    assert torch.allclose(vmap(grad(d.f_prime))(u), d.f_second(u), rtol=1e-10)
    # d/dlog_r negative_term = u f''(u) u... checked via Fenchel-Young: d f*(t)/dt = u.
    t = d.f_prime(u)
    assert torch.allclose(vmap(grad(d.f_star))(t), u, rtol=1e-7)
    log_r = torch.log(u)
    second = vmap(grad(grad(d.negative_term)))(log_r)
    assert torch.isfinite(second).all()


def test_numeric_conjugate_of_jeffrey_against_lambert_w() -> None:
    import mpmath

    d = fm.get_divergence("jeffrey")
    assert not d.conjugate_closed_form and "LambertW" in d.conjugate_method
    t = torch.tensor([-20.0, -3.0, 0.0, 1.0, 5.0, 30.0], dtype=torch.float64, requires_grad=True)
    value = d.f_star(t)
    (slope,) = torch.autograd.grad(value.sum(), t)
    for ti, vi, gi in zip(t.tolist(), value.tolist(), slope.tolist(), strict=True):
        w = mpmath.lambertw(mpmath.exp(1 - ti)).real
        assert vi == pytest.approx(float(w + 1 / w + ti - 2), rel=1e-10, abs=1e-12)
        assert gi == pytest.approx(float(1 / w), rel=1e-10)  # d f*/dt = (f')^{-1}(t)
    assert d.f_star(torch.tensor([1.0], dtype=torch.float32)).dtype == torch.float32


def test_numeric_conjugate_under_vmap_and_grad() -> None:
    d = fm.get_divergence("jeffrey")
    t = torch.tensor([-2.0, 0.5, 3.0], dtype=torch.float64)
    u = vmap(grad(d.f_star))(t)
    assert torch.allclose(d.f_prime(u), t, rtol=1e-10)


def test_torch_compile_traces_the_terms(catalog_name: str) -> None:
    d = fm.get_divergence(catalog_name)

    def bound(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        return d.lower_bound(pos, neg)

    compiled = torch.compile(bound, backend="aot_eager", fullgraph=catalog_name != "jeffrey")
    pos, neg = torch.randn(16), torch.randn(64) - 1
    assert torch.allclose(compiled(pos, neg), bound(pos, neg), rtol=1e-5)


@pytest.mark.slow
def test_torch_compile_inductor() -> None:
    d = fm.get_divergence("js")
    compiled = torch.compile(d.negative_term)
    x = torch.linspace(-80, 80, 101)
    assert torch.allclose(compiled(x), d.negative_term(x), rtol=1e-5)


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty disk cache, and no shipped catalog entries."""
    monkeypatch.setenv("FMICL_CACHE_DIR", str(tmp_path))
    divergence_module._compiled.cache_clear()
    monkeypatch.setattr(catalog, "lookup", lambda generator, normalize: None)
    return tmp_path


def test_second_definition_comes_from_the_disk_cache(fresh_cache: Path) -> None:
    start = time.perf_counter()
    first = fm.define_divergence("(u-1)**2/(u+1)", name="vlc_again")
    cold = time.perf_counter() - start
    assert not first.from_cache
    assert len(list(fresh_cache.rglob("*.json"))) == 1
    assert not list(fresh_cache.rglob("*.py"))  # the code is printed from the forms, not kept
    divergence_module._compiled.cache_clear()
    start = time.perf_counter()
    second = fm.define_divergence("(u-1)**2/(u+1)", name="vlc_again")
    warm = time.perf_counter() - start
    assert second.from_cache
    assert second.conjugate == first.conjugate and second.pieces == first.pieces
    assert second.source_code == first.source_code
    x = torch.linspace(-5, 5, 11)
    assert torch.equal(second.negative_term(x), first.negative_term(x))
    assert warm < cold  # not a timing assertion on the machine: the cold path runs sympy


def test_code_beside_a_cached_entry_is_never_run(fresh_cache: Path, tmp_path: Path) -> None:
    fm.define_divergence("u*log(u)", name="kl_again")
    (meta,) = fresh_cache.rglob("*.json")
    marker = tmp_path / "ran"
    meta.with_suffix(".py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    divergence_module._compiled.cache_clear()
    again = fm.define_divergence("u*log(u)", name="kl_again")
    assert again.from_cache  # the entry itself is intact
    again.positive_term(torch.linspace(-1, 1, 3))
    assert not marker.exists()
    assert "open(" not in again.source_code


def test_tampered_cached_forms_are_not_evaluated(fresh_cache: Path, tmp_path: Path) -> None:
    fm.define_divergence("(u-1)**2", name="pearson_again")
    (meta,) = fresh_cache.rglob("*.json")
    data = json.loads(meta.read_text())
    marker = tmp_path / "ran"
    data["derivative"] = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    meta.write_text(json.dumps(data))
    divergence_module._compiled.cache_clear()
    again = fm.define_divergence("(u-1)**2", name="pearson_again")
    assert not again.from_cache and not marker.exists()
    assert str(again.derivative) == "2*u - 2"


def test_cache_can_be_switched_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FMICL_CACHE_DIR", "off")
    divergence_module._compiled.cache_clear()
    assert compile_module.cache_dir() is None
    d = fm.define_divergence("(sqrt(u)-1)**2", name="sh_again")
    assert torch.isfinite(d.negative_term(torch.tensor([3.0]))).all()


def test_generated_code_is_only_torch_calls(catalog_name: str) -> None:
    source = fm.get_divergence(catalog_name).source_code
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("#"))
    for forbidden in ("import os", "__", "eval", "exec", "open("):
        assert forbidden not in code.replace('"""', "")


def test_divergences_pickle_by_definition() -> None:
    import pickle

    d = fm.get_divergence("tsallis", a=2)
    back = pickle.loads(pickle.dumps(d))
    assert back.params == {"a": 2} and back.generator == d.generator


@pytest.mark.parametrize(
    ("name", "t", "want"),
    [
        # Outside the conjugate domain f*(t) = sup_u (u t - f(u)) is still exact: +inf above,
        # -f(0+) below (the sup is approached as u -> 0), the left limit at a finite upper end.
        ("sh", 2.0, float("inf")),
        ("sh", 1.0, float("inf")),
        ("pearson", -6.0, -1.0),
        ("pearson", -2.0, -1.0),
        ("tsallis", -3.0, 2.0),
        ("vlc", -5.0, -1.0),
        ("vlc", 1.0, 3.0),
        ("vlc", 2.0, float("inf")),
        ("js", 1.0, float("inf")),
        ("jeffrey", 0.0, 0.0),
    ],
)
def test_f_star_is_the_conjugate_outside_the_domain_too(name: str, t: float, want: float) -> None:
    value = float(fm.get_divergence(name).f_star(torch.tensor([t], dtype=torch.float64)))
    assert value == pytest.approx(want, abs=1e-12)


def test_nan_in_nan_out(catalog_name: str) -> None:
    d = fm.get_divergence(catalog_name)
    nan = torch.tensor([float("nan"), 0.5], dtype=torch.float64)
    for fn in (d.positive_term, d.negative_term, lambda t: d.f_star(d.positive_term(t))):
        out = fn(nan)
        assert torch.isnan(out[0]) and torch.isfinite(out[1])


def test_forward_mode_jvp(catalog_name: str) -> None:
    from torch.func import jvp

    d = fm.get_divergence(catalog_name)
    x = torch.tensor([-3.0, 0.05, 2.0], dtype=torch.float64)
    tangent = jvp(d.positive_term, (x,), (torch.ones_like(x),))[1]
    u = torch.exp(x)
    assert torch.allclose(tangent, d.f_second(u) * u, rtol=1e-9)  # d/dx f'(e^x) = f''(u) u


def test_cached_entry_filed_under_another_key_is_not_used(fresh_cache: Path) -> None:
    fm.define_divergence("(u-1)**2", name="pearson_again")
    fm.define_divergence("u*log(u)", name="kl_again")
    entries = sorted(fresh_cache.rglob("*.json"))
    pearson = next(e for e in entries if "Integer(2)" in json.loads(e.read_text())["input"])
    kl = next(e for e in entries if e != pearson)
    kl.write_text(pearson.read_text())  # Pearson's entry under KL's key
    divergence_module._compiled.cache_clear()
    again = fm.define_divergence("u*log(u)", name="kl_again")
    assert str(again.generator) == "u*log(u)" and not again.from_cache


def test_tampered_cached_candidate_forms_are_not_evaluated(
    fresh_cache: Path, tmp_path: Path
) -> None:
    # The module holds one function per candidate form (range-specialised terms use them);
    # the forms are stored as text beside it and read back through the same whitelist.
    fm.define_divergence("(u-1)**2/(u+1)", name="vlc_again")
    (meta,) = fresh_cache.rglob("*.json")
    data = json.loads(meta.read_text())
    marker = tmp_path / "ran"
    data["negative"]["slope"]["forms"][0][1] = f"__import__('os').system('touch {marker}')"
    meta.write_text(json.dumps(data))
    divergence_module._compiled.cache_clear()
    again = fm.define_divergence("(u-1)**2/(u+1)", name="vlc_again")
    assert not again.from_cache and not marker.exists()
    assert "negative_slope_form0" in again.source_code
    again.terms_on(-4.0, 0.0).negative(torch.linspace(-4, 0, 5))


def test_cached_labels_cannot_smuggle_code(fresh_cache: Path, tmp_path: Path) -> None:
    fm.define_divergence("(u-1)**2/(u+1)", name="vlc_again")  # several forms: labels in comments
    (meta,) = fresh_cache.rglob("*.json")
    data = json.loads(meta.read_text())
    marker = tmp_path / "ran"
    data["positive"]["pieces"][0][3] = f"x\n    open({str(marker)!r}, 'w').close()\n    #"
    meta.write_text(json.dumps(data))
    divergence_module._compiled.cache_clear()
    again = fm.define_divergence("(u-1)**2/(u+1)", name="vlc_again")  # the label is in a comment
    again.positive_term(torch.linspace(-1, 1, 5))
    assert not marker.exists()


# ------------------------------------------------------------------ the shipped catalog
def test_shipped_catalog_entry_is_a_fresh_derivation(catalog_name: str) -> None:
    # Derived from scratch (no cache, no catalog): the file must hold exactly that text.
    (entry,) = regenerate.fresh([catalog_name])
    assert entry.path.exists(), (
        f"no {entry.path.name}: python -m fmicl_registry.dsl.catalog --write"
    )
    # Exactly, but for the choice among stable forms accurate to a few float32 units in the
    # last place, which depends on the machine (regenerate.ULP_NOISE).
    assert not entry.differences(), (
        f"{entry.path.name} is not what the derivation gives now ({entry.differences()}); "
        "regenerate the catalog with python -m fmicl_registry.dsl.catalog --write"
    )


def test_the_catalog_check_ignores_only_ulp_level_choices() -> None:
    """A stale entry is still caught: any symbolic change, a worse accuracy, or other pieces
    where the accuracy is not at the level of float32 rounding."""
    import json

    (entry,) = regenerate.fresh(["js"])
    shipped = json.loads(entry.path.read_text(encoding="utf-8"))
    fresh = json.loads(entry.text)
    assert regenerate.differences(shipped, fresh) == []
    changed = json.loads(entry.text)
    changed["conjugate"] = "log(Symbol('t', real=True))"
    assert regenerate.differences(shipped, changed) == ["/conjugate"]
    worse = json.loads(entry.text)
    worse["positive"]["max_rel_error"] = 3e-5
    worse["positive"]["pieces"][0][2] = "a form that loses precision"
    assert regenerate.differences(shipped, worse) == [
        "/positive/max_rel_error",
        "/positive/pieces[0][2]",
    ]


def test_catalog_divergences_come_from_the_shipped_entries(
    catalog_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FMICL_CACHE_DIR", str(tmp_path))
    divergence_module._compiled.cache_clear()
    d = fm.get_divergence(catalog_name)
    assert d.from_cache  # verified and used: no derivation
    assert not list(tmp_path.rglob("*.json"))  # and nothing written to the disk cache


def test_a_catalog_generator_with_other_parameters_is_derived(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FMICL_CACHE_DIR", str(tmp_path))
    divergence_module._compiled.cache_clear()
    assert fm.get_divergence("tsallis").from_cache
    assert not fm.get_divergence("tsallis", a=2).from_cache


def test_the_catalog_can_be_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMICL_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("FMICL_CATALOG", "off")
    divergence_module._compiled.cache_clear()
    assert not fm.get_divergence("kl").from_cache


def test_a_damaged_catalog_entry_is_derived_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FMICL_CACHE_DIR", str(tmp_path))
    divergence_module._compiled.cache_clear()
    from fmicl_registry.dsl import serialize
    from fmicl_registry.dsl.parse import parse_expression

    key = (serialize.dumps(parse_expression("(u-1)**2")), False)
    data = json.loads(catalog._entries()[key])
    data["derivative"] = data["derivative"].replace("Integer(2)", "Integer(3)")
    monkeypatch.setattr(catalog, "_entries", lambda: {key: json.dumps(data)})
    d = fm.get_divergence("pearson")
    assert not d.from_cache and str(d.derivative) == "2*u - 2"


def test_the_catalog_command_checks_the_shipped_entries() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "fmicl_registry.dsl.catalog", "--check", "kl"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "kl: current"
