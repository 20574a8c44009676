"""``fmicl tune`` end to end on a tiny digits budget: the study, its results, its reruns."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState
from tune_helpers import TINY, quiet, sqlite, trials

import fmicl_registry as fm
from fmicl_registry.cli import cli
from fmicl_registry.training.spec import load_spec
from fmicl_registry.tuning import TuneError

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tune")]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("tune")
    result = fm.tune(
        overrides=TINY, objectives=["js", "infonce"], trials=4, out=out, pruner="none", log=quiet
    )
    return result


def test_every_objective_gets_the_same_budget(tuned: Any) -> None:
    found = trials(sqlite(tuned.out), "digits")
    assert len(found) == 4
    assert all(t.state == TrialState.COMPLETE for t in found)
    labels = [t.params["objective"] for t in found]
    assert sorted(labels) == ["infonce", "infonce", "js", "js"]
    # each objective's first trial is its default setting (the spec's alpha and gamma)
    first = {
        label: min(t.number for t in found if t.params["objective"] == label) for label in labels
    }
    js = found[first["js"]]
    assert js.params["js/alpha"] == 40.0 and js.params["js/gamma"] == 1.0
    assert found[first["infonce"]].params["infonce/temperature"] == 0.5


def test_each_trial_is_a_run_with_its_drawn_setting(tuned: Any) -> None:
    for t in trials(sqlite(tuned.out), "digits"):
        run = Path(t.user_attrs["run_dir"])
        kept = load_spec(run / "spec.toml")
        assert kept.eval.holdout == 0.2  # scored on held-out training images, not the test split
        label = t.params["objective"]
        if label == "js":
            assert kept.objective.options["divergence"] == "js"
            assert kept.objective.options["alpha"] == pytest.approx(t.params["js/alpha"])
        else:
            assert kept.objective.name == "infonce"
            assert kept.objective.options["temperature"] == pytest.approx(
                t.params["infonce/temperature"]
            )
        report = json.loads((run / "report.json").read_text())
        assert t.value == report["metrics"]["knn_top1"]
        # the kNN curve the loop computes every epoch is what the pruner sees
        assert sorted(t.intermediate_values) == [1, 2, 3]


def test_leaderboard_is_the_best_trial_of_each_objective(tuned: Any) -> None:
    found = trials(sqlite(tuned.out), "digits")
    best = {
        label: max((t for t in found if t.params["objective"] == label), key=lambda t: t.value)
        for label in ("js", "infonce")
    }
    with (tuned.out / "leaderboard.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["objective"] for r in rows] == sorted(best, key=lambda k: -best[k].value)
    for r in rows:
        assert float(r["value"]) == best[r["objective"]].value
        assert int(r["trial"]) == best[r["objective"]].number
        assert r["complete"] == "2" and r["pruned"] == "0"
    text = (tuned.out / "leaderboard.md").read_text()
    assert "| 1 | " + rows[0]["objective"] in text
    assert "4 trials: 4 complete (" in text  # what the trials cost


def test_best_spec_trains_the_best_trial(tuned: Any) -> None:
    found = trials(sqlite(tuned.out), "digits")
    top = max(found, key=lambda t: t.value)
    best = load_spec(tuned.out / "best.toml")
    trained = load_spec(Path(top.user_attrs["run_dir"]) / "spec.toml")
    assert best.objective.name == trained.objective.name
    assert best.objective.options.items() <= trained.objective.options.items()
    assert best.train.epochs == 3  # the study's spec, with its --set
    for label in ("js", "infonce"):
        assert (tuned.out / "best" / f"{label}.toml").is_file()


def test_plots_are_written(tuned: Any) -> None:
    names = sorted(p.name for p in tuned.plots)
    assert names == ["alpha_gamma.png", "history.png"]  # 2 trials: too few for importances
    for path in tuned.plots:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_continues_the_study_and_loses_nothing(tuned: Any, tmp_path: Path) -> None:
    before = {t.number: (t.params, t.value) for t in trials(sqlite(tuned.out), "digits")}
    fm.tune(
        overrides=TINY,
        objectives=["js", "infonce"],
        trials=6,
        out=tuned.out,
        pruner="none",
        log=quiet,
    )
    after = trials(sqlite(tuned.out), "digits")
    assert len(after) == 6
    assert {t.number: (t.params, t.value) for t in after if t.number in before} == before
    assert sorted(t.params["objective"] for t in after).count("js") == 3
    # the same budget again: nothing more to run
    again = fm.tune(
        overrides=TINY,
        objectives=["js", "infonce"],
        trials=6,
        out=tuned.out,
        pruner="none",
        log=quiet,
    )
    assert len(trials(sqlite(tuned.out), "digits")) == 6
    assert again.best_spec is not None


def test_rerun_with_other_settings_is_refused(tuned: Any) -> None:
    with pytest.raises(TuneError, match="tunes objectives js,infonce, not js,kl"):
        fm.tune(overrides=TINY, objectives=["js", "kl"], trials=4, out=tuned.out, log=quiet)
    with pytest.raises(TuneError, match="another spec"):
        fm.tune(
            overrides=[*TINY, "train.epochs=4"],
            objectives=["js", "infonce"],
            trials=4,
            out=tuned.out,
            pruner="none",
            log=quiet,
        )


def test_joining_with_the_storage_alone_uses_the_studys_settings(tuned: Any) -> None:
    count = len(trials(sqlite(tuned.out), "digits"))
    fm.tune(storage=sqlite(tuned.out), study="digits", trials=count + 1, out=tuned.out, log=quiet)
    found = trials(sqlite(tuned.out), "digits")
    assert len(found) == count + 1
    last = Path(found[-1].user_attrs["run_dir"])
    assert load_spec(last / "spec.toml").train.epochs == 3


def test_confirm_retrains_the_best_settings_on_new_seeds(tmp_path: Path) -> None:
    result = fm.tune(
        overrides=TINY,
        objectives=["js", "infonce"],
        trials=2,
        out=tmp_path,
        pruner="none",
        confirm=2,
        log=quiet,
    )
    runs = sorted(p.name for p in (tmp_path / "confirm").iterdir() if p.is_dir())
    assert runs == [
        "infonce-trial1-seed1",
        "infonce-trial1-seed2",
        "js-trial0-seed1",
        "js-trial0-seed2",
    ]
    for row in result.rows:
        assert len(row.confirmed["knn_top1"]) == 2
        for seed, value in zip((1, 2), row.confirmed["knn_top1"], strict=True):
            name = f"{row.objective}-trial{row.trial.number}-seed{seed}"
            report = json.loads((tmp_path / "confirm" / name / "report.json").read_text())
            assert report["metrics"]["knn_top1"] == value
            confirmed = load_spec(tmp_path / "confirm" / name / "spec.toml")
            assert confirmed.run.seed == seed
            assert confirmed.eval.holdout == 0.0  # the test split
    text = (tmp_path / "leaderboard.md").read_text()
    assert "kNN top-1, test, 2 seeds" in text and "±" in text
    # rerun: the confirmation runs are read back, not trained again
    fm.tune(
        overrides=TINY,
        objectives=["js", "infonce"],
        trials=2,
        out=tmp_path,
        pruner="none",
        confirm=2,
        log=quiet,
    )
    assert sorted(p.name for p in (tmp_path / "confirm").iterdir() if p.is_dir()) == runs


def test_a_diverging_trial_is_pruned_with_its_reason(tmp_path: Path) -> None:
    # a learning rate this large sends the loss to inf or nan within the first steps
    fm.tune(
        overrides=[*TINY, "train.lr=1e30", "train.momentum=0.0"],
        objectives=["js"],
        trials=1,
        out=tmp_path,
        pruner="none",
        log=quiet,
    )
    (trial,) = trials(sqlite(tmp_path), "digits")
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["pruned"].startswith("diverged: training stopped at step")


def test_the_pruner_stops_trials_by_the_curve(tmp_path: Path, monkeypatch: Any) -> None:
    from fmicl_registry.tuning import study as study_module

    # a pruner that stops every trial at its first curve point
    monkeypatch.setattr(
        study_module, "make_pruner", lambda *args: optuna.pruners.ThresholdPruner(lower=1.01)
    )
    fm.tune(overrides=TINY, objectives=["js"], trials=2, out=tmp_path, log=quiet)
    found = trials(sqlite(tmp_path), "digits")
    assert [t.state for t in found] == [TrialState.PRUNED] * 2
    for t in found:
        assert list(t.intermediate_values) == [1]
        assert t.user_attrs["pruned"].startswith("at epoch 1")
        metrics = [
            json.loads(line)
            for line in (Path(tmp_path) / "trials").glob("*/metrics.jsonl")
            for line in line.read_text().splitlines()
        ]
        assert max(m.get("epoch", 0) for m in metrics) == 1


def test_command_line_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    runner = CliRunner()
    cases = [
        (["tune", "--objectives", "jss", "--out", str(tmp_path)], "neither an objective"),
        (
            ["tune", "--storage", "nonsense", "--study", "x", "--out", str(tmp_path)],
            "not a storage URL",
        ),
        (
            ["tune", "--storage", sqlite(tmp_path), "--study", "nope", "--out", str(tmp_path)],
            "no study 'nope'",
        ),
    ]
    for args, message in cases:
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert "Traceback" not in result.output


def test_a_journal_file_holds_a_study_too(tmp_path: Path) -> None:
    storage = f"journal:{tmp_path / 'study.log'}"
    fm.tune(
        overrides=TINY,
        objectives=["infonce"],
        trials=1,
        storage=storage,
        out=tmp_path,
        pruner="none",
        log=quiet,
    )
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    reopened = JournalStorage(JournalFileBackend(str(tmp_path / "study.log")))
    (trial,) = trials(reopened, "digits")
    assert trial.state == TrialState.COMPLETE
    assert not (tmp_path / "study.db").exists()


def test_storage_urls_are_checked_and_passwords_not_shown(tmp_path: Path) -> None:
    from fmicl_registry.tuning.study import open_storage, shown_url

    with pytest.raises(TuneError, match="does not exist"):
        open_storage(f"journal:{tmp_path / 'missing' / 'study.log'}")
    with pytest.raises(TuneError, match="not a storage URL"):
        open_storage(str(tmp_path / "study.db"))
    shown = shown_url("postgresql+psycopg://tuner:s3cret@db.example:5432/fmicl")
    assert "s3cret" not in shown and "db.example" in shown


def test_a_spec_or_metric_that_cannot_work_fails_before_the_study_is_made(
    tmp_path: Path,
) -> None:
    cases = [
        ({"metric": "sts"}, r"--metric sts needs sts_spearman.*use --metric knn or linear"),
        ({"overrides": [*TINY, "data.name=nosuch"]}, "no dataset named 'nosuch'"),
    ]
    for given, message in cases:
        settings: dict[str, Any] = {"overrides": TINY, **given}
        with pytest.raises(fm.FmiclError, match=message):
            fm.tune(objectives=["infonce"], trials=3, out=tmp_path, log=quiet, **settings)
        assert not (tmp_path / "study.db").exists()  # nothing saved: the fixed command starts


def test_storage_that_cannot_be_read_is_refused(tmp_path: Path) -> None:
    from fmicl_registry.tuning.study import open_storage

    (tmp_path / "folder").mkdir()
    garbage = tmp_path / "garbage.log"
    garbage.write_text("this is not\na journal\n")  # Optuna skips a bad last line only
    for url, message in [
        (f"journal:{tmp_path / 'folder'}", "is a folder"),
        (f"journal:{garbage}", "cannot read it as an Optuna journal"),
        ("postgresql+psycopg://tuner:s3cret@127.0.0.1:1/fmicl", "cannot open it"),
    ]:
        with pytest.raises(TuneError, match=message) as caught:
            open_storage(url)
        assert "s3cret" not in str(caught.value)


def test_a_study_whose_objectives_are_not_installed_here_says_so(tmp_path: Path) -> None:
    from fmicl_registry.tuning.study import CONFIG_KEY

    fm.tune(overrides=TINY, objectives=["infonce"], trials=0, out=tmp_path, log=quiet)
    study = optuna.load_study(study_name="digits", storage=sqlite(tmp_path))
    stored = dict(study.user_attrs[CONFIG_KEY])
    study.set_user_attr(CONFIG_KEY, {**stored, "objectives": ["a_plugin_objective"]})
    with pytest.raises(TuneError, match=r"cannot build.*install the plugins"):
        fm.tune(storage=sqlite(tmp_path), study="digits", trials=1, out=tmp_path, log=quiet)


def test_confirm_with_nothing_complete_says_so(tmp_path: Path) -> None:
    lines: list[str] = []
    fm.tune(
        overrides=TINY, objectives=["infonce"], trials=0, confirm=2, out=tmp_path, log=lines.append
    )
    assert "nothing to confirm: no objective has a complete trial yet" in lines
    assert not (tmp_path / "confirm").exists()


def test_a_trial_is_never_pruned_at_its_last_epoch(tmp_path: Path, monkeypatch: Any) -> None:
    from fmicl_registry.tuning import study as study_module

    # the same always-prune pruner, on one-epoch trials: their only curve point is the last
    monkeypatch.setattr(
        study_module, "make_pruner", lambda *args: optuna.pruners.ThresholdPruner(lower=1.01)
    )
    fm.tune(
        overrides=[*TINY, "train.epochs=1"], objectives=["js"], trials=1, out=tmp_path, log=quiet
    )
    (trial,) = trials(sqlite(tmp_path), "digits")
    assert trial.state == TrialState.COMPLETE and list(trial.intermediate_values) == [1]
