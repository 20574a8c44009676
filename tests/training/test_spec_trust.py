"""Specs and run folders a user did not write, or wrote wrong (issue 12).

Each case runs `fmicl train` (or `fmicl sweep`) as a user does, in a subprocess, and asserts the
exact outcome: exit code 2, the message on stderr naming the key and what is allowed, no
traceback, and nothing written: not inside --out (no half-made run folder) and not beside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch.multiprocessing as mp
from training_helpers import TINY

from fmicl_registry import distributed
from fmicl_registry.training import load_spec
from fmicl_registry.training.spec import SpecError, SpecWarning


def fmicl(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fmicl_registry.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def tiny(*extra: str) -> list[str]:
    return [a for s in [*TINY, "train.epochs=1", "eval.every=0", *extra] for a in ("--set", s)]


def everything_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def refused(result: subprocess.CompletedProcess, *texts: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for text in texts:
        assert text in result.stderr, result.stderr


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """(the working folder, the --out folder inside it)."""
    out = tmp_path / "work" / "runs"
    out.parent.mkdir()
    return out.parent, out


# ----------------------------------------------------------------------------- run names

HOSTILE_NAMES = [
    ('"../escaped"', "run.name must be one folder name inside the output folder, not a path"),
    ('"../../escaped"', "not a path"),
    ('"/tmp/fmicl-escaped-absolute"', "not a path"),
    ('"a/b"', "not a path"),
    ('"a\\\\b"', "not a path"),
    ('".."', "not a path"),
    ('"."', "not a path"),
    ('"a\\nb"', "run.name must not contain control characters"),
    ('"tab\\there"', "must not contain control characters"),
    ('""', "run.name must be a non-empty folder name"),
    ('" padded"', "without leading or trailing spaces"),
    ('"' + "x" * 201 + '"', "at most 200 bytes"),
]


@pytest.mark.parametrize(("name", "message"), HOSTILE_NAMES, ids=[n for n, _ in HOSTILE_NAMES])
def test_a_run_name_is_one_folder_inside_out(name: str, message: str) -> None:
    with pytest.raises(SpecError, match=r"run\.name") as raised:
        load_spec(None, [f"run.name={name}"])
    assert message in str(raised.value)


def test_an_escaping_run_name_writes_nothing_anywhere(sandbox: tuple[Path, Path]) -> None:
    work, out = sandbox
    before = everything_under(work.parent)
    result = fmicl("train", *tiny('run.name="../escaped"'), "--out", str(out), cwd=work)
    refused(result, "run.name must be one folder name inside the output folder, not a path")
    assert everything_under(work.parent) == before
    assert not Path("/tmp/fmicl-escaped-absolute").exists()


def test_a_run_name_with_a_newline_in_a_spec_file_is_refused(sandbox: tuple[Path, Path]) -> None:
    work, out = sandbox
    spec = work / "spec.toml"
    spec.write_text('[run]\nname = "a\\nb"\n')
    refused(fmicl("train", str(spec), "--out", str(out), cwd=work), "control characters")
    assert not out.exists()


# ----------------------------------------------------------------------------- ranges

RANGES = [
    ("train.epochs=0", "train.epochs must be at least 1, got 0"),
    ("train.epochs=-1", "train.epochs must be at least 1, got -1"),
    ("train.batch_size=-256", "train.batch_size must be at least 2, got -256"),
    ("train.batch_size=0", "train.batch_size must be at least 2, got 0"),
    ("train.max_steps=-1", "train.max_steps must be at least 0, got -1"),
    ("train.log_every=0", "train.log_every must be at least 1, got 0"),
    ("train.checkpoint_every=0", "train.checkpoint_every must be at least 1, got 0"),
    ("train.lr=-1.0", "train.lr must be greater than 0, got -1.0"),
    ("train.lr=nan", "train.lr must be a finite number, got nan"),
    ("train.momentum=1.5", "train.momentum must be less than 1, got 1.5"),
    ("train.weight_decay=-0.1", "train.weight_decay must be at least 0"),
    ("train.optimizer=adam", "train.optimizer must be one of 'sgd', 'adamw', 'lars' (did you "
     "mean 'adamw'?), got 'adam'"),
    ("train.precision=fp8", "train.precision must be one of 'auto', 'fp32', 'bf16', got 'fp8'"),
    ("data.num_workers=-1", "data.num_workers must be at least 0, got -1"),
    ("eval.knn_k=0", "eval.knn_k must be at least 1, got 0"),
    ("eval.batch_size=0", "eval.batch_size must be at least 1, got 0"),
    ("eval.knn_temperature=0.0", "eval.knn_temperature must be greater than 0"),
    ("run.seed=-3", "run.seed must be at least 0, got -3"),
    ("run.device=gpu", "run.device must be one of 'auto', 'cpu', 'cuda' (did you mean 'cpu'?)"),
]  # fmt: skip


@pytest.mark.parametrize(("override", "message"), RANGES, ids=[o for o, _ in RANGES])
def test_every_value_is_range_checked_when_the_spec_is_read(override: str, message: str) -> None:
    with pytest.raises(SpecError) as raised:
        load_spec(None, [*TINY, "train.epochs=1", override])
    assert message in str(raised.value)


def test_a_warm_up_longer_than_the_run_is_warned_about() -> None:
    with pytest.warns(
        SpecWarning,
        match=r"train\.warmup_epochs \(5\) is longer than the run "
        r"\(train\.epochs = 1\): the learning rate never reaches train\.lr",
    ):
        load_spec(None, [*TINY, "train.epochs=1", "train.warmup_epochs=5.0"])


@pytest.mark.parametrize(
    "override",
    ["train.epochs=0", "train.batch_size=0", "train.checkpoint_every=0", "eval.knn_k=0"],
)
def test_a_range_violation_exits_2_before_anything_is_written(
    sandbox: tuple[Path, Path], override: str
) -> None:
    work, out = sandbox
    result = fmicl("train", *tiny(override), "--out", str(out), cwd=work)
    refused(result, override.split("=")[0])
    assert not out.exists()


def test_a_spec_written_by_hand_with_bad_values_names_the_file(sandbox: tuple[Path, Path]) -> None:
    work, out = sandbox
    spec = work / "mine.toml"
    spec.write_text("[train]\nepochs = 10\nbatch_size = -256\n")
    refused(fmicl("train", str(spec), "--out", str(out), cwd=work), "mine.toml", "batch_size")
    assert not out.exists()


# ----------------------------------------------------------------------------- files


def test_deeply_nested_toml_is_refused(sandbox: tuple[Path, Path]) -> None:
    work, out = sandbox
    spec = work / "deep.toml"
    spec.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    refused(fmicl("train", str(spec), "--out", str(out), cwd=work), "deep.toml", "nested")
    assert not out.exists()


def test_a_spec_that_is_not_utf8_is_refused(sandbox: tuple[Path, Path]) -> None:
    work, out = sandbox
    spec = work / "latin1.toml"
    spec.write_bytes(b'[run]\nname = "caf\xe9"\n')
    refused(fmicl("train", str(spec), "--out", str(out), cwd=work), "not UTF-8", "latin1.toml")
    assert not out.exists()


def test_a_torchvision_refusal_of_an_augmentation_option_is_a_spec_error(
    sandbox: tuple[Path, Path],
) -> None:
    work, out = sandbox
    result = fmicl(
        "train", *tiny("augment.batched=false", "augment.degrees=abc"), "--out", str(out), cwd=work
    )
    refused(result, "[augment] recipe 'digits'")
    assert not out.exists()


def test_a_batch_larger_than_the_data_leaves_no_run_folder(sandbox: tuple[Path, Path]) -> None:
    work, out = sandbox
    result = fmicl("train", *tiny("train.batch_size=5000"), "--out", str(out), cwd=work)
    refused(result, "fewer than train.batch_size (5000)")
    assert not out.exists()


def test_a_dangling_symlink_at_the_run_folder_is_left_alone(sandbox: tuple[Path, Path]) -> None:
    work, out = sandbox
    out.mkdir()
    (out / "digits").symlink_to(work / "nowhere")
    result = fmicl("train", *tiny("train.max_steps=1", "eval.linear_epochs=1"), "--out",
                   str(out), cwd=work)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (out / "digits").is_symlink() and not (work / "nowhere").exists()
    assert (out / "digits-2" / "report.json").is_file()


# ----------------------------------------------------------------------------- sweeps


def test_a_sweep_checks_every_objective_before_the_first_run(sandbox: tuple[Path, Path]) -> None:
    work, out = sandbox
    start = time.perf_counter()
    result = fmicl("sweep", *tiny(), "--divergences", "kl,jss", "--out", str(out), cwd=work)
    refused(result, "divergence 'jss': no divergence named 'jss'. Did you mean 'js'")
    assert not out.exists()  # no sweep folder, no kl run
    assert time.perf_counter() - start < 60


# ----------------------------------------------------------------------------- processes


def test_a_process_that_never_joins_gives_a_timeout_error(sandbox: tuple[Path, Path]) -> None:
    work, out = sandbox
    env = {
        "WORLD_SIZE": "2",
        "RANK": "0",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(29400 + os.getpid() % 500),
        "FMICL_DIST_TIMEOUT": "3",
    }
    start = time.perf_counter()
    result = fmicl("train", *tiny(), "--out", str(out), cwd=work, env=env)
    refused(result, "process 0 of 2: the processes of this run did not all join within 3 s",
            "FMICL_DIST_TIMEOUT")  # fmt: skip
    assert time.perf_counter() - start < 60
    assert not out.exists()


def _join_and_sum(rank: int, port: int, results: object) -> None:
    os.environ.update(WORLD_SIZE="2", RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), FMICL_DIST_TIMEOUT="60")  # fmt: skip
    import torch
    import torch.distributed as dist

    distributed.join("gloo")
    value = torch.tensor([rank + 1.0])
    dist.all_reduce(value)
    results[rank] = float(value)  # type: ignore[index]
    dist.destroy_process_group()


def test_processes_that_all_join_make_one_group() -> None:
    port = 29900 + os.getpid() % 90
    with mp.Manager() as manager:
        results = manager.dict()
        mp.start_processes(_join_and_sum, args=(port, results), nprocs=2, start_method="spawn")
        assert dict(results) == {0: 3.0, 1: 3.0}
