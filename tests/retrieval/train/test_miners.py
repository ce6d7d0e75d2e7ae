"""Each miner returns exactly what its definition picks on a hand-made batch."""
import itertools

import pytest
import torch

from index.errors import RetrError
from retrieval.train.miners import MINERS, SemiHardMiner, create_miner

# 1-D points on a line (as 2-D): class 0 at 0.0, 0.2, 1.0; class 1 at 0.5, 3.0
EMB = torch.tensor([[0.0, 0.0], [0.2, 0.0], [1.0, 0.0], [0.5, 0.0], [3.0, 0.0]])
LABELS = torch.tensor([0, 0, 0, 1, 1])


def triplets(out):
    return sorted(zip(*(t.tolist() for t in out)))


def sq(i, j):
    return float(((EMB[i] - EMB[j]) ** 2).sum())


def test_all_miner_returns_every_valid_triplet():
    expected = sorted((a, p, n) for a, p, n in itertools.permutations(range(5), 3)
                      if LABELS[a] == LABELS[p] != LABELS[n])
    assert triplets(create_miner("all")(EMB, LABELS)) == expected
    assert len(expected) == 3 * 2 * 2 + 2 * 1 * 3


def test_batch_hard_picks_farthest_positive_and_nearest_negative():
    got = triplets(create_miner("batch-hard")(EMB, LABELS))
    # anchor 0: farthest positive 2 (1.0), nearest negative 3 (0.5); anchor 1: 2 and 3; anchor 2: 0 and 3;
    # anchor 3: positive 4, nearest negative 1 (0.3); anchor 4: positive 3, nearest negative 2 (2.0)
    assert got == [(0, 2, 3), (1, 2, 3), (2, 0, 3), (3, 4, 1), (4, 3, 2)]


def test_semi_hard_picks_negatives_just_beyond_the_positive():
    m = 0.3
    got = triplets(create_miner("semi-hard", margin=m)(EMB, LABELS))
    expected = sorted((a, p, n) for a, p, n in itertools.permutations(range(5), 3)
                      if LABELS[a] == LABELS[p] != LABELS[n] and sq(a, p) < sq(a, n) <= sq(a, p) + m)
    assert got == expected == [(0, 1, 3), (1, 0, 3)]


def test_distance_weighted_samples_one_negative_per_positive_pair_within_the_cutoff():
    torch.manual_seed(0)
    # unit circle: class 0 at angles 0 and 0.3; class 1 at 0.9 (d ~ 0.88 from the first) and at pi (d = 2)
    ang = torch.tensor([0.0, 0.3, 0.9, 3.14159])
    emb = torch.stack([ang.cos(), ang.sin()], 1)
    labels = torch.tensor([0, 0, 1, 1])
    miner = create_miner("distance-weighted")
    for _ in range(20):
        a, p, n = miner(emb, labels)
        got = triplets((a, p, n))
        # negatives farther than 1.4 (the nonzero-loss cutoff) are never drawn: only index 2 qualifies for
        # anchors 0 and 1; for anchors 2 and 3 the only negative within 1.4 of 2 is 0 or 1, and 3 has none
        for anchor, pos, neg in got:
            assert labels[anchor] == labels[pos] != labels[neg]
            assert float((emb[anchor] - emb[neg]).norm()) < 1.4
        assert {(0, 1, 2), (1, 0, 2)} <= set(got)
        assert all(t[0] != 3 for t in got)


def test_distance_weighted_prefers_negatives_by_inverse_density():
    """In 2-D, 1/q(d) is proportional to (1 - d^2/4)^(1/2) above the cutoff: the closer negative is
    drawn more often, with the ratio the definition gives."""
    torch.manual_seed(0)
    ang = torch.tensor([0.0, 0.0001, 0.8, 1.3])  # negatives at d ~ 0.78 and ~ 1.21 from the anchors
    emb = torch.stack([ang.cos(), ang.sin()], 1)
    labels = torch.tensor([0, 0, 1, 1])
    miner = create_miner("distance-weighted")
    counts = {2: 0, 3: 0}
    for _ in range(400):
        for a, p, n in zip(*miner(emb, labels)):
            if int(a) == 0:
                counts[int(n)] += 1
    d2, d3 = float((emb[0] - emb[2]).norm()), float((emb[0] - emb[3]).norm())
    w2, w3 = (1 - d2 ** 2 / 4) ** 0.5, (1 - d3 ** 2 / 4) ** 0.5
    share = counts[2] / (counts[2] + counts[3])
    assert abs(share - w2 / (w2 + w3)) < 0.07


def test_miner_registry():
    assert MINERS.names() == ["all", "batch-hard", "semi-hard", "distance-weighted"]
    with pytest.raises(RetrError, match="unknown miner 'hardest'; known: all, batch-hard"):
        create_miner("hardest")
    with pytest.raises(ValueError, match="already registered"):
        MINERS.register("all", MINERS.get("all"))


def test_only_the_semi_hard_miner_takes_the_margin():
    miner = create_miner("semi-hard", margin=0.7)
    assert isinstance(miner, SemiHardMiner) and miner.margin == 0.7


@pytest.mark.parametrize("name", MINERS.names())
def test_every_miner_returns_valid_triplets(name):
    emb = torch.nn.functional.normalize(EMB + torch.tensor([0.0, 1.0]), dim=1)
    a, p, n = create_miner(name, margin=0.5)(emb, LABELS)
    assert len(a) == len(p) == len(n)
    for i, j, k in zip(a.tolist(), p.tolist(), n.tolist()):
        assert i != j and LABELS[i] == LABELS[j] != LABELS[k]


def test_the_light_miner_names_are_the_registry_names():
    # --miner is checked (and listed in --help) from MINER_NAMES without importing torch
    from retrieval.train.config import MINER_NAMES
    assert tuple(MINERS.names()) == MINER_NAMES
