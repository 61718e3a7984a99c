"""`python -m rescom.cli`, as `python -m rescom` and the `rescom` script."""

from rescom.cli import main

main()
