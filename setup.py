"""Build step that pyproject.toml cannot express: the notebooks ship inside the package.

The notebooks stay in the repository's top-level ``notebooks/`` folder, their one copy, where
Colab, Binder, the tests and ``make`` find them. A wheel copies them into
``cartokit/notebooks/``, where :func:`cartokit.study.find_notebooks` looks in an installed
package (MANIFEST.in puts them in the sdist, from which ``python -m build`` makes the wheel).
Every other setting is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"


class BuildWithNotebooks(build_py):
    """``build_py``, then ``notebooks/*.ipynb`` into ``<build>/cartokit/notebooks/``."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install finds them in the checkout
            return
        found = sorted(NOTEBOOKS.glob("*.ipynb"))
        if not found:
            raise FileNotFoundError(f"No notebooks in {NOTEBOOKS}: the package needs them.")
        target = Path(self.build_lib, "cartokit", "notebooks")
        target.mkdir(parents=True, exist_ok=True)
        for notebook in found:
            shutil.copyfile(notebook, target / notebook.name)


setup(cmdclass={"build_py": BuildWithNotebooks})
