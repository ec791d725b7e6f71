"""Rewrite the example outputs pasted in docs/tutorial.md from real runs.

    python scripts/update_tutorial.py        # after changing an example's output

Every ```text block that starts with `$ python -m backprop.examples [NAME]` gets that
command's current output; tests/examples/test_examples.py checks the file against fresh
runs at the printed precision.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"
BLOCK = re.compile(r"```text\n\$ python -m backprop\.examples( [\w-]+)?\n(.*?)```", re.DOTALL)


def output(name: str) -> str:
    args = [sys.executable, "-m", "backprop.examples", *([name] if name else [])]
    done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=600)
    return done.stdout


def main() -> None:
    text = TUTORIAL.read_text(encoding="utf-8")

    def fill(match: re.Match[str]) -> str:
        name = (match.group(1) or "").strip()
        out = output(name).rstrip("\n")
        command = f"$ python -m backprop.examples{' ' + name if name else ''}"
        return f"```text\n{command}\n{out}\n```"

    TUTORIAL.write_text(BLOCK.sub(fill, text), encoding="utf-8")


if __name__ == "__main__":
    main()
