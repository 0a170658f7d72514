"""The ``normlab`` command: one argparse sub-command per job.

    normlab --help
    normlab train [--dataset digits] [--norm batch] [--act relu] ... [--save model.safetensors]
    normlab train --nproc 2 --norm sync-batch         (data parallel: starts mpiexec -n 2 itself)
    mpiexec -n 2 normlab train --distributed          (the same, started by mpiexec; hostfiles work)
    normlab lab list | show NAME | run NAME... | run --all [--quick] [--seeds N] [--out DIR] [--jobs N]
    normlab bench [--threads N] [--ops NAME,...] [--json PATH] [--quick] [--repeat R] [--clock wall|cpu] [--cold]

Each sub-command lives in an ``_add_<name>_command(subparsers)`` function
that declares its options and sets ``handler`` to a function taking the
parsed arguments and returning an exit status; ``main`` only dispatches.
New commands are added the same way.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys

__all__ = ["build_parser", "main"]


def _add_train_command(subparsers) -> None:
    # Imported here so that `normlab --help` stays fast and the choices come from one place.
    from normlab.train import ACTIVATIONS, DATASETS, NORMS, OPTIMIZERS, TrainConfig

    defaults = TrainConfig()
    parser = subparsers.add_parser(
        "train",
        help="train a small MLP on an embedded dataset and print train/test accuracy",
        description="Train a small MLP (Linear -> norm -> activation, DEPTH times, then a Linear) on a dataset "
                    "that needs no download, with a progress bar on stderr; prints the loss of every epoch and "
                    "the final train and test accuracy (eval mode: BatchNorm uses its running statistics).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--dataset", choices=DATASETS, default=defaults.dataset,
                        help="digits: scikit-learn's 8x8 digits; mnist1d: MNIST-1D generated locally")
    parser.add_argument("--norm", choices=tuple(NORMS), default=defaults.norm,
                        help="normalization after each hidden Linear: "
                             + "; ".join(f"{k}: {v}" for k, v in NORMS.items()))
    parser.add_argument("--act", choices=ACTIVATIONS, default=defaults.act, help="hidden activation")
    parser.add_argument("--depth", type=int, default=defaults.depth, help="number of hidden layers")
    parser.add_argument("--width", type=int, default=defaults.width, help="units per hidden layer")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help="samples per step (the last incomplete batch of each epoch is dropped)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="passes over the training set")
    parser.add_argument("--lr", type=float, default=defaults.lr,
                        help="learning rate; None means the optimizer's own: "
                             + ", ".join(f"{k} {v:g}" for k, v in OPTIMIZERS.items()))
    parser.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default=defaults.optimizer,
                        help="sgd (with --momentum) or adam")
    parser.add_argument("--momentum", type=float, default=defaults.momentum, help="SGD momentum")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="L2 weight decay")
    parser.add_argument("--dtype", choices=("float32", "float64"), default=defaults.dtype,
                        help="dtype of parameters and inputs")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="seed of normlab's generator (initialization and shuffling)")
    parser.add_argument("--save", metavar="PATH", default=None,
                        help="write a safetensors checkpoint of model.state_dict() to PATH")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar and no per-epoch lines; print only the final accuracy line")
    parser.add_argument("--nproc", type=int, default=None, metavar="N",
                        help="train data-parallel in N local processes: runs `mpiexec -n N normlab train "
                             "--distributed` with these options (needs pip install 'normlab[dist]')")
    parser.add_argument("--distributed", action="store_true",
                        help="run as one process of an MPI job (mpiexec -n N normlab train --distributed): "
                             "gradients are averaged across processes, --batch-size is per process, only rank "
                             "0 prints and saves")
    parser.set_defaults(handler=_run_train, parser=parser)


def _run_train(args: argparse.Namespace) -> int:
    from normlab.train import ConfigError, TrainConfig, train

    try:
        config = TrainConfig(dataset=args.dataset, norm=args.norm, act=args.act, depth=args.depth,
                             width=args.width, batch_size=args.batch_size, epochs=args.epochs, lr=args.lr,
                             optimizer=args.optimizer, momentum=args.momentum, weight_decay=args.weight_decay,
                             seed=args.seed, dtype=args.dtype, save=args.save,
                             distributed=args.distributed).check()
    except ConfigError as error:
        args.parser.error(str(error).removeprefix("train: "))  # exits with status 2, like any argparse error
    if args.nproc is not None and args.nproc < 1:
        args.parser.error(f"argument --nproc: expected a positive integer, got {args.nproc}")
    if args.nproc is not None and not args.distributed:
        from normlab.distributed.launch import run_with_mpiexec

        try:  # the same command line, once per process, each told it is one of an MPI job
            return run_with_mpiexec(args.nproc, [sys.executable, "-m", "normlab", *args.argv, "--distributed"])
        except ImportError as error:
            print(f"normlab train: {error}", file=sys.stderr)
            return 1
    final_only = (lambda line: print(line) if line.startswith("train accuracy") else None)
    try:
        train(config, progress=not args.quiet, log=final_only if args.quiet else print)
    except ConfigError as error:
        args.parser.error(str(error).removeprefix("train: "))
    except ImportError as error:  # a dataset's package from the 'lab' extra, or mpi4py, is missing
        print(f"normlab train: {error}", file=sys.stderr)
        return 1
    return 0


def _add_lab_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "lab", help="the lab: each claim about normalization and gradients as a measured experiment",
        description="List, describe and run the lab's experiments; a run writes DIR/index.html (verdict table, "
                    "figures), DIR/results.json and the figures.")
    commands = parser.add_subparsers(title="lab commands", dest="lab_command", metavar="LAB_COMMAND", required=True)
    listing = commands.add_parser("list", help="the experiments, one per line: id and title")
    listing.set_defaults(handler=_run_lab_list)
    show = commands.add_parser("show", help="an experiment's claim, anchor, criterion and how it is measured")
    show.add_argument("name", help="experiment id (see `normlab lab list`)")
    show.set_defaults(handler=_run_lab_show, parser=show)
    run = commands.add_parser(
        "run", help="run experiments and write the report",
        description="Run the named experiments (or --all) and write DIR/index.html, DIR/results.json and the "
                    "figures. Each task runs in a worker process with --threads threads.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    run.add_argument("names", nargs="*", metavar="NAME", help="experiment ids")
    run.add_argument("--all", action="store_true", help="run every experiment")
    run.add_argument("--quick", action="store_true",
                     help="reduced sizes and seeds (minutes); failing criteria are then reported inconclusive")
    run.add_argument("--seeds", type=int, default=None,
                     help="seeds per experiment (default: 5, or each experiment's quick count with --quick)")
    run.add_argument("--out", default="report", help="output folder")
    run.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                     help="worker processes running experiments' tasks (seeds) in parallel")
    run.add_argument("--threads", type=int, default=1,
                     help="threads per worker (Numba, OpenMP, BLAS); the numbers are reproducible at a given count")
    run.add_argument("--no-progress", action="store_true", help="no progress bars (a line per finished experiment)")
    run.set_defaults(handler=_run_lab_run, parser=run)


def _run_lab_list(args: argparse.Namespace) -> int:
    from normlab.lab import list_experiments

    known = list_experiments()
    width = max((len(name) for name in known), default=0)
    for name, experiment in known.items():
        print(f"{name:<{width}}  {experiment.title}")
    return 0


def _run_lab_show(args: argparse.Namespace) -> int:
    from normlab.lab import get_experiment

    try:
        experiment = get_experiment(args.name)
    except ValueError as error:
        args.parser.error(str(error))
    print(experiment.describe())
    return 0


def _run_lab_run(args: argparse.Namespace) -> int:
    from normlab.lab import get_experiment, list_experiments, run

    if args.all == bool(args.names):
        args.parser.error("give experiment names or --all (not both)")
    for option in ("seeds", "jobs", "threads"):
        value = getattr(args, option)
        if value is not None and value < 1:
            args.parser.error(f"--{option} must be at least 1, got {value}")
    try:
        names = list(list_experiments()) if args.all else [get_experiment(name).id for name in args.names]
    except ValueError as error:
        args.parser.error(str(error))
    command = ["normlab", "lab", "run"] + (["--all"] if args.all else names) + (["--quick"] if args.quick else [])
    command += [] if args.seeds is None else ["--seeds", str(args.seeds)]
    command += ["--out", args.out, "--jobs", str(args.jobs), "--threads", str(args.threads)]
    document = run(names, quick=args.quick, seeds=args.seeds, out=args.out, jobs=args.jobs, threads=args.threads,
                   progress=not args.no_progress, command=shlex.join(command))
    failed = [record["id"] for record in document["experiments"] if record["status"] == "failed"]
    for record in document["experiments"]:
        state = "FAILED" if record["status"] == "failed" else record["verdict"]
        print(f"{record['id']:<22} {state:<15} {record.get('measurement', '')}")
    print(f"report: {os.path.abspath(os.path.join(args.out, 'index.html'))}")
    if failed:
        print(f"failed: {', '.join(failed)} (tracebacks in the report)", file=sys.stderr)
    return 1 if failed else 0


def _add_bench_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="time the normalization, pooling and convolution layers against PyTorch and the bandwidth floor",
        description="Time every normalization and pooling layer at shapes covering every layout, two convolutions "
                    "and a small CNN's training step, float32, forward + backward and forward alone through the "
                    "public modules: ours and torch's (same thread count, when torch is installed) interleaved, "
                    "medians after a warm-up; GB/s and % of the copy bandwidth measured in the same run. Then the "
                    "cold start of each layer (its first call minus the warm median) and the compile latency of "
                    "`normlab train --epochs 1` (empty kernel cache vs warm).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--threads", type=int, default=None,
                        help="normlab's and torch's threads (default: normlab's current count)")
    parser.add_argument("--ops", default="",
                        help="comma-separated name filters: a layer runs when one occurs in its name, "
                             "case-insensitive (e.g. 'norm', 'MaxPool2d', 'conv', 'CNN step', 'compile latency'); "
                             "default: all")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON to PATH")
    parser.add_argument("--quick", action="store_true",
                        help="tiny shapes and 2 repeats, no compile latency unless --ops names it: a smoke test "
                             "(the times mean nothing)")
    parser.add_argument("--repeat", type=int, default=None, help="timed rounds per layer (default 15; 2 with --quick)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: the calling thread's CPU time, robust on a shared machine (meaningful at "
                             "--threads 1 only)")
    parser.add_argument("--cold", action="store_true",
                        help="run with an empty kernel cache (a fresh temporary NUMBA_CACHE_DIR): the cold-start "
                             "table then shows compile times")
    parser.set_defaults(handler=_run_bench, parser=parser)


def _run_bench(args: argparse.Namespace) -> int:
    for option in ("threads", "repeat"):
        value = getattr(args, option)
        if value is not None and value < 1:
            args.parser.error(f"argument --{option}: expected a positive integer, got {value}")
    if args.clock == "cpu" and args.threads != 1:
        args.parser.error("--clock cpu measures the calling thread only: use it with --threads 1")
    if args.cold:  # Numba reads its cache directory when it loads: a fresh process with an empty one
        import subprocess
        import tempfile

        argv = [argument for argument in args.argv if argument != "--cold"]
        with tempfile.TemporaryDirectory(prefix="normlab-empty-kernel-cache-") as cache:
            return subprocess.run([sys.executable, "-m", "normlab", *argv],
                                  env=dict(os.environ, NUMBA_CACHE_DIR=cache)).returncode
    from normlab.bench.runner import format_report, run

    ops = [term for term in args.ops.split(",") if term.strip()]
    document = run(ops=ops, threads=args.threads, quick=args.quick, repeat=args.repeat, clock=args.clock,
                   progress=lambda what: print(f"normlab bench: {what}", file=sys.stderr, flush=True))
    if not document["rows"] and document["compile_latency"] is None:
        args.parser.error(f"--ops {args.ops!r} matches no benchmark")
    print(format_report(document))
    if args.json:
        import json

        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=1)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``normlab`` argument parser with every sub-command."""
    from normlab import __version__

    parser = argparse.ArgumentParser(
        prog="normlab",
        description="normlab: normalization layers, pooling and the remedies for vanishing gradients, "
                    "written by hand on NumPy and verified against PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"normlab {__version__}")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    _add_train_command(subparsers)
    _add_lab_command(subparsers)
    _add_bench_command(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``normlab`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit status.

    Bad arguments and unknown commands raise ``SystemExit(2)`` after argparse's
    usage message, exactly as argparse does; ``--help`` raises ``SystemExit(0)``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `train --nproc` hands them to its processes
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
