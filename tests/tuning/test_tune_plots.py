"""The study's plots and leaderboard from studies built by hand (no training)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from fmicl_registry.tuning import plots, results
from fmicl_registry.tuning.study import TuneConfig

CONFIG = TuneConfig("", ("js", "infonce"), "knn")
DISTRIBUTIONS: dict[str, Any] = {
    "objective": CategoricalDistribution(["js", "infonce"]),
    "js/alpha": FloatDistribution(1.0, 1000.0, log=True),
    "js/gamma": FloatDistribution(0.1, 20.0, log=True),
    "infonce/temperature": FloatDistribution(0.02, 1.0, log=True),
}


def _study(states: list[TrialState]) -> Any:
    rng = random.Random(0)
    study = optuna.create_study(direction="maximize")
    for i, state in enumerate(states):
        label = "js" if i % 2 == 0 else "infonce"
        if label == "js":
            params: dict[str, Any] = {
                "objective": "js",
                "js/alpha": 10 ** rng.uniform(0, 3),
                "js/gamma": 10 ** rng.uniform(-1, 1.3),
            }
            # the metric depends on alpha only: fANOVA must say so
            value = 0.9 + 0.02 * params["js/alpha"] ** 0.3 / 8
        else:
            params = {"objective": "infonce", "infonce/temperature": 10 ** rng.uniform(-1.7, 0)}
            value = 0.93
        study.add_trial(
            create_trial(
                params=params,
                distributions={k: DISTRIBUTIONS[k] for k in params},
                value=value if state == TrialState.COMPLETE else None,
                state=state,
                intermediate_values={20: value - 0.1},
                user_attrs={"metrics": {"knn_top1": value, "linear_top1": value}},
            )
        )
    return study


def test_importances_name_the_setting_that_matters(tmp_path: Path) -> None:
    study = _study([TrialState.COMPLETE] * 16)
    written = {p.name for p in plots.write_plots(study, CONFIG, tmp_path)}
    assert written == {"history.png", "importances.png", "alpha_gamma.png"}
    view = optuna.create_study(direction="maximize")
    view.add_trials([t for t in study.trials if t.params["objective"] == "js"])
    scores = optuna.importance.get_param_importances(view)
    assert max(scores, key=scores.__getitem__) == "js/alpha"


def test_a_study_of_pruned_trials_only_still_plots_its_history(tmp_path: Path) -> None:
    study = _study([TrialState.PRUNED] * 4)
    written = [p.name for p in plots.write_plots(study, CONFIG, tmp_path)]
    assert written == ["history.png"]
    rows = results.leaderboard(study, CONFIG)
    assert [(r.objective, r.trial, r.pruned) for r in rows] == [
        ("js", None, 2),
        ("infonce", None, 2),
    ]
    board = results.write_leaderboard(rows, CONFIG, tmp_path, summary=results.cost(study))
    text = board.read_text()
    assert "| 1 | js | - |" in text and "4 trials: 4 pruned." in text
