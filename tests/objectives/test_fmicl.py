"""The f-MICL objective: pinned to loop-based references of the paper's formula (Lu et al.
2023), for every catalog divergence, both similarities, every negative set and a queue."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from loop_reference import COSINE_OK, TEXTBOOK, fmicl_reference, fmicl_reference_terms

import fmicl_registry as fm
from fmicl_registry.objectives import FMICL, FMICLTerms, ObjectiveError, fmicl_loss
from fmicl_registry.similarities import Cosine, Gaussian

CATALOG = sorted(TEXTBOOK)


def _views(n: int = 6, d: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g, dtype=torch.float64)
    return z1, z1 + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)


def _close(got: torch.Tensor, want: float, rel: float = 1e-9) -> None:
    assert math.isfinite(want)
    assert abs(float(got) - want) <= rel * max(1.0, abs(want)), (float(got), want)


def test_every_divergence_and_similarity_are_registered() -> None:
    assert set(fm.registry().names("objectives")) >= {
        "fmicl", "infonce", "moco_infonce", "align_uniform",
    }  # fmt: skip
    assert set(fm.registry().names("similarities")) >= {"gaussian", "cosine"}
    assert set(CATALOG) <= set(fm.list_divergences())


@pytest.mark.parametrize("name", CATALOG)
@pytest.mark.parametrize("gamma", [1.0, 20.0])
def test_gaussian_loss_equals_the_loop_reference(name: str, gamma: float) -> None:
    z1, z2 = _views()
    alpha = 40.0 if gamma == 1.0 else 409600.0
    loss = fm.get_objective("fmicl", divergence=name, gamma=gamma, alpha=alpha)(z1, z2)
    _close(loss, fmicl_reference(z1, z2, name, alpha=alpha, gamma=gamma))


@pytest.mark.parametrize("name", CATALOG)
def test_cosine_critic_works_exactly_where_the_domain_allows(name: str) -> None:
    z1, z2 = _views()
    if name in COSINE_OK:
        loss = fm.get_objective("fmicl", divergence=name, similarity="cosine", alpha=2.0)(z1, z2)
        _close(loss, fmicl_reference(z1, z2, name, alpha=2.0, similarity="cosine"))
    else:
        with pytest.raises(ObjectiveError, match="gaussian") as err:
            fm.get_objective("fmicl", divergence=name, similarity="cosine")
        assert isinstance(err.value, fm.FmiclError)
        assert "[-1, 1]" in str(err.value) and name in str(err.value)


def test_a_smaller_cosine_scale_fits_an_open_domain() -> None:
    # sh: f*(t) = t / (1 - t) on (-oo, 1); [-1, 1] touches the pole, [-0.9, 0.9] does not.
    with pytest.raises(ObjectiveError, match="scale below 1"):
        fm.get_objective("fmicl", divergence="sh", similarity="cosine")
    objective = fm.get_objective(
        "fmicl", divergence="sh", similarity="cosine", similarity_options={"scale": 0.9}
    )
    z1, z2 = _views()
    _close(objective(z1, z2), fmicl_reference(z1, z2, "sh", alpha=40.0, similarity="cosine",
                                              scale=0.9))  # fmt: skip


def test_domain_check_respects_closed_ends() -> None:
    # f(u) = (u - 1)^2 / u + ... : build critics whose range touches a domain end exactly.
    pearson = fm.get_divergence("pearson")  # domain (-2, oo), open at -2
    with pytest.raises(ObjectiveError):
        FMICL(pearson, Cosine(scale=2.0))
    FMICL(pearson, Cosine(scale=1.999))
    kl = fm.get_divergence("kl")  # (-oo, oo)
    FMICL(kl, Cosine(scale=50.0))


@pytest.mark.parametrize("negatives", ["view1", "both", "cross", "simclr"])
@pytest.mark.parametrize("name", ["js", "vlc", "jeffrey"])
def test_every_negative_set_equals_the_loop_reference(negatives: str, name: str) -> None:
    z1, z2 = _views(5)
    objective = fm.get_objective("fmicl", divergence=name, negatives=negatives, alpha=3.0)
    _close(objective(z1, z2), fmicl_reference(z1, z2, name, alpha=3.0, negatives=negatives))


@pytest.mark.parametrize("negatives", ["view1", "none"])
def test_queue_negatives_join_the_mean(negatives: str) -> None:
    z1, z2 = _views(5)
    queue = torch.randn(7, 4, dtype=torch.float64)
    objective = fm.get_objective(
        "fmicl", divergence="kl", alpha=2.0, gamma=0.5, mu=2.0, negatives=negatives, queue_size=3
    )
    want = fmicl_reference(
        z1, z2, "kl", alpha=2.0, gamma=0.5, mu=2.0, negatives=negatives, queue=queue
    )
    _close(objective(z1, z2, queue=queue), want)


def test_stateful_queue_holds_the_last_keys_and_round_trips() -> None:
    z1, z2 = _views(4)
    objective = fm.get_objective("fmicl", divergence="kl", queue_size=6)
    first = objective(z1, z2)  # random unit keys at first, as MoCo
    assert torch.isfinite(first)
    objective(z1, z2)
    assert objective.queue is not None
    keys = objective.queue.keys
    unit = torch.nn.functional.normalize(z2, dim=-1)
    # 4 keys in slots 0-3, then 4 more in slots 4, 5, 0, 1 (first in, first out):
    torch.testing.assert_close(keys, unit[[2, 3, 2, 3, 0, 1]].to(keys.dtype))
    # The loss then uses exactly these keys:
    _close(objective.eval()(z1, z2), fmicl_reference(z1, z2, "kl", alpha=40.0, queue=keys))
    clone = fm.get_objective("fmicl", divergence="kl", queue_size=6)
    clone.load_state_dict(objective.state_dict())
    assert clone.queue is not None and torch.equal(clone.queue.keys, keys)
    before = keys.clone()
    objective(z1, z2)  # eval mode: the queue does not move
    assert torch.equal(objective.queue.keys, before)


def test_user_defined_divergence_and_similarity_objects() -> None:
    d = fm.define_divergence("(u-1)**2/(u+1)", name="my_vlc")
    z1, z2 = _views()
    objective = fm.get_objective("fmicl", divergence=d, similarity=Gaussian(gamma=2.0), alpha=5)
    _close(objective(z1, z2), fmicl_reference(z1, z2, "vlc", alpha=5.0, gamma=2.0))


def test_divergence_options_by_name() -> None:
    z1, z2 = _views()
    a2 = fm.get_objective("fmicl", divergence="tsallis", divergence_options={"a": 2})(z1, z2)
    ref = fm.get_objective("fmicl", divergence=fm.get_divergence("tsallis", a=2))(z1, z2)
    torch.testing.assert_close(a2, ref)


def test_gradients_match_finite_differences() -> None:
    z1, z2 = _views(5)
    for name in ("js", "jeffrey"):
        objective = fm.get_objective("fmicl", divergence=name, negatives="simclr", alpha=3.0)
        assert torch.autograd.gradcheck(
            objective, (z1.requires_grad_(), z2.requires_grad_()), eps=1e-6, atol=1e-7
        )


def test_functional_and_module_agree() -> None:
    z1, z2 = _views()
    d = fm.get_divergence("pearson")
    want = fm.get_objective("fmicl", divergence=d, alpha=7.0, gamma=3.0)(z1, z2)
    got = fmicl_loss(z1, z2, d, Gaussian(gamma=3.0), alpha=7.0)
    torch.testing.assert_close(got, want)


def test_helpful_errors() -> None:
    z1, z2 = _views()
    with pytest.raises(fm.RegistryError, match="Did you mean 'gaussian'"):
        fm.get_objective("fmicl", similarity="gausian")
    with pytest.raises(fm.RegistryError, match="Did you mean 'js'"):
        fm.get_objective("fmicl", divergence="jss")
    with pytest.raises(ObjectiveError, match="negatives must be one of"):
        fm.get_objective("fmicl", negatives="all")
    with pytest.raises(ObjectiveError, match="alpha"):
        fm.get_objective("fmicl", alpah=3)
    with pytest.raises(fm.FmiclError, match="gamma"):
        fm.get_objective("fmicl", similarity="cosine", gamma=2.0)
    with pytest.raises(ObjectiveError, match="by name"):
        fm.get_objective("fmicl", similarity=Gaussian(), gamma=2.0)
    with pytest.raises(fm.FmiclError, match="not a similarity"):
        fm.get_objective("fmicl", similarity=object())
    with pytest.raises(ObjectiveError, match="shape"):
        fm.get_objective("fmicl")(z1, z2[:3])
    with pytest.raises(ObjectiveError, match="at least 2"):
        fm.get_objective("fmicl")(z1[:1], z2[:1])
    with pytest.raises(ObjectiveError, match="queue=keys"):
        fm.get_objective("fmicl", negatives="none")(z1, z2)
    with pytest.raises(fm.FmiclError, match="gamma must be a finite number > 0"):
        fm.get_similarity("gaussian", gamma=-1.0)


def test_no_warning_in_the_papers_settings() -> None:
    z1, z2 = (z.float() for z in _views())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fm.get_objective("fmicl", divergence="js", gamma=20.0, alpha=409600.0)(z1, z2)
        fm.get_objective("fmicl", divergence="kl", gamma=1.0, alpha=40.0)(z1, z2)


def test_every_registered_divergence_builds_with_gaussian_and_with_cosine_where_it_fits() -> None:
    z1, z2 = _views()
    for name in fm.list_divergences():
        loss = fm.get_objective("fmicl", divergence=name)(z1, z2)
        assert torch.isfinite(loss), name
        domain = fm.get_divergence(name).conjugate_domain
        fits = bool(domain.contains(-1) and domain.contains(1))
        if name in TEXTBOOK:
            assert fits == (name in COSINE_OK), name  # the paper's table agrees
        try:
            cosine = fm.get_objective("fmicl", divergence=name, similarity="cosine")
        except ObjectiveError as err:
            assert not fits and "gaussian" in str(err), name
        else:
            assert fits and torch.isfinite(cosine(z1, z2)), name


def test_public_names() -> None:
    from fmicl_registry import objectives, similarities

    assert fm.get_objective is objectives.get_objective
    assert fm.get_similarity is similarities.get_similarity
    assert {"get_objective", "get_similarity"} <= set(fm.__all__)


class _PlainDivergence:
    """The composed terms of a divergence and nothing else: the objective then differentiates
    them by autograd through their forms (no range specialisation, no slopes)."""

    def __init__(self, d: fm.Divergence) -> None:
        self.positive_term, self.negative_term = d.positive_term, d.negative_term
        self.f_star, self.conjugate_domain, self.name = d.f_star, d.conjugate_domain, d.name


@pytest.mark.parametrize("name", ["vlc", "js", "neyman"])
@pytest.mark.parametrize(
    ("negatives", "chunk_size"), [("view1", None), ("view1", 3), ("both", None), ("simclr", 4)]
)
def test_specialised_sloped_terms_give_the_plain_loss_and_gradients(
    name: str, negatives: str, chunk_size: int | None
) -> None:
    # The objective's own path (terms specialised to the similarity's range, differentiated by
    # their slopes, one side of a symmetric sum) against autograd through the general forms.
    z1, z2 = _views(7)
    queue = torch.randn(5, 4, dtype=torch.float64)
    d = fm.get_divergence(name)
    results = []
    for divergence in (d, _PlainDivergence(d)):
        x1, x2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
        loss = fmicl_loss(
            x1,
            x2,
            divergence,  # type: ignore[arg-type]
            Gaussian(gamma=2.0),
            alpha=3.0,
            negatives=negatives,  # type: ignore[arg-type]
            queue=queue,
            chunk_size=chunk_size,
        )
        results.append((loss, *torch.autograd.grad(loss, (x1, x2))))
    for got, want in zip(results[0], results[1], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("negatives", ["view1", "both", "cross", "simclr", "none"])
def test_the_loss_returns_its_two_means_when_asked(negatives: str) -> None:
    # The positive and negative terms of the paper's objective, each pinned to the loops, and
    # the loss they make: alpha * negative - positive, the same loss as without return_terms.
    z1, z2 = _views(5)
    queue = torch.randn(4, 4, dtype=torch.float64)
    d, sim = fm.get_divergence("js"), Gaussian(gamma=2.0)
    x1, x2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    out = fmicl_loss(x1, x2, d, sim, alpha=3.0, negatives=negatives, queue=queue, return_terms=True)  # type: ignore[arg-type]
    assert isinstance(out, FMICLTerms) and out._fields == ("loss", "positive", "negative")
    positive, negative = fmicl_reference_terms(
        z1, z2, "js", gamma=2.0, negatives=negatives, queue=queue
    )
    _close(out.positive.detach(), float(positive))
    _close(out.negative.detach(), float(negative))
    plain = fmicl_loss(z1, z2, d, sim, alpha=3.0, negatives=negatives, queue=queue)  # type: ignore[arg-type]
    assert torch.equal(out.loss, plain)
    torch.testing.assert_close(out.loss, 3.0 * out.negative - out.positive, rtol=1e-14, atol=0)
    # They are the pieces of the loss's graph, not copies: their gradients make its gradient.
    want = torch.autograd.grad(out.loss, (x1, x2), retain_graph=True)
    got = torch.autograd.grad(3.0 * out.negative - out.positive, (x1, x2))
    for left, right in zip(got, want, strict=True):
        torch.testing.assert_close(left, right, rtol=1e-12, atol=1e-14)


def test_last_terms_hold_the_two_means() -> None:
    z1, z2 = _views()
    objective = fm.get_objective("fmicl", divergence="js", gamma=2.0, alpha=5.0)
    loss = objective(z1.requires_grad_(), z2)
    terms = objective.last_terms
    assert set(terms) == {"positive term", "negative term"}
    assert not terms["positive term"].requires_grad and not terms["negative term"].requires_grad
    torch.testing.assert_close(loss, -(terms["positive term"] - 5.0 * terms["negative term"]))
    out = fmicl_loss(
        z1, z2, objective.divergence, objective.similarity, alpha=5.0, return_terms=True
    )
    assert torch.equal(terms["positive term"], out.positive)
    assert torch.equal(terms["negative term"], out.negative)
    objective(z2, z1)  # the next batch's means replace them
    assert not torch.equal(objective.last_terms["negative term"], terms["negative term"])


def test_second_derivatives_match_the_plain_path() -> None:
    # create_graph: the slope-based backward is itself differentiable (a gradient penalty).
    z1, z2 = _views(6)
    d = fm.get_divergence("js")
    results = []
    for divergence in (d, _PlainDivergence(d)):
        x1 = z1.clone().requires_grad_()
        loss = fmicl_loss(x1, z2, divergence, Gaussian(gamma=2.0), alpha=3.0)  # type: ignore[arg-type]
        (g,) = torch.autograd.grad(loss, x1, create_graph=True)
        results.append(torch.autograd.grad(g.square().sum(), x1)[0])
    torch.testing.assert_close(results[0], results[1], rtol=1e-9, atol=1e-12)


def _kl_by_hand(
    z1: torch.Tensor, z2: torch.Tensor, gamma: float, alpha: float, negatives: str
) -> torch.Tensor:
    """The f-MICL objective (Lu et al. 2023) for KL in plain torch (float64, no library code):
    f'(u) = log u + 1, f*(t) = exp(t - 1), so with log_r = -gamma ||x - y||^2 the positive
    term is log_r + 1 and the negative term is exp(log_r)."""
    x = z1 / z1.norm(dim=-1, keepdim=True)
    y = z2 / z2.norm(dim=-1, keepdim=True)

    def log_r(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return -gamma * (a[:, None, :] - b[None, :, :]).square().sum(-1)

    off = ~torch.eye(len(x), dtype=torch.bool)
    blocks = {"view1": [(x, x)], "cross": [(x, y)], "both": [(x, x), (y, y)]}[negatives]
    negative = torch.cat([log_r(a, b).exp()[off] for a, b in blocks]).mean()
    positive = (-gamma * (x - y).square().sum(-1) + 1).mean()
    return -(positive - alpha * negative)


@pytest.mark.parametrize("negatives", ["view1", "cross", "both"])
@pytest.mark.parametrize("chunk_size", [None, 2])
def test_second_derivatives_match_a_hand_written_loss(
    negatives: str, chunk_size: int | None
) -> None:
    # create_graph through the fast paths (one-sided mirrored gradient, chunked recomputation,
    # slope-based backward) must still give the true Hessian-vector product.
    z1, z2 = _views(6)
    v = torch.randn(z1.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    loss_fn = fm.get_objective(
        "fmicl", divergence="kl", gamma=2.0, alpha=3.0, negatives=negatives, chunk_size=chunk_size
    )
    products = []
    for loss in (loss_fn, lambda a, b: _kl_by_hand(a, b, 2.0, 3.0, negatives)):
        x1, x2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
        g1, g2 = torch.autograd.grad(loss(x1, x2), (x1, x2), create_graph=True)
        products.append(torch.autograd.grad((g1 * v).sum() + (g2 * v).sum(), (x1, x2)))
    for got, want in zip(*products, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_the_default_objective_works_under_torch_func() -> None:
    z1, z2 = _views(6)
    loss_fn = fm.get_objective("fmicl", divergence="kl", gamma=2.0, alpha=3.0)
    want = torch.func.grad(lambda a: _kl_by_hand(a, z2, 2.0, 3.0, "view1"))(z1)
    torch.testing.assert_close(torch.func.grad(lambda a: loss_fn(a, z2))(z1), want)
    batched = torch.func.vmap(torch.func.grad(lambda a, b: loss_fn(a, b)))
    got = batched(torch.stack([z1, z1]), torch.stack([z2, z2]))
    torch.testing.assert_close(got, torch.stack([want, want]))


class _Flipped(Gaussian):
    """Not symmetric: ``pairwise(a, b)`` compares ``a`` with ``b`` reversed along features."""

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return super().pairwise(a, b.flip(-1))


class _FlippedDeclared(_Flipped):
    symmetric = False


def test_a_subclass_that_overrides_pairwise_does_not_inherit_symmetric() -> None:
    from fmicl_registry.objectives.fmicl import _declared_symmetric

    assert _declared_symmetric(Gaussian()) and _declared_symmetric(Cosine())
    assert not _declared_symmetric(_Flipped())
    quiet = Gaussian()
    quiet.symmetric = False  # type: ignore[misc]
    assert not _declared_symmetric(quiet)
    z1, z2 = _views(6)
    d = fm.get_divergence("js")
    grads = []
    for similarity in (_Flipped(), _FlippedDeclared()):
        x1 = z1.clone().requires_grad_()
        fmicl_loss(x1, z2, d, similarity, alpha=3.0).backward()
        grads.append(x1.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-14)
