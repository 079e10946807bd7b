"""cartokit.study.report: the results table (the paper's Table 1), above_chance, and the run's
report.md."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from study_helpers import fake_results, synthetic_metrics

from cartokit import REGIONS, study
from cartokit.study.report import _human_sentence


def test_results_table_and_markdown_mark_the_best_of_each_column():
    results = fake_results()
    table = study.results_table(results)
    assert list(table.index) == ["full 100%", "random 33%", "ambiguous 33%"]
    assert table.loc["full 100%", "test mean"] == pytest.approx(0.905)
    assert table.loc["full 100%", "test std"] == pytest.approx(np.std([0.9, 0.91], ddof=1))
    text = study.results_markdown(table)
    lines = text.splitlines()
    assert lines[0] == "| subset | size | test (ID) | rotated (OOD) |"
    assert lines[2] == "| full 100% | 100 | **90.5 ± 0.7** | 50.5 ± 0.7 |"
    assert lines[4] == "| ambiguous 33% | 100 | 70.5 ± 0.7 | **60.5 ± 0.7** |"
    one_seed = study.results_markdown(study.results_table(fake_results(seeds=(0,))))
    assert "| full 100% | 100 | **90.0** | 50.0 |" in one_seed


def test_above_chance():
    results = fake_results()
    assert study.above_chance(results, 2) is True  # 0.905 >= 0.5 + 0.5 / 3
    assert study.above_chance(results.assign(accuracy=0.6), 2) is False
    assert study.above_chance(results[results["selector"] != "full"], 2) is None


def test_save_results_writes_csv_and_markdown(tmp_path):
    study.save_results(tmp_path, fake_results())
    assert len(pd.read_csv(tmp_path / "results.csv")) == 12
    assert (tmp_path / "results.md").read_text().startswith("| subset | size |")


def test_report_embeds_the_map_the_table_and_the_human_comparison(tmp_path):
    run = tmp_path
    (run / "figures").mkdir()
    for name in ("data_map.png", "results_bars.png", "fraction_curve.png", "human_scores.png"):
        (run / "figures" / name).write_bytes(b"\x89PNG")
    (run / "params.json").write_text(
        json.dumps(
            {
                "dataset": "sentiment",
                "model": "minilm",
                "epochs": 5,
                "mode": "train_pass",
                "seed": 0,
                "noise": 0.0,
            }
        )
    )
    metrics = synthetic_metrics(90)
    metrics["human_score"] = np.linspace(-4, 4, 90)
    metrics["region"] = pd.Categorical(np.array(REGIONS)[np.arange(90) % 3], categories=REGIONS)
    metrics.to_csv(run / "metrics.csv")
    study.human_agreement(metrics, run_dir=run)
    study.save_results(run, fake_results())
    report = study.write_report(run).read_text()
    assert report.startswith("# Dataset Cartography study: sentiment, minilm")
    assert "![data map](figures/data_map.png)" in report
    assert "| region | samples | share | median \\|human score\\| |" in report
    # the regions in words, apart from the subsets named after the easy and hard selectors
    assert "| easy-to-learn | 30 | 0.333 | 2.02 |" in report and "| hard-to-learn | 30 |" in report
    assert "not a region of the map" in report
    assert "| full 100% | 100 | **90.5 ± 0.7** | 50.5 ± 0.7 |" in report
    assert "## Do the map's regions match human judgement?" in report
    assert "| confidence |" in report and "Median |human score| per region: easy 2.02" in report
    assert "the humans do not rate the easy-to-learn samples as the most clear-cut" in report
    assert "![human scores per region](figures/human_scores.png)" in report
    assert "- `results.csv`" in report


def test_report_of_a_folder_with_only_metrics_assigns_the_regions(tmp_path):
    metrics = synthetic_metrics(30)
    metrics.to_csv(tmp_path / "metrics.csv")
    report = study.write_report(tmp_path).read_text()
    assert report.startswith(f"# Dataset Cartography study: {tmp_path.name}\n")
    assert "30 training samples. Thresholds: ambiguous_variability = 0.2" in report
    assert "## Retraining on subsets" not in report and "## Run" not in report
    assert report.endswith("## Files\n\n- `metrics.csv`\n")


def test_human_sentence_reads_the_signs_and_the_medians():
    agreement = pd.DataFrame(
        {"spearman": [0.37, -0.03, -0.2]}, index=["confidence", "variability", "forgetting"]
    )
    by_region = pd.DataFrame({"50%": [2.0, 1.65, 1.38]}, index=list(REGIONS))
    text = _human_sentence(agreement, by_region)
    assert "confidence ρ = 0.37 (as agreement with the humans would have it)" in text
    assert "variability ρ = -0.03 (barely related to it)" in text
    assert "forgetting ρ = -0.20 (as agreement" in text
    assert text.endswith(
        "easy 2.00, ambiguous 1.65, hard 1.38: the humans, too, find the ambiguous and "
        "hard-to-learn samples less clear-cut than the easy-to-learn ones."
    )
