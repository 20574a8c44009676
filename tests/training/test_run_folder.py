"""The run folder: a new run never takes an existing folder, and a resume drops the metrics a
stopped run wrote after its checkpoint (a line cut short by the kill included)."""

from __future__ import annotations

import json
from pathlib import Path

from fmicl_registry.training import load_spec
from fmicl_registry.training.run_folder import Metrics, RunFolder


def test_a_new_run_folder_never_takes_an_existing_one(tmp_path: Path) -> None:
    spec = load_spec(None, ['run.name="trial"'])
    (tmp_path / "trial").mkdir()
    (tmp_path / "trial-2").symlink_to(tmp_path / "missing")  # a dangling link is taken too
    folder = RunFolder.create(tmp_path, spec)
    assert folder.path == tmp_path / "trial-3"
    assert load_spec(folder.spec_file).data == spec.data
    assert folder.last_checkpoint() is None and folder.previous_training() == {}


def test_metrics_after_the_checkpoint_are_dropped_on_resume(tmp_path: Path) -> None:
    metrics = Metrics(tmp_path / "metrics.jsonl")
    for step in (2, 4, 6):
        metrics.write(step=step, loss=1.0 / step)
    with metrics.path.open("a") as handle:
        handle.write('{"step": 8, "lo')  # cut short by a kill
    metrics.drop_after(4)
    metrics.write(step=5, event="resumed")
    lines = [json.loads(line) for line in metrics.path.read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4, 5]
