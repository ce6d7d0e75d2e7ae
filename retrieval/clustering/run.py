"""`retr cluster`: an index's vectors -> k-medoids -> catalog run + members -> HTML report, elbow PNG."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from index.catalog.clusters import store_run
from index.errors import RetrError
from index.directory import IndexStore
from retrieval.clustering.kmedoids import (DEFAULT_METHOD, Clustering, best_by_silhouette, cluster_vectors,
                                          edge_warning)

HTML_MEMBERS = 48  # tiles shown per cluster in the HTML report (the medoid first)


@dataclasses.dataclass(frozen=True)
class ClusterOptions:
    k: int | None = None  # one k ...
    k_min: int | None = None  # ... or a range, choosing the best medoid silhouette
    k_max: int | None = None
    method: str = DEFAULT_METHOD
    sample: int | None = None
    seed: int = 0
    html: Path | None = None
    db_url: str | None = None
    memory: int | None = None  # bytes a distance matrix may use (default: what the machine has free)

    def ks(self) -> list[int]:
        if self.k is not None:
            if self.k_min is not None or self.k_max is not None:
                raise RetrError("give either -k or --k-min/--k-max, not both")
            return [self.k]
        if self.k_min is None or self.k_max is None:
            raise RetrError("give -k K, or a range with --k-min A --k-max B")
        if self.k_min > self.k_max:
            raise RetrError(f"--k-min {self.k_min} is larger than --k-max {self.k_max}")
        return list(range(self.k_min, self.k_max + 1))


@dataclasses.dataclass(frozen=True)
class ClusterInfo:
    id: int
    medoid: str  # path of the medoid image
    members: list[str]  # paths, the medoid first, then by distance to it
    similarities: list[float]  # cosine similarity of each member to the medoid


@dataclasses.dataclass(frozen=True)
class ClusterReport:
    run_id: int
    best: Clustering
    per_k: list[Clustering]
    clusters: list[ClusterInfo]
    seconds: float
    html: Path | None = None
    elbow: Path | None = None
    warning: str | None = None  # the best k lies at the edge of the range tried

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "k": self.best.k, "method": self.best.method, "loss": self.best.loss,
            "silhouette": self.best.silhouette, "full_silhouette": self.best.full_silhouette,
            "criterion": "full_silhouette" if self.best.full_silhouette is not None else "medoid_silhouette",
            "clusters": [{"id": c.id, "medoid": c.medoid, "size": len(c.members), "members": c.members}
                         for c in self.clusters]}
        if len(self.per_k) > 1:
            out["per_k"] = [{"k": r.k, "loss": r.loss, "silhouette": r.silhouette,
                             "full_silhouette": r.full_silhouette} for r in self.per_k]
            out["warning"] = self.warning
        if self.html is not None:
            out["html"] = str(self.html)
        if self.elbow is not None:
            out["elbow"] = str(self.elbow)
        return out


def describe(best: Clustering, vectors: np.ndarray, paths: Sequence[str]) -> tuple[list[ClusterInfo], np.ndarray]:
    """Clusters numbered by size (largest first), members ordered by similarity to their medoid;
    and the new number of each vector."""
    sizes = np.bincount(best.labels, minlength=best.k)
    order = np.argsort(-sizes, kind="stable")
    renumber = np.empty(best.k, np.int64)
    renumber[order] = np.arange(best.k)
    infos = []
    for new, old in enumerate(order):
        medoid = int(best.medoids[old])
        members = np.flatnonzero(best.labels == old)
        sims = vectors[members] @ vectors[medoid]
        sims[members == medoid] = np.inf  # the medoid first
        members, sims = members[np.argsort(-sims, kind="stable")], np.sort(sims)[::-1]
        sims[0] = 1.0
        infos.append(ClusterInfo(new, paths[medoid], [paths[i] for i in members], [float(s) for s in sims]))
    return infos, renumber[best.labels]


def cluster_index(index_dir: str | Path, opts: ClusterOptions = ClusterOptions(),
                  progress: Callable[[Iterable[int]], Iterable[int]] | None = None) -> ClusterReport:
    """Cluster every vector of the index, record the run in its catalog, and write the reports asked for."""
    ks = opts.ks()
    start = time.perf_counter()
    with IndexStore.open(index_dir, opts.db_url, mode="write") as store:  # the run is stored in the catalog
        parts = list(store.catalog.iter_vectors(store.dim))
        if not parts:
            raise RetrError(f"the index at {index_dir} holds no vectors to cluster")
        ids = np.concatenate([p[0] for p in parts])
        vectors = np.concatenate([p[1] for p in parts])
        del parts
        results = cluster_vectors(vectors, ks, method=opts.method, seed=opts.seed, sample=opts.sample,
                                  memory=opts.memory, progress=progress)
        best = best_by_silhouette(results)
        paths_by_id = store.catalog.paths_by_id(ids)
        paths = [paths_by_id[int(i)] for i in ids]
        clusters, numbers = describe(best, vectors, paths)
        seconds = time.perf_counter() - start
        run_id = store_run(store.catalog, k=best.k, method=best.method, loss=best.loss,
                           silhouette=best.silhouette, seconds=seconds, image_ids=ids, clusters=numbers,
                           medoid_ids=ids[best.medoids], sampled=best.sampled)
    html = elbow = None
    if opts.html is not None:
        html = write_html(opts.html, clusters, best)
    if len(results) > 1:
        elbow = write_elbow(_elbow_path(opts.html, Path(index_dir)), results, best.k)
    return ClusterReport(run_id, best, results, clusters, seconds, html, elbow, edge_warning(results, best))


def _elbow_path(html: Path | None, index_dir: Path) -> Path:
    return html.with_name(html.stem + "-elbow.png") if html is not None else index_dir / "cluster-elbow.png"


def write_html(out: Path, clusters: Sequence[ClusterInfo], best: Clustering) -> Path:
    """A self-contained gallery: one section per cluster, its medoid first, then its nearest members."""
    from retrieval.images.gallery import Tile, write_gallery
    rows = []
    for c in clusters:
        shown = min(len(c.members), HTML_MEMBERS)
        heading = f"cluster {c.id}: {len(c.members)} images" + (f" (the {shown} nearest the medoid shown)"
                                                                  if shown < len(c.members) else "")
        tiles = [Tile(p, "medoid" if i == 0 else f"similarity {s:.3f}")
                 for i, (p, s) in enumerate(zip(c.members[:shown], c.similarities[:shown]))]
        rows.append((heading, tiles))
    silhouette = "n/a" if best.silhouette is None else f"{best.silhouette:.3f}"
    title = f"retr cluster: k={best.k}, {best.method}, loss {best.loss:.2f}, medoid silhouette {silhouette}"
    return write_gallery(out, title, rows)


def write_elbow(out: Path, results: Sequence[Clustering], best_k: int) -> Path:
    """Loss and medoid silhouette against k as a PNG (matplotlib when installed, else drawn with Pillow)."""
    from index.atomic import atomic_path
    ks = [r.k for r in results]
    losses = [r.loss for r in results]
    sils = [r.silhouette if r.silhouette is not None else float("nan") for r in results]
    full = [r.full_silhouette if r.full_silhouette is not None else float("nan") for r in results]
    out = Path(out)
    with atomic_path(out) as tmp:
        try:
            _elbow_matplotlib(tmp, ks, losses, sils, full, best_k)
        except ImportError:
            _elbow_pillow(tmp, ks, losses, sils, full, best_k)
    return out


def _elbow_matplotlib(path: Path, ks, losses, sils, full, best_k: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(ks, losses, "o-")
    left.axvline(best_k, color="red", linestyle="--")
    left.set(xlabel="k", ylabel="loss (sum of cosine distances)", title="elbow")
    right.plot(ks, full, "o-", color="tab:red", label="silhouette (chooses k)")
    right.plot(ks, sils, ".--", color="tab:gray", label="medoid silhouette (for comparison)")
    right.axvline(best_k, color="red", linestyle="--")
    right.legend(loc="best", fontsize="small")
    right.set(xlabel="k", ylabel="silhouette", title=f"chosen k = {best_k} (highest silhouette)")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def _elbow_pillow(path: Path, ks, losses, sils, full, best_k: int) -> None:
    """The same two panels drawn with Pillow: loss; the silhouette that chooses k (blue, the chosen k in red,
    a dashed line at it) with the medoid silhouette in grey for comparison, on one scale."""
    from PIL import Image, ImageDraw
    width, height, pad = 900, 400, 60
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    panels = [("loss (sum of cosine distances)", [(losses, (31, 119, 180))]),
              (f"chosen k = {best_k}: highest silhouette (blue); medoid silhouette (grey), for comparison",
               [(sils, (150, 150, 150)), (full, (31, 119, 180))])]
    kspan = max(ks[-1] - ks[0], 1)
    for p, (title, series) in enumerate(panels):
        x0, x1 = p * width // 2 + pad, (p + 1) * width // 2 - 20
        y0, y1 = 56, height - 50
        draw.rectangle([x0, y0, x1, y1], outline="black")
        words, line, lines = title.split(), "", []
        for w in words:  # wrap the title to the panel
            if len(line) + len(w) > (x1 - x0) // 6:
                lines.append(line)
                line = ""
            line = f"{line} {w}".strip()
        for n, text in enumerate([*lines, line]):
            draw.text((x0, 8 + 14 * n), text, fill="black")
        finite = [v for values, _ in series for v in values if np.isfinite(v)]
        lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
        hi = hi if hi > lo else lo + 1.0

        def xy(k: int, v: float) -> tuple[float, float]:
            return (x0 + 10 + (x1 - x0 - 20) * (k - ks[0]) / kspan, y1 - 10 - (y1 - y0 - 20) * (v - lo) / (hi - lo))

        bx = xy(best_k, lo)[0]
        for y in range(y0, y1, 8):
            draw.line([(bx, y), (bx, min(y + 4, y1))], fill=(214, 39, 40))
        for values, colour in series:
            pts = [(k, xy(k, v)) for k, v in zip(ks, values) if np.isfinite(v)]
            if len(pts) > 1:
                draw.line([q for _, q in pts], fill=colour, width=2)
            for k, (x, y) in pts:
                r = 5 if k == best_k else 3
                draw.ellipse([x - r, y - r, x + r, y + r], fill=(214, 39, 40) if k == best_k else colour)
        for k in ks[::max(1, len(ks) // 15)]:
            draw.text((xy(k, lo)[0] - 4, y1 + 6), str(k), fill="black")
        draw.text(((x0 + x1) // 2, y1 + 24), "k", fill="black")
        draw.text((x0 - pad + 4, y0), f"{hi:.3g}", fill="black")
        draw.text((x0 - pad + 4, y1 - 12), f"{lo:.3g}", fill="black")
    img.save(path, format="PNG")
