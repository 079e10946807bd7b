"""The ``cartokit`` command line.

Heavy imports (torch, matplotlib) happen inside the subcommands that need them, so ``--help``
and ``cartokit select`` stay fast.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cartokit.dynamics import TrainingDynamics

DEMO_DESCRIPTION = (
    "Train as notebook 01 of 'cartokit run --preset digits' (make demo) does, without "
    "Jupyter: scikit-learn's bundled 8x8 digits in a stratified 80/20 split, --noise of the "
    "training labels flipped to another class at random (cartokit.noise.inject_noise), and the "
    "preset's small MLP trained by cartokit.fit, recording its training pass. At the same "
    "--epochs, --noise and --seed it records the same dynamics as the study, so the region "
    "counts are the same. Writes metrics.csv, dynamics.npz and data_map.png to the output "
    "folder, which must be new, empty or an earlier demo's."
)

#: Each subcommand's examples; ``cartokit --help`` shows them all.
COMMAND_EXAMPLES = {
    "metrics": """\
  cartokit metrics runs/snli -o metrics.csv            # allenai/cartography output folder
  cartokit metrics signals.jsonl -o metrics.csv        # TrustAI training-signal file
  cartokit metrics runs/demo/dynamics.npz -o m.csv --burn-in 1
  cartokit metrics runs/big/store -o metrics.parquet   # a store, in bounded memory
  cartokit metrics /shared/store -o m.parquet --dask tcp://scheduler:8786
""",
    "select": """\
  cartokit select metrics.csv --by ambiguous --fraction 0.33 -o ids.txt
  cartokit select metrics.csv --by confidence --fraction 0.1 --lowest --balanced -o ids.txt
  cartokit select metrics.csv --region hard -o hard_ids.txt
  cartokit select metrics.csv --mixture "17% ambiguous + 10% easy" --seed 1 -o ids.txt
  cartokit select runs/demo/dynamics.npz --by s2l --fraction 0.3 -o ids.txt   # SmallToLarge
""",
    "demo": """\
  cartokit demo --out runs/demo
""",
    "run": """\
  cartokit run --preset digits --out runs/digits       # notebooks 01-04 with papermill
  cartokit run --preset sentiment -p epochs=5 -p "seeds=[0, 1]" --out runs/sentiment
  cartokit run --preset dialogue --out runs/dialogue   # notebook 07: a language model's map
  cartokit run --config study.yaml --out runs/study
""",
    "grid": """\
  cartokit grid grid.yaml --out runs/grid               # datasets x models x ... as jobs
""",
    "explore": """\
  cartokit explore metrics.csv                         # the live explorer in the browser
  cartokit explore runs/digits --port 8866 --no-browser
""",
}

EXAMPLES = "examples:\n" + "".join(COMMAND_EXAMPLES.values())


GRID_EXAMPLE = """\
a grid file:
  preset: digits                 # optional: the base parameters
  params: {epochs: 10}           # optional: fixed parameters
  grid:                          # one job per combination of scalar parameters
    model: [mlp, cnn]
    seed: [0, 1]                 # in results.csv: job_seed (seed is each retraining's)
    selectors: [full, random, ambiguous]   # list parameters: crossed inside each job
    fractions: [0.1, 0.33]
    seeds: [0, 1, 2]
  out: runs/grid                 # optional: the output folder
"""


def _examples(command: str) -> str:
    return "examples:\n" + COMMAND_EXAMPLES[command]


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written, and each option's default after its help (unless
    the help already says it, or there is none to show)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" not in text
            and action.option_strings
            and default is not None
            and default is not False  # a flag
            and default != []
            and default is not argparse.SUPPRESS
        ):
            text += " (default: %(default)s)"
        return text


class CliError(Exception):
    """An error to print as one line, with a non-zero exit."""


def _input_files(path: str) -> list[Path]:
    """The files an input path stands for: itself, or the signal files of a run folder."""
    p = Path(path)
    if not p.is_dir():
        return [p]
    folders = [d for d in (p, p / "training_dynamics") if d.is_dir()]
    return [f for d in folders for f in d.iterdir() if f.suffix in (".jsonl", ".json")]


def _check_output(output: str, inputs: list[Path]) -> None:
    """Refuse, before any work, an output path that writing would destroy or cannot take."""
    from cartokit._files import check_output_file

    target = check_output_file(output)
    if target.exists():
        for source in inputs:
            if source.exists() and os.path.samefile(target, source):
                raise CliError(
                    f"the output {output} is the input {source}; writing it would replace the "
                    "input. Choose another -o file."
                )


def _cmd_metrics(args: argparse.Namespace) -> None:
    from cartokit.io import read_dynamics, write_metrics_csv
    from cartokit.metrics import compute_metrics
    from cartokit.regions import Thresholds, assign_regions, region_counts

    _check_output(args.output, _input_files(args.input))
    if "://" in args.input:  # a store at a URL that fsspec reads (s3://, gs://)
        from cartokit.store import open_dynamics

        dyn = open_dynamics(args.input)
    else:
        dyn = read_dynamics(args.input, format=args.format)
    with _dask_client(args.dask) as engine:
        if Path(args.output).suffix.lower() == ".parquet":  # written block by block
            compute_metrics(dyn, burn_in=args.burn_in, engine=engine, output=args.output)
            counts = _parquet_region_counts(args.output)
        elif engine == "auto" and not hasattr(dyn, "blocks"):  # a record held in memory
            counts = _metrics_csv(dyn, args.burn_in, args.output)
        else:
            metrics = compute_metrics(dyn, burn_in=args.burn_in, engine=engine)
            write_metrics_csv(metrics, args.output)
            counts = region_counts(assign_regions(metrics, Thresholds()))
    summary = ", ".join(f"{name} {int(n)}" for name, n in counts.items())
    print(
        f"{dyn.num_samples} samples x {dyn.num_epochs} checkpoints x {dyn.num_classes} classes; "
        f"regions (default thresholds): {summary}; wrote {args.output}",
        file=sys.stderr,
    )


def _metrics_csv(dyn: TrainingDynamics, burn_in: int, output: str) -> dict[str, int]:
    """The CSV of a record held in memory, and its region counts, from plain arrays: the same
    file and counts as through the pandas table, without the import of pandas."""
    import numpy as np

    from cartokit.io.tables import write_metric_columns_csv
    from cartokit.metrics import metric_columns
    from cartokit.regions import REGIONS, Thresholds, region_codes

    columns = metric_columns(dyn, burn_in=burn_in)
    write_metric_columns_csv(dyn.ids, columns, output)
    codes = region_codes(columns["confidence"], columns["variability"], Thresholds())
    counts = np.bincount(codes[codes >= 0], minlength=len(REGIONS))
    return dict(zip(REGIONS, counts.tolist(), strict=True))


#: How long ``cartokit metrics --dask`` waits for the scheduler.
DASK_CONNECT_TIMEOUT = "20s"


@contextmanager
def _dask_client(address: str | None) -> Iterator[str]:
    """The engine of ``cartokit metrics``: "dask" on a client of the scheduler at ``address``
    while the command runs, else "auto"."""
    if address is None:
        yield "auto"
        return
    try:
        from distributed import Client
    except ImportError:
        raise CliError('--dask needs Dask: pip install "cartokit[dask]"') from None
    try:
        client = Client(address, timeout=DASK_CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as err:
        raise CliError(f"cannot reach the Dask scheduler at {address} ({err})") from None
    try:
        yield "dask"
    finally:
        client.close()


def _parquet_region_counts(path: str) -> dict[str, int]:
    """Region counts of a metrics Parquet file, read two columns and a row group at a time."""
    import pyarrow.parquet as pq

    from cartokit.regions import REGIONS, Thresholds, assign_regions, region_counts

    totals = dict.fromkeys(REGIONS, 0)
    for batch in pq.ParquetFile(path).iter_batches(columns=["confidence", "variability"]):
        for name, n in region_counts(assign_regions(batch.to_pandas(), Thresholds())).items():
            totals[name] += int(n)
    return totals


def _cmd_select(args: argparse.Namespace) -> None:
    from cartokit._files import atomic_write
    from cartokit.io import read_metrics_table
    from cartokit.regions import Thresholds
    from cartokit.selection import select, select_mixture

    _check_output(args.output, [Path(args.metrics)])
    if args.by == "s2l":
        _select_s2l(args)
        return
    metrics = read_metrics_table(args.metrics, caller="select")
    thresholds = Thresholds(
        ambiguous_variability=args.ambiguous_variability,
        easy_confidence=args.easy_confidence,
        hard_confidence=args.hard_confidence,
    )
    if args.mixture is not None:
        if args.by is not None or args.region is not None or args.fraction is not None:
            raise CliError(
                "--mixture replaces --by, --fraction and --region; give one or the other"
            )
        if args.per_source:
            raise CliError("--per-source works with --by, not --mixture")
        ids = select_mixture(
            metrics, args.mixture, thresholds=thresholds, balanced=args.balanced, seed=args.seed
        )
    else:
        by = args.by if args.by is not None else ("random" if args.region else "ambiguous")
        if args.lowest and by == "random":
            implied = "" if args.by is not None else ", which --region implies without --by"
            raise CliError(
                f"--lowest has no meaning for a random choice (--by random{implied}); leave "
                "--lowest out, or give --by a selector or a column"
            )
        fraction = args.fraction
        if fraction is None and args.region is None:
            fraction = 0.33
        ids = select(
            metrics,
            by=by,
            fraction=fraction,
            lowest=True if args.lowest else None,
            region=args.region,
            thresholds=thresholds,
            balanced=args.balanced,
            seed=args.seed,
            per_source=args.per_source,
        )
    with atomic_write(args.output, "w") as fh:
        fh.writelines(f"{i}\n" for i in ids)
    print(f"selected {len(ids)} of {len(metrics)} samples; wrote {args.output}", file=sys.stderr)


def _select_s2l(args: argparse.Namespace) -> None:
    """``cartokit select --by s2l``: SmallToLarge on the loss trajectories of a dynamics file."""
    from cartokit._files import atomic_write
    from cartokit.io import read_dynamics
    from cartokit.s2l import select_s2l

    if args.mixture is not None or args.region is not None or args.lowest or args.balanced:
        raise CliError(
            "--by s2l draws evenly from the clusters of the loss trajectories; it takes no "
            "--mixture, --region, --lowest or --balanced"
        )
    if Path(args.metrics).suffix.lower() in (".csv", ".parquet"):
        raise CliError(
            f"--by s2l clusters each sample's loss trajectory, which the metrics table "
            f"{args.metrics} does not hold; give the dynamics instead (a cartokit .npz such as "
            "the dynamics.npz of a run, an allenai run folder or a TrustAI file)"
        )
    dyn = read_dynamics(args.metrics)
    fraction = 0.33 if args.fraction is None else args.fraction
    ids = select_s2l(dyn, fraction, n_clusters=args.n_clusters, seed=args.seed)
    with atomic_write(args.output, "w") as fh:
        fh.writelines(f"{i}\n" for i in ids)
    print(f"selected {len(ids)} of {dyn.num_samples} samples; wrote {args.output}", file=sys.stderr)


def _cmd_demo(args: argparse.Namespace) -> None:
    from cartokit.demo import run_demo

    run_demo(args.out, epochs=args.epochs, noise=args.noise, seed=args.seed)


def _cmd_run(args: argparse.Namespace) -> None:
    from cartokit.study import parse_overrides, run_study

    if args.out is not None:
        out = args.out
    elif args.config is not None:
        out = str(Path("runs") / Path(args.config).stem)
    else:
        out = str(Path("runs") / (args.preset or "default"))
    try:
        run_study(
            out,
            preset=args.preset,
            config=args.config,
            overrides=parse_overrides(args.param),
            notebooks_dir=args.notebooks,
            kernel=args.kernel,
            progress=not args.quiet,
            caller="cartokit run",
        )
    except ImportError as err:
        raise CliError(str(err)) from None


def _cmd_grid(args: argparse.Namespace) -> None:
    from cartokit.study import run_grid

    try:
        run_grid(
            args.file,
            out=args.out,
            force=args.force,
            notebooks_dir=args.notebooks,
            kernel=args.kernel,
            progress=not args.quiet,
        )
    except ImportError as err:
        raise CliError(str(err)) from None


def _cmd_explore(args: argparse.Namespace) -> None:
    from cartokit.widgets.page import serve_explorer

    try:
        serve_explorer(
            args.input,
            port=args.port,
            open_browser=not args.no_browser,
            export_dir=args.export_dir,
            log=lambda line: print(f"cartokit explore: {line}", file=sys.stderr, flush=True),
        )
    except ImportError as err:
        raise CliError(str(err)) from None


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--notebooks",
        metavar="DIR",
        help="folder of the study's notebooks (default: $CARTOKIT_NOTEBOOKS, else the checkout's)",
    )
    p.add_argument(
        "--kernel", help="Jupyter kernel (default: cartokit if registered, else python3)"
    )
    p.add_argument(
        "--quiet", action="store_true", help="no progress bar over each notebook's cells"
    )


def _add_metrics_command(sub: argparse._SubParsersAction) -> None:
    """The ``cartokit metrics`` subcommand and its options."""

    p = sub.add_parser(
        "metrics",
        help="compute per-sample metrics from recorded dynamics",
        description="Compute confidence, variability, correctness, forgetting, AUM, EL2N, ... "
        "for every sample, from an allenai/cartography folder, a TrustAI signal file, a "
        "cartokit dynamics file or a store (DynamicsRecorder(store=...)). A .parquet output is "
        "written block by block of samples, in bounded memory whatever the store's size; CSV "
        "suits small runs.",
        epilog=_examples("metrics"),
        formatter_class=_HelpFormatter,
    )
    p.add_argument(
        "input",
        help="allenai run folder, TrustAI .jsonl, cartokit .npz, or a store's folder or URL "
        "(s3://..., read through fsspec)",
    )
    p.add_argument("-o", "--output", required=True, help="metrics file to write: .parquet, or .csv")
    p.add_argument(
        "--format",
        default="auto",
        choices=["auto", "allenai", "trustai", "cartokit", "store"],
        help="input format; auto detects it from the files",
    )
    p.add_argument(
        "--burn-in",
        type=int,
        default=0,
        metavar="K",
        help="leave out the first K recorded checkpoints (epochs, or a TrustAI file's recorded "
        "steps), e.g. the first epochs of a fine-tune, which are often all near chance",
    )
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="compute on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786); "
        "its workers must reach the input (shared storage, or a URL fsspec reads)",
    )
    p.set_defaults(func=_cmd_metrics)


def _add_select_command(sub: argparse._SubParsersAction) -> None:
    """The ``cartokit select`` subcommand and its options."""
    s = sub.add_parser(
        "select",
        help="select a subset of sample ids from a metrics table (CSV or Parquet)",
        description="Select sample ids by a metric, a region, at random, or a mixture. "
        "Named selectors rank the whole table: ambiguous (highest variability), easy (highest "
        "confidence, as high_confidence), hard (lowest confidence, as low_confidence), "
        "low_variability, high_correctness, low_correctness, high_forgetting, low_aum, "
        "high_el2n, random, or any metric column; s2l (SmallToLarge, Yang et al. 2024) draws "
        "evenly from the clusters of the loss trajectories in a dynamics file. They are not "
        "the regions of the map: "
        "--region hard selects within the hard-to-learn region.",
        epilog=_examples("select"),
        formatter_class=_HelpFormatter,
    )
    s.add_argument(
        "metrics",
        help="metrics CSV or Parquet written by 'cartokit metrics' (with --by s2l: the "
        "dynamics, e.g. a run's dynamics.npz)",
    )
    s.add_argument("-o", "--output", required=True, help="file to write, one id per line")
    s.add_argument(
        "--by",
        help="selector name or metric column to rank by (default: ambiguous; random with --region)",
    )
    s.add_argument(
        "--fraction",
        type=float,
        help="share of all samples to select, in (0, 1] (default: 0.33; the whole region with "
        "--region)",
    )
    s.add_argument(
        "--lowest",
        action="store_true",
        help="take the lowest values of --by first (default: the selector's own order; a "
        "column's highest values first)",
    )
    s.add_argument(
        "--region",
        choices=["easy", "ambiguous", "hard"],
        help="select within this region of the map (default: the whole table)",
    )
    s.add_argument(
        "--mixture",
        help='shares of several selectors, e.g. "17%% ambiguous + 10%% easy"; replaces --by, '
        "--fraction and --region",
    )
    s.add_argument(
        "--balanced", action="store_true", help="keep the class proportions of the whole table"
    )
    s.add_argument("--seed", type=int, default=0, help="seed of random choices")
    s.add_argument(
        "--per-source",
        action="store_true",
        help="select the same share within each source of merged maps (the 'source' column)",
    )
    s.add_argument(
        "--clusters",
        dest="n_clusters",
        type=int,
        default=100,
        metavar="K",
        help="with --by s2l: the K-means clusters of the loss trajectories (SmallToLarge)",
    )
    s.add_argument(
        "--ambiguous-variability",
        type=float,
        default=0.2,
        metavar="V",
        help="variability at or above which a sample is in the ambiguous region",
    )
    s.add_argument(
        "--easy-confidence",
        type=float,
        default=0.7,
        metavar="C",
        help="confidence at or above which a steady sample is in the easy-to-learn region",
    )
    s.add_argument(
        "--hard-confidence",
        type=float,
        default=0.3,
        metavar="C",
        help="confidence at or below which a steady sample is in the hard-to-learn region",
    )
    s.set_defaults(func=_cmd_select)


def _add_demo_command(sub: argparse._SubParsersAction) -> None:
    """The ``cartokit demo`` subcommand and its options."""
    d = sub.add_parser(
        "demo",
        help="train on scikit-learn's digits while recording, and write a data map",
        description=DEMO_DESCRIPTION,
        epilog=_examples("demo"),
        formatter_class=_HelpFormatter,
    )
    d.add_argument("--out", default="runs/demo", help="output folder")
    d.add_argument("--epochs", type=int, default=20, help="training epochs, one checkpoint each")
    d.add_argument(
        "--noise", type=float, default=0.1, help="share of training labels flipped at random"
    )
    d.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the split, the flipped labels, the initialisation and the shuffle",
    )
    d.set_defaults(func=_cmd_demo)


def _add_run_command(sub: argparse._SubParsersAction) -> None:
    """The ``cartokit run`` subcommand and its options."""
    r = sub.add_parser(
        "run",
        help="run a study: notebooks 01-04 with papermill, into one run folder",
        description="Execute the notebooks 01_train_and_record, 02_map, 03_select and "
        "04_retrain in order with papermill, passing the run folder along. The run folder gets "
        "the executed notebooks, the dynamics, the metrics, the figures, results.csv and "
        "report.md. Parameters: the notebooks' defaults (sized for CI), then --preset or "
        "--config, then each -p. OUT must be new, empty, or a run folder that cartokit wrote "
        "(its run.json says so); any other folder is refused before anything runs, since a "
        "run replaces the whole folder. A failed run, or one stopped by Ctrl-C or SIGTERM, "
        "leaves an earlier run in OUT untouched and keeps its own outputs in OUT.failed. A run "
        "killed with kill -9 (SIGKILL) cannot clean up: OUT keeps the earlier run, no "
        "OUT.failed is written, and its outputs stay in the hidden folder .OUT.partial-PID "
        "beside OUT until the next run into OUT removes it. The dialogue preset (or a config "
        "file's 'study: generative') runs notebook 07_generative instead, the same way: a "
        "language model's data map of dialogue pairs, corrupted replies found, and "
        "small-to-large selection (S2L), with a report of its own.",
        epilog=_examples("run"),
        formatter_class=_HelpFormatter,
    )
    source = r.add_mutually_exclusive_group()
    source.add_argument(
        "--preset",
        help="a preset: digits (make demo), sentiment, or dialogue (notebook 07: a language "
        "model's map and small-to-large selection) (default: the notebooks' own values)",
    )
    source.add_argument("--config", metavar="FILE.yaml", help="parameters in a YAML file")
    r.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set one parameter (value read as YAML), e.g. -p epochs=5; repeat for more",
    )
    r.add_argument("--out", help="run folder (default: runs/PRESET, runs/CONFIG or runs/default)")
    _add_run_options(r)
    r.set_defaults(func=_cmd_run)


def _add_grid_command(sub: argparse._SubParsersAction) -> None:
    """The ``cartokit grid`` subcommand and its options."""
    g = sub.add_parser(
        "grid",
        help="run a parameter grid of studies and collect one results table",
        description="Run one study per combination of the grid's scalar parameters (datasets x "
        "models x ...); list parameters (selectors, fractions, seeds) are crossed inside each "
        "study. Writes OUT/jobs/<job>/, OUT/results.csv, OUT/jobs.csv and OUT/summary.md; in "
        "results.csv, a grid axis named like a column of a study's results (seed) is "
        "job_<name>. Finished jobs are skipped when the grid runs again; failed ones are "
        "retried. OUT must be new, empty, or a grid folder that cartokit wrote.",
        epilog=_examples("grid") + "\n" + GRID_EXAMPLE,
        formatter_class=_HelpFormatter,
    )
    g.add_argument("file", help="grid file (YAML)")
    g.add_argument("--out", help="output folder (default: the file's out, else runs/FILE)")
    g.add_argument("--force", action="store_true", help="run finished jobs again")
    _add_run_options(g)
    g.set_defaults(func=_cmd_grid)


def _add_explore_command(sub: argparse._SubParsersAction) -> None:
    """The ``cartokit explore`` subcommand and its options."""
    e = sub.add_parser(
        "explore",
        help="open the live data-map explorer in the browser (a Voila page)",
        description="Serve the live explorer (threshold sliders, hover, click, lasso, export) "
        "as a Voila page on 127.0.0.1, behind a token; print its address and open a browser "
        "when there is one. INPUT is a metrics table (.csv or .parquet), a dynamics file "
        "(.npz, a TrustAI .jsonl), an allenai output folder or a cartokit run folder. Ctrl-C "
        "stops the server and its kernels.",
        epilog=_examples("explore"),
        formatter_class=_HelpFormatter,
    )
    e.add_argument("input", help="metrics table, dynamics file, allenai or cartokit run folder")
    e.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one")
    e.add_argument("--no-browser", action="store_true", help="only print the address")
    e.add_argument(
        "--export-dir", metavar="DIR", help="folder the page's exports go to (default: here)"
    )
    e.set_defaults(func=_cmd_explore)


def build_parser() -> argparse.ArgumentParser:
    from cartokit import __version__

    parser = argparse.ArgumentParser(
        prog="cartokit",
        description="Dataset Cartography: training-dynamics metrics, data maps and subsets.",
        epilog=EXAMPLES,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cartokit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_metrics_command(sub)
    _add_select_command(sub)
    _add_demo_command(sub)
    _add_run_command(sub)
    _add_grid_command(sub)
    _add_explore_command(sub)
    return parser


@contextmanager
def _one_line_warnings(command: str, options: dict[str, str]) -> Iterator[None]:
    """While a command runs, each warning prints as one line, ``cartokit <command>: warning:
    <message>`` (:func:`in_user_terms`), not as Python's two lines that quote cartokit's
    source."""
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
        text = in_user_terms(str(message), command, options)
        print(f"cartokit {command}: warning: {text}", file=file or sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


# A function that the library names as the caller in its messages: snake_case with an
# underscore (detect_format, compute_metrics, select_mixture), or select; never "cartokit run"
# or "job x of grid.yaml", nor a file name.
_CALLER = r"(?:[a-z][a-z0-9]*(?:_[a-z0-9]+)+|select)"

# the verbs that follow "The part 'x' of <caller>" and the like
_VERB = r"(?:must|is|are|asks|has|have|round|rounds|needs)\b"


def _options(parser: argparse.ArgumentParser) -> dict[str, str]:
    """A parser's options by their names in the library: ``{"burn_in": "--burn-in", ...}``."""
    return {
        action.dest: max(action.option_strings, key=len)
        for action in parser._actions
        if action.option_strings and action.dest != "help"
    }


def in_user_terms(message: str, command: str, options: dict[str, str]) -> str:
    """A library message as the command line's user reads it, on one line.

    * a caller prefix goes (``detect_format: x does not exist`` -> ``x does not exist``), and a
      function that starts a sentence becomes the command (``compute_metrics uses 2
      checkpoint(s)`` -> ``cartokit metrics uses 2 checkpoint(s)``);
    * a parameter that is an option of the command is named by the option (``The 'burn_in'
      parameter of compute_metrics`` -> ``--burn-in``; ``format=`` -> ``--format``;
      ``hard_confidence`` -> ``--hard-confidence``); another loses its function (``The 'x'
      parameter``), and a ``-p`` parameter of ``cartokit run`` stays as it is.

    >>> in_user_terms("The 'fraction' parameter of select must be a float in the range (0, "
    ...               "1]. Got 1.5 instead.", "select", {"fraction": "--fraction"})
    '--fraction must be a float in the range (0, 1]. Got 1.5 instead.'
    >>> in_user_terms("detect_format: cannot tell the format of x.txt; pass format=", "metrics",
    ...               {"format": "--format"})
    'Cannot tell the format of x.txt; pass --format'
    """
    text = " ".join(message.split())
    rest = re.sub(rf"^(?:cartokit {command}|{_CALLER}): ", "", text)
    if rest != text:  # the sentence starts after the prefix: with a capital, unless a path
        text = re.sub(r"^[a-z]+ ", lambda m: m[0].capitalize(), rest)
    text = re.sub(rf"^{_CALLER}(?= [a-z])", f"cartokit {command}", text)

    def parameter(match: re.Match[str]) -> str:
        if match["name"] in options:
            return options[match["name"]]
        if match["caller"] == f"cartokit {command}":  # a -p KEY of cartokit run
            return match[0]
        return f"The {match['name']!r} parameter"

    named = re.compile(
        rf"The '(?P<name>\w+)' (?:parameter|threshold)"
        rf"(?: of (?P<caller>{_CALLER}\b|cartokit {command}\b))?"
    )
    found = named.search(text)
    if found and found["name"] in options:
        text = text.replace(", or None. Got", ". Got")  # an option is never None
    text = named.sub(parameter, text)
    text = re.sub(
        r"\b(\w+)=('?)([\w.-]*)\2",
        lambda m: f"{options[m[1]]} {m[3]}".strip() if m[1] in options else m[0],
        text,
    )
    for name, option in options.items():
        if "_" in name:
            text = re.sub(rf"\b{name}\b", option, text)
    return re.sub(rf" of {_CALLER} (?={_VERB})", " ", text)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cartokit`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    options = _options(subparsers.choices[args.command])
    try:
        with _one_line_warnings(args.command, options):
            args.func(args)
    except CliError as err:
        print(f"cartokit {args.command}: error: {err}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, RuntimeError) as err:
        message = in_user_terms(str(err), args.command, options)
        print(f"cartokit {args.command}: error: {message}", file=sys.stderr)
        return 1
    except OSError as err:  # a file that cannot be read or written: its path and the reason
        if err.filename is not None and err.strerror:
            where = f"{err.filename} -> {err.filename2}" if err.filename2 else err.filename
            message = " ".join(f"{where}: {err.strerror}".split())
        else:  # cartokit's own FileNotFoundError sentences
            message = in_user_terms(str(err), args.command, options)
        print(f"cartokit {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        # a run or grid has already said where its partial outputs are; the others write
        # nothing until they finish
        stopped = str(err) if getattr(err, "signum", None) is not None else "interrupted"
        quiet = ("run", "grid", "demo", "explore")
        done = "" if args.command in quiet else "; no output was written"
        print(f"cartokit {args.command}: {stopped}{done}", file=sys.stderr)
        return 128 + getattr(err, "signum", signal.SIGINT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
