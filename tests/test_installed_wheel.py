"""As a new user: the wheel built from the source distribution, installed into a fresh
environment, used outside the repository.

Pretrain on a folder of unlabelled PNGs with TensorBoard on, read the event files, export the
encoder and load it into torchvision's ResNet-18 with the same features, embed the folder,
and do the same from Python. The fresh environment borrows this one's dependencies (torch is
5 GB) through a path file, which adds their folder to ``sys.path`` without running the
editable install's finder: ``fmicl_registry`` is imported from the wheel (checked).
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import fmicl_registry as fm

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

TRAIN = [
    "cifar10_simclr_resnet18",
    *("--set", "data.name=images", "--set", "data.root=photos", "--set", "data.image_size=16"),
    *("--set", "train.epochs=1", "--set", "train.batch_size=8", "--set", "train.progress=false"),
    *("--set", "train.logger=tensorboard", "--set", "eval.baselines=false"),
    *("--set", "train.warmup_epochs=0"),
    *("--set", "run.name=photos", "--out", "runs"),
]


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel, built (the wheel from the sdist) from a copy of the tree."""
    tmp = tmp_path_factory.mktemp("dist")
    source = tmp / "source"
    ignored = shutil.ignore_patterns(
        ".git", ".venv", "runs", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
    )
    shutil.copytree(ROOT, source, ignore=ignored)
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "out"), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    warnings = [line for line in done.stdout.splitlines() if "WARNING Package" in line]
    assert not warnings, warnings  # setuptools' "absent from the packages configuration"
    return tmp / "out"


def test_the_sdist_has_what_it_takes_to_test_and_the_wheel_only_the_package(dist: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in (
        "LICENSE",
        "Makefile",
        "tests/conftest.py",
        "tests/training/training_helpers.py",
        "docs/plugins.md",
        "plugins/examples/fmicl-example-plugin/pyproject.toml",
        "specs/experiments/digits.toml",
    ):
        assert needed in members, needed
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(name.endswith("licenses/LICENSE") for name in names)
    assert "fmicl_registry/specs/experiments/cifar10_simclr_resnet18.toml" in names
    assert "fmicl_registry/dsl/catalog/js.json" in names
    assert not [name for name in names if "examples/" in name or name.startswith("tests/")]


def test_a_new_user_trains_watches_exports_and_embeds_from_the_wheel(
    dist: Path, tmp_path: Path
) -> None:
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    (wheel,) = dist.glob("*.whl")
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         str(wheel)],
        tmp_path,
        dict(os.environ),
    )  # fmt: skip
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "borrowed.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {**os.environ, "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    user = tmp_path / "user"  # outside the repository
    user.mkdir()
    where = _run([str(python), "-c", "import fmicl_registry; print(fmicl_registry.__file__)"],
                 user, env)  # fmt: skip
    assert where.strip().startswith(site), where

    photos = user / "photos"
    rng = np.random.default_rng(0)
    for i in range(24):
        folder = photos / ("a" if i % 2 else "b") / "nested"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (12 + i % 5, 14, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:02d}.png")

    fmicl = str(env_dir / "bin" / "fmicl")
    out = _run([fmicl, "train", *TRAIN], user, env)
    run = user / "runs" / "photos"
    assert "probes" in (run / "report.md").read_text() and "report:" in out

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert {"train/loss", "train/lr"} <= set(events.Tags()["scalars"])

    printed = _run([fmicl, "export", "runs/photos", "--format", "torchvision"], user, env)
    (exported,) = user.glob("*.pth")
    import torchvision

    model = torchvision.models.resnet18()
    model.fc = torch.nn.Identity()
    model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)  # the CIFAR stem, as printed
    model.maxpool = torch.nn.Identity()
    assert "model.maxpool = torch.nn.Identity()" in printed
    model.load_state_dict(torch.load(exported, weights_only=True))
    model.eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), fm.load_encoder(run)(x))

    _run([fmicl, "embed", "runs/photos", "--data", "photos", "--out", "photos.npy"], user, env)
    features = np.load(user / "photos.npy")
    with (user / "photos.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert features.shape == (24, 512) and np.isfinite(features).all()
    assert sorted(row["file"] for row in rows) == sorted(
        p.relative_to(photos).as_posix() for p in photos.rglob("*.png")
    )

    script = f"""
import fmicl_registry as fm
result = fm.train({TRAIN[0]!r}, "py-runs", log=lambda m: None, overrides=[
    "data.name=images", "data.root=photos", "data.image_size=16", "train.epochs=1",
    "train.batch_size=8", "train.progress=false", "train.logger=tensorboard",
    "eval.baselines=false", "run.name=photos", "train.warmup_epochs=0"])
path = fm.export(result.run_dir, out="py.safetensors", log=lambda m: None)
encoder = fm.load_encoder(path)
embedded = fm.embed(path, "photos", log=lambda m: None)
print(tuple(embedded.features.shape), len(embedded.files), encoder.output_dim)
"""
    shown = _run([str(python), "-c", script], user, env).splitlines()
    assert "(24, 512) 24 512" in shown
    assert (user / "py-runs" / "photos" / "tensorboard").is_dir()
