"""`python -m backprop` runs the digits demo."""

from .demo import main

main()
