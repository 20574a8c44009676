"""The README's own-training-loop example, run as written."""

from __future__ import annotations

import re
from pathlib import Path

import torch

import fmicl_registry as fm

README = Path(__file__).resolve().parents[1] / "README.md"


def _block_after(heading: str, marker: str) -> str:
    text = README.read_text()
    section = text[text.index(heading) :]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return next(block for block in blocks if marker in block)


def test_the_objective_in_your_own_loop_trains() -> None:
    code = _block_after("## Drive it from Python", "for step in range(20):")
    torch.manual_seed(0)
    untrained = fm.get_backbone("small_cnn", input_shape=(1, 8, 8))
    torch.manual_seed(0)
    namespace: dict[str, object] = {}
    exec(compile(code, str(README), "exec"), namespace)  # the README's own text
    objective, backbone = namespace["objective"], namespace["backbone"]
    assert isinstance(objective, fm.FMICL) and isinstance(backbone, torch.nn.Module)
    terms = objective.last_terms
    loss = namespace["loss"]
    assert isinstance(loss, torch.Tensor) and torch.isfinite(loss)
    # the f-MICL loss (Eq. 9 with the weight alpha): alpha * E_neg f*(f'(r)) - E_pos f'(r)
    expected = 40.0 * terms["negative term"] - terms["positive term"]
    torch.testing.assert_close(expected, loss.detach())
    moved = [
        not torch.equal(a, b)
        for a, b in zip(
            untrained.state_dict().values(), backbone.state_dict().values(), strict=True
        )
    ]
    assert all(moved)  # every tensor of the backbone was trained
