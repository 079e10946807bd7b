"""The ``cartokit`` command line.

Heavy imports (torch, matplotlib) happen inside the subcommands that need them, so ``--help``
and ``cartokit select`` stay fast.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

EXAMPLES = """\
examples:
  cartokit metrics runs/snli -o metrics.csv            # allenai/cartography output folder
  cartokit metrics signals.jsonl -o metrics.csv        # TrustAI training-signal file
  cartokit metrics runs/demo/dynamics.npz -o m.csv --burn-in 1
  cartokit select metrics.csv --by ambiguous --fraction 0.33 -o ids.txt
  cartokit select metrics.csv --by confidence --fraction 0.1 --lowest --balanced -o ids.txt
  cartokit select metrics.csv --region hard -o hard_ids.txt
  cartokit select metrics.csv --mixture "17% ambiguous + 10% easy" --seed 1 -o ids.txt
  cartokit demo --out runs/demo
  cartokit run --preset digits --out runs/digits       # notebooks 01-04 with papermill
  cartokit run --preset sentiment -p epochs=5 -p "seeds=[0, 1]" --out runs/sentiment
  cartokit run --config study.yaml --out runs/study
  cartokit grid grid.yaml --out runs/grid               # datasets x models x ... as jobs
"""


GRID_EXAMPLE = """\
a grid file:
  preset: digits                 # optional: the base parameters
  params: {epochs: 10}           # optional: fixed parameters
  grid:                          # one job per combination of scalar parameters
    model: [mlp, cnn]
    seed: [0, 1]
    selectors: [full, random, ambiguous]   # list parameters: crossed inside each job
    fractions: [0.1, 0.33]
    seeds: [0, 1, 2]
  out: runs/grid                 # optional: the output folder
"""


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
    dyn = read_dynamics(args.input, format=args.format)
    metrics = compute_metrics(dyn, burn_in=args.burn_in)
    write_metrics_csv(metrics, args.output)
    counts = region_counts(assign_regions(metrics, Thresholds()))
    summary = ", ".join(f"{name} {int(n)}" for name, n in counts.items())
    print(
        f"{dyn.num_samples} samples x {dyn.num_epochs} checkpoints x {dyn.num_classes} classes; "
        f"regions (default thresholds): {summary}; wrote {args.output}",
        file=sys.stderr,
    )


def _cmd_select(args: argparse.Namespace) -> None:
    from cartokit._files import atomic_write
    from cartokit.io import read_metrics_table
    from cartokit.regions import Thresholds
    from cartokit.selection import select, select_mixture

    _check_output(args.output, [Path(args.metrics)])
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
        ids = select_mixture(
            metrics, args.mixture, thresholds=thresholds, balanced=args.balanced, seed=args.seed
        )
    else:
        by = args.by if args.by is not None else ("random" if args.region else "ambiguous")
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
        )
    with atomic_write(args.output, "w") as fh:
        fh.writelines(f"{i}\n" for i in ids)
    print(f"selected {len(ids)} of {len(metrics)} samples; wrote {args.output}", file=sys.stderr)


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


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--notebooks", metavar="DIR", help="folder of notebooks 01-04 (default: found)")
    p.add_argument(
        "--kernel", help="Jupyter kernel (default: cartokit if registered, else python3)"
    )
    p.add_argument("--quiet", action="store_true", help="no per-cell progress bars")


def _add_metrics_command(sub: argparse._SubParsersAction) -> None:
    """The ``cartokit metrics`` subcommand and its options."""

    p = sub.add_parser(
        "metrics",
        help="compute per-sample metrics from recorded dynamics",
        description="Compute confidence, variability, correctness, forgetting, AUM, EL2N, ... "
        "for every sample, from an allenai/cartography folder, a TrustAI signal file or a "
        "cartokit dynamics file.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="allenai run folder, TrustAI .jsonl, or cartokit .npz")
    p.add_argument("-o", "--output", required=True, help="metrics CSV to write")
    p.add_argument(
        "--format",
        default="auto",
        choices=["auto", "allenai", "trustai", "cartokit"],
        help="input format (default: detected)",
    )
    p.add_argument("--burn-in", type=int, default=0, help="leave out the first K checkpoints")
    p.set_defaults(func=_cmd_metrics)


def _add_select_command(sub: argparse._SubParsersAction) -> None:
    """The ``cartokit select`` subcommand and its options."""
    s = sub.add_parser(
        "select",
        help="select a subset of sample ids from a metrics CSV",
        description="Select sample ids by a metric, a region, at random, or a mixture. "
        "Named selectors: ambiguous (highest variability), easy (highest confidence), hard "
        "(lowest confidence), high_confidence, low_variability, high_correctness, "
        "low_correctness, high_forgetting, low_aum, high_el2n, random, or any metric column.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("metrics", help="metrics CSV written by 'cartokit metrics'")
    s.add_argument("-o", "--output", required=True, help="file to write, one id per line")
    s.add_argument("--by", help="selector name or metric column (default: ambiguous)")
    s.add_argument("--fraction", type=float, help="fraction of all samples, in (0, 1]")
    s.add_argument("--lowest", action="store_true", help="take the lowest values of --by")
    s.add_argument("--region", choices=["easy", "ambiguous", "hard"], help="restrict to a region")
    s.add_argument("--mixture", help='e.g. "17%% ambiguous + 10%% easy"')
    s.add_argument("--balanced", action="store_true", help="keep the class proportions")
    s.add_argument("--seed", type=int, default=0, help="seed for random choices (default 0)")
    s.add_argument("--ambiguous-variability", type=float, default=0.2, metavar="V")
    s.add_argument("--easy-confidence", type=float, default=0.7, metavar="C")
    s.add_argument("--hard-confidence", type=float, default=0.3, metavar="C")
    s.set_defaults(func=_cmd_select)


def _add_demo_command(sub: argparse._SubParsersAction) -> None:
    """The ``cartokit demo`` subcommand and its options."""
    d = sub.add_parser(
        "demo",
        help="train on scikit-learn's digits while recording, and write a data map",
        description="Train a small MLP on scikit-learn's bundled digits with some labels "
        "flipped, record its training dynamics, and write metrics.csv, dynamics.npz and "
        "data_map.png to the output folder, which must be new, empty or an earlier demo's.",
    )
    d.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    d.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    d.add_argument("--noise", type=float, default=0.1, help="fraction of labels to flip")
    d.add_argument("--seed", type=int, default=0)
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
        "beside OUT until the next run into OUT removes it.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = r.add_mutually_exclusive_group()
    source.add_argument("--preset", help="a preset: digits (make demo) or sentiment")
    source.add_argument("--config", metavar="FILE.yaml", help="parameters in a YAML file")
    r.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set one parameter (value read as YAML), e.g. -p epochs=5; repeat for more",
    )
    r.add_argument("--out", help="run folder (default runs/PRESET, runs/CONFIG or runs/default)")
    _add_run_options(r)
    r.set_defaults(func=_cmd_run)


def _add_grid_command(sub: argparse._SubParsersAction) -> None:
    """The ``cartokit grid`` subcommand and its options."""
    g = sub.add_parser(
        "grid",
        help="run a parameter grid of studies and collect one results table",
        description="Run one study per combination of the grid's scalar parameters (datasets x "
        "models x ...); list parameters (selectors, fractions, seeds) are crossed inside each "
        "study. Writes OUT/jobs/<job>/, OUT/results.csv, OUT/jobs.csv and OUT/summary.md. "
        "Finished jobs are skipped when the grid runs again; failed ones are retried. OUT must "
        "be new, empty, or a grid folder that cartokit wrote.",
        epilog=GRID_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g.add_argument("file", help="grid file (YAML)")
    g.add_argument("--out", help="output folder (default: the file's out, else runs/FILE)")
    g.add_argument("--force", action="store_true", help="run finished jobs again")
    _add_run_options(g)
    g.set_defaults(func=_cmd_grid)


def build_parser() -> argparse.ArgumentParser:
    from cartokit import __version__

    parser = argparse.ArgumentParser(
        prog="cartokit",
        description="Dataset Cartography: training-dynamics metrics, data maps and subsets.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cartokit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_metrics_command(sub)
    _add_select_command(sub)
    _add_demo_command(sub)
    _add_run_command(sub)
    _add_grid_command(sub)
    return parser


@contextmanager
def _one_line_warnings(command: str) -> Iterator[None]:
    """While a command runs, each warning prints as one line, ``cartokit <command>: warning:
    <message>``, not as Python's two lines that quote cartokit's source."""
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
        text = " ".join(str(message).split())
        print(f"cartokit {command}: warning: {text}", file=file or sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cartokit`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _one_line_warnings(args.command):
            args.func(args)
    except CliError as err:
        print(f"cartokit {args.command}: error: {err}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, RuntimeError) as err:
        message = " ".join(str(err).split())
        print(f"cartokit {args.command}: error: {message}", file=sys.stderr)
        return 1
    except OSError as err:  # a file that cannot be read or written: its path and the reason
        if err.filename is not None and err.strerror:
            where = f"{err.filename} -> {err.filename2}" if err.filename2 else err.filename
            message = f"{where}: {err.strerror}"
        else:  # cartokit's own FileNotFoundError sentences
            message = str(err)
        print(f"cartokit {args.command}: error: {' '.join(message.split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        # a run or grid has already said where its partial outputs are; the others write
        # nothing until they finish
        stopped = str(err) if getattr(err, "signum", None) is not None else "interrupted"
        done = "" if args.command in ("run", "grid", "demo") else "; no output was written"
        print(f"cartokit {args.command}: {stopped}{done}", file=sys.stderr)
        return 128 + getattr(err, "signum", signal.SIGINT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
