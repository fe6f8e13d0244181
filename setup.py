"""Build the engine's optional C helpers; everything else is declared in pyproject.toml.

``optional=True``: without a compiler the package still installs and the engine uses the
pure-Python twins in ``agentgw/engine/heads.py``.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "agentgw.engine._speedups",
            ["src/agentgw/engine/_speedups.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
