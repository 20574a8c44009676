"""MoCo's queue of keys (He et al. 2020, section 3.2): first in, first out, saved and refused
when the sizes differ; the step's negatives come from it unless keys are passed in."""

from __future__ import annotations

import pytest
import torch

from fmicl_registry.objectives import KeyQueue, ObjectiveError
from fmicl_registry.objectives.queue import queue_for


def test_queue_push_keeps_the_newest_when_the_batch_is_larger() -> None:
    queue = KeyQueue(3)
    queue.push(torch.eye(5))
    assert torch.equal(queue.keys, torch.eye(5)[2:])


def test_a_queue_saved_with_another_size_is_refused() -> None:
    small, big = KeyQueue(4), KeyQueue(8)
    big.push(torch.randn(8, 3))
    with pytest.raises(ObjectiveError, match="holds 8 keys but this one holds 4"):
        small.load_state_dict(big.state_dict())


def test_a_queue_holds_unit_keys_and_wraps_around() -> None:
    queue = KeyQueue(4)
    queue.push(3 * torch.eye(3))  # slots 0-2, normalised
    queue.push(torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 5.0]]))  # slots 3, then 0
    assert torch.equal(queue.keys, torch.eye(3)[[2, 1, 2, 1]])
    assert int(queue.position) == 1
    with pytest.raises(ObjectiveError, match="queue size must be an int >= 1"):
        KeyQueue(0)


def test_the_steps_negatives_come_from_the_queue_unless_keys_are_given() -> None:
    like, given = torch.ones(2, 3), torch.zeros(5, 3)
    assert queue_for(None, None, like) == (None, None)
    own = KeyQueue(4)
    keys, source = queue_for(own, None, like)
    assert source is own and keys is not None and torch.equal(keys, own.keys)
    assert keys.data_ptr() != own.keys.data_ptr()  # a copy: pushing later leaves it alone
    keys, source = queue_for(own, given, like)
    assert keys is given and source is None
