"""``python -m mvd_edge.cli``: the same as the ``mvd-edge`` command."""

from mvd_edge.cli import main

main()
