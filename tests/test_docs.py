"""The documentation site builds in strict mode (mkdocs.yml, docs/): a broken cross-reference,
in a page or in a docstring, or a public name without a docstring fails the build. The notebooks
render from their committed (unexecuted) copies here; ``make docs`` renders executed ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("mkdocs", reason="the documentation site needs cartokit[docs]")
pytest.importorskip("mkdocstrings", reason="the documentation site needs cartokit[docs]")


def build(tmp_path: Path, root: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "CARTOKIT_DOCS_NOTEBOOKS": str(ROOT / "notebooks"), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site"),
         "--config-file", str(root / "mkdocs.yml")],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_the_site_builds_strictly_with_every_page(tmp_path):
    done = build(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    site = tmp_path / "site"
    for page in ["index.html", "concepts/index.html", "cli/index.html", "architecture/index.html",
                 "api/tracking/index.html"]:  # fmt: skip
        assert (site / page).is_file(), page
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert (site / "notebooks" / notebook.stem / "index.html").is_file(), notebook.name
    cli = (site / "cli" / "index.html").read_text()
    assert "cartokit run" in cli and "--preset" in cli  # from --help
    tracking = (site / "api" / "tracking" / "index.html").read_text()
    assert 'id="cartokit.tracking.make_trackers"' in tracking  # from the docstrings


def test_the_docstring_checks_catch_a_broken_reference_and_a_missing_docstring(tmp_path, caplog):
    """The Griffe extension of the build, on a tiny package: what it logs as warnings is what
    fails the strict build above."""
    import griffe

    package = tmp_path / "cartokit_probe"
    package.mkdir()
    (package / "__init__.py").write_text(
        '"""A probe: :func:`good` exists, :func:`~cartokit_probe.gone` does not; :math:`x^2`."""\n'
        '__all__ = ["good", "bare", "Thing"]\n\n'
        'def good():\n    """Fine.\n\n    >>> good()\n    """\n\n'
        "def bare():\n    pass\n\n"
        'class Thing:\n    """See :attr:`size` and :meth:`grow`."""\n\n'
        "    def __init__(self):\n        self.size = 1\n\n"
        "    def grow(self):\n        pass\n"
    )
    extension = griffe.load_extensions(f"{ROOT / 'docs' / 'griffe_cartokit.py'}:CartokitDocstrings")
    with caplog.at_level("WARNING", logger="mkdocs.plugins.cartokit"):
        probe = griffe.load(
            "cartokit_probe", search_paths=[str(tmp_path)], extensions=extension,
            docstring_parser="numpy",
        )  # fmt: skip
    warnings = [r.getMessage() for r in caplog.records]
    assert any("broken cross-reference '~cartokit_probe.gone'" in w for w in warnings), warnings
    assert not any("'good'" in w or "'size'" in w or "'grow'" in w for w in warnings), warnings
    missing = sorted(w.split(": ")[1] for w in warnings if "has no docstring" in w)
    assert missing == [
        "cartokit_probe.Thing.grow has no docstring",
        "cartokit_probe.bare has no docstring",
    ]
    assert "$x^2$" in probe.docstring.value and "`gone`" in probe.docstring.value
    assert "Examples\n--------\n>>> good()" in probe["good"].docstring.value
