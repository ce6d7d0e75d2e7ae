"""Everything the CLI prints: JSON, and one readable table or text per report.

Each function takes what the library returned and gives the text to print; the library's modules are
imported inside the functions, so importing this module stays as light as `--help` needs.
File names are shown escaped (a newline as ``\\n``, a byte that is not UTF-8 as ``\\xff``), so every name
keeps to one line and any name can be printed.
"""
from __future__ import annotations

import json
import time
from typing import Any

import typer


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def _shown(path: str) -> str:
    from retrieval.images.decode import shown
    return shown(path)


def _box(box) -> str:
    return f"box {[round(v) for v in box]}"


# retr index

def build_report(report, index) -> str:
    """Counts of a build, its regions, and each file that was skipped with the reason."""
    lines = [f"added {report.added}, updated {report.updated}, removed {report.removed}, "
             f"unchanged {report.unchanged}; {report.total} vectors ({report.factory}) in "
             f"{index} [{report.seconds:.1f}s]"]
    if report.regions is not None:
        r = report.regions
        lines.append(f"regions ({r.source}): {r.regions} from {r.images} image(s){' (rebuilt)' if r.rebuilt else ''}; "
                     f"{r.total} region vectors ({r.factory})")
        lines += [f"  region error {path}: {error}" for path, error in r.failed]
    if report.skipped:
        lines.append(f"skipped {len(report.skipped)} file(s):")
        lines += [f"  {_shown(path)}: {_shown(error)}" for path, error in report.skipped]
    return "\n".join(lines)


def index_info(data: dict[str, Any]) -> str:
    return "\n".join(f"{key:12} {_info_value(key, value)}" for key, value in data.items())


def _info_value(key: str, value: Any) -> str:
    """One line for the table: nested records (search parameters, latest clustering, regions) summarised."""
    if value is None:
        return "none"
    if key == "search" and not value:
        return "none (exact)"
    if key == "cluster_run":
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(value["created"]))
        sil = value.get("silhouette")
        sampled = " (sampled)" if value.get("sampled") else ""
        return (f"k={value['k']} {value['method']} over {value['n']} images{sampled}, loss {value['loss']:.4g}"
                + (f", silhouette {sil:.3f}" if sil is not None else "") + f" ({when})")
    if key == "regions":
        search = ", ".join(f"{k}={v}" for k, v in (value.get("search") or {}).items())
        return (f"{value.get('spec')}: {value.get('vectors')} region vectors from {value.get('images')} image(s), "
                f"{value.get('factory')}" + (f" ({search})" if search else ""))
    if key == "ivfdata":
        return f"{value['file']} ({value['bytes']:,} bytes of inverted lists, memory-mapped)"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


# retr query

def query_results(results) -> str:
    """Per query: rank, score and path of each hit; region queries and hits carry their box."""
    lines = []
    for r in results:
        box = getattr(r, "box", None)
        lines.append(f"query: {_shown(r.query)}" + (f"  {_box(box)} {r.label or ''}" if box else ""))
        lines.append(f"  {'rank':>4}  {'score':>6}  path")
        for h in r.results:
            region = getattr(h, "region", None)
            where = f"  {_box(region.box)} {region.label or ''}" if region is not None else ""
            lines.append(f"  {h.rank:>4}  {h.score:6.3f}  {_shown(h.path)}{where}")
    return "\n".join(lines)


def write_query_gallery(html, results) -> None:
    """A contact sheet: one row per query, the query (and its box) first, then each hit with rank and score."""
    from retrieval.images.gallery import Tile, write_gallery
    rows = []
    for r in results:
        box = getattr(r, "box", None)
        title = f"query: {r.query}" + (f" {r.label or 'box'} {[round(v) for v in box]}" if box else "")
        tiles = [Tile(r.query, "query", box)] + [
            Tile(h.path, f"#{h.rank}  {h.score:.3f}", getattr(h, "region", None) and h.region.box) for h in r.results]
        rows.append((title, tiles))
    write_gallery(html, "retr query", rows)


# retr train

def train_result(result) -> str:
    """Loss, speed and validation recall per epoch, then where the checkpoint is and what was skipped."""
    keys = sorted({k for h in result.history for k in h if k.startswith("recall@")}, key=lambda k: int(k.split("@")[1]))
    lines = [f"{'epoch':>5} {'loss':>9} {'img/s':>8} " + " ".join(f"{k:>9}" for k in keys)]
    lines += [f"{h['epoch']:>5} {h['loss']:>9.4f} {h['images_per_second']:>8.1f} "
              + " ".join(f"{h.get(k, float('nan')):>9.4f}" for k in keys) for h in result.history]
    lines.append(f"checkpoint: {result.out} ({result.train_images} training images, {result.val_images} "
                 f"validation; use it with --model {result.out})")
    lines += [f"  skipped {skip.get('path') or skip.get('class')}: {skip['reason']}" for skip in result.skipped]
    return "\n".join(lines)


# retr eval

def recall_report(report) -> str:
    """The overall metrics, one row per class, and where the time went."""
    head = report.to_json()
    lines = [f"{key:12} {head[key]:.4f}" if isinstance(head[key], float) else f"{key:12} {head[key]}"
             for key in head if key != "per_class"]
    metrics = [m for m in next(iter(report.per_class.values())) if m != "n"]
    lines.append("\n" + f"{'class':20} {'n':>6} " + " ".join(f"{m:>11}" for m in metrics))
    lines += [f"{name[:20]:20} {row['n']:>6} " + " ".join(f"{row[m]:>11.4f}" for m in metrics)
              for name, row in report.per_class.items()]
    s = report.seconds
    lines.append(f"\n{s.get('total', 0):.1f}s: embedding {s.get('embed', 0):.1f}s, k-NN search "
                 f"{s.get('search', 0):.2f}s")
    return "\n".join(lines)


def recall_left_out(missing: int, excluded: int) -> str:
    return (f"note: {missing} labelled image(s) without a vector and {excluded} query(ies) "
            "with no other image of their class were left out")


def index_accuracy(result) -> str:
    """recall@k and queries/s per search setting against exact search; * marks the tuned default."""
    lines = [f"{result.factory}: {result.n} vectors, {result.sample} queries, k={result.k}; "
             f"exact search {result.flat_qps:,.0f} queries/s",
             f"{'setting':>14} {'recall@' + str(result.k):>10} {'queries/s':>12} {'speed-up':>9}"]
    for s in result.settings:
        name = f"{s.param}={s.value}" if s.param else "(served)"
        mark = " *" if s.tuned and s.param else ""
        lines.append(f"{name:>14} {s.recall:>10.4f} {s.qps:>12,.0f} {s.qps / result.flat_qps:>8.1f}x{mark}")
    if any(s.tuned and s.param for s in result.settings):
        lines.append("* the index's default (tuned at build time)")
    return "\n".join(lines)


# retr cluster

def cluster_report(report) -> str:
    """The best k with its loss and silhouette, the per-k table when several were tried, and each cluster."""
    best = report.best
    sil = "n/a" if best.silhouette is None else f"{best.silhouette:.4f}"
    lines = [f"k={best.k} ({best.method}{', sampled' if best.sampled else ''}): loss {best.loss:.4f}, "
             f"medoid silhouette {sil}, run {report.run_id} [{report.seconds:.1f}s]"]
    if len(report.per_k) > 1:
        def num(v):
            return float("nan") if v is None else v
        lines.append(f"{'k':>4} {'loss':>12} {'silhouette':>11} {'medoid sil.':>11}")
        lines += [f"{r.k:>4} {r.loss:>12.4f} {num(r.full_silhouette):>11.4f} {num(r.silhouette):>11.4f}"
                  + ("  <- best" if r.k == best.k else "") for r in report.per_k]
        if report.warning:
            lines.append(f"warning: {report.warning}")
    lines.append(f"{'id':>4} {'size':>7}  medoid")
    lines += [f"{c.id:>4} {len(c.members):>7}  {c.medoid}" for c in report.clusters]
    lines += [f"{label}: {path}" for label, path in (("html report", report.html), ("elbow curve", report.elbow))
              if path is not None]
    return "\n".join(lines)


# retr dedupe

def _dup_line(d) -> str:
    return (f"  {d.kind.value:>7} {d.reason.value:>10} {d.distance:>7}"
            + (f" {d.inliers:>5} inliers" if d.inliers is not None else "") + f"  {_shown(d.item.path)}")


def dedupe_groups(result) -> str:
    """Copy groups as indented text (the kept image, then each duplicate with kind, reason and distance),
    then the similar groups (other shots of one scene, not acted on unless asked)."""
    o = result.options
    signals = (f"{o.hash} size {o.hash_size}, radius {o.candidate_radius()}"
               + (f", embeddings >= {o.similarity}" if o.embeddings else ""))
    how = (f"candidates: {signals}, thumbnails, shared keypoints; {result.verified_pairs} pairs verified with "
           "local features" if o.verify else f"{signals}, not verified")
    lines = [f"{result.n_images} images, {result.n_duplicates} duplicates in {len(result.groups)} groups, "
             f"{result.n_similar} similar in {len(result.similar)} similar groups ({how}; keep {o.keep})"]
    for n, g in enumerate(result.groups, 1):
        lines.append(f"group {n} ({g.kind.value}): keep {_shown(g.keep.path)}")
        lines += [_dup_line(d) for d in g.duplicates]
    if result.similar:
        lines.append(f"{len(result.similar)} similar group(s): other shots of one scene (burst or video frames, "
                     "another viewpoint, a moved subject); acted on only with --include-similar:")
        for n, g in enumerate(result.similar, 1):
            lines.append(f"similar {n}: keep {_shown(g.keep.path)}")
            lines += [_dup_line(d) for d in g.duplicates]
    if result.low_info:
        lines.append(f"{len(result.low_info)} low-information image(s) (flat, near-uniform or tiny): never paired "
                     "by a hash, never moved:")
        lines += [f"  {_shown(x.item.path)}: {x.reason}" for x in result.low_info]
    if result.unverified:
        lines.append(f"{len(result.unverified)} pair(s) linked by a hash but too poor in texture to verify: "
                     "not merged, check them yourself:")
        lines += [f"  {_shown(u.a.path)} ~ {_shown(u.b.path)} (distance {u.distance})" for u in result.unverified]
    if result.aliases:
        lines.append(f"{len(result.aliases)} path(s) reach a file listed under another path (a symlink or "
                     "hard link): one image with it, never acted on:")
        lines += [f"  {_shown(a)} -> {_shown(p)}" for a, p in result.aliases]
    if result.errors:
        lines.append(f"{len(result.errors)} file(s) could not be hashed:")
        lines += [f"  {_shown(p)}: {_shown(e)}" for p, e in result.errors]
    return "\n".join(lines)


def dedupe_action(done) -> str:
    """What a move, delete or undo did, the manifest to undo a move with, and each file left in place."""
    verb = {"move": "moved", "delete": "deleted", "undo": "restored"}[done.action]
    lines = [f"{verb} {len(done.done)} file(s); catalog rows {'restored' if done.action == 'undo' else 'removed'}: "
             f"{done.catalog_rows}"]
    if done.manifest and done.action == "move":
        manifest = _shown(done.manifest)
        lines.append(f"manifest: {manifest}  (undo with: retr dedupe --undo {manifest})")
    lines += [f"  skipped {_shown(path)}: {_shown(reason)}" for path, reason in done.skipped]
    return "\n".join(lines)


def dedupe_check(image, matches) -> str:
    """What --check found, each catalogued image with its kind (exact, copy, or similar: another shot)."""
    if not matches:
        return f"{_shown(str(image))}: no duplicate in the catalog"
    kinds = sorted({m.kind.value for m in matches})
    head = (f"{_shown(str(image))} duplicates {len(matches)} catalogued image(s) ({', '.join(kinds)}):"
            if kinds != ["similar"] else
            f"{_shown(str(image))} is another shot of the scene of {len(matches)} catalogued image(s) (similar, "
            "not a copy):")
    return "\n".join([head] + [_dup_line(m) for m in matches])


def calibration(data: dict[str, Any], target_precision: float) -> str:
    """Per hash: the threshold that reaches the target precision, its precision and recall, and the default."""
    def fmt(v):
        return "-" if v is None else f"{v:.3f}"
    lines = [f"{data['pairs']} pairs ({data['duplicates']} duplicates); target precision {target_precision}",
             f"{'hash':10} {'bits':>4} {'threshold':>9} {'precision':>9} {'recall':>7}   default"]
    lines += [f"{name:10} {h['bits']:>4} {str(h['threshold'] if h['threshold'] is not None else '-'):>9} "
              f"{fmt(h['precision']):>9} {fmt(h['recall']):>7}   {h['default_threshold']}"
              for name, h in data["hashes"].items()]
    v = data.get("verification")
    if v:
        lines.append(f"verification (inlier ratio >= {v['min_ratio']}): min inliers "
                     f"{v['min_inliers'] if v['min_inliers'] is not None else '-'} precision {fmt(v['precision'])} "
                     f"recall {fmt(v['recall'])}; default {v['default_min_inliers']}: precision "
                     f"{fmt(v['default_precision'])} recall {fmt(v['default_recall'])}")
        if (aligned := v.get("aligned")) is not None:
            lines.append(f"aligned densely (smooth pictures): {aligned['pairs']} pairs, "
                         f"{aligned['duplicates']} of them duplicates")
    lines += [f"  could not hash {err['path']}: {err['error']}" for err in data["errors"]]
    return "\n".join(lines)
