"""`retr dedupe`: near-duplicates in an index or in folders, safe actions, undo, check, calibrate.

`retr dedupe [PATH...]` runs the default `find` command, so `retr dedupe calibrate PAIRS.csv` and
`retr dedupe PATH...` both work: a first argument that names a subcommand selects it, anything else is
handed to `find` (a folder literally named "calibrate" can be given as ./calibrate).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer
from typer.core import TyperGroup

from cli import render
from cli.errors import user_errors
from cli.options import (DEFAULT_INDEX, DbUrl, HtmlOut, JsonOut, ModelSpec, Precision, Quiet, RayAddress, Runtime,
                         Workers, index_option, ray_options, show_progress)
from index.errors import RetrError
# light modules only (no imagehash, faiss, catalog or torch): the rest is imported inside the commands
from retrieval.dedupe.hashers import DEFAULT_HASH, HASHERS
from retrieval.dedupe.keep import DEFAULT_KEEP, KEEP_POLICIES
from retrieval.dedupe.options import DEFAULT_SIMILARITY, DedupeOptions

DEFAULT_COMMAND = "find"
EXIT_DUPLICATE = 3


class _DefaultCommandGroup(TyperGroup):
    """A group whose first argument may be a subcommand; otherwise everything goes to `find`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


dedupe_app = typer.Typer(cls=_DefaultCommandGroup, help="Find duplicate images and act on them safely. Exact copies, "
                         "edited copies and (listed apart, never acted on unless asked) other shots of one scene; "
                         "`retr dedupe [PATH...]` runs `find`.")

_thresholds = ", ".join(f"{h.name} {h.default_threshold}" for h in (HASHERS.get(n) for n in HASHERS.names()))
HashName = Annotated[str, typer.Option("--hash", help=f"Perceptual hash: {', '.join(HASHERS.names())}.")]
HashSize = Annotated[int | None, typer.Option("--hash-size", min=2, help="Hash size (bits = size^2; colorhash: "
                                              "bits per bin). Default: 8 (colorhash 3).")]
Threshold = Annotated[int | None, typer.Option("--threshold", min=0, help="Hamming radius for near-duplicates. "
                                               f"Defaults (64-bit, from benchmarks): {_thresholds}.")]
IndexOpt = Annotated[Path | None, index_option(f"Index directory (default {DEFAULT_INDEX} unless PATHs are given).")]


@dedupe_app.command(DEFAULT_COMMAND)
def find(paths: Annotated[list[Path] | None, typer.Argument(help="Folders or files to scan instead of an index.")] = None,
         index: IndexOpt = None, db: DbUrl = None, hash: HashName = DEFAULT_HASH, hash_size: HashSize = None,
         threshold: Threshold = None,
         embeddings: Annotated[bool, typer.Option("--embeddings", help="Also join images whose embeddings are "
                                                  "at least --similarity alike (index vectors).")] = False,
         similarity: Annotated[float, typer.Option("--similarity", min=0.0, max=1.0)] = DEFAULT_SIMILARITY,
         keep: Annotated[str, typer.Option("--keep", help=f"Image to keep per group: {', '.join(KEEP_POLICIES)}.")]
         = DEFAULT_KEEP,
         csv: Annotated[Path | None, typer.Option("--csv", help="Write the groups as CSV.")] = None,
         html: HtmlOut = None,
         move_to: Annotated[Path | None, typer.Option("--move-to", help="Move duplicates into this quarantine "
                                                      "folder (relative paths kept, manifest written).")] = None,
         manifest: Annotated[Path | None, typer.Option("--manifest", help="Manifest file for --move-to.")] = None,
         delete: Annotated[bool, typer.Option("--delete", help="Delete duplicates (needs --yes).")] = False,
         include_similar: Annotated[bool, typer.Option("--include-similar", help="--move-to and --delete also "
                                                       "take other shots of one scene (similar groups: burst or "
                                                       "video frames, another viewpoint); only exact and edited "
                                                       "copies otherwise.")] = False,
         yes: Annotated[bool, typer.Option("--yes", help="Confirm --delete.")] = False,
         undo: Annotated[Path | None, typer.Option("--undo", help="Reverse a --move-to run from its manifest.")] = None,
         check: Annotated[Path | None, typer.Option("--check", help="Is this image a duplicate of a catalogued "
                                                    "one, and of which kind (exact, copy, similar)? Exit 0: no "
                                                    "exact or copy match, 3: one (similar ones are listed).")]
         = None,
         method: Annotated[str, typer.Option("--search", help="Binary search: auto, flat, mih, multihash, gpu.")]
         = "auto",
         verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Verify candidate pairs with local "
                                              "features (default). --no-verify: a hash within --threshold is "
                                              "enough (faster; flat images are not detected).")] = True,
         min_inliers: Annotated[int | None, typer.Option("--min-inliers", min=4, help="Verification: keypoint "
                                                         "matches that must agree (default from calibration).")]
         = None,
         min_ratio: Annotated[float | None, typer.Option("--min-ratio", min=0.0, max=1.0, help="Verification: "
                                                         "share of matches that must agree.")] = None,
         model: ModelSpec = None, runtime: Runtime = "auto", precision: Precision = "f32", workers: Workers = None,
         json_out: JsonOut = False, quiet: Quiet = False, ray: RayAddress = None) -> None:
    """Find duplicate groups in an index (default) or in PATHs. Report them, or move or delete the
    duplicates. With --ray the per-image work (decoding, hashes, keypoints) and the verification of
    candidate pairs run as tasks on a Ray cluster."""
    from retrieval.dedupe.run import Action, check_image, dedupe_index, dedupe_paths, undo_manifest
    opts = DedupeOptions(hash, hash_size, threshold, embeddings, similarity, keep, method, verify, min_inliers,
                         min_ratio, runtime, precision)
    if sum(x is not None and x is not False for x in (undo, check, paths or None)) > 1 or (paths and index):
        raise typer.BadParameter("use one of PATH..., --index, --undo MANIFEST, --check IMAGE")
    progress = show_progress(quiet or json_out)
    with user_errors():
        if undo is not None:
            if ray is not None:
                raise RetrError("--undo moves files back here: it takes no --ray")
            return _print_action(undo_manifest(undo, index_dir=index, db_url=db), json_out)
        from retrieval.scaleout.tasks import cluster_mapper
        roots = [str(p) for p in paths] if paths else []
        files = [] if paths or ray is None else _catalog_paths(index or DEFAULT_INDEX, db)
        with cluster_mapper(ray_options(ray, None), roots, files) as mapper:
            if check is not None:
                return _print_check(check, check_image(check, index or DEFAULT_INDEX, opts, db_url=db,
                                                       workers=workers, progress=progress, mapper=mapper), json_out)
            action = Action(str(move_to) if move_to else None, str(manifest) if manifest else None, delete, yes,
                            include_similar)
            if paths:
                result, done = dedupe_paths(paths, opts, action, workers=workers, progress=progress,
                                            model_spec=model, mapper=mapper)
            else:
                result, done = dedupe_index(index or DEFAULT_INDEX, opts, action, db_url=db, workers=workers,
                                            progress=progress, mapper=mapper)
        _write_reports(result, csv, html)
    if json_out:
        return render.print_json({**result.to_json(), **({"action": done.to_json()} if done else {})})
    typer.echo(render.dedupe_groups(result))
    if done is not None:
        typer.echo(render.dedupe_action(done))


def _catalog_paths(index: Path, db: str | None) -> list[str]:
    """The catalog's image paths (what the nodes of a --ray run must read)."""
    from index.directory import IndexStore
    with IndexStore.open(index, db, mode="read") as store:
        return list(store.catalog.image_rows())


def _write_reports(result, csv: Path | None, html: Path | None) -> None:
    from retrieval.dedupe import report
    if csv is not None:
        report.write_csv(result, csv)
    if html is not None:
        report.write_html(result, html)


def _print_action(done, json_out: bool) -> None:
    if json_out:
        return render.print_json(done.to_json())
    typer.echo(render.dedupe_action(done))


def _print_check(image: Path, matches, json_out: bool) -> None:
    duplicate = any(m.kind.value != "similar" for m in matches)  # another shot of the scene is not a copy
    if json_out:
        render.print_json({"image": str(image), "duplicate": duplicate,
                           "kinds": sorted({m.kind.value for m in matches}), "matches": [m.to_json() for m in matches]})
    else:
        typer.echo(render.dedupe_check(image, matches))
    if duplicate:
        raise typer.Exit(code=EXIT_DUPLICATE)


@dedupe_app.command("calibrate")
def calibrate(pairs: Annotated[Path, typer.Argument(help="CSV with path_a,path_b,is_duplicate.")],
              hash: Annotated[list[str] | None, typer.Option("--hash", help="Hash(es) to calibrate (default: all).")]
              = None,
              hash_size: HashSize = None,
              target_precision: Annotated[float, typer.Option("--target-precision", min=0.0, max=1.0)] = 0.99,
              workers: Workers = None, json_out: JsonOut = False, quiet: Quiet = False) -> None:
    """Precision and recall per Hamming threshold for each hash. Also the threshold that reaches the
    target precision."""
    from retrieval.dedupe.calibrate import calibrate as run_calibrate
    with user_errors():
        data = run_calibrate(pairs, hashes=hash, hash_size=hash_size, target_precision=target_precision,
                             workers=workers, progress=show_progress(quiet or json_out))
    if json_out:
        return render.print_json(data)
    typer.echo(render.calibration(data, target_precision))
