"""MkDocs hooks of the documentation site (mkdocs.yml): pages made at build time.

- ``cli.md``: the command line reference, from ``cartokit --help`` and each subcommand's help;
- ``architecture.md``: ``ARCHITECTURE.md``, as it is in the repository;
- ``notebooks/*.ipynb``: every notebook of ``notebooks/``, in its executed copy from
  ``CARTOKIT_DOCS_NOTEBOOKS`` (default ``build/docs/notebooks``, which ``make docs`` fills with
  ``docs/execute_notebooks.py``), listed under "Notebooks" in the navigation. A notebook with
  no executed copy there fails the build, naming the command that makes one.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def executed_folder() -> Path:
    """Where the executed notebooks are read from."""
    return Path(os.environ.get("CARTOKIT_DOCS_NOTEBOOKS", ROOT / "build" / "docs" / "notebooks"))


def _title(path: Path) -> str:
    """A notebook's first Markdown heading, without its ``#``."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return path.stem


def on_config(config: Any) -> Any:
    """Fill the navigation's "Notebooks" section from ``notebooks/*.ipynb``."""
    pages = [{_title(p): f"notebooks/{p.name}"} for p in sorted(NOTEBOOKS.glob("*.ipynb"))]
    for entry in config["nav"]:
        if isinstance(entry, dict) and "Notebooks" in entry:
            entry["Notebooks"] = pages
    return config


def _help(parser: argparse.ArgumentParser) -> str:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        with contextlib.suppress(SystemExit):
            parser.parse_args(["--help"])
    return out.getvalue()


def cli_reference() -> str:
    """The command line reference as Markdown: the main help, then each subcommand's."""
    from cartokit.cli import build_parser

    parser = build_parser()
    parts = [
        "# Command line\n",
        "Generated from `cartokit --help` and `cartokit COMMAND --help` at each build.\n",
        f"```text\n{_help(parser).rstrip()}\n```\n",
    ]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                parts.append(f"## `cartokit {name}`\n\n```text\n{_help(sub).rstrip()}\n```\n")
    return "\n".join(parts)


@event_priority(100)  # before mkdocs-jupyter looks for notebooks among the files
def on_files(files: Files, config: Any) -> Files:
    """Add the generated pages and the executed notebooks."""
    files.append(File.generated(config, "cli.md", content=cli_reference()))
    architecture = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    files.append(File.generated(config, "architecture.md", content=architecture))
    folder = executed_folder().resolve()
    if folder.name != "notebooks":
        raise PluginError(f"docs: CARTOKIT_DOCS_NOTEBOOKS must name a 'notebooks' folder: {folder}")
    for source in sorted(NOTEBOOKS.glob("*.ipynb")):
        executed = folder / source.name
        if not executed.is_file():
            raise PluginError(
                f"docs: no executed copy of notebooks/{source.name} in {folder}; run "
                "`make docs` (it executes the notebooks), or set CARTOKIT_DOCS_NOTEBOOKS to a "
                "folder that has one."
            )
        # a plain File (mkdocs-jupyter wraps it and reads it from src_dir/src_uri)
        files.append(
            File(
                f"notebooks/{source.name}",
                src_dir=str(folder.parent),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files
