"""``python -m journeyscope``: the same as the ``journeyscope`` command."""

from journeyscope.cli import main

main()
