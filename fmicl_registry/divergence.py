"""``Divergence``: the symbolic and compiled views of one generator ``f(u)``.

``define_divergence`` is the entry point: parse (safely), check, derive, choose stable forms,
compile to torch, cache. See Lu et al. 2023 (f-MI bound, f-Gaussian similarity) for the maths.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sympy as sp
import torch

from .definition import DivergenceSpec
from .dsl import worker
from .dsl.budget import OutOfTime, time_budget
from .dsl.compile import Compiled, compile_generator, form_function
from .dsl.conjugate import numeric_conjugate
from .dsl.ops import SlopedTerm, piecewise
from .dsl.parse import check_parameter_name, exact_number, parse_expression
from .dsl.stabilize import StableTerm, specialize
from .errors import DivergenceSpecError

Tensor = torch.Tensor
#: The float32 relative error (value and gradient) the composed terms are held to.
ACCURACY_TARGET = 1e-5


class AccuracyWarning(UserWarning):
    """The composed terms of a divergence miss the float32 accuracy target somewhere."""


#: The most one definition may take (parse, derive, check, choose forms, compile), in CPU
#: time: in the main thread, and in the child process that derives for another thread.
DEFINITION_SECONDS = 15
#: The most a definition made outside the main thread waits for its child process, in wall
#: time (a safety net: a loaded machine stretches the CPU budget's wall time).
DEFINITION_WALL_SECONDS = 60


@dataclass(frozen=True)
class RangeTerms:
    """The composed terms for ``log_r`` in ``[low, high]``, from ``Divergence.terms_on``.

    ``positive`` and ``negative`` are :class:`~fmicl_registry.dsl.ops.SlopedTerm`: their value
    comes from the fewest forms accurate in float32 on the range, their gradient from the
    term's slope (``u f''(u)``, ``u^2 f''(u)``), also specialised. ``pieces`` says which forms
    (per function: ``(low, high, label)``; the ends are open, the accuracy is claimed on the
    range only), ``accuracy`` the worst float32 relative error measured on the range (value of
    each of the four functions; the terms' gradients are the slopes' values).
    """

    low: float
    high: float
    positive: SlopedTerm
    negative: SlopedTerm
    pieces: dict[str, list[tuple[float, float, str]]]
    accuracy: dict[str, float]


class Divergence:
    """One f-divergence: generator, derived forms and compiled torch functions.

    Build one with :func:`define_divergence` or :func:`get_divergence`, not directly.

    Symbolic views (sympy; ``u`` is a positive symbol, ``t`` real): ``generator`` (after
    parameters are substituted and, with ``normalize``, ``f(1)`` subtracted), ``derivative``,
    ``second_derivative``, ``conjugate`` (closed form or None), ``conjugate_domain`` (the range of
    ``f'`` on ``u > 0``).

    Compiled views (tensors in, tensors out, differentiable, any dtype and device, fine under
    ``torch.func`` and ``torch.compile``): ``f``, ``f_prime``, ``f_second``, ``f_star``,
    ``positive_term``, ``negative_term``, their slopes ``positive_slope``/``negative_slope``
    (``d/dlog_r``) and ``lower_bound``; ``terms_on(low, high)`` gives the two terms specialised
    to a range of ``log_r`` and differentiated by their slopes (what the f-MICL objective uses).

    Example:
        >>> import torch, fmicl_registry as fm
        >>> js = fm.get_divergence("js")
        >>> js.conjugate_domain
        Interval.open(-oo, log(2))
        >>> log_r = torch.tensor([0.0, 3.0])
        >>> torch.allclose(js.negative_term(log_r), js.f_star(js.positive_term(log_r)))
        True
    """

    def __init__(self, definition: DivergenceSpec, compiled: Compiled):
        #: The definition this divergence was derived from (parameters as plain numbers).
        self.definition = definition
        self.name = definition.name
        self.params = dict(definition.params)
        self.normalize = definition.normalize
        self.description = definition.description
        self.reference = definition.reference
        self._compiled = compiled
        derivation, conjugate = compiled.derivation, compiled.conjugate
        #: ``f(u)`` as used: parameters substituted, ``f(1)`` subtracted under ``normalize``;
        #: its first and second derivatives.
        self.generator: sp.Expr = derivation.generator
        self.derivative: sp.Expr = derivation.derivative
        self.second_derivative: sp.Expr = derivation.second_derivative
        #: The range of ``f'`` on ``u > 0``: where ``f*`` is finite and the critic may live.
        self.conjugate_domain: sp.Interval = derivation.domain
        #: How convexity was established: ``"proved"`` or the numeric search that found no dip.
        self.convexity: str = derivation.convexity
        #: The ``f(1)`` that ``normalize`` subtracted (0 when nothing was subtracted).
        self.shift: sp.Expr = derivation.shift
        #: ``f*(t)`` in closed form when sympy found one (even one torch cannot run), else
        #: None; whether ``f_star`` runs it (else the numeric conjugate), and how, in words.
        self.conjugate: sp.Expr | None = conjugate.expr
        self.conjugate_closed_form: bool = conjugate.compilable
        self.conjugate_method: str = conjugate.note
        #: The composed terms exactly, as sympy expressions in ``log_r``.
        self.positive_form: sp.Expr = compiled.positive.exact
        self.negative_form: sp.Expr = compiled.negative.exact
        #: The generated torch module, and whether the derivation was read from a cache.
        self.source_code: str = compiled.source
        self.from_cache: bool = compiled.from_cache
        module = compiled.module
        self.f: Callable[[Tensor], Tensor] = module.f
        self.f_prime: Callable[[Tensor], Tensor] = module.f_prime
        self.f_second: Callable[[Tensor], Tensor] = module.f_second
        #: ``d positive_term / d log_r = u f''(u)`` and ``d negative_term / d log_r =
        #: u^2 f''(u)`` at ``u = exp(log_r)``, compiled stable forms of their own.
        self.positive_slope: Callable[[Tensor], Tensor] = module.positive_slope
        self.negative_slope: Callable[[Tensor], Tensor] = module.negative_slope
        # The terms are differentiated by their slopes, not by autograd through their forms:
        # a form accurate in value can have an inaccurate autograd gradient (pieces that cancel
        # to O(e^-2x) where each is O(e^-x)), and its slope is measured accurate on its own.
        self.positive_term: Callable[[Tensor], Tensor] = SlopedTerm(
            module.positive_term, module.positive_slope
        )
        self.negative_term: Callable[[Tensor], Tensor] = SlopedTerm(
            module.negative_term, module.negative_slope
        )
        if hasattr(module, "f_star"):
            self.f_star: Callable[[Tensor], Tensor] = module.f_star
        else:
            self.f_star = numeric_conjugate(module.positive_term, module.negative_term)

    @property
    def text(self) -> str:
        """The generator as it was written (``definition.generator``)."""
        return self.definition.generator

    @property
    def source(self) -> str:
        """Where the definition comes from: a plugin's name, ``"user"`` or a file
        (``definition.plugin``)."""
        return self.definition.plugin

    @property
    def pieces(self) -> dict[str, list[tuple[float, float, str, str]]]:
        """The stable forms chosen per region of ``log_r``: ``(low, high, form, how)``."""
        return {
            name: [(p.low, p.high, str(p.expr), p.label) for p in term.pieces]
            for name, term in (
                ("positive_term", self._compiled.positive),
                ("negative_term", self._compiled.negative),
            )
        }

    @property
    def accuracy(self) -> dict[str, float]:
        """Worst float32 relative error measured on ``log_r`` in [-80, 80] of each term's value
        and of its gradient (which is the term's slope: :attr:`slope_accuracy`)."""
        return {
            name: max(term.max_rel_error, 0.0 if term.slope is None else term.slope.max_rel_error)
            for name, term in (
                ("positive_term", self._compiled.positive),
                ("negative_term", self._compiled.negative),
            )
        }

    @property
    def slope_accuracy(self) -> dict[str, float]:
        """Worst float32 relative error of ``positive_slope``/``negative_slope`` (value) on
        ``log_r`` in [-80, 80]."""
        return {
            name: 0.0 if term.slope is None else term.slope.max_rel_error
            for name, term in (
                ("positive_slope", self._compiled.positive),
                ("negative_slope", self._compiled.negative),
            )
        }

    # ------------------------------------------------------------------ compiled views
    def lower_bound(self, log_r_pos: Tensor, log_r_neg: Tensor) -> Tensor:
        """The variational lower bound on the f-mutual information (Lu et al. 2023).

        ``mean positive_term(log_r_pos) - mean negative_term(log_r_neg)``, where ``log_r_pos``
        holds log density ratios of joint (positive) pairs and ``log_r_neg`` of product-of-
        marginals (negative) pairs.
        """
        return self.positive_term(log_r_pos).mean() - self.negative_term(log_r_neg).mean()

    def terms_on(self, low: float, high: float) -> RangeTerms:
        """The composed terms specialised to ``log_r`` in ``[low, high]`` (a similarity's
        ``value_range()``), as differentiable functions with a slope-based gradient.

        A term that needs several forms on [-80, 80] (joined with ``torch.where``, each form
        computed on every element) often has one form accurate on the range a similarity
        gives: VLC's terms on the f-Gaussian range ``[-4, 0]`` do. Every candidate form kept
        at definition is measured on the range (:func:`~fmicl_registry.dsl.stabilize.specialize`:
        float32 value against the 60-digit reference, bfloat16 finite) and the fewest, then
        cheapest, that meet the tolerance are used; a range that still needs several keeps
        them. The functions come from the compiled module (one per form): nothing new is
        generated. Built once per range and generator, then cached in memory. An infinite
        bound gives the general forms.

        Example:
            >>> import fmicl_registry as fm
            >>> vlc = fm.get_divergence("vlc")
            >>> on_range = vlc.terms_on(-4.0, 0.0)  # the f-Gaussian range, gamma = 1, mu = 1
            >>> sorted({how for _, _, _, how in vlc.pieces["negative_term"]})  # on [-80, 80]
            ['factored', 'partial fractions']
            >>> on_range.pieces["negative_term"]
            [(-inf, inf, 'factored, log space')]
        """
        low, high = float(low), float(high)
        if not low <= high:
            raise ValueError(f"terms_on needs low <= high, got [{low}, {high}]")
        return _range_terms(self._compiled, low, high)

    def with_params(self, **params: float) -> Divergence:
        """The same family with some parameters changed: ``tsallis.with_params(a=2)``."""
        return define(self.definition.with_params(**params))

    def describe(self) -> dict[str, Any]:
        """Every derived form as plain text (what ``fmicl divergences show --json`` prints)."""
        domain = self.conjugate_domain
        return {
            "name": self.name,
            "text": self.text,
            "params": self.params,
            "ranges": {k: dataclasses.asdict(r) for k, r in self.definition.ranges.items()},
            "normalize": self.normalize,
            "description": self.description,
            "reference": self.reference,
            "source": self.source,
            "generator": str(self.generator),
            "derivative": str(self.derivative),
            "second_derivative": str(self.second_derivative),
            "conjugate": None if self.conjugate is None else str(self.conjugate),
            "conjugate_closed_form": self.conjugate_closed_form,
            "conjugate_method": self.conjugate_method,
            "conjugate_domain": {
                "low": str(domain.inf),
                "high": str(domain.sup),
                "left_open": bool(domain.left_open),
                "right_open": bool(domain.right_open),
            },
            "convexity": self.convexity,
            "positive_term": str(self.positive_form),
            "negative_term": str(self.negative_form),
            "pieces": {
                term: [[_json_bound(lo), _json_bound(hi), form, how] for lo, hi, form, how in rows]
                for term, rows in self.pieces.items()
            },
            "float32_max_rel_error": self.accuracy,
        }

    def __repr__(self) -> str:
        params = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"Divergence({self.name!r}, f(u) = {self.generator}{params})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickles as its definition (for DataLoader workers and torch.multiprocessing).
        return (define, (self.definition,))


@functools.lru_cache(maxsize=256)
def _range_terms(compiled: Compiled, low: float, high: float) -> RangeTerms:
    module = compiled.module
    functions: dict[str, Callable[[Tensor], Tensor]] = {}
    pieces: dict[str, list[tuple[float, float, str]]] = {}
    accuracy: dict[str, float] = {}
    for name, term in (
        ("positive_term", compiled.positive),
        ("negative_term", compiled.negative),
        ("positive_slope", compiled.positive.slope),
        ("negative_slope", compiled.negative.slope),
    ):
        assert isinstance(term, StableTerm)
        if not (math.isfinite(low) and math.isfinite(high)):
            functions[name] = getattr(module, name)
            pieces[name] = [(p.low, p.high, p.label) for p in term.pieces]
            accuracy[name] = term.max_rel_error
            continue
        chosen = specialize(term, low, high)
        functions[name] = piecewise(
            [(lo, hi, getattr(module, form_function(name, k))) for lo, hi, k in chosen.pieces]
        )
        pieces[name] = [(lo, hi, term.forms[k][0]) for lo, hi, k in chosen.pieces]
        accuracy[name] = chosen.max_rel_error
    return RangeTerms(
        low,
        high,
        SlopedTerm(functions["positive_term"], functions["positive_slope"]),
        SlopedTerm(functions["negative_term"], functions["negative_slope"]),
        pieces,
        accuracy,
    )


def _json_bound(value: float) -> float | str:
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _compile_in_time(
    expr: sp.Expr, normalize: bool, text: str, values: dict[str, sp.Rational]
) -> Compiled:
    """Compile ``expr`` under the definition's time limits.

    In the main thread the derivation runs here under a CPU-time budget (a signal); in any
    other thread, where no signal can interrupt it, it runs in a child process
    (``dsl.worker``) under the same CPU budget and a wall-clock limit, and this thread only
    waits (the process's other threads go on). Stored derivations are looked up here first
    either way.
    """
    in_child = None
    if threading.current_thread() is not threading.main_thread():
        in_child = functools.partial(
            worker.derive_in_child,
            text,
            values,
            normalize,
            cpu_seconds=DEFINITION_SECONDS,
            wall_seconds=DEFINITION_WALL_SECONDS,
        )
    try:
        if in_child is not None:
            return compile_generator(expr, normalize=normalize, text=text, derive_entry=in_child)
        with time_budget(DEFINITION_SECONDS):
            return compile_generator(expr, normalize=normalize, text=text)
    except worker.WallClockTimeout as err:
        raise DivergenceSpecError(
            f"deriving this generator took longer than {err.seconds:g} s and was stopped; "
            "simplify it (sympy could not handle it in time)",
            text=text,
        ) from None
    except OutOfTime:
        raise DivergenceSpecError(
            f"deriving this generator took more than {DEFINITION_SECONDS} s of CPU time "
            "and was stopped; simplify it (sympy could not handle it in time)",
            text=text,
        ) from None


def define_divergence(
    generator: str | DivergenceSpec,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    normalize: bool = False,
    *,
    description: str = "",
    reference: str = "",
    source: str = "user",
) -> Divergence:
    """Define an f-divergence from the text of its generator ``f(u)``.

    The text is parsed safely (never evaluated), checked (``f(1) = 0``, convex and twice
    differentiable on ``u > 0``), differentiated, conjugated (closed form, else numeric),
    rewritten into numerically stable composed terms and compiled to torch. Results are cached
    on disk, so a second definition of the same generator is fast.

    Args:
        generator: an expression in ``u``, e.g. ``"u*log(u)"`` or ``"u**a/(a-1)"``; or a
            whole definition (a :class:`~fmicl_registry.definition.DivergenceSpec`, e.g. from
            ``fm.load_divergence_spec``), when the other arguments are not used.
        name: a label (defaults to the text).
        params: values for the parameter names used in the text, e.g. ``{"a": 1.5}``.
        normalize: subtract ``f(1)`` instead of refusing a generator with ``f(1) != 0``.

    Raises:
        DivergenceSpecError: the text, a parameter or a check failed; the message says which.

    Example:
        >>> import fmicl_registry as fm
        >>> d = fm.define_divergence("u**a/(a-1)", name="tsallis", params={"a": 1.5},
        ...                          normalize=True)
        >>> d.conjugate
        t**3/27 + 2
    """
    if isinstance(generator, DivergenceSpec):
        return define(generator)
    definition = DivergenceSpec(
        name=name or generator,
        generator=generator,
        params=dict(params or {}),
        normalize=normalize,
        description=description,
        reference=reference,
        plugin=source,
    )
    return define(definition)


def define(definition: DivergenceSpec) -> Divergence:
    """Derive and compile a divergence's definition: parse the generator's text (safely), look
    for its derivation (in memory, in the catalog shipped with the package, in the disk cache:
    each verified against the generator), else derive it (check, differentiate, conjugate,
    choose stable forms), generate its torch code and keep the derivation.

    Example:
        >>> import fmicl_registry as fm
        >>> spec = fm.DivergenceSpec(name="pearson_half", generator="(u - 1)**2/2")
        >>> define(spec).conjugate
        t*(t + 2)/2
    """
    if not isinstance(definition.normalize, bool):
        raise DivergenceSpecError(f"normalize must be true or false, got {definition.normalize!r}")
    values: dict[str, sp.Rational] = {}
    for key, value in definition.params.items():
        check_parameter_name(key)
        values[key] = exact_number(value, f"parameter {key!r}")
    text = definition.generator
    expr = parse_expression(text, values)
    compiled = _compiled(expr, definition.normalize, text, tuple(values.items()))
    _warn_if_inaccurate(definition.name, compiled)
    plain = {k: int(v) if v.is_Integer else float(v) for k, v in values.items()}
    return Divergence(
        dataclasses.replace(definition, generator=text.strip(), params=plain), compiled
    )


@functools.lru_cache(maxsize=256)
def _compiled(
    expr: sp.Expr, normalize: bool, text: str, values: tuple[tuple[str, sp.Rational], ...]
) -> Compiled:
    """The compiled derivation of ``expr``, kept in memory for the most recent generators."""
    return _compile_in_time(expr, normalize, text, dict(values))


def _warn_if_inaccurate(name: str, compiled: Compiled) -> None:
    terms = (compiled.positive, compiled.negative, compiled.positive.slope, compiled.negative.slope)
    worst = max(term.max_rel_error for term in terms if term is not None)
    if worst > ACCURACY_TARGET:
        warnings.warn(
            f"divergence {name!r}: no form found keeps the float32 composed terms within "
            f"{ACCURACY_TARGET:g} relative error everywhere on log_r in [-80, 80] (worst: "
            f"{worst:.1e}, value, gradient or slope); Divergence.pieces and `fmicl divergences "
            "show` say where",
            AccuracyWarning,
            stacklevel=4,
        )
