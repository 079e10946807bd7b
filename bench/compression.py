"""Compressed students on data-map subsets: the digits MLP, pruned or quantized, trained on the
full data, a random subset, the teacher map's easy, ambiguous or hard third, and the "17 %
ambiguous + 10 % easy" mixture, at an equal training budget.

For each seed: a CNN teacher trains on digits at the ``digits`` preset's size (all 1,437
training images, 10 % of their labels flipped, 20 epochs, lr 0.003) while recording its map;
the subsets come from that map; :func:`cartokit.distillation.distill_on_subsets` then distils a
fresh MLP student (128 hidden) on each subset and compresses it every way: magnitude and
structured pruning at each sparsity, each pruned copy then distilled again on its subset for
``--finetune-epochs`` (scaled as the epochs are) with its zeros held at zero, and int8 dynamic
(torchao) and static (calibrated on the subset) quantization. Accuracy is measured on the test
set (in distribution) and on its rotated copy (out of distribution).

Prints one JSON line per row (subset x compression), means over the seeds:
``{"subset", "method", "amount", "size_bytes", "nonzero_params", "id_acc", "ood_acc",
"seconds"}``, with also ``zipped_bytes`` (the saved state dict deflated), ``finetune_epochs``,
the standard deviations ``id_acc_sd`` and ``ood_acc_sd``, ``id_delta`` and ``ood_delta`` (the
accuracy minus that of the uncompressed student of the same subset and seed, paired: the
rotated test set differs by seed, so levels vary more than differences) with their standard
deviations, and ``seeds``. ``seconds`` is the row's training (the student's, plus its
fine-tuning) and compression time. The issue's targets, checked on stderr with the readable
table: int8 dynamic quantization saves at most 0.4x the float32 bytes within 2 points of
accuracy, and 50 % magnitude pruning with fine-tuning stays within 2 points, both at the full
subset.

    python bench/compression.py [--seeds 0 1 2] [--sparsities 0.5 0.8 0.9]
                                [--finetune-epochs 10] [--epochs 20] [--max-samples N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import pandas as pd
import torch

from cartokit import select, select_mixture, study
from cartokit.distillation import distill_on_subsets
from cartokit.models import model_factory
from cartokit.train import predict_logits
from cartokit.transfer import choose_models, record_maps

MIXTURE = "17% ambiguous + 10% easy"


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1. Got {value} instead.")
    return value


def share(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in the range (0, 1). Got {value} instead.")
    return value


def one_seed(args: argparse.Namespace, preset: dict, seed: int) -> pd.DataFrame:
    raw = study.load_data("digits", noise=preset["noise"], max_samples=args.max_samples, seed=seed)
    options = {"epochs": args.epochs, "lr": preset["lr"], "batch_size": preset["batch_size"]}
    teacher = record_maps(choose_models(raw, raw), roles=["large"], seed=seed, **options)
    teacher_map = teacher.metrics["large"]
    subsets = {
        "full": None,
        "random": select(teacher_map, "random", args.fraction, seed=seed),
        "easy": select(teacher_map, "easy", args.fraction),
        "ambiguous": select(teacher_map, "ambiguous", args.fraction),
        "hard": select(teacher_map, "hard", args.fraction),
        MIXTURE: select_mixture(teacher_map, MIXTURE),
    }
    plans = [(m, s) for m in ("prune", "prune_structured") for s in args.sparsities]
    results = distill_on_subsets(
        None, model_factory("mlp", seed=seed), raw.train, subsets,
        teacher_logits=predict_logits(teacher.models["large"], raw.train), seed=seed,
        eval_data={"id": raw.test, "ood": raw.ood["rotated"]},
        compress=[*plans, "quantize_dynamic", "quantize_static"],
        finetune_epochs=args.finetune_epochs, **options,
    )  # fmt: skip
    return results.assign(seed=seed)


def main() -> None:
    preset = study.load_preset("digits")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--sparsities", nargs="+", type=share, default=[0.5, 0.8, 0.9])
    parser.add_argument("--finetune-epochs", type=positive, default=None,
                        help="default: half the epochs (distill_on_subsets' default)")  # fmt: skip
    parser.add_argument("--epochs", type=positive, default=preset["epochs"])
    parser.add_argument("--max-samples", type=positive, default=preset["max_samples"])
    parser.add_argument("--fraction", type=share, default=0.33)
    args = parser.parse_args()
    torch.set_num_threads(1)  # distill_on_subsets trains the small MLP on one thread anyway

    started = time.perf_counter()
    tables = []
    for seed in args.seeds:
        tables.append(one_seed(args, preset, seed))
        print(f"seed {seed}: done at {time.perf_counter() - started:.0f} s", file=sys.stderr)
    table = pd.concat(tables)
    table["seconds"] = table["train_seconds"] + table["compress_seconds"]
    # paired by seed: each compressed student against the uncompressed one of its subset
    dense = table.xs("none", level="compression").set_index("seed", append=True)
    for split in ("id", "ood"):
        own = dense.loc[list(zip(table.index.get_level_values("subset"), table["seed"]))]
        table[f"{split}_delta"] = table[f"{split}_accuracy"] - own[f"{split}_accuracy"].to_numpy()
    keys = ["subset", "compression"]
    grouped = table.groupby(level=keys, sort=False)
    means = grouped[
        ["method", "amount", "finetune_epochs", "size_bytes", "zipped_bytes", "nonzero_params",
         "id_accuracy", "ood_accuracy", "seconds"]
    ].agg({"method": "first", "amount": "first", "finetune_epochs": "first", "size_bytes": "mean",
           "zipped_bytes": "mean", "nonzero_params": "mean", "id_accuracy": "mean",
           "ood_accuracy": "mean", "seconds": "mean"})  # fmt: skip
    means[["id_delta", "ood_delta"]] = grouped[["id_delta", "ood_delta"]].mean()
    spread = grouped[["id_accuracy", "ood_accuracy", "id_delta", "ood_delta"]].std(ddof=1)
    spread = spread.fillna(0.0)
    for (subset, _), row in means.iterrows():
        amount = row["amount"]
        record = {
            "subset": subset,
            "method": row["method"],
            "amount": None if pd.isna(amount) else float(amount),
            "size_bytes": round(float(row["size_bytes"])),
            "nonzero_params": round(float(row["nonzero_params"])),
            "id_acc": round(float(row["id_accuracy"]), 4),
            "ood_acc": round(float(row["ood_accuracy"]), 4),
            "seconds": round(float(row["seconds"]), 3),
            "zipped_bytes": round(float(row["zipped_bytes"])),
            "finetune_epochs": int(row["finetune_epochs"]),
            "id_acc_sd": round(float(spread.loc[(subset, _), "id_accuracy"]), 4),
            "ood_acc_sd": round(float(spread.loc[(subset, _), "ood_accuracy"]), 4),
            "id_delta": round(float(row["id_delta"]), 4),
            "id_delta_sd": round(float(spread.loc[(subset, _), "id_delta"]), 4),
            "ood_delta": round(float(row["ood_delta"]), 4),
            "ood_delta_sd": round(float(spread.loc[(subset, _), "ood_delta"]), 4),
            "seeds": len(args.seeds),
        }
        print(json.dumps(record))

    full = means.xs("full", level="subset")
    dense = full.loc["none"]
    command = " ".join(["python bench/compression.py", *sys.argv[1:]])
    lines = [f"{command}: {time.perf_counter() - started:.0f} s"]
    for label in full.index:
        if label == "none":
            continue
        row = full.loc[label]
        lines.append(
            f"full subset, {label}: size {row['size_bytes'] / dense['size_bytes']:.3f}x, deflated "
            f"{row['zipped_bytes'] / dense['zipped_bytes']:.3f}x, id accuracy "
            f"{100 * (row['id_accuracy'] - dense['id_accuracy']):+.1f} points, ood "
            f"{100 * (row['ood_accuracy'] - dense['ood_accuracy']):+.1f} points"
        )
    if "quantize_dynamic" in full.index:
        q = full.loc["quantize_dynamic"]
        met = (
            q["size_bytes"] <= 0.4 * dense["size_bytes"]
            and abs(q["id_accuracy"] - dense["id_accuracy"]) <= 0.02
        )
        verdict = "met" if met else "NOT met"
        lines.append(f"target int8 dynamic <= 0.4x bytes within 2 points: {verdict}")
    if "prune 50%" in full.index:
        drop = dense["id_accuracy"] - full.loc["prune 50%", "id_accuracy"]
        verdict = "met" if drop <= 0.02 else "NOT met"
        lines.append(f"target 50% pruning + fine-tuning within 2 points: {verdict}")
    print("\n".join(lines), file=sys.stderr)
    with pd.option_context("display.width", 220, "display.max_rows", 200):
        shown = means[["size_bytes", "zipped_bytes", "nonzero_params", "id_accuracy",
                       "ood_accuracy", "id_delta", "ood_delta", "seconds"]]  # fmt: skip
        print(shown.round(3).to_string(), file=sys.stderr)
        print(table.groupby(level="compression", sort=False)[["id_accuracy", "ood_accuracy"]]
              .mean().round(4).to_string(), file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
