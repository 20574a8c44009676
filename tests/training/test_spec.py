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
    with pytest.raises(SpecError, match=r"train\.epochs must be an integer, got string 'ten'"):
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
    with pytest.raises(
        SpecError, match=r"missing\.toml.* does not exist: give the path of a TOML file"
    ):
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


def test_null_removes_an_option_so_the_factorys_default_applies() -> None:
    """The default spec uses the f-Gaussian similarity with gamma = 1; switching to cosine
    needs gamma gone (cosine takes no gamma), which only ``null`` can do from the shell."""
    import fmicl_registry as fm

    overrides = ["objective.divergence=kl", "objective.similarity=cosine", "objective.gamma=null"]
    spec = load_spec(None, overrides)
    assert spec.objective.options == {"divergence": "kl", "alpha": 40.0, "similarity": "cosine"}
    objective = fm.build("objectives", spec.objective.name, **spec.objective.options)
    assert type(objective.similarity).__name__ == "Cosine"
    with pytest.raises(fm.FmiclError, match="gamma"):  # why null is needed
        fm.build("objectives", "fmicl", divergence="kl", similarity="cosine", gamma=1.0)


def test_null_resets_typed_keys_and_unsets_component_names() -> None:
    spec = load_spec(None, ["train.lr=null", "data.root=null", "backbone.name=null"])
    assert spec.train.lr == SCHEMA["train"]["lr"][1] == 0.1  # the schema's default, not digits'
    assert spec.dataset.root is None
    assert spec.backbone == load_spec(None, ["backbone.name=null"]).backbone
    assert spec.backbone.name is None  # the architecture's default backbone
    # an absent key is fine to remove; a data set option too
    assert load_spec(None, ["objective.temperature=null"]).objective.options == {
        "divergence": "js",
        "alpha": 40.0,
        "gamma": 1.0,
    }
    assert load_spec(None, ["data.image_size=8", "data.image_size=null"]).dataset_options() == {}
    # the quoted string is a string
    assert load_spec(None, ['run.name="null"']).run.name == "null"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trian.lr=null", r"unknown section \[trian\] \(did you mean \[train\]\?\)"),
        ("train.lrr=null", r"unknown key train.lrr \(did you mean train.lr\?\)"),
    ],
)
def test_null_on_an_unknown_key_is_the_usual_error(override: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load_spec(None, [override])


def test_nested_options_are_toml_inline_tables() -> None:
    spec = load_spec(None, ["objective.similarity_options={scale = 0.5}"])
    assert spec.objective.options["similarity_options"] == {"scale": 0.5}


def test_a_bundled_spec_runs_by_name_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After ``pip install`` there is no ``specs/experiments/`` beside the user: the names of
    the bundled specs work from any folder, and a local file of that name comes first."""
    from fmicl_registry.training.spec import bundled_specs

    repository_file = Path(__file__).parents[2] / "specs" / "experiments"
    monkeypatch.chdir(tmp_path)
    names = set(bundled_specs())
    assert names == {p.stem for p in repository_file.glob("*.toml")}
    for name in names:
        by_name = load_spec(name)
        assert by_name.data == load_spec(repository_file / f"{name}.toml").data
        assert load_spec(f"{name}.toml").data == by_name.data
    assert load_spec("cifar10_simclr_resnet18").dataset.name == "cifar10"
    (tmp_path / "digits.toml").write_text('[run]\nname = "mine"\n')
    assert load_spec("digits.toml").run.name == "mine"  # an existing file is always the file
    assert load_spec("digits").run.name == "digits"  # a bare name is the bundled spec


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("cifar10_simclr_resnet", r"'cifar10_simclr_resnet' does not exist.*did you mean "),
        ("specs/experiments/nope.toml", r"does not exist: give the path of a TOML file, or the "),
        ("elsewhere/digits.toml", r"'elsewhere/digits.toml' does not exist"),  # a path, not a name
    ],
)
def test_an_unknown_spec_name_lists_the_bundled_ones(
    given: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match=message) as error:
        load_spec(given)
    assert "cifar10_simclr_resnet18, digits" in str(error.value)


def test_a_folder_is_not_a_spec(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="is a folder"):
        load_spec(tmp_path)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("objective.similarity_options={mu=0.5", "not valid TOML"),
        ("objective.similarity_options=[1, 2", "not valid TOML"),
        ('run.name="open', "not valid TOML"),
    ],
)
def test_a_value_meant_as_toml_that_is_not_is_refused(override: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load_spec(None, [override])


@pytest.mark.parametrize("value", ["abc", "[1, 2]", "5"])
def test_nested_options_that_are_not_a_table_exit_2(value: str) -> None:
    from click.testing import CliRunner

    from fmicl_registry.cli import cli

    for key in ("divergence_options", "similarity_options"):
        result = CliRunner().invoke(
            cli, ["train", "--print-spec", "--set", f"objective.{key}={value}"]
        )
        assert result.exit_code == 2, result.output
        assert f"{key} must be a table of options" in result.output
