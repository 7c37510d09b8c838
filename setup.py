"""The optional compiled OTLP decoder; everything else about the package is in pyproject.toml.

``optional=True``: where the extension cannot be built (no C compiler), the
install goes on without it and journeyscope decodes in Python, the same
results more slowly (``journeyscope.warehouse.otlp.ACCELERATED`` says which).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "journeyscope.warehouse._otlp_decode",
            sources=["src/journeyscope/warehouse/_otlp_decode.c"],
            depends=["src/journeyscope/warehouse/_otlp_wire.h"],
            optional=True,
        )
    ]
)
