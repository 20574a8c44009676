"""The report of a run: what it says about where evaluation scored."""

from __future__ import annotations

from fmicl_registry.training.report import _evaluated_on


def test_the_report_says_where_evaluation_scored() -> None:
    assert _evaluated_on({"name": "digits", "eval_name": None, "eval_split": "test"}) == "."
    assert _evaluated_on({"name": "digits", "eval_split": "train"}) == (
        ", evaluated on `digits` (train)."
    )
    assert _evaluated_on({"name": "textlines", "eval_name": "stsb", "eval_split": "dev"}) == (
        ", evaluated on `stsb` (dev)."
    )
