"""``python -m journeyscope``: the same as the ``journeyscope`` command."""

from journeyscope.cli import main

if __name__ == "__main__":  # the server's worker processes import the main module again
    main()
