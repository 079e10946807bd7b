"""The public API is stable: every name in ``cartokit.__all__`` is one object, whatever is imported.

A name that is also a submodule's name changes under the user: ``cartokit.distill`` was the
function on first access and the submodule once anything imported ``cartokit.distill``, after
which ``ck.distill(...)`` raised "'module' object is not callable". Importing submodules must
never rebind a public name, so each check runs in a fresh interpreter, where nothing but
``cartokit`` itself has been imported yet.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import cartokit

ROOT = Path(__file__).resolve().parents[1]

# Run in a fresh interpreter: take every public name (twice: a lazy name must give the same
# object on its second access too), import each submodule in turn, and after each one note
# the names that now resolve to another object. A submodule that cannot be imported for want
# of an optional dependency is reported with the reason instead.
PROBE = r"""
import importlib, json, pkgutil, sys
import cartokit

def missing_dependency(err):
    while err is not None:
        name = getattr(err, "name", None)
        if isinstance(err, ModuleNotFoundError) and name and not name.startswith("cartokit"):
            return f"needs {name}, which is not installed"
        if isinstance(err, ImportError) and "pip install" in str(err):
            return str(err)
        err = err.__cause__
    return None

before = {name: getattr(cartokit, name) for name in cartokit.__all__}
report = {"unstable": sorted(n for n in before if getattr(cartokit, n) is not before[n]),
          "modules": {}}
for info in pkgutil.walk_packages(cartokit.__path__, "cartokit."):
    try:
        importlib.import_module(info.name)
    except ImportError as err:
        reason = missing_dependency(err)
        if reason is None:
            raise
        report["modules"][info.name] = {"skipped": reason}
        continue
    changed = sorted(n for n in before if getattr(cartokit, n) is not before[n])
    report["modules"][info.name] = {"changed": changed}
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def probe() -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def submodule_names() -> list[str]:
    """Every module of the package, found on disk (without importing any of them)."""
    names = []
    for info in pkgutil.iter_modules(cartokit.__path__, "cartokit."):
        names.append(info.name)
        if info.ispkg:
            path = [str(Path(cartokit.__path__[0]) / info.name.split(".")[-1])]
            names += [sub.name for sub in pkgutil.iter_modules(path, info.name + ".")]
    return sorted(names)


def test_every_public_name_resolves():
    for name in cartokit.__all__:
        try:
            getattr(cartokit, name)
        except ImportError as err:  # a lazy name whose optional dependency is missing
            assert "pip install" in str(err), f"cartokit.{name}: {err}"


def test_lazy_names_give_one_object_from_the_first_access(probe):
    assert probe["unstable"] == []


@pytest.mark.parametrize("module", submodule_names())
def test_importing_a_submodule_rebinds_no_public_name(probe, module):
    result = probe["modules"].get(module)
    assert result is not None, f"{module} was not reached by pkgutil.walk_packages"
    if "skipped" in result:
        pytest.skip(f"{module}: {result['skipped']}")
    assert result["changed"] == [], (
        f"importing {module} rebinds cartokit.{result['changed']}: a public name must not be a "
        "submodule's name"
    )


def test_no_public_name_is_a_submodule_name():
    modules = {info.name for info in pkgutil.iter_modules(cartokit.__path__)}
    assert "distillation" in modules and "distill" not in modules
    assert sorted(set(cartokit.__all__) & modules) == []


def test_distill_is_the_function_after_its_module_is_imported():
    import cartokit.distillation

    with pytest.warns(DeprecationWarning, match=r"use cartokit\.distillation\.distill$"):
        assert cartokit.distill is cartokit.distillation.distill
    assert callable(cartokit.distillation.distill)


MOVED_OUT_OF_THE_CORE = {
    "DataMapExplorer": "cartokit.widgets",
    "ReviewWidget": "cartokit.widgets",
    "ReviewSession": "cartokit.review",
    "apply_review": "cartokit.review",
    "benchmark_detection": "cartokit.detection",
    "distill": "cartokit.distillation",
    "map_agreement": "cartokit.transfer",
}


@pytest.mark.parametrize("name", sorted(MOVED_OUT_OF_THE_CORE))
def test_a_name_that_left_the_core_warns_with_its_new_home_and_resolves(name):
    import importlib

    home = MOVED_OUT_OF_THE_CORE[name]
    try:
        module = importlib.import_module(home)
    except ImportError as err:  # the widgets extra
        pytest.skip(f"{home}: {err}")
    assert name not in cartokit.__all__
    with pytest.warns(DeprecationWarning, match=rf"^cartokit\.{name} is deprecated; use {home}"):
        old = getattr(cartokit, name)
    assert old is getattr(module, name)


def test_add_label_noise_left_the_core_for_inject_noise():
    with pytest.warns(DeprecationWarning, match=r"use cartokit\.noise\.inject_noise$"):
        assert cartokit.add_label_noise is cartokit.inject_noise


def test_an_unknown_name_is_an_attribute_error_without_a_warning(recwarn):
    with pytest.raises(AttributeError, match=r"module 'cartokit' has no attribute 'nope'"):
        cartokit.nope  # noqa: B018
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


def test_language_model_names_are_in_the_core():
    """``ck.SequenceRecorder`` (loaded on first use: it needs torch) and ``ck.select_s2l``
    (eager: scikit-learn is imported only when it clusters)."""
    code = (
        "import sys, cartokit as ck\n"
        "assert {'torch', 'sklearn'}.isdisjoint(sys.modules), 'import cartokit imported them'\n"
        "import cartokit.s2l, cartokit.sequence\n"
        "assert ck.select_s2l is cartokit.s2l.select_s2l\n"
        "assert ck.SequenceRecorder is cartokit.sequence.SequenceRecorder\n"
        "assert {'SequenceRecorder', 'select_s2l'} <= set(ck.__all__) <= set(dir(ck))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_store_and_merge_names_are_in_the_core():
    """``ck.open_dynamics`` and ``ck.merge_dynamics``, loaded on first use: ``import cartokit``
    imports neither the store nor the merge."""
    code = (
        "import sys, cartokit as ck\n"
        "assert {'cartokit.store', 'cartokit.merge'}.isdisjoint(sys.modules), 'imported'\n"
        "import cartokit.merge, cartokit.store\n"
        "assert ck.open_dynamics is cartokit.store.open_dynamics\n"
        "assert ck.merge_dynamics is cartokit.merge.merge_dynamics\n"
        "assert {'open_dynamics', 'merge_dynamics'} <= set(ck.__all__) <= set(dir(ck))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
