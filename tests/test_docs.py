"""Every code block of README.md and docs/*.md runs, at a small scale, and the output shown matches the real one.

Blocks of one Markdown file run in order in one temporary folder (so a block may use a file an earlier one wrote):

- a ``python`` block runs in a fresh Python process (``cwd`` the folder);
- a ``toml`` block whose first line is a comment naming a file (``# study.toml — ...``) is written to that file;
- a block whose lines start with ``$ jaxcollapse ...`` or ``jaxcollapse <command> ...`` runs those commands
  (the ``jaxcollapse`` entry point, in this process); with ``$`` lines, the block's other lines are the output
  shown, and its first line must have the shape of the command's first line of output (every number replaced
  by ``#``: a different scale changes numbers, not the shape);
- a block after ``<!-- doctest: output -->`` is the output of the block before it: the same shape check;
- a block after ``<!-- doctest: skip -->`` or ``<!-- doctest: skip (why) -->`` (an install, a cluster launcher, a
  GPU, minutes whatever the scale) is not run; a shell block
  (``bash``, ``sh``, ``shell``, ``console``) with nothing runnable and no such marker fails the test, so that a
  new block runs unless it says why not;
- other blocks (output, text) are not run.

Small scale: a path under ``/tmp/`` (in a command, or a string in Python) moves into the folder; the commands get ``--chains 8 --generations G`` with ``G`` at most 8 (``run``: and ``--no-plots``) (``plan``:
``--pilot-chains 20``; ``reproduce``: ``--scale 0.01``; ``sweep``: ``--chains 4 --generations 4``), and in Python
and TOML text the numbers ``chains = N``, ``steps = N`` and ``scale = X`` are capped (``SMALL``: 8, 10, 0.01),
so the blocks in the docs keep their real sizes. ``JAXCOLLAPSE_PROGRESS_EVERY=0``.
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import re
import shlex
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP = "<!-- doctest: skip -->"
OUTPUT = "<!-- doctest: output -->"
SHELL = ("bash", "sh", "shell", "console")
#: Caps of the small scale: in Python and TOML text, ``name = N`` / ``name=N`` above the cap becomes the cap
#: (generations are left as they are there: code may index them); commands get ``--chains``/``--generations``.
SMALL = {"chains": 8, "steps": 10}
GENERATIONS, PILOT_CHAINS, SCALE = 8, 20, 0.01
NUMBER = re.compile(r"\d[\d,_]*(\.\d+)?([eE][-+]?\d+)?")

pytestmark = pytest.mark.slow


class Block:
    """One fenced block: where it starts, its info string, its lines and the marker before it (if any)."""

    def __init__(self, path, line, lang, lines, marker):
        self.path, self.line, self.lang, self.lines, self.marker = path, line, lang, lines, marker

    def __repr__(self):
        return f"{self.path.name}:{self.line}"

    def commands(self) -> list[str]:
        """The ``jaxcollapse`` command lines (``\\`` continuations joined), without ``$ `` and comments; a line
        such as ``jaxcollapse run: ...`` is output, not a command."""
        out, current = [], None
        for raw in self.lines:
            text = raw.strip()
            if current is not None:
                current += " " + text.rstrip("\\").strip()
            else:
                text = text.removeprefix("$ ")
                words = text.split()
                if not words or words[0] != "jaxcollapse" or (len(words) > 1 and words[1].endswith(":")):
                    continue
                current = text.rstrip("\\").strip()
            if not raw.rstrip().endswith("\\"):
                out.append(current.split(" #", 1)[0].strip())
                current = None
        return out

    def shown_output(self) -> list[str]:
        """The output lines of a ``$ command`` block (the lines that are not commands)."""
        if not any(line.startswith("$ ") for line in self.lines):
            return []
        return [line for line in self.lines if not line.startswith("$ ") and line.strip()]


def blocks(path: pathlib.Path) -> list[Block]:
    """The fenced blocks of a Markdown file, each with the doctest marker of the lines just before it."""
    found, lines = [], path.read_text(encoding="utf-8").splitlines()
    i, marker = 0, None
    while i < len(lines):
        text = lines[i].strip()
        if text.startswith(SKIP[:-4]) and text.endswith("-->"):
            marker = SKIP
        elif text == OUTPUT:
            marker = text
        elif text.startswith("```"):
            lang, start, body = text[3:].strip().lower(), i + 1, []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                body.append(lines[i])
                i += 1
            found.append(Block(path, start, lang, body, marker))
            marker = None
        elif text and not (text.startswith("<!--") and text.endswith("-->")):
            marker = None
        i += 1
    return found


def shape(line: str) -> str:
    """A line with its numbers replaced by ``#`` (and runs of spaces by one)."""
    return re.sub(r"\s+", " ", NUMBER.sub("#", line)).strip()


def small_text(text: str) -> str:
    """Python or TOML text with its sizes capped (``SMALL``, ``SCALE``)."""
    for name, cap in SMALL.items():
        def cap_it(m, cap=cap):
            return f"{m.group(1)}{min(int(m.group(2).replace('_', '')), cap)}"
        text = re.sub(rf"(\b{name}\s*=\s*)(\d[\d_]*)\b(?!\.)", cap_it, text)
    return re.sub(r"(\bscale\s*=\s*)(\d+(\.\d+)?)", lambda m: f"{m.group(1)}{min(float(m.group(2)), SCALE)}", text)


def small_command(command: str, tmp: pathlib.Path) -> list[str]:
    """The arguments of a documented command at the small scale (a path under ``/tmp/`` moves into ``tmp``)."""
    args = [str(tmp / a[len("/tmp/"):]) if a.startswith("/tmp/") else a for a in shlex.split(command)[1:]]
    sub = args[0] if args else ""
    given = {a: args[k + 1] for k, a in enumerate(args[:-1]) if a in ("--generations", "-g")}
    generations = min(int(next(iter(given.values()), GENERATIONS)), GENERATIONS)
    if sub == "run":
        args += ["--chains", str(SMALL["chains"]), "--generations", str(generations), "--no-plots"]
    elif sub == "plan":
        args += ["--pilot-chains", str(PILOT_CHAINS), "--generations", str(generations)]
    elif sub == "reproduce":
        args += ["--scale", str(SCALE)]
    elif sub == "sweep":
        args += ["--chains", "4", "--generations", "4"]
    return args


def run_command(command: str, cwd: pathlib.Path) -> str:
    """Run one ``jaxcollapse`` command in this process in ``cwd``; its stdout. Fails on a non-zero exit."""
    from jaxcollapse.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(small_command(command, cwd))
            except SystemExit as e:
                code = e.code
    finally:
        os.chdir(old)
    assert code in (0, None), f"{command!r} exited {code}:\n{err.getvalue()[-2000:]}"
    return out.getvalue()


def run_python(text: str, cwd: pathlib.Path) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "JAXCOLLAPSE_PROGRESS_EVERY": "0", "MPLBACKEND": "Agg"}
    text = re.sub(r"""(["'])/tmp/""", lambda m: m.group(1) + str(cwd) + "/", small_text(text))
    proc = subprocess.run([sys.executable, "-c", text], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"the Python block failed:\n{proc.stderr[-3000:]}"
    return proc.stdout


def check_shape(shown: list[str], output: str, where: Block) -> None:
    real = [line for line in output.splitlines() if line.strip()]
    assert real, f"{where}: the command printed nothing, the block shows {shown[0]!r}"
    assert shape(shown[0]) == shape(real[0]), f"{where}: shown {shown[0]!r}\n  real {real[0]!r}"


def run_block(b: Block, tmp: pathlib.Path, last_output: str | None) -> tuple[str, str | None]:
    """Run (or check, or write) one block; returns what was done and the output a next block may show."""
    if b.marker == SKIP:
        return "skipped (marked)", last_output
    if b.marker == OUTPUT:
        assert last_output is not None, f"{b}: marked as output, but no block before it ran"
        check_shape([line for line in b.lines if line.strip()], last_output, b)
        return "output checked", last_output
    if b.lang == "python":
        return "python ran", run_python("\n".join(b.lines), tmp)
    if b.lang == "toml":
        m = re.match(r"#\s*(\S+\.toml)\b", b.lines[0] if b.lines else "")
        if not m:
            return "not a file", last_output
        target = tmp / m.group(1)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(small_text("\n".join(b.lines)) + "\n")
        return f"wrote {m.group(1)}", last_output
    commands = b.commands()
    if commands:
        outputs = [run_command(c, tmp) for c in commands]
        shown = b.shown_output()
        if shown:
            check_shape(shown, outputs[0], b)
        return f"ran {len(commands)} command(s)", outputs[-1]
    assert b.lang not in SHELL, (f"{b}: a {b.lang} block with no jaxcollapse command: run one, or put "
                                 f"{SKIP} before it")
    return "not run (output or text)", last_output


def run_file(path: pathlib.Path, tmp: pathlib.Path) -> list[str]:
    """Run every block of ``path`` in order in ``tmp``; what was done with each, and in how many seconds."""
    done, last_output = [], None
    for b in blocks(path):
        t0 = time.perf_counter()
        what, last_output = run_block(b, tmp, last_output)
        done.append(f"{b}: {what} ({time.perf_counter() - t0:.1f} s)")
    return done


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_doc_blocks_run(path, tmp_path, monkeypatch):
    monkeypatch.setenv("JAXCOLLAPSE_PROGRESS_EVERY", "0")
    print("\n".join(run_file(path, tmp_path)))      # shown with -s or on a failure


def test_the_block_rules(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("\n".join([
        "<!-- doctest: skip (an install) -->", "<!-- other -->", "```bash", "pip install jaxcollapse", "```", "",
        "```", "$ jaxcollapse run --chains 3", "jaxcollapse run: x · 3 chains", "...", "```",
        "```", "jaxcollapse run: [0:30] 1/2 chain-generations", "```",
        "```bash", "jaxcollapse run --regime fully_synthetic \\", "  -n 10  # a comment", "```",
        "```python", "r = simulate(chains=10_000, generations=50, scale=1.0, steps=3)", "```"]))
    b = blocks(doc)
    assert [x.marker for x in b] == [SKIP, None, None, None, None]
    assert b[1].commands() == ["jaxcollapse run --chains 3"] and b[1].shown_output()[0].startswith("jaxcollapse run:")
    assert b[2].commands() == [] and b[3].commands() == ["jaxcollapse run --regime fully_synthetic -n 10"]
    assert small_text(b[4].lines[0]) == "r = simulate(chains=8, generations=50, scale=0.01, steps=3)"
    assert small_command("jaxcollapse run -g 100 --out /tmp/x", tmp_path)[-7:-5] == ["--out", str(tmp_path / "x")]
    assert small_command("jaxcollapse run -g 100", tmp_path)[-5:] == ["--chains", "8", "--generations", "8", "--no-plots"]
    assert shape("3 chains × 2,000 generations, Σp² = 0.1") == shape("8 chains × 8 generations, Σp² = 0.5078")
    bad = tmp_path / "bad.md"
    bad.write_text("```bash\nsrun python -c 'pass'\n```\n")
    with pytest.raises(AssertionError, match="doctest: skip"):
        run_file(bad, tmp_path)
