"""The quick demo behind ``cartokit demo``: notebook 01 of the digits study, without Jupyter.

It trains exactly as notebook 01 does with the ``digits`` preset (``make demo``, that is
``cartokit run --preset digits``): scikit-learn's bundled digits (no download) in the same
stratified 80/20 split, the same share of training labels flipped at random by
:func:`cartokit.noise.inject_noise`, the preset's small MLP trained by :func:`cartokit.fit`
recording its training pass. At the same epochs, noise and seed it records the same dynamics,
so its region counts are the study's. It writes to the output folder:

* ``dynamics.npz``: the recorded training dynamics (:meth:`TrainingDynamics.save`);
* ``metrics.csv``: the per-sample metrics, with ``region``, ``flipped`` and ``clean_label``;
* ``data_map.png``: the data map.
"""

from __future__ import annotations

import os
import time

from cartokit._files import check_output_folder, write_marker
from cartokit._validation import check_int

__all__ = ["PRESET", "run_demo"]

#: The study preset whose notebook 01 the demo runs.
PRESET = "digits"


def run_demo(
    out: str | os.PathLike[str] = "runs/demo",
    *,
    epochs: int = 20,
    noise: float = 0.1,
    seed: int = 0,
    verbose: bool = True,
) -> dict[str, object]:
    """Train as notebook 01 of the ``digits`` preset does, then write the dynamics, metrics and
    data map.

    ``epochs``, ``noise`` and ``seed`` replace the preset's (whose values are the defaults).
    Returns a summary dict (region counts, accuracy, where the flipped labels landed, paths).

    ``out`` must be new, empty, or a folder an earlier demo wrote (its ``run.json`` says so): the
    demo replaces its three files there, and refuses any other folder, which may hold other work,
    before training starts.
    """
    from cartokit import fit
    from cartokit.io import write_metrics_csv
    from cartokit.models import build_model
    from cartokit.plot import plot_data_map
    from cartokit.regions import Thresholds, assign_regions, region_counts
    from cartokit.study import (
        load_data,
        load_preset,
        metrics_table,
        model_data,
        model_kind,
        small_model_threads,
        validate_params,
    )

    caller = "run_demo"
    preset = load_preset(PRESET)
    p = validate_params(caller=caller, epochs=epochs, noise=noise, seed=seed)
    if check_int("seed", seed, caller=caller, minimum=0) > 2**32 - 1:  # scikit-learn's split
        raise ValueError(
            f"The 'seed' parameter of {caller} must be an int in the range [0, 2**32 - 1]. "
            f"Got {seed} instead."
        )
    epochs, noise, seed = p["epochs"], p["noise"], p["seed"]
    out = check_output_folder(out, written_by="cartokit demo")
    started = time.perf_counter()

    # notebook 01's cells, with the preset's values
    model = preset["model"]
    bundle = load_data(PRESET, noise=noise, max_samples=preset["max_samples"], seed=seed)
    features = model_data(bundle, model=model)
    net = build_model(model_kind(model, features.train), features.train, seed=seed)
    with small_model_threads(model, features.train):
        result = fit(
            net,
            features.train,
            epochs=epochs,
            mode=preset["mode"],
            batch_size=preset["batch_size"],
            lr=preset["lr"],
            seed=seed,
            eval_data={"test": features.test, **features.ood},
            progress=verbose,
        )
    dyn = result.dynamics
    metrics = metrics_table(dyn, bundle.train)
    thresholds = Thresholds()
    metrics["region"] = assign_regions(metrics, thresholds)
    counts = region_counts(metrics["region"])
    flipped = metrics["flipped"].astype(bool) if "flipped" in metrics else None
    last = result.history.iloc[-1]

    out.mkdir(parents=True, exist_ok=True)
    # the marker first: a demo stopped half way still leaves a folder the next demo may replace
    write_marker(out, "cartokit demo", preset=PRESET, epochs=epochs, noise=noise, seed=seed)
    dyn.save(out / "dynamics.npz")
    write_metrics_csv(metrics, out / "metrics.csv")
    n_flipped = int(flipped.sum()) if flipped is not None else 0
    plot_data_map(
        metrics,
        thresholds=thresholds,
        title=f"digits, {model}, {epochs} epochs, {n_flipped} flipped labels",
        path=out / "data_map.png",
    )

    by_region = (
        metrics.loc[flipped, "region"].value_counts().reindex(counts.index, fill_value=0)
        if flipped is not None
        else counts * 0
    )
    summary: dict[str, object] = {
        "preset": PRESET,
        "samples": len(metrics),
        "epochs": epochs,
        "test_accuracy": round(float(last["test_accuracy"]), 4),
        "regions": {k: int(v) for k, v in counts.items()},
        "flipped": n_flipped,
        "flipped_by_region": {k: int(v) for k, v in by_region.items()},
        "seconds": round(time.perf_counter() - started, 1),
        "out": str(out),
    }
    if verbose:
        print(
            f"Trained as notebook 01 of 'cartokit run --preset {PRESET}' does: scikit-learn's "
            f"digits ({len(metrics)} training images, a stratified 80/20 split, seed {seed}), "
            f"{n_flipped} training labels ({noise:.0%}) flipped to another class at random, "
            f"a small MLP (cartokit.fit, {epochs} epochs, recording its training pass). Test "
            f"accuracy {last['test_accuracy']:.3f}."
        )
        print("Region counts (default thresholds):")
        for name, count in counts.items():
            print(f"  {name:<10} {int(count):>5}   of which flipped labels: {int(by_region[name])}")
        print(f"Wrote {out / 'metrics.csv'}, {out / 'dynamics.npz'}, {out / 'data_map.png'}")
    return summary
