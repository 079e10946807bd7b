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


def check_thin_notebook(name: str, forbidden: tuple[str, ...] = ("import torch",)) -> list[dict]:
    """Assert the shape every study notebook keeps, and return its code cells.

    The parameters cell comes first, one literal per line with an inline comment; the title has
    the Colab badge and a measured run time; the second cell installs cartokit only where it is
    missing; outputs are stripped; no cell defines a function or class or holds ``forbidden``
    text; the last cell holds the hidden checks, at least 8 asserts with messages.
    """
    import ast

    from cartokit import study

    nb = load(name)
    cells = code_cells(nb)
    assert cells[0]["metadata"].get("tags") == ["parameters"]
    lines = [line for line in source(cells[0]).splitlines() if line.strip()]
    for line, node in zip(lines, ast.parse(source(cells[0])).body, strict=True):
        assert isinstance(node, ast.AnnAssign | ast.Assign), line
        ast.literal_eval(node.value)
        assert re.search(r"  # \S", line), f"no inline comment on {line!r}"
    title = source(nb["cells"][0])
    assert study.colab_badge(name) in title
    assert re.search(r"it takes about \d+ s on 2 CPU cores", title)
    assert 'if importlib.util.find_spec("cartokit") is None:' in source(cells[1])
    for cell in cells:
        assert cell["outputs"] == [] and cell["execution_count"] is None
        for node in ast.walk(ast.parse(python_of(source(cell)))):
            assert not isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Lambda)
        for inline in ("set_num_threads", "perf_counter", *forbidden):
            assert inline not in source(cell), f"{inline} in a cell"
    checks = cells[-1]
    assert checks["metadata"]["jupyter"]["source_hidden"] is True
    asserts = [n for n in ast.walk(ast.parse(source(checks))) if isinstance(n, ast.Assert)]
    assert len(asserts) >= 8 and all(a.msg is not None for a in asserts)
    assert 'print("checks passed")' in source(checks)
    return cells


def check_parameters_validated(name: str) -> dict:
    """Assert the parameters cell agrees with the schema and the third cell validates every
    parameter by name; return the defaults."""
    import ast

    from cartokit import study

    defaults = study.read_parameters_cell(NOTEBOOK_DIR / f"{name}.ipynb")
    assert set(defaults) <= set(study.SCHEMA), set(defaults) - set(study.SCHEMA)
    study.validate_params(notebook=name, **defaults)
    call = next(
        node
        for node in ast.walk(ast.parse(python_of(source(code_cells(load(name))[2]))))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "validate_params"
    )
    assert {k.arg: k.value.id for k in call.keywords if k.arg != "notebook"} == {
        p: p for p in defaults
    }
    return defaults
