"""Issue 11's held-out suite: generators a user would write, none of them the catalog's.

The table and its mpmath references live in ``heldout.py`` (shared with
``benchmarks/heldout.py``). What is required, for every entry:

- a generator that must be refused raises ``fm.DivergenceSpecError`` (no other exception) with
  a message that says why;
- a valid one is accepted, and in float32, for ``log_r`` in ``[-80, 80]``, ``positive_term``
  and ``negative_term`` and their autograd gradients are within relative error 1e-5 of the
  high-precision reference, wherever the exact value (resp. derivative) is finite and fits
  float32 (``|got - want| / max(|want|, 1e-30)``);
- the f-MICL objective built from it, at gamma 1 and 20, returns a finite loss with finite
  gradients.

The fast tests check the table itself: the references agree with the text, with ``mpmath.diff``
and with convexity (or, for an entry refused as not convex, that ``f''`` is negative where the
table says). The tests that define divergences are slow (0.2 to 20 s each on a cold cache, on
two cores).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import mpmath
import numpy as np
import pytest
from heldout import (
    AWKWARD,
    BY_NAME,
    DPS,
    OBJECTIVE_SETTINGS,
    REFUSED,
    TABLE,
    TARGET,
    VALID,
    Entry,
    measure_term,
    objective_problem,
    points_for,
    refused_by_rule,
    text_value,
)

import fmicl_registry as fm
from fmicl_registry import divergence as divergence_module

SPECS = Path(__file__).resolve().parents[2] / "specs" / "divergences"
CATALOG_TEXTS = {
    "u*log(u)", "u*log(u) - (u+1)*log((u+1)/2)", "(u-1)**2", "(sqrt(u)-1)**2", "u**a/(a-1)",
    "(u-1)**2/(u+1)", "-log(u)", "(1-u)**2/u", "(u-1)*log(u)",
}  # fmt: skip
TERMS = ["positive_term", "negative_term"]

WITH_REF = [entry for entry in TABLE if entry.ref is not None]
_DEFINED: dict[str, fm.Divergence | fm.DivergenceSpecError] = {}


def _ids(entries: list[Entry]) -> list[str]:
    return [entry.name for entry in entries]


def divergence(entry: Entry) -> fm.Divergence:
    """The library's divergence for a valid entry, defined once per test session.

    A refusal fails the test, except one that states a rule the table allows for this entry
    (``Entry.rule``; only chi_k3's rule against abs): that skips, saying so.
    """
    if entry.name not in _DEFINED:
        try:
            _DEFINED[entry.name] = fm.define_divergence(entry.text, **entry.define_kwargs())
        except fm.DivergenceSpecError as error:
            if not refused_by_rule(entry, str(error)):
                raise
            _DEFINED[entry.name] = error
    found = _DEFINED[entry.name]
    if isinstance(found, fm.DivergenceSpecError):
        pytest.skip(f"refused by a stated rule: {str(found).splitlines()[0]}")
    return found


# --- the table itself -----------------------------------------------------------------------


def test_the_table_is_large_and_held_out() -> None:
    assert len(VALID) >= 45 and len(REFUSED) >= 12
    assert len({entry.name for entry in TABLE}) == len(TABLE)
    assert len({(e.text, tuple(sorted(e.params.items())), e.normalize) for e in TABLE}) == len(
        TABLE
    )
    spaced = {text.replace(" ", "") for text in CATALOG_TEXTS}
    for entry in TABLE:
        assert entry.text.replace(" ", "") not in spaced, f"{entry.name} is a catalog text"
        assert entry.source, f"{entry.name} cites no source"
        assert (entry.ref is not None) if entry.valid else True
        assert entry.witness is None or entry.ref is not None
    assert sum(bool(entry.params) for entry in VALID) >= 10  # parametrised families


@pytest.mark.parametrize("entry", WITH_REF, ids=_ids(WITH_REF))
def test_reference_is_the_text(entry: Entry) -> None:
    # The hand-written mpmath f is the function the text spells, disguise and all.
    assert entry.ref is not None
    with mpmath.workdps(60):
        for u in ("0.001", "0.3", "0.9999", "1.7", "5", "40"):
            at = mpmath.mpf(u)
            want, got = entry.ref.f(at), text_value(entry, at)
            assert abs(got - want) <= mpmath.mpf(10) ** -45 * max(1, abs(want)), (u, got, want)


def _derivative_error(g: Callable[[Any], Any], closed: Any, u: Any) -> float:
    # mpmath.diff with a step relative to u (u spans e^-80 .. e^80); an absolute floor of
    # 10^-(DPS - 20) (1 + |g|) for derivatives that vanish (f'(1) = 0).
    numeric = mpmath.diff(g, u, h=u * mpmath.mpf(10) ** -(DPS // 2))
    floor = mpmath.mpf(10) ** -(DPS - 20) * (1 + abs(g(u)))
    return float(abs(closed - numeric) / (max(abs(closed), abs(numeric)) + floor))


@pytest.mark.parametrize("entry", WITH_REF, ids=_ids(WITH_REF))
def test_reference_derivatives_agree_with_mpmath_diff(entry: Entry) -> None:
    # The closed forms of f' and f'' written in heldout.py against mpmath.diff of f and f'.
    ref = entry.ref
    assert ref is not None
    # Not at u = 1 itself: chi_k3 has a kink in f''' there, so the numeric f'' is only O(h).
    xs = [x for x in range(-80, 81, 8) if x] + [1e-3, -1e-3, 0.5, -0.5, 2.0, -2.0, 1.3]
    problems = []
    with mpmath.workdps(DPS):
        for x in xs:
            u = mpmath.exp(mpmath.mpf(x))
            for what, closed, g in (("f'", ref.fp, ref.f), ("f''", ref.fpp, ref.fp)):
                error = _derivative_error(g, closed(u), u)
                if error > 1e-20:
                    problems.append(f"{what} at log u = {x}: relative difference {error:.2e}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("entry", VALID, ids=_ids(VALID))
def test_reference_is_a_generator(entry: Entry) -> None:
    # Convex on u = e^x, x in [-80, 80] (f'' >= 0 on 801 points), f(1) = 0 unless normalised.
    ref = entry.ref
    assert ref is not None
    with mpmath.workdps(50):
        curvature = [ref.fpp(mpmath.exp(mpmath.mpf(-80 + 0.2 * i))) for i in range(801)]
        assert min(curvature) >= 0, f"{entry.name}: f'' = {float(min(curvature))} < 0"
        assert max(curvature) > 0
        at_one = ref.f(mpmath.mpf(1))
        if entry.normalize:
            assert abs(at_one) > 1e-10, "normalize=True is not needed here"
        else:
            assert abs(at_one) < mpmath.mpf(10) ** -40, f"f(1) = {at_one}"


@pytest.mark.parametrize(
    "entry", [e for e in REFUSED if e.witness], ids=_ids([e for e in REFUSED if e.witness])
)
def test_refused_as_not_convex_really_is_not(entry: Entry) -> None:
    assert entry.ref is not None and entry.witness is not None
    with mpmath.workdps(50):
        at = mpmath.mpf(entry.witness)
        assert entry.ref.fpp(at) < 0
        assert mpmath.diff(entry.ref.f, at, 2) < 0


def test_u_atan_tanh_is_c2_but_not_convex() -> None:
    # Issue 11 leaves it open; decided here: f'' = 2 sech(2u)(1 - u tanh 2u) changes sign at
    # the root of u tanh(2u) = 1, so the generator is invalid (refused as not convex).
    with mpmath.workdps(50):
        root = mpmath.findroot(lambda u: u * mpmath.tanh(2 * u) - 1, 1.0)
        assert 1.03 < root < 1.05
        f = BY_NAME["u_atan_tanh"].ref
        assert f is not None
        assert f.fpp(root - mpmath.mpf("0.01")) > 0 > f.fpp(root + mpmath.mpf("0.01"))


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("entry", REFUSED, ids=_ids(REFUSED))
def test_invalid_generator_is_refused_with_the_reason(entry: Entry) -> None:
    assert entry.refusal is not None
    with pytest.raises(fm.DivergenceSpecError, match=entry.refusal) as raised:
        fm.define_divergence(entry.text, **entry.define_kwargs())
    assert isinstance(raised.value, ValueError)


# --- valid generators: float32 terms and gradients --------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("entry", VALID, ids=_ids(VALID))
def test_valid_generator_is_accepted(entry: Entry) -> None:
    d = divergence(entry)
    assert isinstance(d, fm.Divergence)


@pytest.mark.slow
@pytest.mark.parametrize("term", TERMS)
@pytest.mark.parametrize("entry", VALID, ids=_ids(VALID))
def test_float32_terms_and_gradients_match_the_reference(entry: Entry, term: str) -> None:
    d = divergence(entry)
    points = points_for(d.pieces)
    value, slope = measure_term(getattr(d, term), entry, points, term)
    problems = [f"{what}: {w.describe()}" for what, w in (("value", value), ("gradient", slope))
                if not w.ok]  # fmt: skip
    assert not problems, f"{entry.name}.{term} ({entry.text}):\n" + "\n".join(problems)
    assert value.checked > 0.5 * len(points) and slope.checked > 0.5 * len(points)


# --- valid generators: the objective ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("gamma", "alpha"), OBJECTIVE_SETTINGS)
@pytest.mark.parametrize("entry", VALID, ids=_ids(VALID))
def test_objective_is_finite(entry: Entry, gamma: float, alpha: float) -> None:
    # A random batch of 16 (dim 8), float32; loss and gradients must be finite (float64 says
    # whether the exact ones fit float32 at all: where not, there is nothing to ask).
    d = divergence(entry)
    objective = fm.get_objective(
        "fmicl", divergence=d, similarity="gaussian", gamma=gamma, alpha=alpha
    )
    problem = objective_problem(objective)
    if problem == "exceeds float32":
        pytest.skip("the exact loss or a gradient does not fit float32")
    assert problem is None, f"{entry.name} ({entry.text}), gamma={gamma}: {problem}"


def test_criterion_matches_the_issue() -> None:
    # Issue 11's float32 criterion, held to here and in the benchmark.
    assert TARGET == 1e-5
    points = points_for(None)
    assert points.dtype == np.float32 and points.min() == -80 and points.max() == 80
    assert (np.abs(points[(points != 0) & (np.abs(points) < 1e-6)]) >= 1e-7).all()
    assert len(points) > 800


# --- awkward points of parametrised families (issue 15's tuner samples them) -----------------


@pytest.mark.slow
@pytest.mark.parametrize("entry", AWKWARD, ids=_ids(AWKWARD))
def test_awkward_family_points_derive_cold(
    entry: Entry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A parameter to 3 digits (a = 2.37 gives u**(237/100)) derived on an empty cache, within
    # the definition budget (no timing asserted: benchmarks/family_points.py measures it), and
    # its float32 terms and gradients within 1e-5 of the hand-typed reference.
    monkeypatch.setenv("FMICL_CACHE_DIR", str(tmp_path))
    divergence_module._compiled.cache_clear()
    d = fm.define_divergence(entry.text, **entry.define_kwargs())
    assert not d.from_cache
    points = points_for(d.pieces)
    for term in TERMS:
        value, slope = measure_term(getattr(d, term), entry, points, term)
        problems = [f"{what}: {w.describe()}" for what, w in (("value", value), ("gradient", slope))
                    if not w.ok]  # fmt: skip
        assert not problems, f"{entry.name}.{term} ({entry.text}):\n" + "\n".join(problems)


@pytest.mark.slow
@pytest.mark.parametrize("a", [2.37, 3.91])
def test_tsallis_spec_at_awkward_a_derives_cold(
    a: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shipped spec itself (u**a/(a - 1), normalised) at a point that ran out of time, read
    # from its file (as the registry reads it) so that no other plugin is involved.
    monkeypatch.setenv("FMICL_CACHE_DIR", str(tmp_path))
    divergence_module._compiled.cache_clear()
    spec = fm.load_divergence_spec(SPECS / "tsallis.toml")
    d = fm.define_divergence(spec.with_params(a=a))
    entry = BY_NAME[f"hellinger_order_{round(a * 100)}"]  # the same generator once normalised
    assert d.generator == fm.define_divergence(entry.text, **entry.define_kwargs()).generator
    points = points_for(d.pieces)
    for term in TERMS:
        value, slope = measure_term(getattr(d, term), entry, points, term)
        assert value.ok and slope.ok, (term, value.describe(), slope.describe())
