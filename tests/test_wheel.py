"""The wheel works outside the repository: ``python -m build`` makes a wheel and an sdist from a
copy of the source, the wheel is installed with its extras into a fresh venv, and ``cartokit
run --preset digits`` runs from a folder outside the repository, finding the notebooks that the
wheel carries as package data.

What it proves, and what it does not
------------------------------------
* The sdist holds the notebooks and the wheel built from it (``python -m build``'s own path:
  sdist first, wheel from the unpacked sdist) holds ``cartokit/notebooks/*.ipynb`` and the
  presets.
* The fresh venv has no cartokit but the wheel's: it is a new ``python -m venv``, the repository
  is not on ``PYTHONPATH`` and the commands run in a folder outside it; the test checks that
  ``import cartokit`` there resolves inside the venv. The notebook kernel is that venv's
  interpreter (papermill's ``python3`` kernel is ``sys.executable``), so it imports the same.
* Its dependencies are not downloaded again (minutes, and no network in CI): the venv sees the
  project venv's installed packages, minus cartokit, through a ``.pth`` file. The wheel goes in
  with ``pip install --no-deps``, and then every requirement it declares, with the extras of
  ``cartokit[all]``, is checked against what that venv imports (name present, version in
  range); one missing or out of range fails the test. ``pip install --no-index
  'cartokit[all] @ <wheel>'`` would check the same and walk the whole transitive tree too,
  which takes ~40 s here; the transitive tree is the project venv's, which pip installed. It
  does not prove that PyPI serves compatible versions of them today.
* The study runs with the preset's parameters, shrunk by ``-p`` (epochs, samples, subsets and
  seeds) to keep CI fast; the full preset runs the same notebooks for longer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: What a source distribution is built from.
SOURCES = ("cartokit", "notebooks", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
SHRINK = [
    "epochs=6",
    "max_samples=300",
    "seeds=[0]",
    "selectors=[full, ambiguous]",
    "curve_fractions=[]",
    "mixtures=[]",
    "num_examples=2",
]


def copy_sources(target: Path) -> Path:
    """The files a build reads, without caches, build folders or a stale egg-info."""
    ignore = shutil.ignore_patterns(
        "__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info", "build", "dist"
    )
    target.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)
    return target


def base_site(target: Path) -> Path:
    """The project venv's installed packages, minus cartokit: a folder of links to them."""
    target.mkdir()
    for key in ("purelib", "platlib"):
        for entry in Path(sysconfig.get_paths()[key]).iterdir():
            name = entry.name.lower()
            if "cartokit" in name or entry.suffix == ".pth" or (target / entry.name).exists():
                continue
            (target / entry.name).symlink_to(entry)
    return target


#: Run by the fresh venv's Python: each requirement the installed wheel declares, with the
#: extras of ``cartokit[all]`` (its self-references followed), is installed and in range.
CHECK_REQUIREMENTS = """
import importlib.metadata as metadata
from packaging.requirements import Requirement

declared = [Requirement(text) for text in metadata.requires("cartokit") or []]
extras, grew = {"all"}, True
while grew:
    size = len(extras)
    for req in declared:
        if req.name == "cartokit" and any(req.marker.evaluate({"extra": e}) for e in extras):
            extras |= req.extras
    grew = len(extras) > size
problems, checked = [], 0
for req in declared:
    wanted = req.marker is None or any(req.marker.evaluate({"extra": e}) for e in {"", *extras})
    if req.name == "cartokit" or not wanted:
        continue
    checked += 1
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        problems.append(f"{req} is not installed")
        continue
    if not req.specifier.contains(version, prereleases=True):
        problems.append(f"{req} but {version} is installed")
assert not problems, problems
print(checked, ",".join(sorted(extras)))
"""


def run(command: list[str], **options) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, **options)
    assert done.returncode == 0, (
        f"{command[:4]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done


def test_the_wheel_runs_a_study_outside_the_repository(tmp_path):
    pytest.importorskip(
        "build", reason="python -m build needs 'build': pip install 'cartokit[dev]'"
    )
    pytest.importorskip("papermill", reason="cartokit run needs papermill: cartokit[notebooks]")
    timings = {}
    tick = time.perf_counter()
    source = copy_sources(tmp_path / "src")
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)])
    (wheel,) = dist.glob("cartokit-*.whl")
    (sdist,) = dist.glob("cartokit-*.tar.gz")
    timings["build"] = time.perf_counter() - tick
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n for n in names if n.startswith("cartokit/notebooks/"))
    assert shipped == [
        f"cartokit/notebooks/{p.name}" for p in sorted(ROOT.glob("notebooks/*.ipynb"))
    ]
    assert "cartokit/presets/digits.yaml" in names

    tick = time.perf_counter()
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    site = Path(
        run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
        ).stdout.strip()
    )
    (site / "project_packages.pth").write_text(f"{base_site(tmp_path / 'base')}\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CARTOKIT_NOTEBOOKS")}
    env.update(
        # no kernelspec of the project venv (a registered "cartokit" kernel runs its Python)
        JUPYTER_PATH="",
        JUPYTER_DATA_DIR=str(tmp_path / "jupyter"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INDEX="1",
    )
    run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", str(wheel)],
        cwd=outside, env=env,
    )  # fmt: skip
    checked = run([str(python), "-c", CHECK_REQUIREMENTS], cwd=outside, env=env).stdout.split()
    assert int(checked[0]) >= 20 and {"hf", "widgets", "notebooks"} <= set(checked[1].split(","))
    timings["install"] = time.perf_counter() - tick
    where = run(
        [str(python), "-c", "import cartokit; print(cartokit.__file__)"], cwd=outside, env=env
    )
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout
    assert ROOT not in Path(where.stdout.strip()).parents

    tick = time.perf_counter()
    params = [a for p in SHRINK for a in ("-p", p)]
    study = run(
        [str(venv / "bin" / "cartokit"), "run", "--preset", "digits", "--out", "runs/digits",
         "--quiet", *params],
        cwd=outside, env=env, timeout=300,
    )  # fmt: skip
    timings["study"] = time.perf_counter() - tick
    out = outside / "runs" / "digits"
    assert (out / "report.md").is_file(), study.stderr
    executed = json.loads((out / "notebooks" / "01_train_and_record.ipynb").read_text())
    read_from = Path(executed["metadata"]["papermill"]["input_path"])
    assert read_from.parent == site / "cartokit" / "notebooks", read_from
    assert json.loads((out / "run.json").read_text())["params"]["epochs"] == 6
    print(
        f"wheel test: build {timings['build']:.1f} s, venv and install {timings['install']:.1f} s, "
        f"study {timings['study']:.1f} s; {wheel.name} {wheel.stat().st_size // 1024} KiB, "
        f"{sdist.name} {sdist.stat().st_size // 1024} KiB"
    )
