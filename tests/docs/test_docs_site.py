"""The docs site builds with --strict and holds no broken link; its pages hold no development history; the
benchmark pages show every result file the scripts wrote, as they wrote it."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest
import yaml

from tests.docs.examples import ROOT

DOCS = ROOT / "docs"
RESULTS = ROOT / "benchmarks" / "results"
PAGES = sorted(DOCS.rglob("*.md"))


def _need_mkdocs() -> None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None:
        if os.environ.get("CI"):
            pytest.fail("mkdocs-material and mkdocstrings must be installed in CI (the dev extra)")
        pytest.skip("mkdocs-material is not installed (pip install -e '.[docs]')")


def test_site_builds_strict_with_no_broken_link_or_anchor(tmp_path):
    _need_mkdocs()
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    problems = [line for line in proc.stderr.splitlines() if "contains a link" in line or "not found" in line
                or "WARNING" in line]
    assert not problems, "\n".join(problems)
    api = (tmp_path / "site" / "reference" / "python" / "index.html").read_text()
    assert 'id="retrieval.collection.api.Collection.query"' in api  # rendered from the docstrings
    assert "An index directory opened once" in api


def test_every_page_is_in_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def files(nav):
        for item in nav:
            for value in item.values():
                yield from (files(value) if isinstance(value, list) else [value])

    listed = set(files(config["nav"]))
    assert listed == {str(p.relative_to(DOCS)) for p in PAGES}


def test_mkdocs_yml_holds_only_what_mkdocs_material_and_zensical_both_read():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert set(config) <= {"site_name", "site_description", "site_url", "repo_url", "docs_dir", "site_dir", "nav",
                           "theme", "plugins", "markdown_extensions", "extra", "extra_css"}, set(config)
    plugins = [p if isinstance(p, str) else next(iter(p)) for p in config["plugins"]]
    assert set(plugins) <= {"search", "mkdocstrings"}, plugins  # no hooks, no plugin of our own
    assert config["theme"]["name"] == "material"


HISTORY = re.compile(r"\b(this round|previous round|last round|the issue|previously|before this (round|change)"
                     r"|previous run|in development|used to)\b", re.I)


@pytest.mark.parametrize("page", [ROOT / "README.md", *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_development_history(page):
    found = [m.group(0) for m in HISTORY.finditer(page.read_text())]
    assert not found, found


def test_readme_fits_on_two_screens():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def _render(folder):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from _common import render_results
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return render_results(folder)


@pytest.mark.parametrize("folder", sorted(p for p in RESULTS.iterdir() if p.is_dir()) if RESULTS.is_dir() else [],
                         ids=lambda p: p.name)
def test_result_folder_is_rendered_from_its_files_and_shown(folder):
    assert (ROOT / "benchmarks" / f"{folder.name}.py").exists(), f"no benchmarks/{folder.name}.py wrote this"
    assert list(folder.glob("*.json")), folder
    assert (folder / "README.md").read_text() == _render(folder), "edited by hand? run the benchmark again"
    bench_pages = "".join(p.read_text() for p in (DOCS / "benchmarks").glob("*.md"))
    assert f'--8<-- "benchmarks/results/{folder.name}/README.md"' in bench_pages, f"no benchmark page shows {folder}"
    assert f"no-results: {folder.name} " not in bench_pages, f"a page says {folder.name} has no results"


def test_every_benchmark_script_has_a_section():
    bench_pages = "".join(p.read_text() for p in (DOCS / "benchmarks").glob("*.md"))
    helpers = {"_common", "dedupe_peers", "dedupe_verified"}  # run by the others, no figures of their own
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        if script.stem not in helpers:
            assert f"`{script.name}`" in bench_pages, script.name
