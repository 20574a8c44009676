"""``fmicl bench mi`` as a user runs it (the ``fmicl`` command line, through click's CliRunner):
the command of the built-in plugin ``bench_mi``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from fmicl_registry.cli import cli

TINY = ["--levels", "2", "--steps", "4", "--hidden", "8", "--mc-samples", "512"]


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["bench", "mi", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.slow
def test_quick_run(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    code, stdout, stderr = _invoke("--quick", "--json", "--out", str(out))
    assert code == 0, stderr
    summary = json.loads(stdout)
    for name in ("results.json", "results.csv", "results.md", "history.json", "mi_estimates.png"):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "results.json").read_text()) == summary
    assert "trained kl / concat" in stderr  # progress goes to stderr, JSON alone to stdout

    rows = summary["results"]
    expected = {
        (name, critic, level)
        for name in ("kl", "js", "pearson", "sh", "infonce")
        for critic in ("separable", "concat")
        for level in range(5)
    }
    assert {(r["objective"], r["critic"], r["level"]) for r in rows} == expected
    assert [lv["mi"] for lv in summary["levels"]] == [2.0, 4.0, 6.0, 8.0, 10.0]

    history = json.loads((out / "history.json").read_text())["estimates"]
    log_b = math.log(64)
    for critic in ("separable", "concat"):
        assert max(history[f"infonce/{critic}"]) <= log_b + 1e-4
    for row in rows:
        assert math.isfinite(row["estimate"]), row
        if row["objective"] in ("kl", "infonce"):
            # A lower bound on the KL MI: below the truth, up to batch noise.
            assert row["estimate"] <= row["truth"] + 0.25, row
        if row["objective"] == "infonce":
            assert row["estimate"] <= log_b + 1e-4
        if row["objective"] == "pearson" and row["level"] >= 2:
            assert row["fraction"] < 0.01  # e^{2I} - 1 is far out of reach
    # The critics learn: at 2 nats KL/concat reaches a fair part of the truth in 300 steps.
    kl = next(r for r in rows if (r["objective"], r["critic"], r["level"]) == ("kl", "concat", 0))
    assert kl["fraction"] > 0.25


def test_table_output_and_files(tmp_path: Path) -> None:
    code, stdout, stderr = _invoke(
        "-d", "kl,js", "--critics", "separable", *TINY, "--out", str(tmp_path), "--no-plot"
    )
    assert code == 0, stderr
    assert "f-MI estimates" in stdout and "fraction of the true value reached" in stdout
    assert "infonce" in stdout and "js" in stdout
    assert f"wrote {tmp_path / 'results.md'}" in stdout
    assert not (tmp_path / "mi_estimates.png").exists()


def test_a_toml_divergence_is_benchmarked(tmp_path: Path) -> None:
    spec = tmp_path / "my_div.toml"
    spec.write_text(
        'name = "my_div"\n'
        'generator = "(u-1)**2/(u+1) + u*log(u)"\n'
        'description = "Vincze-Le Cam plus KL"\n'
    )
    out = tmp_path / "out"
    code, stdout, stderr = _invoke(
        "--divergences", str(spec), "--no-infonce", "--json", *TINY, "--out", str(out)
    )
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert [o["name"] for o in summary["objectives"]] == ["my_div"]
    assert summary["objectives"][0]["source"] == "file my_div.toml"
    row = summary["results"][0]
    assert row["truth_method"].startswith("Monte Carlo")  # no closed form for this one
    assert row["truth"] > 2.0 and row["truth_se"] > 0  # at least the KL part's 2 nats
    assert math.isfinite(row["fraction"])
    assert "my_div" in (out / "results.md").read_text()


def test_an_unknown_divergence_exits_2_with_a_suggestion(tmp_path: Path) -> None:
    code, stdout, stderr = _invoke("-d", "kl,jss", *TINY, "--out", str(tmp_path))
    assert code == 2
    assert "no divergence named 'jss'" in stderr and "Did you mean 'js'" in stderr
    assert "Traceback" not in stderr and stdout == ""


def test_a_broken_toml_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "concave.toml"
    spec.write_text('name = "concave"\ngenerator = "-(u-1)**2"\n')
    code, _, stderr = _invoke("-d", str(spec), *TINY, "--out", str(tmp_path))
    assert code == 2
    assert "convex" in stderr
    code, _, stderr = _invoke("-d", str(tmp_path / "missing.toml"), *TINY)
    assert code == 2
    assert "cannot read divergence spec" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--levels", "2,zero"], "'zero' is not a number of nats"),
        (["--levels", "-1"], "finite and > 0"),
        (["--critics", "bilinear"], "no critic 'bilinear'"),
        (["--steps", "0"], "--steps"),
    ],
)
def test_bad_options_exit_2(args: list[str], message: str) -> None:
    code, _, stderr = _invoke(*args)
    assert code == 2
    assert message in stderr


def test_loading_the_plugin_stays_light() -> None:
    # Every fmicl run loads the plugin for its command: no torch, no sympy, no benchmark code.
    import subprocess
    import sys

    code = (
        "import sys, fmicl_registry.builtin_plugins.bench_mi; "
        "print(sorted(m for m in ('torch', 'sympy', 'matplotlib', 'fmicl_registry.mi') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_report_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, stdout, stderr = _invoke(*TINY, "-d", "kl", "--no-plot", "--out", str(blocker / "out"))
    assert code == 2 and stdout == ""
    assert f"Error: cannot write the report to {blocker / 'out'}: Not a directory" in stderr


def test_the_package_exports_what_it_lists() -> None:
    import fmicl_registry.mi as mi

    for name in mi.__all__:
        assert getattr(mi, name) is not None
    with pytest.raises(AttributeError):
        _ = mi.no_such_name
