"""The dashboard's pages: one module each, with ``render(ctx)`` drawing the page for a :class:`PageContext`."""

__all__: list[str] = []
