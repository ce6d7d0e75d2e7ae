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

from cli.options import DEFAULT_INDEX, DbUrl, JsonOut, ModelSpec, Quiet, Workers, print_json, show_progress, user_errors
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


dedupe_app = typer.Typer(cls=_DefaultCommandGroup, help="Find near-duplicate images and act on them safely. Exact, "
                         "perceptual hash and embedding matches; `retr dedupe [PATH...]` runs `find`.")

_thresholds = ", ".join(f"{h.name} {h.default_threshold}" for h in (HASHERS.get(n) for n in HASHERS.names()))
HashName = Annotated[str, typer.Option("--hash", help=f"Perceptual hash: {', '.join(HASHERS.names())}.")]
HashSize = Annotated[int | None, typer.Option("--hash-size", min=2, help="Hash size (bits = size^2; colorhash: "
                                              "bits per bin). Default: 8 (colorhash 3).")]
Threshold = Annotated[int | None, typer.Option("--threshold", min=0, help="Hamming radius for near-duplicates. "
                                               f"Defaults (64-bit, from benchmarks): {_thresholds}.")]
IndexOpt = Annotated[Path | None, typer.Option("--index", "-i", help=f"Index directory (default {DEFAULT_INDEX} "
                                               "unless PATHs are given).", envvar="RETR_INDEX")]


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
         html: Annotated[Path | None, typer.Option("--html", help="Write side-by-side thumbnails as HTML.")] = None,
         move_to: Annotated[Path | None, typer.Option("--move-to", help="Move duplicates into this quarantine "
                                                      "folder (relative paths kept, manifest written).")] = None,
         manifest: Annotated[Path | None, typer.Option("--manifest", help="Manifest file for --move-to.")] = None,
         delete: Annotated[bool, typer.Option("--delete", help="Delete duplicates (needs --yes).")] = False,
         yes: Annotated[bool, typer.Option("--yes", help="Confirm --delete.")] = False,
         undo: Annotated[Path | None, typer.Option("--undo", help="Reverse a --move-to run from its manifest.")] = None,
         check: Annotated[Path | None, typer.Option("--check", help="Is this image a duplicate of a catalogued "
                                                    "one? Exit 0: no, 3: yes.")] = None,
         method: Annotated[str, typer.Option("--search", help="Binary search: auto, flat, mih, multihash, gpu.")]
         = "auto",
         model: ModelSpec = None, workers: Workers = None, json_out: JsonOut = False, quiet: Quiet = False) -> None:
    """Find duplicate groups in an index (default) or in PATHs. Report them, or move or delete the
    duplicates."""
    from retrieval.dedupe.run import Action, check_image, dedupe_index, dedupe_paths, undo_manifest
    opts = DedupeOptions(hash, hash_size, threshold, embeddings, similarity, keep, method)
    if sum(x is not None and x is not False for x in (undo, check, paths or None)) > 1 or (paths and index):
        raise typer.BadParameter("use one of PATH..., --index, --undo MANIFEST, --check IMAGE")
    progress = show_progress(quiet or json_out)
    with user_errors():
        if undo is not None:
            return _print_action(undo_manifest(undo, index_dir=index, db_url=db), json_out)
        if check is not None:
            return _print_check(check, check_image(check, index or DEFAULT_INDEX, opts, db_url=db, workers=workers,
                                                   progress=progress), json_out)
        action = Action(str(move_to) if move_to else None, str(manifest) if manifest else None, delete, yes)
        if paths:
            result, done = dedupe_paths(paths, opts, action, workers=workers, progress=progress, model_spec=model)
        else:
            result, done = dedupe_index(index or DEFAULT_INDEX, opts, action, db_url=db, workers=workers,
                                        progress=progress)
        _write_reports(result, csv, html)
    _print_result(result, done, json_out)


def _write_reports(result, csv: Path | None, html: Path | None) -> None:
    from retrieval.dedupe import report as dedupe_report
    if csv is not None:
        dedupe_report.write_csv(result, csv)
    if html is not None:
        dedupe_report.write_html(result, html)


def _print_result(result, done, json_out: bool) -> None:
    from retrieval.dedupe import report as dedupe_report
    if json_out:
        print_json({**result.to_json(), **({"action": done.to_json()} if done else {})})
        return
    typer.echo(dedupe_report.table(result))
    if done is not None:
        _print_action(done, False)


def _print_action(done, json_out: bool) -> None:
    from retrieval.images.decode import shown
    if json_out:
        print_json(done.to_json())
        return
    verb = {"move": "moved", "delete": "deleted", "undo": "restored"}[done.action]
    typer.echo(f"{verb} {len(done.done)} file(s); catalog rows {'restored' if done.action == 'undo' else 'removed'}: "
               f"{done.catalog_rows}")
    if done.manifest and done.action == "move":
        manifest = shown(done.manifest)
        typer.echo(f"manifest: {manifest}  (undo with: retr dedupe --undo {manifest})")
    for path, reason in done.skipped:
        typer.echo(f"  skipped {shown(path)}: {shown(reason)}")


def _print_check(image: Path, matches, json_out: bool) -> None:
    from retrieval.images.decode import shown
    if json_out:
        print_json({"image": str(image), "duplicate": bool(matches), "matches": [m.to_json() for m in matches]})
    elif matches:
        typer.echo(f"{shown(str(image))} duplicates {len(matches)} catalogued image(s):")
        for m in matches:
            typer.echo(f"  {m.reason:>10} {m.distance:>7}  {shown(m.path)}")
    else:
        typer.echo(f"{shown(str(image))}: no duplicate in the catalog")
    if matches:
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
        print_json(data)
        return
    typer.echo(f"{data['pairs']} pairs ({data['duplicates']} duplicates); target precision {target_precision}")
    typer.echo(f"{'hash':10} {'bits':>4} {'threshold':>9} {'precision':>9} {'recall':>7}   default")
    for name, h in data["hashes"].items():
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        typer.echo(f"{name:10} {h['bits']:>4} {str(h['threshold'] if h['threshold'] is not None else '-'):>9} "
                   f"{fmt(h['precision']):>9} {fmt(h['recall']):>7}   {h['default_threshold']}")
    for err in data["errors"]:
        typer.echo(f"  could not hash {err['path']}: {err['error']}")


def register(app: typer.Typer) -> None:
    """Add `retr dedupe` (and `retr dedupe calibrate`) to the `retr` app."""
    app.add_typer(dedupe_app, name="dedupe")
