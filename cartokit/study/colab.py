"""The notebooks on Google Colab: their "Open in Colab" addresses and badges, what their install
cell installs, and the widget manager that the live explorer needs there.

``tests/test_notebooks.py`` checks that the notebooks' badges and install cells agree with
:data:`GITHUB_REPO` and :data:`INSTALL_SPEC`.
"""

from __future__ import annotations

import sys

from cartokit import __version__

__all__ = ["GITHUB_REPO", "INSTALL_SPEC", "colab_badge", "colab_url", "enable_colab_widgets"]

#: GitHub ``owner/name`` of the public repository. The notebooks' "Open in Colab" badges and
#: install cells point at it: set it when the repository is published, and update the
#: notebooks' first cells to match.
GITHUB_REPO = "cartokit/cartokit"

#: What the notebooks' install cell installs where cartokit is missing (Colab): the package
#: (its wheel, which carries the notebooks), at the version the notebooks belong to; not a
#: source checkout. Notebook 05 adds the ``cleanlab`` extra.
INSTALL_SPEC = f"cartokit[hf,widgets,notebooks]=={__version__}"


def colab_url(notebook: str) -> str:
    """The "Open in Colab" address of a notebook of this repository (see :data:`GITHUB_REPO`).

    >>> colab_url("02_map")
    'https://colab.research.google.com/github/cartokit/cartokit/blob/main/notebooks/02_map.ipynb'
    """
    return (
        f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/main/notebooks/"
        f"{notebook}.ipynb"
    )


def colab_badge(notebook: str) -> str:
    """The markdown of a notebook's "Open in Colab" badge."""
    return (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({colab_url(notebook)})"
    )


def enable_colab_widgets() -> bool:
    """On Google Colab, turn on the custom widget manager that bqplot needs; elsewhere, nothing.

    Colab then loads the widgets' JavaScript from a public CDN. Returns whether it ran.
    """
    if "google.colab" not in sys.modules:
        return False
    from google.colab import output  # type: ignore[import-not-found]

    output.enable_custom_widget_manager()
    return True
