"""The disk cache is a trust boundary: nothing in it is executed, and an entry that is not the
derivation of the generator being defined (tampered, stale, truncated, another generator's) is
detected and derived again."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import json
import py_compile
import threading
import traceback
from pathlib import Path
from typing import Any

import pytest
import sympy as sp
import torch

import fmicl_registry as fm
from fmicl_registry import divergence as divergence_module
from fmicl_registry.dsl import cache, catalog, serialize
from fmicl_registry.dsl import compile as compile_module
from fmicl_registry.dsl.parse import parse_expression

PEARSON = "(u-1)**2"
VLC = "(u-1)**2/(u+1)"  # several pieces and forms


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("FMICL_CACHE_DIR", str(folder))
    divergence_module._compiled.cache_clear()
    monkeypatch.setattr(catalog, "lookup", lambda generator, normalize: None)
    return folder


def define(text: str) -> fm.Divergence:
    divergence_module._compiled.cache_clear()
    return fm.define_divergence(text, name="trial")


_GOOD: dict[str, tuple[str, str]] = {}


def good_entry(folder: Path, text: str) -> tuple[Path, str, fm.Divergence]:
    """The entry of ``text`` written into ``folder`` (derived once per test session), its
    text and the divergence it defines."""
    generator = parse_expression(text)
    key = cache.cache_key(generator, False)
    if text not in _GOOD:
        forms = compile_module.derive_forms(generator, normalize=False)
        _GOOD[text] = (key, cache.entry_json(generator, False, forms))
    key, data = _GOOD[text]
    meta = folder / fm.__version__ / f"{key}.json"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(data)
    d = define(text)
    assert d.from_cache
    return meta, data, d


def entry(folder: Path) -> Path:
    (meta,) = folder.rglob("*.json")
    return meta


def values(d: fm.Divergence) -> list[torch.Tensor]:
    x = torch.linspace(-30, 30, 61, dtype=torch.float64)
    u = torch.exp(torch.linspace(-3, 3, 13, dtype=torch.float64))
    return [d.positive_term(x), d.negative_term(x), d.f(u), d.f_prime(u), d.f_star(d.f_prime(u))]


def same(a: fm.Divergence, b: fm.Divergence) -> bool:
    return all(torch.equal(x, y) for x, y in zip(values(a), values(b), strict=True))


def payload(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()\n"


def test_a_planted_pyc_never_runs(fresh_cache: Path, tmp_path: Path) -> None:
    first = define(VLC)
    meta = entry(fresh_cache)
    marker = tmp_path / "ran"
    # What importing the entry's module file would run: a .py identical to the printed code
    # (the old check passed), and a .pyc of other code that the import system takes unchecked.
    code = meta.with_suffix(".py")
    code.write_text(first.source_code)
    evil = tmp_path / "evil.py"
    evil.write_text(payload(marker))
    for target in (
        importlib.util.cache_from_source(str(code)),
        str(meta.with_suffix(".pyc")),
    ):
        py_compile.compile(
            str(evil),
            cfile=target,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    again = define(VLC)
    assert again.from_cache  # the entry itself is intact
    assert same(again, first)
    again.terms_on(-4.0, 0.0).negative(torch.linspace(-4, 0, 5))
    assert not marker.exists()


def test_a_py_swapped_during_loading_never_runs(fresh_cache: Path, tmp_path: Path) -> None:
    first = define(VLC)
    code = entry(fresh_cache).with_suffix(".py")
    marker = tmp_path / "ran"
    stop = threading.Event()

    def swap() -> None:  # the printed code and other code, in turn, as fast as possible
        texts = [first.source_code, first.source_code + payload(marker)]
        i = 0
        while not stop.is_set():
            code.write_text(texts[i % 2])
            i += 1

    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        for _ in range(5):
            again = define(VLC)
            assert again.from_cache and same(again, first)
    finally:
        stop.set()
        swapper.join()
    assert not marker.exists()


def test_the_module_is_built_in_memory_with_its_source_shown(fresh_cache: Path) -> None:
    define(VLC)
    d = define(VLC)
    assert d.from_cache
    module = d._compiled.module
    assert not hasattr(module, "__file__")
    assert "def positive_term(log_r):" in inspect.getsource(module.positive_term)
    try:
        d.f("not a tensor")  # type: ignore[arg-type]
    except Exception as err:
        shown = "".join(traceback.format_exception(err))
        assert "return " in shown  # the generated line, from linecache
    else:  # pragma: no cover
        pytest.fail("f accepted a string")


def rewrite(meta: Path, change: Any) -> None:
    data = json.loads(meta.read_text())
    change(data)
    meta.write_text(json.dumps(data))


def test_a_consistent_entry_of_another_coefficient_is_rebuilt(fresh_cache: Path) -> None:
    # The entry of 3*(u-1)**2 filed under (u-1)**2: JSON and printed code agree with each other
    # (the code is printed from the JSON), and every form is the exact derivation of *a*
    # generator, just not of this one.
    right = define(PEARSON)
    meta = entry(fresh_cache)
    good = meta.read_text()
    meta.unlink()
    define("3*(u-1)**2")
    other = entry(fresh_cache)
    data = json.loads(other.read_text())
    data["input"] = json.loads(good)["input"]
    other.unlink()
    meta.write_text(json.dumps(data))
    again = define(PEARSON)
    assert not again.from_cache
    assert same(again, right)
    assert str(again.derivative) == "2*u - 2"
    assert json.loads(meta.read_text()) == json.loads(good)  # overwritten with the right one
    assert define(PEARSON).from_cache


def scaled(text: str, factor: sp.Rational) -> str:
    return serialize.dumps(serialize.loads(text) * factor)


@pytest.mark.parametrize(
    "edit",
    [
        # one coefficient of the positive term's piece, in the JSON (the code is printed from it)
        lambda data: data["positive"]["pieces"][0].__setitem__(
            2, scaled(data["positive"]["pieces"][0][2], sp.Rational(1001, 1000))
        ),
        # a piece 1e-7 off: within float32's reach, still not the derivation
        lambda data: data["negative"]["pieces"][-1].__setitem__(
            2, scaled(data["negative"]["pieces"][-1][2], sp.Rational(10**7 + 1, 10**7))
        ),
        lambda data: data["negative"]["slope"]["pieces"][0].__setitem__(
            2, scaled(data["negative"]["slope"]["pieces"][0][2], 2)
        ),
        lambda data: data.__setitem__("derivative", scaled(data["derivative"], 2)),
        lambda data: data.__setitem__("second_derivative", scaled(data["second_derivative"], 2)),
        lambda data: data.__setitem__("generator", scaled(data["generator"], 2)),
        lambda data: data["positive"].__setitem__("exact", scaled(data["positive"]["exact"], 2)),
        lambda data: data.__setitem__("conjugate", scaled(data["conjugate"], 2)),
        lambda data: data.__setitem__("conjugate_top", serialize.dumps(sp.Integer(7))),
        lambda data: data.__setitem__("conjugate_below", serialize.dumps(sp.Integer(7))),
        lambda data: data.__setitem__(
            "domain", serialize.dumps(sp.Interval.open(sp.Integer(-1), sp.Integer(1)))
        ),
        lambda data: data.__setitem__("normalize", True),
        lambda data: data["positive"]["pieces"].pop(),  # the pieces no longer cover the line
    ],
)
def test_a_consistent_edit_of_one_form_is_rebuilt(fresh_cache: Path, edit: Any) -> None:
    meta, good, right = good_entry(fresh_cache, VLC)
    rewrite(meta, edit)
    assert meta.read_text() != good
    again = define(VLC)
    assert not again.from_cache
    assert same(again, right)
    assert define(VLC).from_cache  # rewritten


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],
        lambda text: "",
        lambda text: "\x00\xff garbage {{{",
        lambda text: "[]",
        lambda text: json.dumps({"version": fm.__version__, "format": cache.CACHE_FORMAT}),
        # forms in symbols of their own (the input kept: filed under the right generator)
        lambda text: but_input(text, "Symbol('u', positive=True)", "Symbol('v')"),
        lambda text: but_input(text, "Symbol('u', positive=True)", "Symbol('u')"),
        lambda text: but_input(text, "Symbol('log_r', real=True)", "Symbol('u', positive=True)"),
        lambda text: text.replace(fm.__version__, "0.0.0"),
        lambda text: text.replace('"format": 3', '"format": 2'),
    ],
)
def test_a_truncated_or_garbage_entry_is_rebuilt(fresh_cache: Path, damage: Any) -> None:
    meta, good, right = good_entry(fresh_cache, VLC)
    meta.write_bytes(damage(good).encode("utf-8", "surrogateescape"))
    assert meta.read_bytes() != good.encode()
    again = define(VLC)
    assert not again.from_cache
    assert same(again, right)


def but_input(text: str, old: str, new: str) -> str:
    data = json.loads(text)
    kept = data["input"]
    data = json.loads(json.dumps(data).replace(old, new))
    data["input"] = kept
    return json.dumps(data)


def test_an_entry_whose_input_is_another_generator_is_rebuilt(fresh_cache: Path) -> None:
    right = define(PEARSON)
    meta = entry(fresh_cache)
    good = meta.read_text()
    meta.unlink()
    define("u*log(u)")
    kl = entry(fresh_cache)
    kl.rename(meta)  # KL's entry, input and all, under Pearson's key
    again = define(PEARSON)
    assert not again.from_cache and str(again.generator) == "(u - 1)**2"
    assert same(again, right)
    assert json.loads(meta.read_text()) == json.loads(good)


@pytest.mark.parametrize(
    "text", ["u*log(2*u/(1+u))", "exp(u) - E*u", "sqrt(1+u**2) - u", "log(cosh(u-1))"]
)
def test_a_fresh_entry_verifies(text: str) -> None:
    # No false alarm: what the pipeline writes is what the loader accepts (else every
    # definition of these generators would derive again).
    generator = parse_expression(text)
    forms = compile_module.derive_forms(generator, normalize=True)
    assert cache.verify(generator, True, *forms) is None
    key = cache.cache_key(generator, True)
    loaded = cache.load_entry(cache.entry_json(generator, True, forms), generator, True, key)
    assert loaded is not None and loaded.from_cache


def test_a_wrong_derivation_fails_verification() -> None:
    generator = parse_expression(PEARSON)
    d, c, pos, neg = compile_module.derive_forms(generator, normalize=False)
    for changed in (
        (dataclasses.replace(d, derivative=d.derivative + sp.Rational(1, 10**15)), c, pos, neg),
        (d, dataclasses.replace(c, expr=(c.expr or 0) * 2), pos, neg),
        (d, c, dataclasses.replace(pos, exact=pos.exact + 1), neg),
    ):
        assert cache.verify(generator, False, *changed) is not None
