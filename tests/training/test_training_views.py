"""The two views of a batch: the same for every order of access, number of processes and epoch
replay, however a run makes them (paired by the data set, batched on the device, sentences)."""

from __future__ import annotations

import torch

from fmicl_registry.data.batch import BatchDigits
from fmicl_registry.training.views import BatchViews, PairedViews, SeededViews, SentenceViews

CPU = torch.device("cpu")


def test_seeded_views_do_not_depend_on_access_order_or_global_seed() -> None:
    base = [(torch.zeros(2), i) for i in range(4)]
    views = SeededViews(base, lambda x: x + torch.rand(2), seed=7)
    forward = [views[i] for i in range(4)]
    torch.manual_seed(123)
    backward = [views[i] for i in reversed(range(4))][::-1]
    for (a1, b1, _), (a2, b2, _) in zip(forward, backward, strict=True):
        assert torch.equal(a1, a2) and torch.equal(b1, b2) and not torch.equal(a1, b1)
    views.set_epoch(1)
    assert not torch.equal(views[0][0], forward[0][0])


def test_paired_views_pass_the_data_sets_views_and_set_its_epoch() -> None:
    seeded = SeededViews([(torch.zeros(2), 0)], lambda x: x + torch.rand(2), seed=1)
    views = PairedViews(seeded, CPU)
    views.set_epoch(3)
    assert seeded.epoch == 3
    first, second, _ = seeded[0]
    got = views((first[None], second[None], torch.tensor([0])))
    assert torch.equal(got[0][0], first) and torch.equal(got[1][0], second)


def _images(n: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 8, 8), generator=torch.Generator().manual_seed(0)).byte()


def test_batch_views_of_two_processes_are_the_rows_of_the_one_process_views() -> None:
    augment = BatchDigits((1, 8, 8), mean=(0.5,), std=(0.25,))
    images = _images(6)
    one = BatchViews(augment, seed=4, batch_size=6, device=CPU)
    one.set_epoch(2)
    whole = one((images, torch.zeros(6)))
    halves = []
    for rank in (0, 1):
        views = BatchViews(augment, seed=4, batch_size=6, device=CPU, rank=rank)
        views.set_epoch(2)
        halves.append(views((images[3 * rank : 3 * rank + 3], torch.zeros(3))))
    for i in (0, 1):
        torch.testing.assert_close(torch.cat([halves[0][i], halves[1][i]]), whole[i])
    assert not torch.allclose(whole[0], whole[1])  # two different views of each image


def test_batch_views_follow_the_batch_index_and_replay_with_the_epoch() -> None:
    augment = BatchDigits((1, 8, 8), mean=(0.5,), std=(0.25,))
    batch = (_images(4), torch.zeros(4))
    views = BatchViews(augment, seed=0, batch_size=4, device=CPU)
    views.set_epoch(0)
    first, second = views(batch)[0], views(batch)[0]  # batches 0 and 1 of epoch 0
    assert not torch.allclose(first, second)
    views.set_epoch(0)
    torch.testing.assert_close(views(batch)[0], first)
    views.set_epoch(1)
    assert not torch.allclose(views(batch)[0], first)


def test_sentence_views_are_the_same_sentences_twice() -> None:
    one, two = SentenceViews()((("a b", "c d"), torch.zeros(2)))
    assert one == ["a b", "c d"] and one is two
