"""What a study found, as tables and as the run's ``report.md``.

* :func:`results_table` and :func:`results_markdown`: the retrained models' accuracy per subset,
  as mean ± std over seeds, like the paper's Table 1; :func:`save_results` writes both;
* :func:`above_chance`: whether the model trained on all the data learned anything;
* :func:`write_report`: ``report.md``, from what the notebooks wrote to the run folder (for a
  ``generative`` study, notebook 07's: the proxy's map, the corrupted replies found, small to
  large).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cartokit._files import atomic_write
from cartokit.regions import REGIONS, Thresholds, assign_regions
from cartokit.study.params import FULL, STUDIES
from cartokit.study.rundir import read_json
from cartokit.study.steps import region_table

__all__ = [
    "ABOVE_CHANCE_MARGIN",
    "above_chance",
    "results_markdown",
    "results_table",
    "save_results",
    "write_report",
]

#: Accuracy on 100 % of the data must beat chance by this share of the way from chance to
#: perfect (digits: 0.4; two classes: 0.67) for :func:`above_chance`.
ABOVE_CHANCE_MARGIN = 1 / 3


# ============================================================================ results


def results_table(results: pd.DataFrame, *, metric: str = "accuracy") -> pd.DataFrame:
    """One row per subset (in their order): its size, number of seeds, and the mean and standard
    deviation over seeds of ``metric`` on each split (columns ``<split> mean``, ``<split> std``).

    >>> rows = pd.DataFrame({"subset": ["a", "a", "b", "b"], "size": 5, "seed": [0, 1, 0, 1],
    ...                      "split": "test", "accuracy": [0.8, 0.9, 0.6, 0.6]})
    >>> results_table(rows).round(3).to_dict("index")["a"]
    {'size': 5, 'seeds': 2, 'test mean': 0.85, 'test std': 0.071}
    """
    order = list(pd.unique(results["subset"]))
    splits = list(pd.unique(results["split"]))
    stats = results.groupby(["subset", "split"], sort=False)[metric].agg(["mean", "std"])
    table = pd.DataFrame(index=pd.Index(order, name="subset"))
    first = results.groupby("subset", sort=False)
    table["size"] = first["size"].first().reindex(order)
    table["seeds"] = first["seed"].nunique().reindex(order)
    for split in splits:
        part = stats.xs(split, level="split").reindex(order)
        table[f"{split} mean"] = part["mean"]
        table[f"{split} std"] = part["std"]
    return table


def _count(n: int, noun: str) -> str:
    """``"1 seed"``, ``"3 seeds"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _md_cell(value: Any) -> str:
    return "" if pd.isna(value) else str(value).replace("|", "\\|")


def _md_table(frame: pd.DataFrame, *, index: bool = True) -> str:
    frame = frame.reset_index() if index else frame
    head = [_md_cell(c) for c in frame.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    return "\n".join(lines)


def results_markdown(table: pd.DataFrame, *, in_distribution: str = "test") -> str:
    """A :func:`results_table` as markdown, like the paper's Table 1: accuracy in percent as
    mean ± std over seeds, the best mean of each column in bold."""
    splits = [c[: -len(" mean")] for c in table.columns if c.endswith(" mean")]
    head = ["subset", "size"] + [f"{s} ({'ID' if s == in_distribution else 'OOD'})" for s in splits]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    best = {s: table[f"{s} mean"].max() for s in splits}
    for name, row in table.iterrows():
        cells = [_md_cell(name), str(int(row["size"]))]
        for s in splits:
            mean, std = row[f"{s} mean"], row[f"{s} std"]
            text = f"{100 * mean:.1f}" + ("" if pd.isna(std) else f" ± {100 * std:.1f}")
            cells.append(f"**{text}**" if np.isclose(mean, best[s]) else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save_results(run_dir: str | os.PathLike[str], results: pd.DataFrame) -> Path:
    """Write ``results.csv`` (the rows of :func:`~cartokit.study.retrain`) and ``results.md``
    (the table)."""
    run = Path(run_dir)
    with atomic_write(run / "results.csv", "w") as fh:
        results.to_csv(fh, index=False)
    with atomic_write(run / "results.md", "w") as fh:
        fh.write(results_markdown(results_table(results)) + "\n")
    return run / "results.csv"


def above_chance(
    results: pd.DataFrame, num_classes: int, *, margin: float = ABOVE_CHANCE_MARGIN
) -> bool | None:
    """Whether the model retrained on 100 % of the data beats chance on the test split by a wide
    margin: accuracy >= chance + ``margin`` * (1 - chance). ``None`` without a ``full`` subset.

    >>> rows = pd.DataFrame({"selector": ["full"], "split": ["test"], "accuracy": [0.9]})
    >>> above_chance(rows, 10), above_chance(rows.assign(accuracy=0.3), 10)
    (True, False)
    """
    full = results[(results["selector"] == FULL) & (results["split"] == "test")]
    if full.empty:
        return None
    chance = 1 / num_classes
    return bool(full["accuracy"].mean() >= chance + margin * (1 - chance))


# ============================================================================ report.md


def _human_sentence(agreement: pd.DataFrame, by_region: pd.DataFrame | None) -> str:
    """Plain words for :func:`~cartokit.study.human_agreement`'s table: each correlation's
    direction and strength, and (with ``by_region``, the ``human_by_region.csv`` of a run) the
    median human score per region."""
    rho = agreement["spearman"]
    # sign of the correlation with |human score| if the map agrees with the humans
    expected = {"confidence": 1, "variability": -1, "correctness": 1, "forgetting": -1}
    parts = []
    for metric, sign in expected.items():
        if metric not in rho or pd.isna(rho[metric]):
            continue
        value = float(rho[metric])
        if abs(value) < 0.1:
            verdict = "barely related to it"
        elif np.sign(value) == sign:
            verdict = "as agreement with the humans would have it"
        else:
            verdict = "the opposite of agreement with the humans"
        parts.append(f"{metric} ρ = {value:.2f} ({verdict})")
    text = ""
    if parts:
        text = (
            "Against the human score's magnitude (high: clear-cut, low: near neutral): "
            + "; ".join(parts)
            + "."
        )
    if by_region is not None and "50%" in by_region:
        text += _median_sentence(by_region["50%"].reindex(list(REGIONS)).dropna())
    return text.strip()


def _median_sentence(medians: pd.Series) -> str:
    text = " Median |human score| per region: " + ", ".join(
        f"{region} {value:.2f}" for region, value in medians.items()
    )
    if not {"easy", "ambiguous", "hard"} <= set(medians.index):
        return text + "."
    lower = medians["ambiguous"] < medians["easy"] and medians["hard"] < medians["easy"]
    return text + (
        ": the humans, too, find the ambiguous and hard-to-learn samples less clear-cut "
        "than the easy-to-learn ones."
        if lower
        else ": the humans do not rate the easy-to-learn samples as the most clear-cut."
    )


def _header(run: Path, params: dict[str, Any]) -> list[str]:
    title = ", ".join(str(params[k]) for k in ("dataset", "model") if k in params) or run.name
    out = [f"# Dataset Cartography study: {title}", ""]
    if params:
        noise = params.get("noise")
        out += [
            f"{params.get('epochs', '?')} epochs of training recorded ({params.get('mode', '')}), "
            f"seed {params.get('seed', 0)}"
            + (f", {noise:.0%} of the training labels flipped" if noise else "")
            + ".",
            "",
        ]
    return out


def _map_section(run: Path) -> list[str]:
    from cartokit.io import read_metrics_table
    from cartokit.plot._style import REGION_LABELS

    out = ["## Data map", ""]
    if (run / "figures" / "data_map.png").is_file():
        out += ["![data map](figures/data_map.png)", ""]
    if (run / "metrics.csv").is_file():
        metrics = read_metrics_table(run / "metrics.csv", caller="write_report")
        thresholds = read_json(run / "thresholds.json") or vars(Thresholds())
        if "region" not in metrics:
            metrics = metrics.assign(region=assign_regions(metrics, Thresholds(**thresholds)))
        out += [
            f"{len(metrics)} training samples. Thresholds: "
            + ", ".join(f"{k} = {v:g}" for k, v in thresholds.items())
            + ".",
            "",
            # the regions in the paper's words: "hard" alone would read like the subsets of
            # the hard selector, which rank the whole set and hold more samples
            _md_table(region_table(metrics).rename(index=dict(REGION_LABELS))),
            "",
        ]
    history = run / "history.csv"
    if history.is_file():
        last = pd.read_csv(history).iloc[-1]
        scores = ", ".join(
            f"{c[: -len('_accuracy')]} {100 * last[c]:.1f} %"
            for c in last.index
            if c.endswith("_accuracy")
        )
        out += [f"Accuracy of the recorded model after the last epoch: {scores}.", ""]
    return out


def _results_section(run: Path) -> list[str]:
    if not (run / "results.csv").is_file():
        return []
    results = pd.read_csv(run / "results.csv")
    out = [
        "## Retraining on subsets",
        "",
        f"A fresh model trained on each subset with {_count(results['seed'].nunique(), 'seed')}; "
        "accuracy (%) as mean ± std over seeds, the best of each column in bold (cf. "
        "Swayamdipta et al., 2020, Table 1). A subset is the share of the training set that a "
        "selector ranks first (`low_confidence 33%`: the third with the lowest confidence), not "
        "a region of the map.",
        "",
        results_markdown(results_table(results)),
        "",
    ]
    for name, alt in (
        ("results_bars.png", "accuracy per subset"),
        ("fraction_curve.png", "accuracy against the fraction"),
    ):
        if (run / "figures" / name).is_file():
            out += [f"![{alt}](figures/{name})", ""]
    return out


def _human_section(run: Path) -> list[str]:
    if not (run / "human_agreement.csv").is_file():
        return []
    agreement = pd.read_csv(run / "human_agreement.csv", index_col="metric")
    by_region = (
        pd.read_csv(run / "human_by_region.csv", index_col=0)
        if (run / "human_by_region.csv").is_file()
        else None
    )
    out = [
        "## Do the map's regions match human judgement?",
        "",
        "Each snippet carries the mean of about 20 human ratings (-4..+4; Hutto & Gilbert, "
        "2014). Spearman's ρ of each metric with the rating's magnitude |score|:",
        "",
        _md_table(agreement),
        "",
        _human_sentence(agreement, by_region),
        "",
    ]
    if (run / "figures" / "human_scores.png").is_file():
        out += ["![human scores per region](figures/human_scores.png)", ""]
    return out


def _run_section(run: Path, info: dict[str, Any]) -> list[str]:
    out = []
    if info.get("notebooks"):
        out += ["## Run", ""]
        out += [
            f"- `notebooks/{nb['name']}.ipynb`: {nb['seconds']:.1f} s" for nb in info["notebooks"]
        ]
        out += [f"- total: {info.get('seconds', 0):.1f} s", ""]
    files = sorted(
        str(p.relative_to(run))
        for p in run.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name != "report.md"
    )
    return out + ["## Files", "", *[f"- `{f}`" for f in files], ""]


def _short(text: Any, width: int = 80) -> str:
    """``text`` on one line, cut to ``width`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _figure(run: Path, name: str, alt: str) -> list[str]:
    return [f"![{alt}]({name})", ""] if (run / name).is_file() else []


def _generative_sections(run: Path, params: dict[str, Any]) -> list[str]:
    """Notebook 07's outputs: the proxy's map, the corrupted replies found, small to large."""
    from cartokit.io import read_metrics_table

    out = [f"# Generative data map study: {params.get('dataset', run.name)}", ""]
    if params:
        out += [
            f"A {params.get('proxy_size', '?')} GPT-2-style proxy trained from scratch for "
            f"{params.get('epochs', '?')} epochs on prompt → reply pairs (the prompt masked, "
            f"{params.get('max_length', '?')} tokens per pair), seed {params.get('seed', 0)}; "
            f"a {params.get('large_size', '?')} model trained on subsets chosen on its map, "
            f"each for the steps of {params.get('budget_epochs', '?')} epochs of the full set.",
            "",
        ]
    out += ["## The proxy's data map", "", *_figure(run, "data_map.png", "data map")]
    if (run / "metrics.csv").is_file():
        from cartokit.study.generative import region_replies

        metrics = read_metrics_table(run / "metrics.csv", caller="write_report")
        means = metrics[["confidence", "perplexity", "token_accuracy"]].mean()
        replies = region_replies(metrics, num_examples=int(params.get("num_examples", 5)))
        for column in ("prompt", "response"):
            replies[column] = replies[column].map(_short)
        out += [
            f"{len(metrics)} training pairs; mean confidence (geometric-mean token probability "
            f"of the reply) {means['confidence']:.3f}, mean perplexity "
            f"{means['perplexity']:.1f}, mean token accuracy {means['token_accuracy']:.3f}. "
            "The easiest (highest confidence), most ambiguous (highest variability) and "
            "hardest (lowest confidence) pairs:",
            "",
            _md_table(replies, index=False),
            "",
        ]
    if (run / "detection.csv").is_file():
        found = pd.read_csv(run / "detection.csv", index_col="score")
        share = params.get("corrupt_fraction")
        out += [
            "## Finding corrupted replies",
            "",
            (f"{share:.0%} of the training replies corrupted" if share else "Replies corrupted")
            + " (half swapped between pairs, half random words); each score of a fresh proxy's "
            "map ranks the pairs. AUROC, average precision and precision@k (k = "
            f"{int(found['k'].iloc[0])}, the corrupted pairs), overall and per kind:",
            "",
            _md_table(found.drop(columns="k").round(3)),
            "",
            *_figure(run, "corrupted_map.png", "map of the corrupted set"),
        ]
    if (run / "results_table.csv").is_file():
        from cartokit.study.generative import lm_results_markdown

        table = pd.read_csv(run / "results_table.csv", index_col="subset")
        out += [
            "## Small to large",
            "",
            "A fresh larger model trained on each subset at one equal budget of steps and "
            "scored on the held-out pairs: loss and perplexity as mean ± std over seeds, the "
            "lowest in bold. `s2l`: SmallToLarge (Yang et al., NeurIPS 2024), K-means on the "
            "proxy's loss trajectories, drawn evenly across clusters.",
            "",
            lm_results_markdown(table),
            "",
        ]
        if "perplexity vs full" in table:
            best = table.drop(index="full 100%")["perplexity mean"].idxmin()
            out += [
                f"The best subset, {best}, reaches {table.loc[best, 'perplexity vs full']:.3f} "
                "× the held-out perplexity of the full set.",
                "",
            ]
        out += _figure(run, "subset_curves.png", "held-out perplexity against the share")
    return out


def write_report(run_dir: str | os.PathLike[str]) -> Path:
    """Write ``report.md`` in the run folder from what the notebooks wrote there: parameters,
    the data map and region counts, the retraining table and figures, the comparison with human
    judgement (when the data has human scores), timings and the list of files.

    A run of the ``generative`` study (notebook 07, ``cartokit run --preset dialogue``) gets
    the proxy's map and regions, the detection table of corrupted replies, and the
    small-to-large table and curve instead."""
    run = Path(run_dir)
    info = read_json(run / "run.json", {})
    params = {**read_json(run / "params.json", {}), **info.get("params", {})}
    ran = tuple(nb["name"] for nb in info.get("notebooks", []))
    if ran == STUDIES["generative"]:
        out = _generative_sections(run, params) + _run_section(run, info)
    else:
        out = (
            _header(run, params)
            + _map_section(run)
            + _results_section(run)
            + _human_section(run)
            + _run_section(run, info)
        )
    path = run / "report.md"
    with atomic_write(path, "w") as fh:
        fh.write("\n".join(out))
    return path
