"""``fmicl embed`` / ``fm.embed``: one feature vector per image, the run's own encoder's, with
its file and label, in each output format."""

from __future__ import annotations

import csv
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from export_runs import (
    features,
    normalise,
    quiet,
    reference_encoder,
    shared_cifar_run,
    shared_digits_run,
    write_folder,
)

import fmicl_registry as fm
from fmicl_registry.cli import cli
from fmicl_registry.data import ImageDataset, digits


@pytest.fixture(scope="module")
def cifar_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run, _, _ = shared_cifar_run()
    return fm.export(run, out=tmp_path_factory.mktemp("export"), log=quiet)


def _cifar_reference(images: np.ndarray) -> torch.Tensor:
    run, root, _ = shared_cifar_run()
    train = fm.build("datasets", "cifar10", root=root, split="pretrain")
    x = normalise(torch.from_numpy(images), train.mean, train.std)
    return features(reference_encoder(run), x)


def test_embed_a_registered_data_set_split_from_the_command_line(tmp_path: Path) -> None:
    run, root, written = shared_cifar_run()
    images, labels = written["test"]  # type: ignore[index]
    out = tmp_path / "test.npy"
    result = CliRunner().invoke(
        cli,
        ["embed", str(run), "--dataset", "cifar10", "--data", str(root), "--split", "test",
         "--out", str(out), "--batch-size", "3"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output and f"wrote {tmp_path / 'test.csv'}" in result.output
    array = np.load(out)
    assert array.dtype == np.float32 and array.shape == (4, 512)
    torch.testing.assert_close(torch.from_numpy(array), _cifar_reference(images))
    with (tmp_path / "test.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["index"]) for r in rows] == [0, 1, 2, 3]
    assert [int(r["label"]) for r in rows] == list(labels)
    assert {r["file"] for r in rows} == {""}  # CIFAR's images are not files


def test_embed_a_folder_of_pngs_with_an_export(cifar_export: Path, tmp_path: Path) -> None:
    _, _, written = shared_cifar_run()
    images = written["test"][0]  # type: ignore[index]
    folder = tmp_path / "photos"
    names = ["train/cat/b.png", "train/cat/c.png", "train/dog/a.png", "train/dog/d.png"]
    write_folder(folder, images, names)  # imagefolder's order: class, then file name
    result = fm.embed(
        cifar_export, folder, dataset="imagefolder", split="train", batch_size=2, log=quiet
    )
    torch.testing.assert_close(result.features, _cifar_reference(images))
    assert result.labels.tolist() == [0, 0, 1, 1]


def _with_files(n: int = 10) -> ImageDataset:
    test = digits(split="test").subset(range(n))
    test.files = [f"digit_{i}.png" for i in range(n)]  # type: ignore[attr-defined]
    return test


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".pt", ".parquet"])
def test_each_output_format_holds_features_files_and_labels(tmp_path: Path, suffix: str) -> None:
    data = _with_files()
    x = normalise(torch.stack([data[i][0] for i in range(len(data))]), data.mean, data.std)
    expected = features(reference_encoder(shared_digits_run()), x)
    result = fm.embed(shared_digits_run(), data, log=quiet)
    torch.testing.assert_close(result.features, expected)
    out = tmp_path / f"e{suffix}"
    result.save(out)
    files, labels = [f"digit_{i}.png" for i in range(10)], data.labels.tolist()
    if suffix == ".npy":
        got = torch.from_numpy(np.load(out))
        with (tmp_path / "e.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        assert [r["file"] for r in rows] == files
        assert [int(r["label"]) for r in rows] == labels
    elif suffix == ".npz":
        with np.load(out) as npz:  # allow_pickle is off by default
            got = torch.from_numpy(npz["features"])
            assert npz["files"].tolist() == files and npz["labels"].tolist() == labels
            assert npz["index"].tolist() == list(range(10))
    elif suffix == ".pt":
        saved = torch.load(out, weights_only=True)
        got = saved["features"]
        assert saved["files"] == files and saved["labels"].tolist() == labels
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(out).to_pydict()
        assert list(table) == ["index", "file", "label", "embedding"]
        assert table["file"] == files and table["label"] == labels
        got = torch.tensor(table["embedding"])
    torch.testing.assert_close(got, expected)


def test_an_existing_output_is_refused_unless_force(tmp_path: Path) -> None:
    export = fm.export(shared_digits_run(), out=tmp_path, log=quiet)
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "e.csv").write_text("mine\n")  # the sidecar of e.npy counts too
    args = ["embed", str(export), "--dataset", "digits", "--data", str(data), "--split", "test"]
    refused = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "e.npy")])
    assert refused.exit_code == 2 and "e.csv already exists" in refused.output
    assert (tmp_path / "e.csv").read_text() == "mine\n" and not (tmp_path / "e.npy").exists()
    forced = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "e.npy"), "--force"])
    assert forced.exit_code == 0, forced.output
    assert np.load(tmp_path / "e.npy").shape == (360, 16)
    bad = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "e.txt")])
    assert bad.exit_code == 2 and ".npy" in bad.output and ".parquet" in bad.output


def test_images_of_another_size_than_the_encoders_are_refused(tmp_path: Path) -> None:
    _, root, _ = shared_cifar_run()
    result = CliRunner().invoke(
        cli,
        ["embed", str(shared_digits_run()), "--dataset", "cifar10", "--data", str(root),
         "--split", "test", "--out", str(tmp_path / "e.pt")],
    )  # fmt: skip
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "(1, 8, 8)" in result.output and "(3, 32, 32)" in result.output
    assert not (tmp_path / "e.pt").exists()


def test_parquet_without_pyarrow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fmicl_registry.embeddings import Embeddings

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed
    embeddings = Embeddings(torch.ones(2, 3), torch.tensor([0, 1]), None)
    with pytest.raises(fm.FmiclError, match=r"pip install 'fmicl-registry\[parquet\]'"):
        embeddings.save(tmp_path / "e.parquet")
    assert not list(tmp_path.iterdir())


def _images_registered() -> bool:
    return "images" in fm.registry().names("datasets")


@pytest.mark.skipif(not _images_registered(), reason="the images data set is not merged yet")
def test_embed_a_folder_of_unlabelled_images_by_default(cifar_export: Path, tmp_path: Path) -> None:
    _, _, written = shared_cifar_run()
    images = written["test"][0]  # type: ignore[index]
    folder = tmp_path / "photos"
    write_folder(folder, images, ["a.png", "b.png", "sub/c.png", "sub/deeper/d.png"])
    out = tmp_path / "e.parquet"
    result = CliRunner().invoke(
        cli, ["embed", str(cifar_export), "--data", str(folder), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    import pyarrow.parquet as pq

    table = pq.read_table(out).to_pydict()
    assert table["label"] == [-1] * 4
    order = [table["file"].index(n) for n in ("a.png", "b.png", "sub/c.png", "sub/deeper/d.png")]
    got = torch.tensor(table["embedding"])[order]
    torch.testing.assert_close(got, _cifar_reference(images))


def _truncate(path: Path) -> None:
    """Cut ``path`` (a PNG) in half: its header still reads, decoding it fails."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.skipif(not _images_registered(), reason="the images data set is not merged yet")
def test_an_image_that_fails_to_decode_has_no_row_and_is_named(
    cifar_export: Path, tmp_path: Path
) -> None:
    from PIL import Image

    _, _, written = shared_cifar_run()
    images = written["test"][0]  # type: ignore[index]
    folder = tmp_path / "photos"
    write_folder(folder, images, ["a.png", "b.png", "c.png", "d.png"])
    _truncate(folder / "b.png")
    with Image.open(folder / "b.png") as opened:  # the header is fine: the scan keeps it
        assert opened.size == (32, 32)
    with pytest.raises(OSError), Image.open(folder / "b.png") as opened:
        opened.load()
    out = tmp_path / "e.npy"
    result = CliRunner().invoke(
        cli, ["embed", str(cifar_export), "--data", str(folder), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "left out 1 image file" in result.output and "b.png" in result.output
    assert "3 rows" in result.output
    with (tmp_path / "e.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["file"] for r in rows] == ["a.png", "c.png", "d.png"]
    assert [int(r["index"]) for r in rows] == [0, 1, 2]
    expected = _cifar_reference(images)[[0, 2, 3]]
    torch.testing.assert_close(torch.from_numpy(np.load(out)), expected)

    with pytest.warns(UserWarning, match=r"left out 1 image file.*: b\.png"):
        embedded = fm.embed(cifar_export, folder, batch_size=2)  # from Python: a warning
    assert embedded.files == ["a.png", "c.png", "d.png"] and len(embedded.labels) == 3
    torch.testing.assert_close(embedded.features, expected)


def test_embed_prints_nothing_from_python_by_default(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = digits(split="test").subset(range(10))
    result = fm.embed(shared_digits_run(), data)
    assert len(result) == 10
    assert capsys.readouterr().out == ""
    fm.embed(shared_digits_run(), data, log=print)  # asked for: the progress is printed
    assert "embedded 10 images" in capsys.readouterr().out
    export = fm.export(shared_digits_run(), out=tmp_path, log=quiet)
    (tmp_path / "data").mkdir()
    cli_run = CliRunner().invoke(
        cli,
        ["embed", str(export), "--dataset", "digits", "--data", str(tmp_path / "data"),
         "--split", "test", "--out", str(tmp_path / "e.pt")],
    )  # fmt: skip
    assert cli_run.exit_code == 0, cli_run.output
    assert "embedded 360 images" in cli_run.output  # the command line still says it


def _embed_args(tmp_path: Path) -> list[str]:
    """``fmicl embed`` of a digits export on an empty folder: reading it fails, so an error
    about the output shows that the output was checked before any work."""
    export = fm.export(shared_digits_run(), out=tmp_path, log=quiet)
    empty = tmp_path / "empty"
    empty.mkdir()
    return ["embed", str(export), "--data", str(empty)]


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path: Path) -> None:
    args = _embed_args(tmp_path)
    (tmp_path / "p1.toml").write_text("[run]\n")
    cases = {
        "p1.toml/x.npy": "p1.toml is a file, not a folder",
        "p1.toml/sub/x.pt": "p1.toml is a file, not a folder",
        "nowhere/x.npz": "nowhere does not exist",
    }
    for out, needle in cases.items():
        result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / out)])
        assert result.exit_code == 2, result.output
        assert needle in result.output and "Traceback" not in result.output
        assert "no image files" not in result.output  # the data were not read
    assert not (tmp_path / "nowhere").exists()
    assert (tmp_path / "p1.toml").read_text() == "[run]\n"


def test_a_sidecar_that_is_a_folder_is_refused_even_with_force(tmp_path: Path) -> None:
    args = _embed_args(tmp_path)
    (tmp_path / "e.npy").write_text("mine")
    (tmp_path / "e.csv").mkdir()
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "e.npy"), "--force"])
    assert result.exit_code == 2, result.output
    assert "e.csv is a folder" in result.output and "Traceback" not in result.output
    assert (tmp_path / "e.npy").read_text() == "mine" and (tmp_path / "e.csv").is_dir()
    from fmicl_registry.embeddings import Embeddings

    embeddings = Embeddings(torch.ones(2, 3), torch.tensor([0, 1]), None)
    with pytest.raises(fm.FmiclError, match=r"e\.csv is a folder"):
        embeddings.save(tmp_path / "e.npy", force=True)  # nothing written, not even e.npy
    assert (tmp_path / "e.npy").read_text() == "mine"


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes in any folder"
)
def test_a_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path: Path) -> None:
    args = _embed_args(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = CliRunner().invoke(cli, [*args, "--out", str(locked / "e.npy")])
    finally:
        locked.chmod(0o700)
    assert result.exit_code == 2, result.output
    assert f"cannot write in the folder {locked}" in result.output
    assert "Traceback" not in result.output and not list(locked.iterdir())


def test_an_output_in_a_runs_checkpoints_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(shared_digits_run(), run)
    (tmp_path / "data").mkdir()
    args = ["embed", str(run), "--dataset", "digits", "--data", str(tmp_path / "data")]
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    result = CliRunner().invoke(
        cli, [*args, "--out", str(run / "checkpoints" / "last.pt"), "--force"]
    )
    assert result.exit_code == 2, result.output
    assert "checkpoints folder of the run" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before
