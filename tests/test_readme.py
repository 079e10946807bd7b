"""Every code block of README.md runs, in order, as a reader would paste them.

Python blocks run one after another in one namespace, in a fresh working folder, so a name
defined in one block is there in the next, as in a notebook. Shell blocks run line by line
with bash, with this venv's ``bin`` first on ``PATH``. A block whose fence says ``fragment``
(```` ```python fragment: needs your own model ````) needs the reader's own objects or takes
minutes; it is skipped with that reason, visibly, never silently.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<code>.*?)^```\s*$", re.M | re.S)


@dataclass
class Block:
    line: int
    language: str
    fragment: str | None  # the reason, for a block that is not run
    code: str

    @property
    def name(self) -> str:
        return f"line{self.line}-{self.language}"


def readme_blocks(text: str) -> list[Block]:
    blocks = []
    for match in FENCE.finditer(text):
        info = match["info"].strip()
        language, _, rest = info.partition(" ")
        fragment = None
        if rest.startswith("fragment"):
            fragment = rest.removeprefix("fragment").lstrip(": ").strip() or "a fragment"
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(line, language or "text", fragment, match["code"]))
    return blocks


BLOCKS = [b for b in readme_blocks(README.read_text(encoding="utf-8")) if b.language != "text"]


def test_the_readme_has_code_to_run():
    assert sum(b.fragment is None and b.language == "python" for b in BLOCKS) >= 5
    assert {b.language for b in BLOCKS} <= {"python", "bash"}, "a block without a runner"


def test_fences_parse_fragments_and_their_reasons():
    text = "a\n```python fragment: needs your model\nx = 1\n```\n```bash\nls\n```\n"
    first, second = readme_blocks(text)
    assert (first.language, first.fragment, first.code, first.line) == (
        "python",
        "needs your model",
        "x = 1\n",
        2,
    )
    assert (second.language, second.fragment) == ("bash", None)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The reader's session: one namespace and one working folder for the whole README."""
    return {"namespace": {"__name__": "__readme__"}, "cwd": tmp_path_factory.mktemp("readme")}


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_readme_block(block: Block, session: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    if block.fragment is not None:
        pytest.skip(f"README line {block.line}: fragment, not run: {block.fragment}")
    monkeypatch.chdir(session["cwd"])
    if block.language == "python":
        code = compile(block.code, f"README.md, block at line {block.line}", "exec")
        exec(code, session["namespace"])  # noqa: S102 - the README's own code, on purpose
        return
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for command in block.code.splitlines():
        command = command.split(" #")[0].strip()
        if not command or command.startswith("#"):
            continue
        done = subprocess.run(
            ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, (
            f"README line {block.line}: `{command}` exited {done.returncode}\n{done.stderr[-3000:]}"
        )
