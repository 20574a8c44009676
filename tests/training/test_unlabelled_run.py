"""Pretraining on a folder of your own unlabelled images with `fmicl train`: evaluation without
labels (alignment, uniformity, the distance plots, no probes), unreadable files named and
counted, and probes again when evaluation reads a separate labelled folder."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from fmicl_registry.cli import cli

#: A run small enough for seconds on a CPU: 3x16x16 images, a narrow CNN, 2 epochs.
SMALL = [
    "data.name=images",
    "data.image_size=16",
    "train.epochs=2",
    "train.batch_size=12",
    "train.lr=0.05",
    "train.warmup_epochs=0.0",
    "train.log_every=1",
    "train.progress=false",
    "backbone.width=8",
    "backbone.output_dim=16",
    "architecture.out_dim=16",
    "eval.linear_epochs=5",
    "eval.knn_k=5",
    "eval.every=1",
]


def _settings(*extra: str) -> list[str]:
    return [a for s in [*SMALL, *extra] for a in ("--set", s)]


def _photos(root: Path, count: int, seed: int) -> None:
    """``count`` real image files in nested folders: PNG and JPEG, RGB, grey and RGBA, of
    several sizes."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        folder = root / f"trip{i % 3}" / ("day" if i % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (12 + i % 7, 20 + 3 * (i % 5), 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        if i % 4 == 1:
            image.convert("L").save(folder / f"img{i:02d}.png")
        elif i % 4 == 2:
            image.convert("RGBA").save(folder / f"img{i:02d}.png")
        else:
            image.save(folder / f"img{i:02d}.jpg", quality=90)


def _broken(root: Path) -> list[str]:
    """Unreadable files: empty, random bytes named .png, and a PNG truncated in its pixels."""
    (root / "empty.png").write_bytes(b"")
    (root / "trip0" / "noise.png").write_bytes(np.random.default_rng(1).bytes(2000))
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (30, 30, 3), np.uint8)).save(
        buffer, format="PNG"
    )
    (root / "trip1" / "cut.png").write_bytes(buffer.getvalue()[:200])
    return ["empty.png", "trip0/noise.png", "trip1/cut.png"]


def test_pretrain_on_unlabelled_folder_reports_geometry_and_names_broken_files(
    tmp_path: Path,
) -> None:
    photos = tmp_path / "photos"
    _photos(photos, 35, seed=0)
    broken = _broken(photos)
    out = tmp_path / "runs"
    args = _settings(f"data.root={photos}", "data.num_workers=2", "run.name=mine")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(cli, ["train", *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    # The two files whose header fails are named once when the folder is scanned (not again
    # for the evaluation split); the truncated one fails to decode later and is named at the
    # end, with the count.
    scanned = [str(w.message) for w in caught if "image files under" in str(w.message)]
    assert len(scanned) == 1 and "skipped 2 of 38 image files" in scanned[0]
    assert "empty.png (empty file)" in scanned[0] and "trip0/noise.png" in scanned[0]
    assert "skipped 3 image files that could not be read" in result.output
    assert "kNN and linear probes skipped" in result.output

    run = out / "mine"
    report = json.loads((run / "report.json").read_text())
    assert "knn_top1" not in report["metrics"] and "linear_top1" not in report["metrics"]
    assert 0.0 <= report["metrics"]["alignment"] <= 4.0
    assert -4.0 <= report["metrics"]["uniformity"] <= 0.0
    assert set(report["baselines"]) == {"raw_input", "random_encoder"}
    assert "has no labels" in report["probes_skipped"]
    unreadable = report["unreadable_images"]
    assert unreadable["count"] == 3
    assert sorted(unreadable["files"]) == sorted(str(photos / b) for b in broken)
    markdown = (run / "report.md").read_text()
    assert "kNN and linear probes skipped: the evaluation data set 'images'" in markdown
    assert "skipped 3 image files" in markdown and "kNN top-1" not in markdown
    for plot in ("uniformity.png", "distances.png", "alignment_uniformity.png", "loss.png"):
        assert (run / plot).stat().st_size > 1000
    assert not (run / "accuracy.png").exists()
    curve = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    points = [r["uniformity"] for r in curve if "uniformity" in r]
    assert len(points) == 2 and all(-4.0 <= p <= 0.0 for p in points)
    assert points[-1] == report["metrics"]["uniformity"]  # the same views, the same encoder


def test_a_separate_labelled_folder_gives_knn_and_linear_probes(tmp_path: Path) -> None:
    photos, labelled = tmp_path / "photos", tmp_path / "labelled"
    _photos(photos, 24, seed=0)
    for split, count in (("train", 8), ("val", 4)):
        for colour in ("red", "blue"):
            for i in range(count):
                path = labelled / split / colour / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (20 + i, 24), colour).save(path)
    args = _settings(
        f"data.root={photos}",
        "data.eval_name=imagefolder",
        f"data.eval_root={labelled}",
        "eval.baselines=false",
    )
    result = CliRunner().invoke(cli, ["train", *args, "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "kNN top-1" in result.output and "probes skipped" not in result.output
    (run,) = (tmp_path / "runs").iterdir()
    report = json.loads((run / "report.json").read_text())
    assert "probes_skipped" not in report
    # Two flat colours are told apart from any features: the probes ran on the labels.
    assert report["metrics"]["knn_top1"] == 1.0
    assert 0.5 <= report["metrics"]["linear_top1"] <= 1.0
    assert report["unreadable_images"] == {"count": 0, "files": []}
    assert "evaluated on `imagefolder` (test)" in (run / "report.md").read_text()
    curve = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["knn_top1"] for r in curve if "knn_top1" in r] == [1.0, 1.0]


def test_an_empty_folder_exits_2_saying_what_was_searched(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    args = _settings(f"data.root={tmp_path / 'empty'}")
    result = CliRunner().invoke(cli, ["train", *args, "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert f"found no image files under {tmp_path / 'empty'}" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "runs").exists()
