"""``eval.holdout``: a validation score from the train split, the test split left unread."""

from __future__ import annotations

import pytest
import torch
from training_helpers import TINY

from fmicl_registry.data import digits
from fmicl_registry.errors import SpecError
from fmicl_registry.training.build import build
from fmicl_registry.training.report import _evaluated_on
from fmicl_registry.training.spec import load_spec


def _images(dataset: object) -> set[bytes]:
    return {bytes(image.numpy().tobytes()) + bytes([label]) for image, label in dataset}  # type: ignore[attr-defined]


def _parts(*overrides: str) -> object:
    return build(load_spec(None, [*TINY, *overrides]), device=torch.device("cpu"))


def test_holdout_scores_on_part_of_the_train_split_and_never_reads_the_test_split() -> None:
    evaluation = _parts("eval.holdout=0.2").evaluation  # type: ignore[attr-defined]
    train, test = digits(split="train"), digits(split="test")
    queries = evaluation.test_set.dataset
    bank = evaluation.train_set.dataset
    assert len(queries) == round(0.2 * len(train)) and len(bank) == len(train) - len(queries)
    assert _images(queries) | _images(bank) == _images(train)
    assert len(_images(queries) & _images(test)) < 3  # digits has a few duplicate images
    assert sorted(queries.labels.tolist() + bank.labels.tolist()) == sorted(train.labels.tolist())


def test_the_held_out_images_are_the_same_for_every_seed() -> None:
    one = _parts("eval.holdout=0.2", "run.seed=0").evaluation.test_set.dataset  # type: ignore[attr-defined]
    two = _parts("eval.holdout=0.2", "run.seed=7").evaluation.test_set.dataset  # type: ignore[attr-defined]
    assert torch.equal(one.labels, two.labels)
    assert _images(one) == _images(two)


@pytest.mark.parametrize(("value", "message"), [("1.0", "less than 1"), ("-0.1", "at least 0")])
def test_holdout_out_of_range_is_refused(value: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load_spec(None, [f"eval.holdout={value}"])


def test_holdout_that_leaves_nothing_is_refused() -> None:
    with pytest.raises(SpecError, match="at least one image on each side"):
        _parts("eval.holdout=0.0001")


def test_the_report_says_where_it_scored() -> None:
    assert _evaluated_on({"name": "digits"}, {"holdout": 0.2}) == (
        ", evaluated on a held-out 20% of `digits` (train split; eval.holdout), not its test split."
    )
