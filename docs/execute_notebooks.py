"""Execute every notebook of ``notebooks/`` for the documentation site, into a build folder.

``python docs/execute_notebooks.py [FOLDER]`` (default ``build/docs``) writes the executed
copies to ``FOLDER/notebooks``, where ``docs/hooks.py`` reads them. Notebooks 01-04 run as one
study (``cartokit run``, at the size CI runs them); the others run with papermill at their own
defaults, each with its outputs under ``FOLDER/outputs``. A copy whose source notebook has not
changed since it was executed (the source's SHA-256 is kept in its metadata) is reused, so that
a second ``make docs`` executes nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
STUDY_ARGS = ["-p", "epochs=6", "-p", "seeds=[0]"]  # as tests/test_notebooks.py's CI run


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_current(source: Path, executed: Path) -> bool:
    if not executed.is_file():
        return False
    meta = json.loads(executed.read_text(encoding="utf-8"))["metadata"]
    return meta.get("cartokit_docs", {}).get("source_sha256") == digest(source)


def stamp(source: Path, executed: Path, target: Path) -> None:
    """Copy ``executed`` to ``target`` with the source's digest in its metadata."""
    notebook = json.loads(executed.read_text(encoding="utf-8"))
    notebook["metadata"]["cartokit_docs"] = {"source_sha256": digest(source)}
    target.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def run_study(folder: Path, names: list[str]) -> None:
    out = folder / "outputs" / "study"
    argv = ["run", "--out", str(out), "--quiet", *STUDY_ARGS]
    code = f"from cartokit.cli import main; raise SystemExit(main({argv!r}))"
    if subprocess.run([sys.executable, "-c", code], cwd=folder).returncode != 0:
        raise SystemExit(f"execute_notebooks: cartokit run failed; see {out}.failed")
    for name in names:
        stamp(NOTEBOOKS / name, out / "notebooks" / name, folder / "notebooks" / name)


def run_one(folder: Path, name: str) -> None:
    import papermill

    from cartokit import study

    out = folder / "outputs" / Path(name).stem
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    executed = folder / "outputs" / name
    papermill.execute_notebook(
        str(NOTEBOOKS / name), str(executed), parameters={"out_dir": str(out)},
        kernel_name=study.default_kernel(), cwd=str(folder / "outputs"), progress_bar=False,
    )  # fmt: skip
    stamp(NOTEBOOKS / name, executed, folder / "notebooks" / name)


def main(argv: list[str]) -> int:
    from cartokit import study

    if argv[:1] == ["--one"]:  # one notebook, in this process
        run_one(Path(argv[2]), argv[1])
        return 0
    folder = Path(argv[0] if argv else ROOT / "build" / "docs").resolve()
    (folder / "notebooks").mkdir(parents=True, exist_ok=True)
    sources = sorted(NOTEBOOKS.glob("*.ipynb"))
    stale = [p.name for p in sources if not is_current(p, folder / "notebooks" / p.name)]
    in_study = [f"{name}.ipynb" for name in study.NOTEBOOKS]
    jobs = []
    if any(name in in_study for name in stale):
        jobs.append(lambda: run_study(folder, in_study))
    # each notebook in a process of its own: papermill changes the working folder
    one = [sys.executable, __file__, "--one"]
    jobs += [
        lambda n=name: subprocess.run([*one, n, str(folder)], check=True)
        for name in stale
        if name not in in_study
    ]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:  # two notebooks at a time
        for future in [pool.submit(job) for job in jobs]:
            future.result()
    print(
        f"execute_notebooks: {len(stale)} of {len(sources)} notebooks executed in "
        f"{time.perf_counter() - started:.0f} s into {folder / 'notebooks'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
