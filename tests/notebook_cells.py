"""Reading committed notebooks as JSON, shared by the notebook tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"


def load(name: str) -> dict:
    return json.loads((NOTEBOOK_DIR / f"{name}.ipynb").read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    return "".join(cell["source"])


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def python_of(text: str) -> str:
    """Cell source as Python: IPython's %magic lines become pass."""
    return re.sub(r"^(\s*)%.*$", r"\1pass", text, flags=re.MULTILINE)
