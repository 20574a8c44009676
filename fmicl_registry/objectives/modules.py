"""The objectives as ``torch.nn.Module``: thin wrappers over ``objectives.functional`` that hold
the state (a queue of keys) and gather negatives across processes.

``forward(z1, z2)`` takes the projections ``(N, D)`` of the two views and returns a scalar loss.
Under ``torch.distributed`` (``gather=True``, the default) each process computes the loss of its
own anchors against the negatives of all processes; with DDP's gradient averaging this is the
gradient of one process on the whole batch (see ``fmicl_registry.distributed``).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .. import distributed
from ..similarities import check_similarity, get_similarity
from . import functional
from ._pairs import NEGATIVES, ChunkSize, Negatives, chunk_rows

if TYPE_CHECKING:
    from ..divergence import Divergence
    from ..hookspecs import Similarity

Tensor = torch.Tensor


class OverflowRiskWarning(UserWarning):
    """The f-MICL terms reach values beyond the largest finite number of the dtype in use."""


class KeyQueue(nn.Module):
    """A first-in first-out queue of ``size`` keys (MoCo, He et al. 2020, section 3.2).

    Allocated on first use with the keys' width, dtype and device, filled with random unit
    vectors as MoCo does; ``push`` replaces the oldest keys. Saved in the ``state_dict``.

    Example:
        >>> import torch
        >>> queue = KeyQueue(4)
        >>> queue.push(torch.ones(3, 2))
        >>> queue.read(torch.ones(1, 2)).shape
        torch.Size([4, 2])
    """

    keys: Tensor
    position: Tensor

    def __init__(self, size: int) -> None:
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise functional.ObjectiveError(f"queue size must be an int >= 1, got {size!r}")
        self.size = size
        self.register_buffer("keys", torch.empty(size, 0))
        self.register_buffer("position", torch.zeros((), dtype=torch.long))

    def _allocate(self, like: Tensor) -> None:
        if self.keys.shape[1] != like.shape[1]:
            keys = torch.randn(self.size, like.shape[1], dtype=like.dtype, device=like.device)
            if distributed.world_size() > 1:  # every process starts from the same negatives
                torch.distributed.broadcast(keys, src=0)
            self.keys = nn.functional.normalize(keys, dim=-1)
            self.position.zero_()

    def read(self, like: Tensor) -> Tensor:
        """A copy of the keys (``(size, D)``), allocated like ``like`` on first use."""
        self._allocate(like)
        return self.keys.clone()

    @torch.no_grad()
    def push(self, keys: Tensor) -> None:
        """Enqueue ``keys`` (``(n, D)``, normalised here), dropping the oldest."""
        self._allocate(keys)
        keys = nn.functional.normalize(keys.detach(), dim=-1)[-self.size :]
        where = (self.position + torch.arange(len(keys), device=self.keys.device)) % self.size
        self.keys[where] = keys.to(self.keys.dtype)
        self.position.copy_((self.position + len(keys)) % self.size)

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any) -> None:
        saved = state_dict.get(prefix + "keys")
        if saved is not None and len(saved) not in (0, self.size) and saved.shape[1] != 0:
            raise functional.ObjectiveError(
                f"the saved queue holds {len(saved)} keys but this one holds {self.size}; "
                f"build the objective with queue_size={len(saved)} to resume it"
            )
        if saved is not None and saved.shape != self.keys.shape:
            self.keys = torch.empty_like(saved, device=self.keys.device)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def extra_repr(self) -> str:
        return f"size={self.size}"


def _queue_for(
    own: KeyQueue | None, given: Tensor | None, like: Tensor
) -> tuple[Tensor | None, KeyQueue | None]:
    """The extra negatives of a step, and the module's queue when they come from it (it is
    then updated after the step); keys passed in explicitly leave the module's queue alone."""
    if given is not None or own is None:
        return given, None
    return own.read(like), own


def _gather(z: Tensor, enabled: bool) -> tuple[Tensor, int]:
    if not enabled or distributed.world_size() == 1:
        return z, 0
    return distributed.all_gather(z), distributed.rank() * len(z)


def _parameters(kind: str, name: str) -> set[str]:
    from ..components import registry

    factory = getattr(registry().get(kind, name), "factory", None)
    try:
        return set(inspect.signature(factory).parameters) if factory else set()
    except (TypeError, ValueError):  # no signature to read
        return set()


def _divergence(divergence: Any, options: Mapping[str, Any] | None) -> Divergence:
    if isinstance(divergence, str):
        from ..components import get_divergence

        return get_divergence(divergence, **dict(options or {}))
    if options:
        raise functional.ObjectiveError(
            "divergence_options apply to a divergence given by name; for an object, use "
            "divergence.with_params(...)"
        )
    missing = [
        m for m in ("positive_term", "negative_term", "f_star") if not hasattr(divergence, m)
    ]
    if missing or not hasattr(divergence, "conjugate_domain"):
        raise functional.ObjectiveError(
            f"divergence must be a registered name or a Divergence (fm.define_divergence(...)); "
            f"got {divergence!r}"
        )
    return divergence


class FMICL(nn.Module):
    """The f-MICL objective (Lu et al. 2023), to minimise::

        -( mean_i pos(s(z1_i, z2_i)) - alpha * mean_{i != j} neg(s(z1_i, z1_j)) )

    With the f-Gaussian similarity ``pos = f'(G)``, ``neg = f*(f'(G))``; with a critic ``s``
    (cosine), ``pos = s``, ``neg = f*(s)``, refused at construction when the critic's range
    leaves the domain of ``f*``.

    Args:
        divergence: a registered name (``"js"``) or a ``Divergence`` object.
        similarity: a registered name (``"gaussian"``, ``"cosine"``) or a ``Similarity``.
        alpha: weight of the negative term (paper: 40 vision, 409600 text).
        gamma, mu: options of a similarity given by name (gaussian: ``log mu - gamma d^2``;
            paper: gamma 1 vision, 20 text); None leaves the similarity's default.
        negatives: ``"view1"`` (paper), ``"both"``, ``"cross"``, ``"simclr"`` or ``"none"``
            (queue only); see ``_pairs.negative_blocks``.
        queue_size: keep a queue of this many keys (the second view, detached) as extra
            negatives, MoCo style; 0: none. ``forward(z1, z2, queue=keys)`` passes keys instead.
        gather: gather negatives across processes when ``torch.distributed`` is initialised.
        chunk_size: ``"auto"``, None (dense) or rows per chunk for the negative sums
            (``_pairs.pair_sum``).
        divergence_options, similarity_options: extra keywords for building them by name.
            A similarity by name whose factory takes ``normalize`` gets ``normalize=False``
            (the objective normalises the projections once itself).

    Example:
        >>> import torch, fmicl_registry as fm
        >>> loss_fn = fm.get_objective("fmicl", divergence="js", alpha=40.0, gamma=1.0)
        >>> z1, z2 = torch.randn(16, 8), torch.randn(16, 8)
        >>> loss_fn(z1, z2).shape
        torch.Size([])
    """

    def __init__(
        self,
        divergence: str | Divergence = "js",
        similarity: str | Similarity = "gaussian",
        alpha: float = 40.0,
        gamma: float | None = None,
        mu: float | None = None,
        negatives: Negatives = "view1",
        queue_size: int = 0,
        gather: bool = True,
        chunk_size: ChunkSize = "auto",
        divergence_options: Mapping[str, Any] | None = None,
        similarity_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if negatives not in NEGATIVES:
            raise functional.ObjectiveError(
                f"negatives must be one of {', '.join(NEGATIVES)}; got {negatives!r}"
            )
        chunk_rows(1, 1, chunk_size)  # validates
        self.divergence = _divergence(divergence, divergence_options)
        options = {k: v for k, v in (("gamma", gamma), ("mu", mu)) if v is not None}
        options.update(similarity_options or {})
        if isinstance(similarity, str):
            if "normalize" in _parameters("similarities", similarity):
                options.setdefault("normalize", False)  # the projections arrive normalised
            self.similarity = get_similarity(similarity, **options)
        elif options:
            raise functional.ObjectiveError(
                f"gamma, mu and similarity_options apply to a similarity given by name; set "
                f"them on {similarity!r} instead"
            )
        else:
            self.similarity = check_similarity(similarity)
        functional.check_domain(self.divergence, self.similarity)
        self.alpha = functional.check_positive("alpha", alpha)
        self.negatives = negatives
        self.gather = gather
        self.chunk_size = chunk_size
        self.queue = KeyQueue(queue_size) if queue_size else None
        self._magnitude = functional.term_magnitude(self.divergence, self.similarity, self.alpha)
        self._checked: set[torch.dtype] = set()
        #: The two means of the last batch, detached (a training loop's NaN guard reads them).
        self.last_terms: dict[str, Tensor] = {}

    def _check_dtype(self, z: Tensor) -> None:
        dtype = z.dtype
        try:
            if torch.is_autocast_enabled(z.device.type):
                dtype = torch.get_autocast_dtype(z.device.type)
        except RuntimeError:  # a device type without autocast (meta, say): its own dtype counts
            pass
        if dtype in self._checked or not dtype.is_floating_point:
            return
        self._checked.add(dtype)
        largest = torch.finfo(dtype).max
        value, where = self._magnitude
        if value > largest:
            warnings.warn(
                f"f-MICL with divergence {getattr(self.divergence, 'name', '?')!r}, "
                f"{self.similarity!r} and alpha={self.alpha:g}: {where} exceeds the largest "
                f"{dtype} number ({largest:.3g}), so the loss or its gradient becomes inf for "
                "such pairs. Use float64, a smaller gamma, or another divergence.",
                OverflowRiskWarning,
                stacklevel=3,
            )

    def forward(self, z1: Tensor, z2: Tensor, queue: Tensor | None = None) -> Tensor:
        """The loss of one batch; ``queue``: ``(K, D)`` extra negatives (instead of the
        module's own queue, which is then not updated)."""
        self._check_dtype(z1)
        keys1, offset = _gather(z1, self.gather)
        keys2, _ = _gather(z2, self.gather)
        queue, own = _queue_for(self.queue, queue, z2)
        loss = functional.fmicl_loss(
            z1,
            z2,
            self.divergence,
            self.similarity,
            alpha=self.alpha,
            negatives=self.negatives,
            queue=queue,
            keys1=keys1,
            keys2=keys2,
            offset=offset,
            chunk_size=self.chunk_size,
            terms=self.last_terms,
        )
        if own is not None and self.training:
            own.push(keys2.detach())
        return loss

    def extra_repr(self) -> str:
        name = getattr(self.divergence, "name", "?")
        return (
            f"divergence={name!r}, similarity={self.similarity!r}, alpha={self.alpha:g}, "
            f"negatives={self.negatives!r}"
        )


class InfoNCE(nn.Module):
    """NT-Xent as in SimCLR (Chen et al. 2020, eq. 1): 2N views, 2N - 2 negatives each.

    Example:
        >>> import torch, fmicl_registry as fm
        >>> loss_fn = fm.get_objective("infonce", temperature=0.5)
        >>> float(loss_fn(torch.randn(8, 4), torch.randn(8, 4))) > 0
        True
    """

    def __init__(self, temperature: float = 0.5, gather: bool = True) -> None:
        super().__init__()
        self.temperature = functional.check_positive("temperature", temperature)
        self.gather = gather

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        keys1, offset = _gather(z1, self.gather)
        keys2, _ = _gather(z2, self.gather)
        return functional.infonce_loss(
            z1, z2, self.temperature, keys1=keys1, keys2=keys2, offset=offset
        )

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:g}"


class MoCoInfoNCE(nn.Module):
    """InfoNCE of queries ``z1`` against keys ``z2`` and a queue (MoCo v2, He et al. 2020).

    ``queue_size=0`` gives MoCo v3's form: the other keys of the (gathered) batch are the
    negatives. The queue is filled with the keys of each training step (gathered across
    processes), after the loss is computed.

    Example:
        >>> import torch, fmicl_registry as fm
        >>> loss_fn = fm.get_objective("moco_infonce", queue_size=1024, temperature=0.2)
        >>> float(loss_fn(torch.randn(8, 4), torch.randn(8, 4))) > 0
        True
    """

    def __init__(
        self, temperature: float = 0.2, queue_size: int = 65536, gather: bool = True
    ) -> None:
        super().__init__()
        self.temperature = functional.check_positive("temperature", temperature)
        self.gather = gather
        self.queue = KeyQueue(queue_size) if queue_size else None

    def forward(self, z1: Tensor, z2: Tensor, queue: Tensor | None = None) -> Tensor:
        keys, offset = _gather(z2, self.gather)
        queue, own = _queue_for(self.queue, queue, z2)
        loss = functional.moco_infonce_loss(
            z1, z2, queue, self.temperature, keys=keys, offset=offset
        )
        if own is not None and self.training:
            own.push(keys.detach())
        return loss

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:g}"


class AlignUniform(nn.Module):
    """Alignment and uniformity on the hypersphere (Wang and Isola 2020), weights as their
    paper: ``alpha = 2``, ``t = 2``, ``lam = 1``. Not gathered across processes (the log of a
    mean does not split over processes); each process uses its own batch.

    Example:
        >>> import torch, fmicl_registry as fm
        >>> loss_fn = fm.get_objective("align_uniform")
        >>> loss_fn(torch.randn(8, 4), torch.randn(8, 4)).shape
        torch.Size([])
    """

    def __init__(self, alpha: float = 2.0, t: float = 2.0, lam: float = 1.0) -> None:
        super().__init__()
        self.alpha, self.t, self.lam = float(alpha), float(t), float(lam)

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        return functional.align_uniform_loss(z1, z2, alpha=self.alpha, t=self.t, lam=self.lam)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:g}, t={self.t:g}, lam={self.lam:g}"
