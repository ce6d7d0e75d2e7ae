"""Run the shell and Python examples of a Markdown page and compare what they print with what the page shows.

A ```console block holds commands (`$ ` lines) each followed by the output the page shows for it. A shown
line `...` stands for any number of lines, `...` inside a line for any text; a decimal number matches a
number within 0.002 of it (scores move in the last digit between inference runtimes); runs of spaces match
any spaces. Output is compared after the folder the examples ran in is written as `~/retr`.

The commands of one page run one after another in one bash session (so `cd` and variables carry), in a
folder holding a copy of the sample photos at tests/data/photos. A `retr serve` command is started in
the background on a free port (the page's 8765 is replaced by it in later commands), and stopped at the end.
A ```pycon block is a doctest, run in the same folder.
"""
from __future__ import annotations

import doctest
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT / "tests" / "data" / "photos"
PORT_SHOWN = 8765
HOME_SHOWN = "~/retr"
_FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)
_NUMBER = re.compile(r"-?\d+\.\d+")


@dataclass
class Command:
    line: str
    shown: list[str]


def blocks(text: str, kind: str) -> list[str]:
    """The bodies of the page's fenced blocks of this kind (console, pycon, sh)."""
    return [body for lang, body in _FENCE.findall(text) if lang == kind]


def commands(text: str) -> list[Command]:
    """Every `$ ` command of the page's console blocks, with the output shown under it."""
    out: list[Command] = []
    for body in blocks(text, "console"):
        if not body.startswith("$ "):
            raise ValueError(f"a console block that does not start with a command: {body[:60]!r}")
        for line in body.splitlines():
            if line.startswith("$ "):
                out.append(Command(line[2:], []))
            else:
                out[-1].shown.append(line)
    return out


def workdir(tmp: Path) -> Path:
    """A folder as the examples expect it: the sample photos at tests/data/photos."""
    shutil.copytree(PHOTOS, tmp / "tests" / "data" / "photos")
    return tmp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_commands(cmds: list[Command], cwd: Path, env: dict[str, str] | None = None,
                 timeout: float = 1200) -> list[tuple[int, str]]:
    """Run the commands in one bash session in ``cwd``; each one's exit status and output (stdout + stderr)."""
    port = _free_port()
    script = ["set -u", "SERVE=", "trap '[ -n \"$SERVE\" ] && kill $SERVE 2>/dev/null; wait' EXIT"]
    for i, cmd in enumerate(cmds):
        line = cmd.line.replace(f"127.0.0.1:{PORT_SHOWN}", f"127.0.0.1:{port}")
        script.append(f"printf '\\n@@@ {i} start\\n'")
        if line.startswith("retr serve"):
            # in the background, on a free port, until it answers /readyz (at most 120 s); its output so far
            script += [f"{line} --port {port} > .serve.log 2>&1 & SERVE=$!",
                       "for _ in $(seq 1200); do "
                       f"curl -sf http://127.0.0.1:{port}/readyz >/dev/null 2>&1 && break; sleep 0.1; done",
                       f"curl -sf http://127.0.0.1:{port}/readyz >/dev/null 2>&1; RC=$?; cat .serve.log"]
        else:
            script += [f"{line} 2>&1", "RC=$?"]
        script.append(f"printf '\\n@@@ {i} rc %d\\n' $RC")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RETR_")}
    environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '')}"
    environ.update(env or {})
    proc = subprocess.run(["bash", "-c", "\n".join(script)], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=timeout)
    text = proc.stdout.replace(str(cwd.resolve()), HOME_SHOWN).replace(str(cwd), HOME_SHOWN)
    text = text.replace(f":{port}", f":{PORT_SHOWN}")
    results = []
    for i in range(len(cmds)):
        m = re.search(rf"\n@@@ {i} start\n(.*?)\n@@@ {i} rc (\d+)\n", text, re.S)
        if m is None:
            results.append((-1, f"(the session stopped before this command)\n{text[-2000:]}\n{proc.stderr[-2000:]}"))
        else:
            results.append((int(m.group(2)), m.group(1)))
    return results


def _line_matches(shown: str, actual: str) -> bool:
    pattern, numbers = "", []
    for j, part in enumerate(shown.strip().split("...")):
        if j:
            pattern += ".*?"
        pos = 0
        for m in _NUMBER.finditer(part):
            pattern += _literal(part[pos:m.start()]) + r"(-?\d+\.\d+)"
            numbers.append(m.group())
            pos = m.end()
        pattern += _literal(part[pos:])
    m = re.fullmatch(pattern, actual.strip())
    if m is None:
        return False
    return all(abs(float(got) - float(want)) <= 0.002 + 0.5 * 10 ** -len(want.split(".")[1])
               for got, want in zip(m.groups(), numbers))


def _literal(text: str) -> str:
    return r"\s+".join(re.escape(w) for w in re.split(r"\s+", text))


def output_matches(shown: list[str], actual: str) -> bool:
    """Whether ``actual`` is what ``shown`` shows (see the module docstring)."""
    got = [line.rstrip() for line in actual.strip("\n").splitlines()]
    want = [line for line in shown if line.strip()]
    got = [line for line in got if line.strip()]

    def match(i: int, j: int) -> bool:
        if i == len(want):
            return j == len(got)
        if want[i].strip() == "...":
            return any(match(i + 1, jj) for jj in range(j, len(got) + 1))
        return j < len(got) and _line_matches(want[i], got[j]) and match(i + 1, j + 1)

    return match(0, 0)


def check_page(text: str, cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    """Run a page's console commands; one message for each command whose status or output differs."""
    cmds = commands(text)
    problems = []
    for cmd, (rc, out) in zip(cmds, run_commands(cmds, cwd, env)):
        if rc != 0:
            problems.append(f"$ {cmd.line}\nexit status {rc}:\n{out}")
        elif not output_matches(cmd.shown, out):
            problems.append(f"$ {cmd.line}\nthe page shows:\n" + "\n".join(cmd.shown) + f"\nit printed:\n{out}")
    return problems


def run_pycon(text: str, cwd: Path, name: str) -> list[str]:
    """Run the page's pycon blocks as doctests in ``cwd`` (one namespace); the failures, as doctest prints them."""
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    problems: list[str] = []
    globs: dict = {}
    here = os.getcwd()
    os.chdir(cwd)
    try:
        for k, body in enumerate(blocks(text, "pycon")):
            test = parser.get_doctest(body, globs, f"{name}[{k}]", name, 0)
            runner.run(test, out=problems.append, clear_globs=False)
    finally:
        os.chdir(here)
    return problems
