"""The Hugging Face ``datasets`` library for the data tests, when the hf extra is installed,
and JSON-lines files for it to load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

try:
    import datasets
except ImportError:  # the hf extra is optional
    datasets = None
needs_datasets = pytest.mark.skipif(
    datasets is None, reason='the Hugging Face tests need pip install "cartokit[hf]"'
)


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)
