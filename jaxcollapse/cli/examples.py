"""``jaxcollapse examples [NAME] [--copy DIR]``: the example TOML files shipped with the package.

They are package data (``jaxcollapse/examples/*.toml``; ``examples/`` of a checkout points at the same folder), so
an installed package has them too: list them, print one, or copy them into a folder to edit.
"""

from __future__ import annotations

import os
import sys

from ..errors import ConfigError

DESCRIPTION = """List the example files shipped with the package (study and sweep settings as TOML), print one
(NAME), or copy them into a folder to edit (--copy DIR: NAME only, or all of them). Each file says on its first
lines what it sets up and the command that runs it, e.g. `jaxcollapse sweep sweep-phase.toml --plot` after
`jaxcollapse examples sweep-phase --copy .`."""


def add_arguments(parser) -> None:
    parser.add_argument("name", metavar="NAME", nargs="?", default=None,
                        help="an example's name (with or without .toml); without it, every example")
    parser.add_argument("--copy", metavar="DIR", default=None,
                        help="copy the example (or all of them) into DIR (created if missing; existing files are "
                        "not replaced unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="with --copy: replace files already in DIR")
    parser.add_argument("--quiet", "-q", action="store_true", help="with --copy: print nothing")


def _folder():
    from importlib import resources

    return resources.files("jaxcollapse") / "examples"


def examples() -> dict:
    """``{name: file}`` of the shipped examples (name without ``.toml``), sorted by name; each file is an
    ``importlib.resources`` Traversable (``read_text()``)."""
    found = {f.name[:-5]: f for f in _folder().iterdir() if f.name.endswith(".toml") and f.is_file()}
    return dict(sorted(found.items()))


def describe(text: str) -> str:
    """The first comment line of an example: what it sets up."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#") and line.lstrip("# ").strip():
            return line.lstrip("# ").strip()
    return ""


def run_command(args) -> int:
    found = examples()
    chosen = found
    if args.name is not None:
        name = os.path.basename(args.name)
        name = name[:-5] if name.endswith(".toml") else name
        if name not in found:
            raise ConfigError(f"no example {args.name!r}; the examples are: {', '.join(found)}")
        chosen = {name: found[name]}
    if args.copy is not None:
        from ..io.files import write_text

        os.makedirs(args.copy, exist_ok=True)
        targets = {name: os.path.join(args.copy, f"{name}.toml") for name in chosen}
        there = [t for t in targets.values() if os.path.exists(t)]
        if there and not args.overwrite:
            raise ConfigError(f"{there[0]} exists; use --overwrite to replace it")
        for name, target in targets.items():
            write_text(target, chosen[name].read_text(encoding="utf-8"))
            if not args.quiet:
                print(target)
        return 0
    if args.name is not None:
        sys.stdout.write(chosen[next(iter(chosen))].read_text(encoding="utf-8"))
        return 0
    width = max(len(n) for n in found) if found else 0
    for name, f in found.items():
        print(f"{name + '.toml':<{width + 5}}  {describe(f.read_text(encoding='utf-8'))}")
    print("print one with `jaxcollapse examples NAME`, copy them with `jaxcollapse examples [NAME] --copy DIR`")
    return 0
