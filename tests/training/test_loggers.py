"""Watching a run live: ``train.logger`` (TensorBoard, or a plugin's logger) beside
``metrics.jsonl``, read back with TensorBoard's own event reader."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from training_helpers import TINY

import fmicl_registry as fm
from fmicl_registry import components, plugins
from fmicl_registry.cli import cli
from fmicl_registry.hookspecs import Logger, RunInfo
from fmicl_registry.objectives import FMICL
from fmicl_registry.training import SpecError, TrainingDiverged, load_spec, train
from fmicl_registry.training.spec import spec_from_toml

#: A tiny run: 2 epochs of 11 steps, kNN every epoch, a metrics line every 2 steps.
SETTINGS = [*TINY, "eval.linear_epochs=1"]


def _quiet(_: str) -> None:
    pass


def _lines(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _events(run: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # size 0: keep every event (the reader samples scalars and histograms otherwise)
    reader = EventAccumulator(
        str(run / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0}
    )
    return reader.Reload()


def _scalars(events: Any, tag: str) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in events.Scalars(tag)]


def _expected(lines: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    return [(line["step"], line[key]) for line in lines if key in line]


def _same(shown: list[tuple[int, float]], recorded: list[tuple[int, float]]) -> None:
    """TensorBoard keeps float32: the steps exactly, the values to float32 rounding."""
    assert [step for step, _ in shown] == [step for step, _ in recorded]
    for (_, a), (_, b) in zip(shown, recorded, strict=True):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-6)


def test_tensorboard_shows_what_metrics_jsonl_records(tmp_path: Path) -> None:
    spec = load_spec(None, [*SETTINGS, "train.logger=tensorboard"])
    result = train(spec, tmp_path, log=_quiet)
    run, report = result.run_dir, result.report
    lines, events = _lines(run), _events(run)
    steps = [line for line in lines if "loss" in line]
    epochs = [line for line in lines if "epoch_loss" in line]
    assert [line["step"] for line in steps] == [*range(2, 23, 2)]  # every 2 steps, 22 in all
    assert [line["step"] for line in epochs] == [11, 22]

    # the objective's terms are in metrics.jsonl, and they are f-MICL's: loss = alpha neg - pos
    alpha = spec.objective.options["alpha"]
    for line in steps:
        assert line["loss"] == pytest.approx(
            alpha * line["negative_term"] - line["positive_term"], rel=1e-4
        )

    assert set(events.Tags()["scalars"]) == {
        "train/loss",
        "train/positive_term",
        "train/negative_term",
        "train/lr",
        "train/images_per_s",
        "epoch/loss",
        "epoch/seconds",
        "epoch/knn_top1",
        *(f"report/{name}" for name in report["metrics"]),
    }
    for key in ("loss", "positive_term", "negative_term", "lr", "images_per_s"):
        _same(_scalars(events, f"train/{key}"), _expected(steps, key))
    _same(_scalars(events, "epoch/loss"), _expected(epochs, "epoch_loss"))
    _same(_scalars(events, "epoch/seconds"), _expected(epochs, "epoch_seconds"))
    _same(_scalars(events, "epoch/knn_top1"), _expected(epochs, "knn_top1"))
    for name, value in report["metrics"].items():
        _same(_scalars(events, f"report/{name}"), [(22, value)])

    # the distance histograms (the paper's Figure 4) of the 360 test images' view pairs
    assert set(events.Tags()["histograms"]) == {
        "distances/pretrained/positive",
        "distances/pretrained/negative",
    }
    (positive,) = events.Histograms("distances/pretrained/positive")
    (negative,) = events.Histograms("distances/pretrained/negative")
    assert positive.step == negative.step == 22
    assert positive.histogram_value.num == 360
    assert negative.histogram_value.num == 100_000  # 360 * 359 ordered pairs, drawn to the cap
    for histogram in (positive.histogram_value, negative.histogram_value):
        assert 0.0 <= histogram.min <= histogram.max <= 2.0  # distances of unit vectors
    # alignment (Wang and Isola) is the mean squared positive distance, measured apart
    shown = positive.histogram_value.sum_squares / positive.histogram_value.num
    assert shown == pytest.approx(report["metrics"]["alignment"], rel=1e-6)


def test_a_run_on_a_folder_of_unlabelled_pngs_is_watched_too(tmp_path: Path) -> None:
    # the new user: their own images, no labels; the curve is then the uniformity
    rng = np.random.default_rng(0)
    for i in range(24):
        folder = tmp_path / "photos" / f"trip{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (18, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    spec = load_spec(
        None,
        [
            *SETTINGS, "data.name=images", f"data.root={tmp_path / 'photos'}",
            "data.image_size=16", "train.batch_size=8", "train.logger=tensorboard",
        ],
    )  # fmt: skip
    run = train(spec, tmp_path / "runs", log=_quiet).run_dir
    lines, events = _lines(run), _events(run)
    epochs = [line for line in lines if "epoch_loss" in line]
    _same(_scalars(events, "epoch/uniformity"), _expected(epochs, "uniformity"))
    _same(_scalars(events, "train/loss"), _expected(lines, "loss"))
    assert "distances/pretrained/positive" in events.Tags()["histograms"]


def test_a_resumed_run_shows_each_step_once(tmp_path: Path) -> None:
    spec = load_spec(None, [*SETTINGS, "train.logger=tensorboard"])
    run = train(spec, tmp_path, log=_quiet).run_dir
    first = _events(run)
    assert [step for step, _ in _scalars(first, "train/loss")][-1] == 22
    # As if killed in the last epoch: the last checkpoint is lost, and the run resumes from
    # epoch 1 (step 11); what the first attempt logged after step 11 is trained again.
    (run / "checkpoints" / "last.pt").unlink()
    resumed = train(None, resume=run, log=_quiet)
    lines, events = _lines(run), _events(run)
    assert len(list((run / "tensorboard").iterdir())) == 2  # an event file per attempt
    steps = [line for line in lines if "loss" in line]
    assert [line["step"] for line in steps] == [*range(2, 23, 2)]
    for tag in events.Tags()["scalars"]:
        shown = [step for step, _ in _scalars(events, tag)]
        assert shown == sorted(set(shown)), f"{tag}: steps {shown}"  # no repeat, no zig-zag
    for key in ("loss", "positive_term", "negative_term", "lr"):
        _same(_scalars(events, f"train/{key}"), _expected(steps, key))
    epochs = [line for line in lines if "epoch_loss" in line]
    _same(_scalars(events, "epoch/knn_top1"), _expected(epochs, "knn_top1"))
    for name, value in resumed.report["metrics"].items():
        _same(_scalars(events, f"report/{name}"), [(22, value)])
    for tag in events.Tags()["histograms"]:
        assert [event.step for event in events.Histograms(tag)] == [22]


def test_tensorboard_may_be_switched_on_when_a_run_is_resumed(tmp_path: Path) -> None:
    """What watches a run does not change what it computes: ``train.logger`` and the
    ``[logger.*]`` tables may change on resume (extending a run here)."""
    run = train(load_spec(None, SETTINGS), tmp_path, log=_quiet).run_dir
    assert not (run / "tensorboard").exists()
    overrides = ["train.epochs=3", "train.logger=tensorboard", "logger.tensorboard={flush_secs=1}"]
    train(None, resume=run, overrides=overrides, log=_quiet)
    steps = [step for step, _ in _scalars(_events(run), "train/loss")]
    assert steps and min(steps) > 22 and steps == sorted(steps)  # only the new epoch's steps
    with pytest.raises(fm.FmiclError, match=r"train\.lr: 0\.05 -> 0\.1"):  # still refused
        train(None, resume=run, overrides=["train.epochs=4", "train.lr=0.1"], log=_quiet)


def test_without_the_tensorboard_package_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` now fails
    spec = load_spec(None, [*SETTINGS, "train.logger=tensorboard"])
    with pytest.raises(SpecError, match=r"pip install 'fmicl-registry\[tensorboard\]'"):
        train(spec, tmp_path, log=_quiet)
    assert list(tmp_path.iterdir()) == []  # refused before the run folder was made
    result = CliRunner().invoke(
        cli, ["train", "--set", "train.logger=tensorboard", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "logger 'tensorboard' needs the tensorboard package" in result.output
    assert "pip install 'fmicl-registry[tensorboard]'" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_misspelled_logger_name_or_option_is_a_spec_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["train", "--set", "train.logger=tensorbord", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.startswith(
        "Error: train.logger: no logger named 'tensorbord'. Did you mean 'tensorboard' "
        "(plugin 'loggers')?"
    )
    cases = {
        "train.logger=['tensorboard', 'tensorbord']": "Did you mean 'tensorboard'",
        "logger.tensorbord={flush_secs=1}": r"\[logger.tensorbord\]: no logger named",
        "logger.tensorboard={flush=1}": r"did you mean 'flush_secs' for 'flush'",
        "logger.tensorboard={flush_secs=0}": "flush_secs must be a number of seconds above 0",
    }
    for setting, message in cases.items():
        spec = load_spec(None, [*SETTINGS, "train.logger=tensorboard", setting])
        with pytest.raises(SpecError, match=message):
            train(spec, tmp_path, log=_quiet)
    assert list(tmp_path.iterdir()) == []
    refused = {
        "train.logger=3": "train.logger must be a string or list of strings, got integer 3",
        "train.logger=['tensorboard', 'tensorboard']": "must not name a logger twice",
        "logger.tensorboard=10": "logger.tensorboard must be a table of the options",
    }
    for setting, message in refused.items():
        with pytest.raises(SpecError, match=message):
            load_spec(None, [setting])


def test_the_logger_keys_survive_the_run_folders_spec_toml() -> None:
    spec = load_spec(
        None, ["train.logger=['tensorboard', 'x']", "logger.tensorboard={flush_secs=2.5}"]
    )
    again = spec_from_toml(spec.to_toml(), "spec.toml")  # what --resume and fmicl eval read
    assert again.train.logger == ["tensorboard", "x"]
    assert again["logger"] == {"tensorboard": {"flush_secs": 2.5}}
    assert load_spec(None).train.logger is None  # no logger unless asked for
    removed = load_spec(None, ["logger.tensorboard={flush_secs=1}", "logger.tensorboard=null"])
    assert removed["logger"] == {}  # --set ...=null drops a logger's options table


def test_fmicl_list_loggers_shows_tensorboard() -> None:
    result = CliRunner().invoke(cli, ["list", "loggers", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row["plugin"] for row in json.loads(result.stdout)}
    assert rows == {"tensorboard": "loggers"}


# ------------------------------------------------------------------ a plugin's logger


class _Recorder:
    """A throwaway plugin's logger: it keeps every call."""

    made: ClassVar[list[_Recorder]] = []

    def __init__(self, project: str = "default", fail_in: str = "") -> None:
        self.project, self.fail_in = project, fail_in
        self.calls: list[tuple[str, Any]] = []
        _Recorder.made.append(self)

    def start(self, run: RunInfo) -> None:
        if self.fail_in == "start":
            raise ConnectionError("no tracking server")
        self.calls.append(("start", run))

    def log_scalars(self, scalars: Mapping[str, float], step: int) -> None:
        if self.fail_in == "log_scalars" and step == 4:
            raise ConnectionError("the tracker went away")
        self.calls.append(("scalars", (step, dict(scalars))))

    def log_histograms(self, histograms: Mapping[str, np.ndarray], step: int) -> None:
        self.calls.append(("histograms", (step, dict(histograms))))

    def log_report(self, metrics: Mapping[str, float], step: int) -> None:
        self.calls.append(("report", (step, dict(metrics))))

    def close(self, error: BaseException | None) -> None:
        self.calls.append(("close", error))


class _Diverges(FMICL):
    """f-MICL whose loss becomes inf at its 5th call."""

    calls = 0

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, queue: Any = None) -> torch.Tensor:
        loss = super().forward(z1, z2, queue)
        type(self).calls += 1
        return loss * float("inf") if type(self).calls == 5 else loss


class _RecorderPlugin:
    @fm.hookimpl
    def register_loggers(self, register: Any) -> None:
        register(name="recorder", factory=_Recorder, description="keeps every call")
        register(name="no_logger", factory=lambda: "not a logger")

    @fm.hookimpl
    def register_objectives(self, register: Any) -> None:
        register(name="diverges", factory=_Diverges)


@pytest.fixture
def recorder() -> Iterator[type[_Recorder]]:
    """The throwaway plugin, registered for one test."""
    plugins.reset()
    plugins.get_plugin_manager().register(_RecorderPlugin(), name="recorder_plugin")
    components.clear()
    _Recorder.made.clear()
    _Diverges.calls = 0
    yield _Recorder
    plugins.reset()
    components.clear()


def test_a_plugin_logger_gets_the_run_without_touching_the_loop(
    tmp_path: Path, recorder: type[_Recorder]
) -> None:
    settings = [*SETTINGS, "eval.baselines=true", "train.logger=['recorder', 'tensorboard']"]
    spec = load_spec(None, [*settings, "logger.recorder={project='mine'}"])
    result = train(spec, tmp_path, log=_quiet)
    (logger,) = recorder.made
    assert isinstance(logger, Logger) and logger.project == "mine"  # its [logger.NAME] options
    kinds = [kind for kind, _ in logger.calls]
    assert kinds[0] == "start" and kinds[-1] == "close" and kinds.count("close") == 1
    run = logger.calls[0][1]
    assert run.path == result.run_dir and run.name == "digits" and run.start_step == 0
    assert run.config == json.loads((result.run_dir / "report.json").read_text())["spec"]
    assert logger.calls[-1] == ("close", None)

    # every number of metrics.jsonl, at its step; the same as TensorBoard got beside it
    lines = _lines(result.run_dir)
    scalars = [payload for kind, payload in logger.calls if kind == "scalars"]
    assert [step for step, _ in scalars] == [line["step"] for line in lines]
    for (_, values), line in zip(scalars, lines, strict=True):
        group = "train" if "loss" in line else "epoch"
        numbers = {k: v for k, v in line.items() if k not in ("step", "epoch")}
        assert values == {f"{group}/{k.removeprefix('epoch_')}": v for k, v in numbers.items()}
    events = _events(result.run_dir)
    shown = [(step, values["train/loss"]) for step, values in scalars if "train/loss" in values]
    _same(_scalars(events, "train/loss"), shown)

    # the report, the baselines' metrics under their names, and the histograms of both encoders
    ((step, metrics),) = [payload for kind, payload in logger.calls if kind == "report"]
    report = result.report
    assert step == 22
    expected = dict(report["metrics"])
    for baseline, values in report["baselines"].items():
        expected.update({f"{baseline}/{k}": v for k, v in values.items()})
    assert metrics == expected and "random_encoder/linear_top1" in metrics
    ((step, histograms),) = [payload for kind, payload in logger.calls if kind == "histograms"]
    assert step == 22 and set(histograms) == {
        f"distances/{encoder}/{pairs}"
        for encoder in ("pretrained", "random_encoder")
        for pairs in ("positive", "negative")
    }
    assert all(values.ndim == 1 and len(values) >= 360 for values in histograms.values())


def test_a_failing_logger_is_dropped_with_a_warning_and_training_goes_on(
    tmp_path: Path, recorder: type[_Recorder]
) -> None:
    spec = load_spec(
        None, [*SETTINGS, "train.logger=recorder", "logger.recorder={fail_in='log_scalars'}"]
    )
    with pytest.warns(plugins.PluginWarning, match="logger 'recorder' failed in log_scalars"):
        result = train(spec, tmp_path, log=_quiet)
    assert (result.run_dir / "report.json").is_file()
    (logger,) = recorder.made
    assert [kind for kind, _ in logger.calls] == ["start", "scalars", "close"]  # step 2, then
    assert len(_lines(result.run_dir)) == 13  # metrics.jsonl still has every line

    recorder.made.clear()
    spec = load_spec(
        None, [*SETTINGS, "train.logger=recorder", "logger.recorder={fail_in='start'}"]
    )
    with pytest.raises(SpecError, match="logger 'recorder' could not start: ConnectionError: no"):
        train(spec, tmp_path, log=_quiet)
    (logger,) = recorder.made
    assert logger.calls == [("close", logger.calls[0][1])]  # closed, with the error
    assert isinstance(logger.calls[0][1], SpecError)


def test_a_diverged_run_closes_its_loggers_with_the_error(
    tmp_path: Path, recorder: type[_Recorder]
) -> None:
    spec = load_spec(
        None, [*SETTINGS, "objective.name=diverges", "train.logger=['recorder', 'tensorboard']"]
    )
    with pytest.raises(TrainingDiverged) as error:
        train(spec, tmp_path, log=_quiet)
    (logger,) = recorder.made
    assert logger.calls[-1] == ("close", error.value)
    assert [payload[0] for kind, payload in logger.calls if kind == "scalars"] == [2, 4]
    events = _events(tmp_path / "digits")  # closed: what was logged is on disk
    assert [step for step, _ in _scalars(events, "train/loss")] == [2, 4]
    assert all(math.isfinite(value) for _, value in _scalars(events, "train/loss"))


def test_a_factory_that_makes_no_logger_is_refused(
    tmp_path: Path, recorder: type[_Recorder]
) -> None:
    spec = load_spec(None, [*SETTINGS, "train.logger=no_logger"])
    with pytest.raises(SpecError, match=r"logger 'no_logger' .* made a str, which has no start"):
        train(spec, tmp_path, log=_quiet)


@pytest.mark.slow
def test_under_two_processes_only_rank_0_logs_the_terms_of_the_global_batch(
    tmp_path: Path,
) -> None:
    import torch.multiprocessing as mp
    from test_distributed_training import SETTINGS as FLAT
    from test_distributed_training import WORLD, _register, _worker

    extra = ["objective.divergence=js", "train.logger=tensorboard"]
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path / "two"), extra), nprocs=WORLD)
    _register()
    try:
        torch.set_num_threads(1)
        train(load_spec(None, [*FLAT, *extra]), tmp_path / "one", log=_quiet)
    finally:
        plugins.reset()
        components.clear()
    two, one = tmp_path / "two" / "digits", tmp_path / "one" / "digits"
    assert len(list((two / "tensorboard").iterdir())) == 1  # one writer: rank 0's
    steps = {run: [line for line in _lines(run) if "loss" in line] for run in (two, one)}
    assert [line["step"] for line in steps[two]] == [line["step"] for line in steps[one]] == [2, 4]
    # each process's terms are of its half of the batch; their mean is the whole batch's
    for split, whole in zip(steps[two], steps[one], strict=True):
        for key in ("loss", "positive_term", "negative_term"):
            assert split[key] == pytest.approx(whole[key], rel=1e-5, abs=1e-6), key
    _same(_scalars(_events(two), "train/positive_term"), _expected(steps[two], "positive_term"))
