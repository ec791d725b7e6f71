"""Run the smoke subset (paths.txt beside this file) with pytest, against the installed package.

    python tests/smoke/run.py [--skip PATH]... [pytest arguments]

Run it from outside the source tree (noxfile.py's smoke sessions and cibuildwheel's
test-command do), so that `import backprop_core` finds the installed wheel, not the source
folder: the tests that start a subprocess run it in the current directory. --skip PATH leaves
out one entry of paths.txt (as written there), for a platform that lacks what it imports.
"""

from __future__ import annotations

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def smoke_paths() -> list[str]:
    """paths.txt: one pytest path or node id a line, relative to the repository root."""
    lines = (HERE / "paths.txt").read_text().splitlines()
    return [p for p in (line.split("#", 1)[0].strip() for line in lines) if p]


def main(argv: list[str]) -> int:
    import pytest

    skip: set[str] = set()
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--skip":
            skip.add(next(args))
        elif arg.startswith("--skip="):
            skip.add(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    paths = smoke_paths()
    unknown = skip.difference(paths)
    if unknown:
        print(f"run.py: --skip of paths not in paths.txt: {sorted(unknown)}", file=sys.stderr)
        return 2
    for p in sorted(skip):
        print(f"run.py: skipping {p}")
    chosen = [str(ROOT / p) for p in paths if p not in skip]
    return int(pytest.main(["-p", "no:cacheprovider", *chosen, *rest]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
