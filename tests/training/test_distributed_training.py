"""Two processes (gloo, CPU) train to the same parameters as one process on the global batch.

The model has no BatchNorm (on CPU, BatchNorm statistics are per process: SyncBatchNorm needs
a GPU), so the only difference between the two runs is how the batch is split: every process
takes its slice, the objective gathers the negatives of both, DDP averages the gradients.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from training_helpers import TINY

import fmicl_registry as fm
from fmicl_registry import components, plugins
from fmicl_registry.training import load_spec, train

WORLD = 2


class Flat(torch.nn.Module):
    def __init__(self, input_shape: tuple[int, int, int] = (1, 8, 8), output_dim: int = 16):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 16)
        )
        self.output_dim = output_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Head(torch.nn.Module):
    def __init__(self, backbone: Any, objective: Any) -> None:
        super().__init__()
        self.encoder, self.objective = backbone, objective
        self.head = torch.nn.Linear(backbone.output_dim, 8)

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        return self.objective(self.head(self.encoder(view1)), self.head(self.encoder(view2)))


class NoBatchNorm:
    @fm.hookimpl
    def register_backbones(self, register: Any) -> None:
        register(name="flat", factory=Flat)

    @fm.hookimpl
    def register_architectures(self, register: Any) -> None:
        register(name="plain_head", factory=Head)


SETTINGS = [
    *TINY,
    "backbone.name=flat",
    "architecture.name=plain_head",
    "train.batch_size=64",
    "train.max_steps=4",
    "train.epochs=1",
    "eval.every=0",
]


def _register() -> None:
    plugins.reset()
    plugins.get_plugin_manager().register(NoBatchNorm(), name="no_batch_norm")
    components.clear()


def _worker(rank: int, init_file: str, out: str, extra: list[str]) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(WORLD), "LOCAL_RANK": str(rank)})
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD
    )
    torch.set_num_threads(1)
    _register()
    train(load_spec(None, [*SETTINGS, *extra]), out, log=lambda _: None)
    torch.distributed.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize(
    "objective", [["objective.divergence=js"], ["objective.name=infonce"]], ids=["fmicl", "infonce"]
)
def test_two_processes_equal_one_on_the_global_batch(tmp_path: Path, objective: list[str]) -> None:
    mp.spawn(
        _worker,
        args=(str(tmp_path / "init"), str(tmp_path / "two"), objective),
        nprocs=WORLD,
        join=True,
    )
    _register()
    try:
        torch.set_num_threads(1)
        train(load_spec(None, [*SETTINGS, *objective]), tmp_path / "one", log=lambda _: None)
    finally:
        plugins.reset()
    two = torch.load(tmp_path / "two" / "digits" / "checkpoints" / "last.pt")["model"]
    one = torch.load(tmp_path / "one" / "digits" / "checkpoints" / "last.pt")["model"]
    torch.manual_seed(0)  # the run's seed: the encoder's initial weights
    start = Flat().state_dict()
    for key, value in one.items():
        torch.testing.assert_close(two[key], value, rtol=1e-5, atol=1e-6, msg=key)
    moved = max(float((one[f"encoder.{k}"] - v).abs().max()) for k, v in start.items())
    assert moved > 1e-3  # the runs trained: equality is not the initialisation's
    report = (tmp_path / "two" / "digits" / "report.json").read_text()
    assert '"world_size": 2' in report
