"""``fmicl embed`` / ``fm.embed``: one feature vector per image, the run's own encoder's, with
its file and label, in each output format."""

from __future__ import annotations

import csv
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
