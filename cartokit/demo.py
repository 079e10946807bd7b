"""The quick demo behind ``make demo``: digits, a small MLP, a recorded run, a data map.

It trains on scikit-learn's bundled digits (no download), with a fraction of the training labels
flipped so that the map has something to find, and writes to the output folder:

* ``dynamics.npz``: the recorded training dynamics (:meth:`TrainingDynamics.save`);
* ``metrics.csv``: the per-sample metrics, with ``region`` and ``flipped`` columns;
* ``data_map.png``: the data map.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import numpy as np

from cartokit._files import check_output_folder, write_marker
from cartokit._validation import Interval, check_int, check_param

if TYPE_CHECKING:
    from cartokit.dynamics import TrainingDynamics

__all__ = ["run_demo"]


def run_demo(
    out: str | os.PathLike[str] = "runs/demo",
    *,
    epochs: int = 20,
    noise: float = 0.1,
    seed: int = 0,
    verbose: bool = True,
) -> dict[str, object]:
    """Train on digits while recording, then write the dynamics, metrics and data map.

    Returns a summary dict (region counts, accuracy, where the flipped labels landed, paths).

    ``out`` must be new, empty, or a folder an earlier demo wrote (its ``run.json`` says so): the
    demo replaces its three files there, and refuses any other folder, which may hold other work,
    before training starts.
    """
    from cartokit import compute_metrics
    from cartokit.io import write_metrics_csv
    from cartokit.plot import plot_data_map
    from cartokit.regions import Thresholds, assign_regions, region_counts

    epochs = check_int("epochs", epochs, caller="run_demo", minimum=2)
    seed = check_int("seed", seed, caller="run_demo", minimum=0)
    if seed > 2**32 - 1:  # scikit-learn's split takes seeds below 2**32
        raise ValueError(
            f"The 'seed' parameter of run_demo must be an int in the range [0, 2**32 - 1]. "
            f"Got {seed} instead."
        )
    noise = check_param("noise", noise, Interval(float, 0, 1, closed="left"), caller="run_demo")
    out = check_output_folder(out, written_by="cartokit demo")
    started = time.perf_counter()

    x_train, x_test, y_noisy, y_test, flipped = _noisy_digits(noise, seed)
    dyn, test_acc = _train_recording(x_train, y_noisy, x_test, y_test, epochs, seed, verbose)
    metrics = compute_metrics(dyn)
    thresholds = Thresholds()
    metrics["region"] = assign_regions(metrics, thresholds)
    metrics["flipped"] = flipped
    counts = region_counts(metrics["region"])

    out.mkdir(parents=True, exist_ok=True)
    # the marker first: a demo stopped half way still leaves a folder the next demo may replace
    write_marker(out, "cartokit demo", epochs=epochs, noise=noise, seed=seed)
    dyn.save(out / "dynamics.npz")
    write_metrics_csv(metrics, out / "metrics.csv")
    plot_data_map(
        metrics,
        thresholds=thresholds,
        title=f"Digits, MLP, {epochs} epochs, {flipped.sum()} flipped labels",
        path=out / "data_map.png",
    )

    flipped_regions = metrics.loc[flipped, "region"].value_counts().reindex(counts.index).fillna(0)
    summary: dict[str, object] = {
        "samples": len(y_noisy),
        "epochs": epochs,
        "test_accuracy": round(test_acc, 4),
        "regions": {k: int(v) for k, v in counts.items()},
        "flipped": int(flipped.sum()),
        "flipped_by_region": {k: int(v) for k, v in flipped_regions.items()},
        "seconds": round(time.perf_counter() - started, 1),
        "out": str(out),
    }
    if verbose:
        print(
            f"Trained on {len(y_noisy)} digits for {epochs} epochs; test accuracy {test_acc:.3f}."
        )
        print("Region counts (default thresholds):")
        for name, count in counts.items():
            share = summary["flipped_by_region"][name]  # type: ignore[index]
            print(f"  {name:<10} {int(count):>5}   of which flipped labels: {share}")
        print(f"Wrote {out / 'metrics.csv'}, {out / 'dynamics.npz'}, {out / 'data_map.png'}")
    return summary


def _noisy_digits(noise: float, seed: int) -> tuple[np.ndarray, ...]:
    """8x8 digit images scaled to [0, 1], a stratified 80/20 split, and a ``noise`` share of
    the training labels moved to another class, chosen uniformly: ``x_train, x_test,
    y_noisy, y_test, flipped``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.2, stratify=digits.target, random_state=seed
    )
    rng = np.random.default_rng(seed)
    n, num_classes = len(y_train), 10
    flipped = rng.random(n) < noise
    y_noisy = np.where(flipped, (y_train + rng.integers(1, num_classes, n)) % num_classes, y_train)
    return x_train, x_test, y_noisy, y_test, flipped


def _train_recording(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    epochs: int,
    seed: int,
    verbose: bool,
) -> tuple[TrainingDynamics, float]:
    """A small MLP trained by a plain PyTorch loop that records each batch's own logits; the
    recorded dynamics and the test accuracy."""
    import torch
    from torch import nn
    from tqdm.auto import tqdm

    from cartokit import DynamicsRecorder

    torch.manual_seed(seed)
    num_classes = 10
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, num_classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    n = len(y_train)
    xs, ys = torch.from_numpy(x_train), torch.from_numpy(y_train)
    recorder = DynamicsRecorder(n, num_classes, class_names=[str(d) for d in range(10)])
    batch_size = 64
    generator = torch.Generator().manual_seed(seed)

    for _ in tqdm(range(epochs), desc="training (recording dynamics)", disable=not verbose):
        model.train()
        for ids in torch.randperm(n, generator=generator).split(batch_size):
            logits = model(xs[ids])
            loss = loss_fn(logits, ys[ids])
            recorder.update(ids, logits, ys[ids])  # the training pass's own logits: free
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        recorder.end_epoch()

    model.eval()
    with torch.no_grad():
        test_acc = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    return recorder.dynamics, test_acc
