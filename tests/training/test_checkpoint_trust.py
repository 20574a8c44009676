"""Checkpoints a user did not write (issue 12): hostile pickles, corrupted, truncated and
foreign files, a full disk, a killed save, and a spec changed between a run and its resume.

Each case asserts what a user sees: the named error and exit code 2 without a traceback,
nothing executed, the run folder left as it was, or the documented fallback to previous.pt.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest
import torch
from click.testing import CliRunner
from training_helpers import TINY

from fmicl_registry.cli import cli
from fmicl_registry.errors import SpecChanged
from fmicl_registry.training import CheckpointError, evaluate_checkpoint, load_spec, train
from fmicl_registry.training import checkpoint as ckpt
from fmicl_registry.training.build import build

BASE = [*TINY, "eval.every=0"]  # 2 epochs of 11 steps, a checkpoint after each


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-epoch run: last.pt (epoch 2), previous.pt (epoch 1), checksums.json."""
    out = tmp_path_factory.mktemp("base")
    return train(load_spec(None, BASE), out, log=_quiet).run_dir


@pytest.fixture
def run(base_run: Path, tmp_path: Path) -> Path:
    """A fresh copy of the finished run for each test."""
    return Path(shutil.copytree(base_run, tmp_path / "digits"))


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of a run folder and its bytes (to assert nothing changed)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _record(path: Path) -> None:
    """Record ``path``'s SHA-256 in checksums.json, as someone forging a run folder would."""
    manifest = path.parent / ckpt.CHECKSUMS
    data = json.loads(manifest.read_text())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    data["checkpoints"].insert(0, {"sha256": digest, "epoch": 0, "step": 0})
    manifest.write_text(json.dumps(data))


def _save(state: Any, path: Path, *, record: bool = True) -> None:
    if path.is_dir():
        path.rmdir()
    torch.save(state, path)
    if record:
        _record(path)


class _Payload:
    """Unpickling this runs ``touch MARKER`` (``os.system``), as a hostile checkpoint would."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch '{self.marker}'",))


def _hostile(path: Path, marker: Path) -> None:
    """A checkpoint-shaped file whose model entry runs a command when unpickled; its checksum
    recorded, so only the weights-only loading stands between it and the command."""
    state = torch.load(path, weights_only=True)
    state["model"] = {"encoder.weight": _Payload(marker)}
    _save(state, path)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fmicl_registry.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


# ------------------------------------------------------------------------------ hostile files


@pytest.mark.parametrize("command", ["eval", "resume"])
def test_a_hostile_checkpoint_is_refused_and_nothing_in_it_runs(
    run: Path, tmp_path: Path, command: str
) -> None:
    marker = tmp_path / "pwned"
    folder = run / "checkpoints"
    for name in ("last.pt", "previous.pt"):
        _hostile(folder / name, marker)
    before = _snapshot(run)
    args = ["eval", str(run)] if command == "eval" else ["train", "--resume", str(run)]
    # a user's environment asking torch for unsafe loading changes nothing
    result = _cli(*args, env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"no usable checkpoint in {folder}" in result.stderr
    assert "holds Python objects other than tensors, numbers and strings" in result.stderr
    assert "system" in result.stderr  # the refused global is named
    assert not marker.exists()
    assert _snapshot(run) == before
    # the payload is live: the loading of before this change would have run it
    torch.load(folder / "last.pt", weights_only=False)
    assert marker.exists()


def test_a_hostile_file_without_a_recorded_checksum_is_refused_before_parsing(
    run: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    last = run / "checkpoints" / "last.pt"
    torch.save({"format": ckpt.FORMAT, "model": _Payload(marker)}, last)
    with pytest.raises(CheckpointError, match=r"SHA-256 \(\w+\.\.\.\) is not the one recorded"):
        ckpt.load(last)
    assert not marker.exists()


def test_globals_added_by_other_code_do_not_widen_what_a_checkpoint_may_hold(
    run: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    last = run / "checkpoints" / "last.pt"
    _hostile(last, marker)
    before = torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals([os.system])  # a careless plugin
    try:
        with pytest.raises(CheckpointError, match="holds Python objects other than tensors"):
            ckpt.load(last)
        assert os.system in torch.serialization.get_safe_globals()  # restored afterwards
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)
    assert not marker.exists()


def test_a_torch_without_safe_weights_only_loading_is_refused(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    with pytest.raises(CheckpointError, match=r"needs torch 2\.6 or newer .*CVE-2025-32434"):
        ckpt.load(run / "checkpoints" / "last.pt")


# ------------------------------------------------------------------------------ corruption


def _flip(count: int) -> Callable[[Path], None]:
    def corrupt(path: Path) -> None:
        data = bytearray(path.read_bytes())
        rng = random.Random(count)
        for index in rng.sample(range(len(data)), count):
            data[index] ^= 0xFF
        path.write_bytes(bytes(data))

    return corrupt


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(0).randbytes(path.stat().st_size))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "data.pkl").write_bytes(b"x")


def _missing_key(path: Path) -> None:
    state = torch.load(path, weights_only=True)
    del state["optimizer"]
    _save(state, path)


def _older_format(path: Path) -> None:
    state = torch.load(path, weights_only=True)
    state["format"] = 1
    del state["spec"]
    _save(state, path)


def _newer_format(path: Path) -> None:
    state = torch.load(path, weights_only=True)
    state["format"] = ckpt.FORMAT + 1
    _save(state, path)


def _not_a_dict(path: Path) -> None:
    _save([1, 2, 3], path)


def _deleted(path: Path) -> None:
    path.unlink()


CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "1 flipped byte": (_flip(1), "is corrupted or truncated: its SHA-256"),
    "50 flipped bytes": (_flip(50), "is corrupted or truncated: its SHA-256"),
    "truncated": (_truncate, "is corrupted or truncated: its SHA-256"),
    "random bytes": (_random_bytes, "is corrupted or truncated: its SHA-256"),
    "empty": (_empty, "is corrupted or truncated: its SHA-256"),
    "a directory": (_directory, "is a directory, not a checkpoint file"),
    "a missing key": (_missing_key, "has no 'optimizer' entry (an optimiser state)"),
    "an older format": (_older_format, "was written by an older fmicl-registry"),
    "a newer format": (_newer_format, "has checkpoint format 3 (written by fmicl-registry"),
    "not a dict": (_not_a_dict, "is not a fmicl-registry checkpoint (it holds a list"),
    "deleted (a kill between the renames)": (_deleted, "does not exist"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_a_bad_last_checkpoint_falls_back_to_previous_with_a_warning(run: Path, case: str) -> None:
    corrupt, reason = CORRUPTIONS[case]
    folder = run / "checkpoints"
    corrupt(folder / "last.pt")
    warnings: list[str] = []
    state, path = ckpt.load_latest(folder, warn=warnings.append)
    assert path == folder / "previous.pt"
    assert (state["epoch"], state["step"]) == (1, 11)
    assert len(warnings) == 1
    assert warnings[0].startswith(f"warning: checkpoint {folder / 'last.pt'} {reason}")
    assert warnings[0].endswith(f"; using {folder / 'previous.pt'} instead (epoch 1, step 11)")


@pytest.mark.parametrize("case", [c for c in CORRUPTIONS if not c.startswith("deleted")])
def test_when_both_checkpoints_are_bad_the_error_says_why_for_each(run: Path, case: str) -> None:
    corrupt, reason = CORRUPTIONS[case]
    folder = run / "checkpoints"
    corrupt(folder / "last.pt")
    corrupt(folder / "previous.pt")
    with pytest.raises(CheckpointError) as err:
        ckpt.load_latest(folder, warn=_quiet)
    message = str(err.value)
    assert message.startswith(f"no usable checkpoint in {folder}: last.pt {reason}")
    assert f"; previous.pt {reason}" in message
    assert message.endswith(
        f"Restore the checkpoints from a copy, or train the run again: "
        f"fmicl train {run / 'spec.toml'}"
    )


def test_checkpoints_without_their_checksums_cannot_be_verified(run: Path) -> None:
    (run / "checkpoints" / ckpt.CHECKSUMS).unlink()
    with pytest.raises(CheckpointError, match="cannot be verified: no checksum is recorded") as err:
        ckpt.load_latest(run / "checkpoints", warn=_quiet)
    assert "checksums.json beside it is missing" in str(err.value)


def test_an_old_run_folder_is_refused_naming_its_format(run: Path) -> None:
    folder = run / "checkpoints"
    (folder / ckpt.CHECKSUMS).unlink()  # format 1 recorded no checksums and no spec
    for name in ("last.pt", "previous.pt"):
        state = torch.load(folder / name, weights_only=True)
        del state["spec"]
        torch.save({**state, "format": 1, "version": "0.4.0"}, folder / name)
    result = CliRunner().invoke(cli, ["eval", str(run)])
    assert result.exit_code == 2
    assert (
        "last.pt was written by an older fmicl-registry (0.4.0, checkpoint format 1, without "
        "checksum or spec record); this version reads format 2" in result.output
    )


def test_a_single_checkpoint_that_is_bad_names_the_file_and_what_to_do(run: Path) -> None:
    folder = run / "checkpoints"
    (folder / "previous.pt").unlink()
    _truncate(folder / "last.pt")
    result = CliRunner().invoke(cli, ["eval", str(run)])
    assert result.exit_code == 2
    assert f"checkpoint {folder / 'last.pt'} is corrupted or truncated" in result.output
    assert "there is no previous.pt beside it to fall back to" in result.output


def test_eval_of_a_corrupted_last_checkpoint_evaluates_previous_and_says_so(run: Path) -> None:
    folder = run / "checkpoints"
    _flip(50)(folder / "last.pt")
    result = _cli("eval", str(run))
    assert result.returncode == 0, result.stderr
    assert f"warning: checkpoint {folder / 'last.pt'} is corrupted or truncated" in result.stdout
    assert f"evaluating {folder / 'previous.pt'} (epoch 1, step 11)" in result.stdout
    assert (folder / "last.pt").is_file()  # eval changes nothing but the report
    # both bad: exit 2, the report stays as it was
    _flip(1)(folder / "previous.pt")
    report = (run / "report.json").read_bytes()
    result = _cli("eval", str(run))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"no usable checkpoint in {folder}" in result.stderr
    assert (run / "report.json").read_bytes() == report


def test_resume_from_previous_retrains_the_lost_epoch_exactly(run: Path, base_run: Path) -> None:
    folder = run / "checkpoints"
    _flip(1)(folder / "last.pt")
    result = _cli("train", "--resume", str(run))
    assert result.returncode == 0, result.stderr
    assert f"warning: checkpoint {folder / 'last.pt'} is corrupted" in result.stdout
    assert "resuming" in result.stdout and "from previous.pt (epoch 1, step 11)" in result.stdout
    assert "set aside the unusable" in result.stdout
    assert (folder / "last.pt.bad").is_file()  # kept for inspection, not rotated into use
    redone = ckpt.load(folder / "last.pt")
    original = ckpt.load(base_run / "checkpoints" / "last.pt")
    assert redone["epoch"] == 2
    # the same weights up to float rounding: with the machine loaded (2 xdist workers) the
    # reduction order of torch's threads can differ between the two runs in the last bits
    for key, value in original["model"].items():
        assert torch.allclose(value, redone["model"][key], rtol=1e-5, atol=1e-6), key
    assert ckpt.load(folder / "previous.pt")["epoch"] == 1  # the good one, not the bad file


# ------------------------------------------------------------------------------ wrong shapes


def _other_backbone(run: Path, *, record_its_spec: bool) -> None:
    """last.pt and previous.pt holding the weights of a backbone twice as wide."""
    wide = load_spec(None, [*BASE, "backbone.width=16"])
    model = build(wide).model
    for name in ("last.pt", "previous.pt"):
        path = run / "checkpoints" / name
        state = torch.load(path, weights_only=True)
        state["model"] = model.state_dict()
        if record_its_spec:
            state["spec"] = wide.data
        _save(state, path)


def test_a_checkpoint_of_another_backbone_is_refused_naming_the_key(run: Path) -> None:
    _other_backbone(run, record_its_spec=True)
    result = CliRunner().invoke(cli, ["eval", str(run)])
    assert result.exit_code == 2
    assert "backbone.width: 16 -> 8" in result.output
    assert "in keys that change what the run computes" in result.output


def test_weights_that_do_not_fit_the_model_name_the_tensor_and_shapes(run: Path) -> None:
    _other_backbone(run, record_its_spec=False)  # its recorded spec says width 8
    before = _snapshot(run)
    for args in (["eval", str(run)], ["train", "--resume", str(run)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert "does not fit the model" in result.output
        assert (
            "encoder.features.0.0.weight has shape [16, 1, 3, 3] in the checkpoint, "
            "[8, 1, 3, 3] in the model" in result.output
        )
    assert _snapshot(run) == before


# ------------------------------------------------------------------------------ writing


def test_a_full_disk_leaves_the_checkpoints_intact_and_the_run_resumable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = {"n": 0}
    real = ckpt._write

    def fill_the_disk(handle: IO[bytes], data: bytes) -> None:
        writes["n"] += 1
        if writes["n"] == 3:  # epoch 2's checkpoint (after epoch 1's and its checksums)
            handle.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real(handle, data)

    monkeypatch.setattr(ckpt, "_write", fill_the_disk)
    settings = [a for s in BASE for a in ("--set", s)]
    result = CliRunner().invoke(cli, ["train", *settings, "--out", str(tmp_path)])
    run = tmp_path / "digits"
    folder = run / "checkpoints"
    assert result.exit_code == 2, result.output
    assert (
        f"no space left on device while writing {folder / 'last.pt'}; the run is resumable "
        f"from the checkpoint already there ({folder / 'last.pt'}, unchanged): free some "
        f"space, then run: fmicl train --resume {run}" in result.output
    )
    assert sorted(p.name for p in folder.iterdir()) == [ckpt.CHECKSUMS, "last.pt"]  # no .tmp
    assert ckpt.load(folder / "last.pt")["epoch"] == 1
    monkeypatch.setattr(ckpt, "_write", real)
    resumed = CliRunner().invoke(cli, ["train", "--resume", str(run)])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming" in resumed.output and "(epoch 1, step 11)" in resumed.output
    assert ckpt.load(folder / "last.pt")["epoch"] == 2
    assert json.loads((run / "report.json").read_text())["training"]["epochs"] == 2


def test_a_killed_save_leaves_no_temporary_file_behind_the_next_save(run: Path) -> None:
    folder = run / "checkpoints"
    stale = folder / ".last.pt.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    state = ckpt.load(folder / "last.pt")
    ckpt.rotate_and_save(state, folder)
    assert not stale.exists()
    assert sorted(p.name for p in folder.iterdir()) == [ckpt.CHECKSUMS, "last.pt", "previous.pt"]
    assert ckpt.load(folder / "previous.pt")["epoch"] == 2  # the old last.pt, still verified


# ------------------------------------------------------------------------------ spec changes


REFUSED = {
    "train.lr=0.1": "train.lr: 0.05 -> 0.1",
    "run.seed=1": "run.seed: 0 -> 1",
    "objective.divergence=kl": "objective.divergence: 'js' -> 'kl'",
    "train.batch_size=64": "train.batch_size: 128 -> 64",
    "train.optimizer=adamw": "train.optimizer: 'sgd' -> 'adamw'",
    "augment.name=simclr": "augment.name: 'digits' -> 'simclr'",
    "train.epochs=1": "train.epochs: 2 -> 1 (a run's epochs can only grow)",
}


@pytest.mark.parametrize("change", list(REFUSED))
@pytest.mark.parametrize("how", ["spec.toml edited", "--set"])
def test_resume_with_a_spec_change_that_alters_the_run_is_refused(
    run: Path, change: str, how: str
) -> None:
    args = ["train", "--resume", str(run)]
    if how == "--set":
        args += ["--set", change]
    else:
        spec = load_spec(run / "spec.toml", [change])
        (run / "spec.toml").write_text(spec.to_toml())
    before = _snapshot(run)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert f"differs from the spec checkpoint {run / 'checkpoints' / 'last.pt'} was trained" in (
        result.output
    )
    assert REFUSED[change] in result.output
    assert _snapshot(run) == before


def test_every_refused_key_is_named_with_its_old_and_new_value(run: Path) -> None:
    changes = ["train.lr=0.1", "run.seed=1", "eval.knn_k=10"]
    result = CliRunner().invoke(
        cli, ["train", "--resume", str(run), *[a for c in changes for a in ("--set", c)]]
    )
    assert result.exit_code == 2
    # eval.knn_k may change: it is not among the refused keys
    assert "computes: run.seed: 0 -> 1; train.lr: 0.05 -> 0.1. Set them back" in result.output


def test_eval_with_another_evaluation_setting_is_allowed_and_logged(run: Path) -> None:
    refused = CliRunner().invoke(cli, ["eval", str(run), "--set", "train.lr=0.2"])
    assert refused.exit_code == 2 and "train.lr: 0.05 -> 0.2" in refused.output
    spec = (run / "spec.toml").read_text()
    result = CliRunner().invoke(cli, ["eval", str(run), "--set", "eval.knn_k=5"])
    assert result.exit_code == 0, result.output
    assert "changed since the checkpoint: eval.knn_k = 5 (was 20)" in result.output
    report = json.loads((run / "report.json").read_text())
    assert report["spec"]["eval"]["knn_k"] == 5
    assert (run / "spec.toml").read_text() == spec  # eval does not change the run


@pytest.mark.slow
def test_more_epochs_extend_a_finished_run_on_the_longer_schedule(
    run: Path, tmp_path: Path
) -> None:
    """The documented rule: the extended run keeps its first epochs as they were and trains the
    new ones on the cosine schedule of the new total (what an uninterrupted run of that many
    epochs uses at those steps: the learning rate rises again from the old end's 0)."""
    longer = train(load_spec(None, [*BASE, "train.epochs=3"]), tmp_path / "whole", log=_quiet)
    whole = [json.loads(line) for line in (longer.run_dir / "metrics.jsonl").open()]
    before = (run / "metrics.jsonl").read_text().splitlines()
    stale = run / "checkpoints" / ".last.pt.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")

    result = CliRunner().invoke(
        cli,
        ["train", "--resume", str(run), "--set", "train.epochs=3", "--set", "eval.knn_k=10"],
    )
    assert result.exit_code == 0, result.output
    assert "changed since the checkpoint: train.epochs = 3 (was 2)" in result.output
    assert "changed since the checkpoint: eval.knn_k = 10 (was 20)" in result.output
    assert "(epoch 2, step 22)" in result.output and "epoch 3/3" in result.output
    assert not stale.exists() and "removed 1 unfinished checkpoint file" in result.output

    after = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    assert (run / "metrics.jsonl").read_text().splitlines()[: len(before)] == before
    assert after[len(before)] == {
        "step": 22,
        "epoch": 2,
        "event": "resumed",
        "changed": {"eval.knn_k": [20, 10], "train.epochs": [2, 3]},
    }
    lr = {r["step"]: r["lr"] for r in after if "lr" in r}
    lr_whole = {r["step"]: r["lr"] for r in whole if "lr" in r}
    new_steps = [s for s in lr if s > 22]
    assert new_steps == [24, 26, 28, 30, 32, 33]
    assert [lr[s] for s in new_steps] == [lr_whole[s] for s in new_steps]
    assert lr[22] == 0.0 < lr[24]  # the 2-epoch schedule had ended; the 3-epoch one goes on

    last = ckpt.load(run / "checkpoints" / "last.pt")
    assert (last["epoch"], last["step"]) == (3, 33)
    assert last["spec"]["train"]["epochs"] == 3
    assert load_spec(run / "spec.toml")["train"]["epochs"] == 3
    report = json.loads((run / "report.json").read_text())
    assert report["training"]["steps"] == 33 and report["training"]["epochs"] == 3

    # resuming the extended run again changes nothing and trains nothing more
    again = CliRunner().invoke(cli, ["train", "--resume", str(run)])
    assert again.exit_code == 0, again.output
    assert "changed since the checkpoint" not in again.output and "epoch 4" not in again.output


def test_the_library_resumes_with_overrides_too(run: Path) -> None:
    with pytest.raises(SpecChanged, match=r"objective\.alpha: 40\.0 -> 10\.0"):
        train(None, resume=run, overrides=["objective.alpha=10.0"], log=_quiet)
    with pytest.raises(SpecChanged, match=r"data\.name: 'digits' -> 'cifar10'"):
        evaluate_checkpoint(run, overrides=["data.name=cifar10"], log=_quiet)
