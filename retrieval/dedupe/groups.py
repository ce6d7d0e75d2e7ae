"""Union-find over duplicate pairs: pairs found by any layer join into groups."""
from __future__ import annotations

import numpy as np


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving and union by size."""

    def __init__(self, n: int):
        self.parent = np.arange(n, dtype=np.int64)
        self.size = np.ones(n, dtype=np.int64)

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = int(parent[x])
        return int(x)

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        return True

    def union_pairs(self, i: np.ndarray, j: np.ndarray) -> None:
        for a, b in zip(np.asarray(i).tolist(), np.asarray(j).tolist()):
            self.union(a, b)

    def groups(self) -> list[list[int]]:
        """Sets of two or more members, each sorted, ordered by their smallest member."""
        roots = np.fromiter((self.find(x) for x in range(len(self.parent))), dtype=np.int64,
                            count=len(self.parent))
        order = np.argsort(roots, kind="stable")
        sorted_roots = roots[order]
        cuts = np.flatnonzero(np.diff(sorted_roots)) + 1
        out = [sorted(part.tolist()) for part in np.split(order, cuts) if len(part) > 1]
        return sorted(out, key=lambda g: g[0])


def group_pairs(*pair_sets: tuple[np.ndarray, np.ndarray]) -> list[list[int]]:
    """Groups of positions joined by any of the given (i, j) pair arrays (only positions in a pair count)."""
    parts = [np.asarray(x, dtype=np.int64) for pair in pair_sets for x in pair]
    nodes = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    uf = UnionFind(len(nodes))
    for i, j in pair_sets:
        uf.union_pairs(np.searchsorted(nodes, i), np.searchsorted(nodes, j))
    return [nodes[g].tolist() for g in uf.groups()]


def star_groups(n: int, edges: dict[int, set[int]], rank: np.ndarray) -> list[tuple[int, list[int]]]:
    """Groups that cannot chain: (kept, duplicates) where every duplicate has an edge to the kept image.

    ``edges[a]`` holds the positions ``a`` is a verified duplicate of (symmetric); ``rank[a]`` orders the
    images by the keep policy (0: the one to keep first). In rank order, an image not yet taken keeps every
    untaken neighbour. Two groups are never merged through a borderline link between duplicates: a link
    counts only when it reaches the kept image itself.
    """
    taken = np.zeros(n, dtype=bool)
    out = []
    for a in np.argsort(rank, kind="stable").tolist():
        if taken[a] or not edges.get(a):
            continue
        dups = sorted(b for b in edges[a] if not taken[b] and b != a)
        if not dups:
            continue
        taken[a] = True
        taken[dups] = True
        out.append((a, dups))
    return out
