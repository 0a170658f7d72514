"""The ``normlab`` command: one argparse sub-command per job.

    normlab --help
    normlab train [--dataset digits] [--norm batch] [--act relu] ... [--save model.safetensors]
    normlab train --nproc 2 --norm sync-batch         (data parallel: starts mpiexec -n 2 itself)
    mpiexec -n 2 normlab train --distributed          (the same, started by mpiexec; hostfiles work)

Each sub-command lives in an ``_add_<name>_command(subparsers)`` function
that declares its options and sets ``handler`` to a function taking the
parsed arguments and returning an exit status; ``main`` only dispatches.
New commands (``lab``, ``bench``) are added the same way.
"""
from __future__ import annotations

import argparse
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
