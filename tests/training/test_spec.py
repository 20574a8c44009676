"""Experiment specs: defaults, overrides, and errors that name the file, the key and the type."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmicl_registry.training import SpecError, load_spec
from fmicl_registry.training.schema import SCHEMA, SECTIONS, TrainSection
from fmicl_registry.training.spec import parse_override, spec_from_toml


def test_the_default_is_the_shipped_digits_spec() -> None:
    spec = load_spec()
    assert spec["data"]["name"] == "digits"
    assert spec.component("objective") == (
        "fmicl",
        {"divergence": "js", "alpha": 40.0, "gamma": 1.0},
    )
    assert spec.component("backbone")[0] == "small_cnn"
    assert spec["eval"]["knn_k"] == 200  # the defaults a user reads in the README


def test_the_typed_sections_are_the_checked_tables() -> None:
    spec = load_spec(
        None,
        [
            "train.epochs=3",
            "train.lr=1",
            "data.image_size=8",
            "augment.name=x",
            "train.warmup_epochs=0",
        ],
    )
    assert spec.train.epochs == 3 and spec.train.lr == 1.0 and isinstance(spec.train.lr, float)
    assert isinstance(spec.train, TrainSection)
    sections = {"run": spec.run, "data": spec.dataset, "train": spec.train, "eval": spec.eval}
    for name, section in sections.items():
        assert type(section) is SECTIONS[name]
        assert {key: getattr(section, key) for key in SCHEMA[name]} == {
            key: spec[name][key] for key in SCHEMA[name]
        }
    assert not hasattr(spec.dataset, "image_size") and spec.dataset_options() == {"image_size": 8}
    assert (spec.objective.name, spec.objective.options) == spec.component("objective")
    assert (spec.augment.name, spec.augment.options) == ("x", {})  # a new name drops options
    with pytest.raises(AttributeError):
        spec.train.epochs = 4  # type: ignore[misc]


def test_the_schema_lists_each_sections_keys_with_their_defaults() -> None:
    for name, section in SECTIONS.items():
        assert SCHEMA[name] and all(
            getattr(section(), key) == default for key, (_, default, _) in SCHEMA[name].items()
        )
    assert SCHEMA["data"]["root"][0] == "string or none" and SCHEMA["train"]["lr"][0] == "number"


def test_overrides_are_read_as_toml_values_or_plain_strings() -> None:
    spec = load_spec(None, ["train.epochs=3", "objective.divergence=js", "train.lr=1e-3"])
    assert spec["train"]["epochs"] == 3
    assert spec["train"]["lr"] == 1e-3
    assert spec.component("objective")[1]["divergence"] == "js"
    assert parse_override('run.name="a b"') == ("run", "name", "a b")
    assert parse_override("data.download=true") == ("data", "download", True)


def test_an_integer_is_accepted_where_a_number_is_expected() -> None:
    assert load_spec(None, ["train.lr=1"])["train"]["lr"] == 1.0


def test_a_new_component_name_drops_the_old_components_options() -> None:
    spec = load_spec(None, ["objective.name=infonce"])
    assert spec.component("objective") == ("infonce", {})


def test_dataset_options_pass_through_to_the_factory() -> None:
    spec = load_spec(None, ["data.image_size=64"])
    assert spec.dataset_options() == {"image_size": 64}


def test_unknown_key_names_file_key_and_suggests(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text("[train]\nepoch = 3\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert str(path) in message and "train.epoch" in message and "train.epochs" in message


def test_wrong_type_names_the_expected_type(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[train]\nepochs = "ten"\n')
    with pytest.raises(SpecError, match=r"train\.epochs must be a integer, got string 'ten'"):
        load_spec(path)
    with pytest.raises(SpecError, match=r"--set train.lr=true: train.lr must be a number"):
        load_spec(None, ["train.lr=true"])


def test_unknown_section_and_bad_override_and_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text("[trian]\nepochs = 3\n")
    with pytest.raises(SpecError, match=r"unknown section \[trian\] \(did you mean \[train\]\?\)"):
        load_spec(path)
    with pytest.raises(SpecError, match=r"expected section\.key=value"):
        load_spec(None, ["epochs=3"])
    path.write_text("[train\n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(path)
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(tmp_path / "missing.toml")


def test_the_resolved_spec_round_trips_through_toml() -> None:
    spec = load_spec(None, ['run.name="x"', "objective.divergence=js", "data.image_size=8"])
    again = spec_from_toml(spec.to_toml(), "spec.toml")
    assert again.data == {k: {kk: vv for kk, vv in v.items()} for k, v in spec.data.items()}


def test_every_shipped_experiment_spec_is_valid() -> None:
    folder = Path(__file__).resolve().parents[2] / "specs" / "experiments"
    names = sorted(p.name for p in folder.glob("*.toml"))
    assert {"digits.toml", "cifar10_simclr_resnet18.toml", "imagenet_mocov3_vits.toml"} <= set(
        names
    )
    for path in folder.glob("*.toml"):
        spec = load_spec(path)
        assert set(SCHEMA) <= set(spec.data)


def test_sweep_baselines_take_options_and_wrong_ones_fail_before_training() -> None:
    from fmicl_registry.training.sweep import sweep_specs

    runs = sweep_specs(
        None,
        [],
        divergences=["kl"],
        baselines=["infonce:temperature=0.05", "align_uniform"],
        seeds=2,
    )
    got = [
        (label, seed, spec["run"]["name"], spec.component("objective"))
        for label, seed, spec in runs
    ]
    assert got[2:4] == [
        (
            "infonce:temperature=0.05",
            s,
            f"infonce-temperature-0.05-seed{s}",
            ("infonce", {"temperature": 0.05}),
        )
        for s in (0, 1)
    ]
    assert got[4][3] == ("align_uniform", {}) and got[0][3][1]["divergence"] == "kl"
    with pytest.raises(SpecError, match=r"baseline 'infonce:temp=0.05'.*'temp'.*temperature"):
        sweep_specs(None, [], divergences=[], baselines=["infonce:temp=0.05"], seeds=1)
    with pytest.raises(SpecError, match="must be key=value"):
        sweep_specs(None, [], divergences=[], baselines=["infonce:temperature"], seeds=1)
