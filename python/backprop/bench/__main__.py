"""`python -m backprop.bench`: the side-by-side runner (see the package docstring)."""

from . import main

main()
