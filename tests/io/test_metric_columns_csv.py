"""``cartokit metrics`` writes its CSV from plain arrays, without pandas: the same bytes as the
pandas path (``write_metrics_csv(compute_metrics(dyn))``), on awkward tables too."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from cartokit.cli import main
from cartokit.dynamics import TrainingDynamics
from cartokit.io import read_dynamics, write_allenai, write_metrics_csv
from cartokit.io._arrow import column_of, numbers_of
from cartokit.io.tables import write_metric_columns_csv
from cartokit.metrics import MissingInts, compute_metrics, metric_columns

AWKWARD_IDS = ["a,b", 'say "hi"', "naïve", "line\nbreak", "", " 7", "x'y", "z"]


def _dynamics(ids, *, seed=0, epochs=4, classes=3, class_names=None, unseen=False, extra=False):
    rng = np.random.default_rng(seed)
    n = len(ids)
    logits = rng.normal(0.0, 2.0, size=(epochs, n, classes))
    labels = rng.integers(0, classes, n)
    dyn = TrainingDynamics.from_logits(logits, labels, ids=ids, class_names=class_names)
    if not (unseen or extra):
        return dyn
    missing = np.zeros((epochs, n), dtype=bool)
    if unseen:
        missing[:, 0] = True  # never seen: NaN metrics, missing predicted label and names
        missing[1:3, 1] = True  # seen at some checkpoints only
    stats = {
        name: np.where(missing, np.nan, getattr(dyn, name)).astype(np.float32)
        for name in ("gold_prob", "margin", "sq_error")
    }
    extras = None
    if extra:
        extras = {"token_accuracy": np.where(missing, np.nan, rng.random((epochs, n)))}
    return TrainingDynamics(
        ids=dyn.ids,
        labels=dyn.labels,
        num_classes=classes,
        class_names=class_names,
        pred=np.where(missing, -1, dyn.pred),
        extras=extras,
        **stats,
    )


CASES = {
    "int ids": lambda: _dynamics(list(range(40, 0, -1))),
    "negative and huge int ids": lambda: _dynamics([-5, 2**62, 0, 3, -(2**40), 11]),
    "awkward string ids": lambda: _dynamics(AWKWARD_IDS),
    "class names, unseen samples": lambda: _dynamics(
        AWKWARD_IDS, class_names=["neg, bad", 'say "x"', "ünï"], unseen=True
    ),
    "extras (a sequence record)": lambda: _dynamics(
        [f"q{i}" for i in range(9)], classes=2, unseen=True, extra=True
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("burn_in", [0, 1])
def test_the_columns_csv_is_the_pandas_csv_byte_for_byte(tmp_path, case, burn_in):
    dyn = CASES[case]()  # 4 epochs: 4 or 3 checkpoints, no warning
    columns = metric_columns(dyn, burn_in=burn_in)
    ours = write_metric_columns_csv(dyn.ids, columns, tmp_path / "ours.csv")
    table = compute_metrics(dyn, burn_in=burn_in)
    theirs = write_metrics_csv(table, tmp_path / "pandas.csv")
    assert ours.read_bytes() == theirs.read_bytes()
    assert list(columns) == list(table.columns)


def test_few_checkpoints_warn_as_compute_metrics_does():
    dyn = _dynamics(list(range(5)), epochs=2)
    with pytest.warns(UserWarning, match=r"^compute_metrics uses 2 checkpoint\(s\)") as caught:
        metric_columns(dyn)
    assert caught[0].filename == __file__  # the warning points at the caller's line


def test_metric_columns_refuses_a_store_like_record():
    class Blocks:
        blocks = ()
        num_epochs = 3

    with pytest.raises(TypeError, match="compute_metrics, which reads them block by block"):
        metric_columns(Blocks())  # type: ignore[arg-type]


def _pandas_csv(values: dict[str, object]) -> bytes:
    out = io.BytesIO()
    pacsv.write_csv(pa.Table.from_pandas(pd.DataFrame(values), preserve_index=False), out)
    return out.getvalue()


def _our_csv(values: dict[str, object], masks: dict[str, np.ndarray]) -> bytes:
    out = io.BytesIO()
    arrays = [column_of(np.asarray(v), masks.get(k)) for k, v in values.items()]
    pacsv.write_csv(pa.table(arrays, names=list(values)), out)
    return out.getvalue()


def test_column_of_makes_the_arrays_of_from_pandas():
    values = {
        "floats": np.array([0.1, np.nan, -np.inf, 1e-300, 2.5]),
        "float32": np.array([0.1, np.nan, 3.0, -0.0, 7.25], dtype=np.float32),
        "ints": np.array([0, -1, 2**63 - 1, 5, 7]),
        "int8": np.array([1, -2, 3, 4, 5], dtype=np.int8),
        "uint16": np.array([1, 2, 65535, 4, 5], dtype=np.uint16),
        "bools": np.array([True, False, True, True, False]),
        "text": np.array(["a,b", 'q"uote', "ünï", None, "line\nbreak"], dtype=object),
    }
    assert _our_csv(values, {}) == _pandas_csv(values)
    # a masked int column is pandas' nullable Int64
    mask = np.array([False, True, False, False, True])
    ours = _our_csv({"n": values["ints"]}, {"n": mask})
    assert ours == _pandas_csv({"n": pd.arrays.IntegerArray(values["ints"], mask)})
    # anything else goes through pyarrow.array
    fixed_width = np.array(["a", "b,c"])
    assert _our_csv({"u": fixed_width}, {}) == _pandas_csv({"u": fixed_width})


def test_numbers_of_reads_a_slice_and_refuses_nulls():
    array = column_of(np.arange(10, dtype=np.int64))
    assert numbers_of(array.slice(3, 4)).tolist() == [3, 4, 5, 6]
    with pytest.raises(TypeError, match="without nulls"):
        numbers_of(column_of(np.arange(3.0), np.array([False, True, False])))


def _allenai_folder(tmp_path: Path, ids) -> Path:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4, len(ids), 3))
    dyn = TrainingDynamics.from_logits(logits, rng.integers(0, 3, len(ids)), ids=ids)
    return write_allenai(dyn, tmp_path / "run", logits=logits).parent


@pytest.mark.parametrize("ids", [list(range(60)), [f"g,{i}" for i in range(60)]])
def test_cli_csv_is_the_pandas_csv_of_the_same_folder(tmp_path, ids, capsys):
    run = _allenai_folder(tmp_path, ids)
    assert main(["metrics", str(run), "-o", str(tmp_path / "cli.csv")]) == 0
    err = capsys.readouterr().err
    table = compute_metrics(read_dynamics(run))
    write_metrics_csv(table, tmp_path / "pandas.csv")
    assert (tmp_path / "cli.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()
    from cartokit.regions import Thresholds, assign_regions, region_counts

    counts = region_counts(assign_regions(table, Thresholds()))
    summary = ", ".join(f"{name} {int(n)}" for name, n in counts.items())
    assert f"regions (default thresholds): {summary};" in err


def test_cli_metrics_on_an_allenai_folder_imports_no_pandas(tmp_path):
    run = _allenai_folder(tmp_path, list(range(30)))
    code = (
        "import json, sys\n"
        "from cartokit.cli import main\n"
        f"assert main(['metrics', {str(run)!r}, '-o', {str(tmp_path / 'm.csv')!r}]) == 0\n"
        "heavy = ('pandas', 'torch', 'matplotlib', 'pyarrow.compute')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == []
    assert pd.read_csv(tmp_path / "m.csv").shape[0] == 30


def test_missing_ints_become_a_nullable_column():
    dyn = _dynamics(list(range(6)), unseen=True)
    columns = metric_columns(dyn)
    assert isinstance(columns["predicted_label"], MissingInts)
    assert columns["predicted_label"].missing.tolist() == [True] + [False] * 5
    table = compute_metrics(dyn)
    assert str(table["predicted_label"].dtype) == "Int64"
    assert table["predicted_label"].isna().tolist() == [True] + [False] * 5


def test_import_cartokit_imports_no_pandas_and_its_names_still_resolve():
    code = (
        "import sys, cartokit as ck\n"
        "assert 'pandas' not in sys.modules, 'import cartokit imported pandas'\n"
        "assert ck.compute_metrics is __import__('cartokit.metrics').metrics.compute_metrics\n"
        "assert ck.regions.REGIONS == ck.REGIONS\n"  # a submodule that was eager still resolves
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
