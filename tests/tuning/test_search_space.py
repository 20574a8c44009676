"""The conditional search space of ``fmicl tune``: what a trial of each objective trains."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import optuna
import pytest

import fmicl_registry as fm
from fmicl_registry import components, plugins
from fmicl_registry.errors import RegistryError, SpecError
from fmicl_registry.training.spec import load_spec
from fmicl_registry.tuning.space import build_spaces, significant


@pytest.fixture
def plugin_manager() -> Iterator[Any]:
    """A fresh plugin manager; throwaway plugins vanish with it."""
    plugins.reset()
    yield plugins.get_plugin_manager()
    plugins.reset()


def _spec(*overrides: str) -> Any:
    return load_spec(None, list(overrides))


def test_a_divergence_label_trains_that_divergence_not_the_specs() -> None:
    # the digits spec trains f-MICL with js at alpha 40; a kl trial must train kl
    spaces = build_spaces(["kl", "js"], _spec())
    params = {"kl/alpha": 10.0, "kl/gamma": 2.0}
    if len(spaces["kl"].similarities) > 1:
        params["kl/similarity"] = "gaussian"
    options = spaces["kl"].sample(optuna.trial.FixedTrial(params))
    spec = _spec(*spaces["kl"].overrides(options))
    assert spec.objective.name == "fmicl"
    assert spec.objective.options["divergence"] == "kl"
    assert spec.objective.options["alpha"] == 10.0
    assert spec.objective.options["gamma"] == 2.0


def test_a_baseline_searches_its_registered_options_only() -> None:
    space = build_spaces(["infonce"], _spec())["infonce"]
    assert [(d.option, d.low, d.high, d.log) for d in space.dimensions] == [
        ("temperature", 0.02, 1.0, True)
    ]
    options = space.sample(optuna.trial.FixedTrial({"infonce/temperature": 0.1}))
    spec = _spec(*space.overrides(options))
    # the spec's f-MICL options (alpha, gamma, divergence) are not carried to InfoNCE
    assert spec.objective.name == "infonce"
    assert spec.objective.options == {"temperature": 0.1}


def test_default_point_is_the_specs_setting() -> None:
    spaces = build_spaces(["js", "infonce"], _spec("objective.alpha=12.5"))
    js = spaces["js"].default_point()
    assert js["objective"] == "js"
    assert js["js/alpha"] == 12.5  # the spec's alpha, not the factory's 40
    assert js["js/gamma"] == 1.0  # the f-Gaussian's default
    assert spaces["infonce"].default_point() == {
        "objective": "infonce",
        "infonce/temperature": 0.5,  # InfoNCE's own default
    }


def test_cosine_is_offered_only_where_the_conjugate_domain_holds_it() -> None:
    # KL's f*(t) = exp(t - 1) is defined everywhere: the cosine critic is allowed; Pearson's
    # f*(t) = t + t^2/4 is too; the js conjugate -log(2 - exp(t)) needs t < log 2 < 1: refused
    spaces = build_spaces(["kl", "js"], _spec())
    assert spaces["kl"].similarities == ("gaussian", "cosine")
    assert spaces["js"].similarities == ("gaussian",)
    # with the critic, gamma (an f-Gaussian option) is not drawn
    options = spaces["kl"].sample(
        optuna.trial.FixedTrial({"kl/similarity": "cosine", "kl/alpha": 3.0})
    )
    assert options["similarity"] == "cosine" and "gamma" not in options
    fm.get_objective("fmicl", divergence="kl", **options)  # buildable as drawn


def test_unknown_objective_names_what_there_is() -> None:
    with pytest.raises(SpecError, match=r"'jss' is neither an objective nor a divergence.*js"):
        build_spaces(["jss"], _spec())
    with pytest.raises(SpecError, match="names one twice"):
        build_spaces(["js", "js"], _spec())
    with pytest.raises(SpecError, match="no objectives"):
        build_spaces([], _spec())


def test_significant_digits() -> None:
    assert significant(2.371234) == 2.37
    assert significant(0.0012345) == 0.00123
    assert significant(1234.5) == 1230.0
    assert significant(-0.6349) == -0.635


class _Tempered:
    """A throwaway plugin objective with a searched option."""

    def __init__(self, temperature: float = 0.3, scale: float = 1.0) -> None:
        self.temperature, self.scale = temperature, scale


def test_plugin_objective_declares_its_search_space(plugin_manager: Any) -> None:
    class Plugin:
        @fm.hookimpl
        def register_objectives(self, register: Any) -> None:
            register(
                name="tempered",
                factory=_Tempered,
                search_space={"scale": {"range": [0.5, 4.0]}},
            )

    plugin_manager.register(Plugin(), name="tempered-plugin")
    components.clear()
    space = build_spaces(["tempered"], _spec())["tempered"]
    assert [(d.option, d.low, d.high, d.log, d.default) for d in space.dimensions] == [
        ("scale", 0.5, 4.0, False, 1.0)
    ]


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"scale": [0.5, 4.0]}, r"must be \{'range': \[low, high\]"),
        ({"scale": {"range": [4.0, 0.5]}}, "is reversed"),
        ({"scale": {"range": [1.0]}}, "low < high"),
        ({"scale": {"range": ["a", "b"]}}, "must be numbers"),
        ({"scale": {"range": [0.0, 1.0], "log": True}}, "needs a range of positive numbers"),
        ({"scale": {"rnage": [0.5, 4.0]}}, r"must be \{'range'"),
        ({"sclae": {"range": [0.5, 4.0]}}, "takes no option 'sclae'"),
        ([("scale", 1)], "must be a dict"),
    ],
)
def test_wrong_search_space_is_refused_with_the_reason(space: Any, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        components._component(
            "objectives", {"name": "t", "factory": _Tempered, "search_space": space}, "p"
        )


def test_search_space_is_for_objectives_only() -> None:
    with pytest.raises(RegistryError, match="for objectives only"):
        components._component(
            "backbones",
            {"name": "b", "factory": _Tempered, "search_space": {"scale": {"range": [1, 2]}}},
            "p",
        )


def test_the_pruner_compares_a_trial_with_its_own_objective_only() -> None:
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState, create_trial

    from fmicl_registry.tuning.study import make_pruner

    study = optuna.create_study(direction="maximize", pruner=make_pruner("median"))
    choice = {"objective": CategoricalDistribution(["js", "infonce"])}
    runs = [("js", 0.9), ("js", 0.92), ("js", 0.94), ("infonce", 0.5), ("infonce", 0.6)]
    runs += [("infonce", 0.55)]
    for label, curve in runs:
        study.add_trial(
            create_trial(
                params={"objective": label},
                distributions=choice,
                value=curve,
                intermediate_values={20: curve},
            )
        )
    # an InfoNCE trial above InfoNCE's median (0.55) goes on, though far below f-MICL's
    study.enqueue_trial({"objective": "infonce"})
    trial = study.ask(choice)
    trial.report(0.58, 20)
    assert not trial.should_prune()
    study.tell(trial, state=TrialState.PRUNED)
    # a js trial at the same value is below js's median: stopped
    study.enqueue_trial({"objective": "js"})
    trial = study.ask(choice)
    trial.report(0.58, 20)
    assert trial.should_prune()


def test_the_median_pruner_waits_for_a_quarter_of_the_epochs() -> None:
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import create_trial

    from fmicl_registry.tuning.study import make_pruner

    study = optuna.create_study(direction="maximize", pruner=make_pruner("median", epochs=100))
    choice = {"objective": CategoricalDistribution(["js"])}
    for curve in (0.9, 0.92, 0.94):
        study.add_trial(
            create_trial(
                params={"objective": "js"},
                distributions=choice,
                value=curve,
                intermediate_values={20: curve, 40: curve},
            )
        )
    trial = study.ask(choice)
    trial.report(0.1, 20)  # far below, but at a fifth of the run: not yet judged
    assert not trial.should_prune()
    trial.report(0.1, 40)
    assert trial.should_prune()
