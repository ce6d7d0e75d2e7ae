"""The README's and the getting-started page's examples, run on the sample photos, print what the pages show."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib

import pytest

from tests.docs.examples import ROOT, check_page, commands, output_matches, run_pycon, workdir

README = ROOT / "README.md"
GETTING_STARTED = ROOT / "docs" / "getting-started.md"


def _need_curl() -> None:
    if shutil.which("curl") is None:
        if os.environ.get("CI"):
            pytest.fail("the docs examples must run in CI: no curl (.ci/run installs it)")
        pytest.skip("no curl on PATH")


def _page_without_pg(text: str) -> str:
    """The page's text before its PostgreSQL section (run on its own, with a server)."""
    return text.split("<!-- postgres -->")[0]


def test_the_output_matcher_is_strict_where_it_should_be():
    assert output_matches(["  1   0.225  a.jpg"], "1 0.226 a.jpg")  # a score one digit off
    assert not output_matches(["  1   0.225  a.jpg"], "1 0.240 a.jpg")
    assert not output_matches(["1 0.225 a.jpg"], "1 0.225 b.jpg")
    assert output_matches(["first", "...", "last"], "first\nx\ny\nlast")
    assert not output_matches(["first", "last"], "first\nx\nlast")
    assert not output_matches(["first"], "first\nmore")
    assert output_matches(["added 3 [...]"], "added 3 [1.2s]")
    assert [c.line for c in commands("```console\n$ a\nout\n$ b\n```\n")] == ["a", "b"]


def test_getting_started_commands_print_what_the_page_shows(tmp_path):
    _need_curl()
    text = GETTING_STARTED.read_text()
    assert len(commands(text)) >= 8
    problems = check_page(text, workdir(tmp_path)) + run_pycon(text, tmp_path, "getting-started")
    assert not problems, "\n\n".join(problems)


def test_readme_commands_print_what_it_shows(tmp_path):
    _need_curl()
    text = _page_without_pg(README.read_text())
    assert len(commands(text)) >= 8
    problems = check_page(text, workdir(tmp_path)) + run_pycon(text, tmp_path, "README")
    assert not problems, "\n\n".join(problems)


def test_readme_postgresql_commands(tmp_path, pg_catalog_url):
    text = README.read_text()
    assert "<!-- postgres -->" in text
    section = text.split("<!-- postgres -->")[1].split("<!-- /postgres -->")[0]
    assert commands(section)
    problems = check_page(section, workdir(tmp_path), env={"RETR_DB": pg_catalog_url})
    assert not problems, "\n\n".join(problems)


@pytest.mark.parametrize("page", [README, GETTING_STARTED], ids=lambda p: p.name)
def test_install_and_make_lines_name_what_exists(page):
    """`pip install` lines name extras pyproject.toml defines; `make` lines name targets the Makefile has."""
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    text = page.read_text()
    named = set(re.findall(r"pip install '\.\[([a-z,-]+)\]'", text))
    assert named, "no pip install line with an extra"
    for group in named:
        assert set(group.split(",")) <= extras, group
    targets = set(re.findall(r"`make ([a-z-]+)`", text)) | set(re.findall(r"^make ([a-z-]+)", text, re.M))
    assert {"demo", "test"} <= targets or page == GETTING_STARTED
    for target in targets:
        dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert dry.returncode == 0, f"make {target}: {dry.stderr}"


def test_every_shell_line_of_the_readme_is_run_or_checked():
    """Commands outside ```console blocks (and so not run) are only install and make lines."""
    from tests.docs.examples import blocks
    for body in blocks(README.read_text(), "sh"):
        for line in body.splitlines():
            line = line.split("#")[0].strip()
            assert not line or line.startswith(("pip install", "make ", "python3 -m venv")), line
