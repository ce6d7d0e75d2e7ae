"""Sampler invariants: every batch holds P classes x K images; ranks draw different batches."""
import numpy as np
import pytest

from index.errors import RetrError
from retrieval.train.samplers import PKSampler, RandomBatchSampler, check_pk

LABELS = np.array([0] * 10 + [1] * 6 + [2] * 2 + [3] * 5 + [4] * 8)


def test_every_batch_holds_p_classes_of_k_images():
    sampler = PKSampler(LABELS, p=3, k=4, steps=25, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 25
    for batch in batches:
        assert len(batch) == 12
        classes, counts = np.unique(LABELS[batch], return_counts=True)
        assert len(classes) == 3 and (counts == 4).all()


def test_a_class_smaller_than_k_gives_all_its_images_then_repeats():
    sampler = PKSampler(LABELS, p=5, k=4, steps=5, seed=0)  # P = every class, so class 2 (2 images) is in
    for batch in sampler:
        twos = [i for i in batch if LABELS[i] == 2]
        assert len(twos) == 4 and set(twos) == {16, 17}
        fives = [i for i in batch if LABELS[i] == 0]
        assert len(set(fives)) == 4  # enough images: no repeats


def test_deterministic_per_epoch_and_different_across_epochs():
    a, b = PKSampler(LABELS, 2, 2, steps=4, seed=7), PKSampler(LABELS, 2, 2, steps=4, seed=7)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first


def test_ranks_draw_different_batches():
    r0 = list(PKSampler(LABELS, 2, 2, steps=6, seed=3, rank=0, world_size=2))
    r1 = list(PKSampler(LABELS, 2, 2, steps=6, seed=3, rank=1, world_size=2))
    assert len(r0) == len(r1) == 6 and r0 != r1


def test_hard_negative_batches_hold_the_anchor_and_its_negative_with_their_classes():
    hn = np.full((len(LABELS), 2), -1)
    hn[0] = [20, 11]  # image 0 (class 0) is confused with image 20 (class 4)
    sampler = PKSampler(LABELS, p=2, k=3, steps=5, seed=0)
    sampler.set_hard_negatives(hn)
    for batch in sampler:
        assert 0 in batch and batch.count(0) == 1
        assert 20 in batch or 11 in batch
        classes, counts = np.unique(LABELS[batch], return_counts=True)
        assert len(classes) == 2 and (counts == 3).all()


def test_pk_errors_are_one_line_user_errors():
    with pytest.raises(RetrError, match="--batch-size 16 is smaller than P x K = 8 x 4 = 32"):
        check_pk(16, 8, 4)
    assert check_pk(None, 8, 4) == 32
    with pytest.raises(RetrError, match="only 5 classes"):
        PKSampler(LABELS, p=6, k=2, steps=1)


def test_random_batches_are_distinct_images():
    for batch in RandomBatchSampler(10, 4, steps=3, seed=0):
        assert len(batch) == len(set(batch)) == 4
