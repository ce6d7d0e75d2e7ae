"""Each loss equals a naive loop over a handful of 2-D embeddings (the formulas of issue 3)."""
import itertools
import math

import pytest
import torch
from torch.testing import assert_close

from index.errors import RetrError
from retrieval.train.losses import LOSSES, ContrastiveLoss, NTXentLoss, TripletLoss, create_loss

EMB = torch.tensor([[0.0, 0.0], [0.3, 0.1], [1.0, 0.2], [0.9, 1.1], [-0.5, 0.4], [0.2, -0.7]])
LABELS = torch.tensor([0, 0, 1, 1, 2, 0])


def dist(a, b):
    return math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(a, b)))


def naive_contrastive(emb, labels, m):
    terms = []
    for i, j in itertools.permutations(range(len(emb)), 2):
        d = dist(emb[i], emb[j])
        terms.append(d ** 2 if labels[i] == labels[j] else max(0.0, m - d) ** 2)
    return sum(terms) / len(terms)


def naive_triplet(emb, labels, m, triplets=None):
    if triplets is None:
        triplets = [(a, p, n) for a, p, n in itertools.permutations(range(len(emb)), 3)
                    if labels[a] == labels[p] and labels[a] != labels[n]]
    terms = [max(0.0, m + dist(emb[a], emb[p]) ** 2 - dist(emb[a], emb[n]) ** 2) for a, p, n in triplets]
    return sum(terms) / len(terms)


def naive_ntxent(z, tau):
    z = [v / v.norm() for v in z]
    n2 = len(z)
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        j = (i + n) % n2
        sims = {k: float(z[i] @ z[k]) / tau for k in range(n2) if k != i}
        total += -math.log(math.exp(sims[j]) / sum(math.exp(s) for s in sims.values()))
    return total / n2


def test_contrastive_equals_naive_loop():
    loss = ContrastiveLoss(margin=1.0)(EMB, LABELS)
    assert_close(loss, torch.tensor(naive_contrastive(EMB, LABELS, 1.0)), rtol=1e-5, atol=1e-6)


def test_contrastive_with_mined_triplets_uses_their_pairs():
    a, p, n = torch.tensor([0, 1]), torch.tensor([1, 5]), torch.tensor([2, 4])
    loss = ContrastiveLoss(margin=1.2)(EMB, LABELS, (a, p, n))
    m = 1.2
    terms = [dist(EMB[0], EMB[1]) ** 2, dist(EMB[1], EMB[5]) ** 2,
             max(0, m - dist(EMB[0], EMB[2])) ** 2, max(0, m - dist(EMB[1], EMB[4])) ** 2]
    assert_close(loss, torch.tensor(sum(terms) / 4), rtol=1e-5, atol=1e-6)


def test_contrastive_no_negative_pairs_is_the_positive_term_only():
    labels = torch.zeros(4, dtype=torch.long)
    emb = EMB[:4]
    expected = sum(dist(emb[i], emb[j]) ** 2 for i, j in itertools.permutations(range(4), 2)) / 12
    assert_close(ContrastiveLoss(margin=0.5)(emb, labels), torch.tensor(expected), rtol=1e-5, atol=1e-6)


def test_contrastive_no_pairs_at_all_is_zero_with_gradient():
    emb = EMB[:1].clone().requires_grad_(True)
    loss = ContrastiveLoss()(emb, torch.tensor([3]))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert emb.grad is not None


def test_triplet_equals_naive_loop_over_all_valid_triplets():
    loss = TripletLoss(margin=0.5)(EMB, LABELS)
    assert_close(loss, torch.tensor(naive_triplet(EMB, LABELS, 0.5)), rtol=1e-5, atol=1e-6)


def test_triplet_uses_squared_distances_on_given_triplets():
    trip = [(0, 1, 2), (5, 0, 4)]
    idx = tuple(torch.tensor(c) for c in zip(*trip))
    loss = TripletLoss(margin=0.3)(EMB, LABELS, idx)
    assert_close(loss, torch.tensor(naive_triplet(EMB, LABELS, 0.3, trip)), rtol=1e-5, atol=1e-6)
    # by hand for (5, 0, 4): d(a,p)^2 = 0.53, d(a,n)^2 = 1.7; loss max(0, 0.3 + 0.53 - 1.7) = 0
    assert naive_triplet(EMB, LABELS, 0.3, [(5, 0, 4)]) == 0.0


@pytest.mark.parametrize("labels", [torch.tensor([0, 0, 0]), torch.tensor([0, 1, 2])])
def test_triplet_without_valid_triplets_is_zero(labels):
    emb = EMB[:3].clone().requires_grad_(True)
    loss = TripletLoss()(emb, labels)
    assert float(loss.detach()) == 0.0
    loss.backward()  # still part of the graph: a batch without triplets never breaks backward


def test_ntxent_equals_naive_loop():
    torch.manual_seed(0)
    z1, z2 = torch.randn(3, 2), torch.randn(3, 2)
    got = NTXentLoss(temperature=0.5).views(z1, z2)
    assert_close(got, torch.tensor(naive_ntxent(torch.cat([z1, z2]), 0.5)), rtol=1e-4, atol=1e-5)


def test_ntxent_single_image_has_no_negatives_and_is_zero():
    z = torch.randn(1, 2)
    assert float(NTXentLoss().views(z, z + 0.1)) == 0.0


def test_losses_reject_bad_settings_and_shapes():
    with pytest.raises(ValueError, match="margin"):
        TripletLoss(margin=0)
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature=0)
    with pytest.raises(ValueError, match="do not match"):
        TripletLoss()(EMB, LABELS[:3])


def test_loss_registry():
    assert LOSSES.names() == ["contrastive", "triplet", "ntxent"]
    assert isinstance(create_loss("triplet", margin=0.1), TripletLoss)
    assert create_loss("triplet", margin=0.1).margin == 0.1
    with pytest.raises(RetrError, match="unknown loss 'arcface'; known: contrastive, ntxent, triplet"):
        create_loss("arcface")
    with pytest.raises(ValueError, match="already registered"):
        LOSSES.register("triplet", TripletLoss)


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_is_finite_and_reaches_the_embeddings(name):
    emb = EMB.clone().requires_grad_(True)
    loss = create_loss(name)(emb, LABELS)
    loss.backward()
    assert loss.ndim == 0 and math.isfinite(loss.item()) and loss.item() > 0
    assert emb.grad is not None and torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0
