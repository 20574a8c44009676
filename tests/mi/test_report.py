"""The benchmark's report files: strict JSON, CSV, Markdown, history and the plot."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from fmicl_registry.mi import BenchConfig, BenchResult, run_benchmark, write_report
from fmicl_registry.mi.report import FILES, fmt, markdown_report

CONFIG = BenchConfig(
    dim=20,
    batch_size=16,
    levels=(1.0, 8.0),
    steps_per_level=8,
    hidden=8,
    embed=4,
    mc_samples=1024,
)


@pytest.fixture(scope="module")
def result() -> BenchResult:
    # Neyman's truth is +inf at 8 nats; Pearson's (e^16 - 1) dwarfs its estimates (symlog).
    return run_benchmark(["neyman", "pearson", "js"], CONFIG)


def _strict(text: str) -> object:
    def refuse(constant: str) -> object:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_every_file_is_written(result: BenchResult, tmp_path: Path) -> None:
    paths = write_report(result, tmp_path / "nested" / "out")
    assert {k: p.name for k, p in paths.items()} == FILES
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["plot"].stat().st_size > 10_000


def test_json_is_strict_and_complete(result: BenchResult, tmp_path: Path) -> None:
    paths = write_report(result, tmp_path, plot=False)
    assert "plot" not in paths
    data = _strict(paths["json"].read_text())
    assert isinstance(data, dict)
    assert [o["name"] for o in data["objectives"]] == ["neyman", "pearson", "js", "infonce"]
    assert len(data["results"]) == 4 * 2 * 2
    inf_row = next(r for r in data["results"] if r["objective"] == "neyman" and r["level"] == 1)
    assert inf_row["truth"] == "inf" and inf_row["bias"] == "-inf"
    assert inf_row["truth_reliable"] is False
    assert data["config"]["levels"] == [1.0, 8.0]
    history = _strict(paths["history"].read_text())
    assert isinstance(history, dict)
    assert len(history["estimates"]["js/concat"]) == 16
    assert history["truth"]["neyman"][1] == "inf"


def test_csv_has_a_row_per_objective_critic_and_level(result: BenchResult, tmp_path: Path) -> None:
    paths = write_report(result, tmp_path, plot=False)
    with paths["csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 16
    pearson = [r for r in rows if r["objective"] == "pearson" and r["level"] == "1"]
    assert float(pearson[0]["truth"]) == pytest.approx(math.expm1(16.0))
    neyman = [r for r in rows if r["objective"] == "neyman" and r["level"] == "1"]
    assert float(neyman[0]["truth"]) == math.inf
    assert "true value is +inf" in neyman[0]["notes"]


def test_markdown_shows_where_each_bound_sits(result: BenchResult) -> None:
    text = markdown_report(result)
    assert "## Fraction of the true value reached" in text
    assert "| objective | critic | 1 nats | 8 nats |" in text
    assert "0 (truth +inf)" in text
    assert "| js | concat | 1 |" in text
    assert "Monte Carlo (mixture, n=1024)" in text  # how JS's truth was obtained
    assert "log B = 2.773" in text


def test_plot_survives_non_finite_histories(result: BenchResult, tmp_path: Path) -> None:
    broken = replace(result, histories=dict(result.histories))
    broken.histories[("js", "separable")] = [math.nan] * 16
    broken.histories[("pearson", "concat")] = [math.inf, -1e12, *[0.5] * 14]
    assert write_report(broken, tmp_path)["plot"].exists()


def test_fmt() -> None:
    assert [fmt(math.inf), fmt(-math.inf), fmt(math.nan), fmt(4.85e8)] == [
        "+inf",
        "-inf",
        "nan",
        "4.85e+08",
    ]
