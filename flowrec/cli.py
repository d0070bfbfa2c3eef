"""Command-line interface: ``flowrec compare`` and ``flowrec datasets``.

This module is the only part of flowrec that writes to stdout. ``main(argv)``
returns the exit code instead of exiting, so tests can call it: 0 on success,
1 when training fails, 2 for invalid input or missing data, 130 on Ctrl-C.
"""

import argparse
import logging
import os
import sys
from pathlib import Path

from flowrec.exceptions import DatasetNotFoundError, FlowrecError

__all__ = ["main", "build_parser"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _comma_list(text):
    return [part.strip() for part in text.split(",") if part.strip()]


def _parse_number(text, convert, is_valid, expected):
    """Convert an option value for argparse, raising ArgumentTypeError with ``expected``."""
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not is_valid(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _positive_int(text):
    return _parse_number(text, int, lambda value: value >= 1, "a positive integer")


def _non_negative_int(text):
    return _parse_number(text, int, lambda value: value >= 0, "a non-negative integer")


def _fraction(text):
    return _parse_number(text, float, lambda value: 0 < value < 1, "a number between 0 and 1")


def build_parser():
    """Build the ``flowrec`` argument parser with its subcommands."""
    from flowrec.compare import DATASETS, DEFAULT_MODELS, PRESETS, RECOVERY_MODELS

    parser = argparse.ArgumentParser(
        prog="flowrec",
        description="Recommender estimators trained by FlowAdam: compare models and optimizers.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    preset_lines = "\n".join(f"  {name:<18} {preset.description}" for name, preset in PRESETS.items())
    compare = commands.add_parser(
        "compare",
        help="fit several models on the same splits and print a table of held-out scores",
        description=(
            "Fit every model on the same train/test splits and seeds, print the summary "
            "table and write results.csv, summary.csv, summary.md, comparison.png and curves.csv."
        ),
        epilog=f"model presets:\n{preset_lines}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument(
        "--dataset", default="synthetic", choices=list(DATASETS),
        help="dataset to compare on (default: synthetic, which needs no files)",
    )
    compare.add_argument(
        "--split", default=None,
        help="split of the dataset: for movielens-100k u1-u5 (default, the five official "
        "folds), u1 ... u5, ua, ub or random (seeded 80/20); other datasets: random",
    )
    compare.add_argument(
        "--models", type=_comma_list, default=None, metavar="NAME[,NAME...]",
        help=f"comma-separated model presets (default: {','.join(DEFAULT_MODELS)}, and "
        f"on the synthetic dataset also {','.join(RECOVERY_MODELS)})",
    )
    seeds = compare.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seeds", type=_non_negative_int, nargs="+", metavar="SEED",
        help="seeds of the models, of random splits and of synthetic data (default: 0)",
    )
    seeds.add_argument(
        "--n-seeds", type=_positive_int, metavar="N", help="use seeds 0 .. N-1",
    )
    compare.add_argument(
        "--epochs", type=_positive_int, default=None, metavar="N",
        help="number of epochs (full-batch optimizer steps) for the flowrec models; "
        "baselines keep their own (default: the estimator's default)",
    )
    compare.add_argument(
        "--validation-fraction", type=_fraction, default=None, metavar="F",
        help="share (0 to 1) of each training set the flowrec models hold out to record "
        "validation RMSE per epoch and stop early; the test set is never used for this "
        "(default: the estimator's default, no validation)",
    )
    compare.add_argument(
        "--data-home", default=None, metavar="DIR",
        help="folder with ml-100k/, ml-latest-small/ and jester/ "
        "(default: $FLOWREC_DATA, else ~/flowrec_data)",
    )
    compare.add_argument(
        "--output", default=None, metavar="DIR",
        help="folder for the result files, created when missing "
        "(default: flowrec-compare/DATASET in the current folder)",
    )
    compare.add_argument(
        "--svdpp", action="store_true",
        help="add the Surprise SVD++ row (slow: about 30 s per MovieLens 100K fold on 2 cores)",
    )
    compare.add_argument(
        "--ranking", action="store_true",
        help="add the implicit ALS row and NDCG, precision and recall at K for every model",
    )
    compare.add_argument(
        "--k", type=_positive_int, default=10, metavar="K",
        help="length of the ranked lists scored by NDCG, precision and recall (default: 10)",
    )
    compare.add_argument(
        "--relevance-threshold", type=float, default=None, metavar="RATING",
        help="minimum held-out rating for an item to count as relevant in --ranking "
        "(default: every held-out item is relevant)",
    )
    compare.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default=None,
        help="device of the flowrec models (default: the estimator's default)",
    )
    compare.add_argument(
        "--quiet", action="store_true", help="hide the progress bar (warnings are still shown)",
    )
    compare.add_argument(
        "--threads", type=_positive_int, default=None, metavar="N",
        help="CPU threads torch may use (default: torch's default, one per core); on a "
        "small machine shared with other work, --threads 1 can make fits several times faster",
    )

    datasets = commands.add_parser(
        "datasets",
        help="list the datasets compare supports and where their files are looked for",
    )
    datasets.add_argument(
        "--data-home", default=None, metavar="DIR",
        help="folder to look in (default: $FLOWREC_DATA, else ~/flowrec_data)",
    )
    return parser


def _run_compare(args):
    import torch

    from flowrec.compare import compare, default_models

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    models = list(args.models) if args.models else default_models(args.dataset)
    if args.svdpp and "surprise-svdpp" not in models:
        models.append("surprise-svdpp")
    if args.ranking and "implicit-als" not in models:
        models.append("implicit-als")
    if args.n_seeds is not None:
        seeds = list(range(args.n_seeds))
    else:
        seeds = args.seeds or [0]
    output = Path(args.output) if args.output else Path("flowrec-compare") / args.dataset

    result = compare(
        models,
        dataset=args.dataset,
        split=args.split,
        data_home=args.data_home,
        seeds=seeds,
        n_epochs=args.epochs,
        validation_fraction=args.validation_fraction,
        device=args.device,
        ranking=args.ranking,
        k=args.k,
        relevance_threshold=args.relevance_threshold,
        output=output,
        progress=not args.quiet,
    )
    print(f"{args.dataset}, split {result.split}, seeds {' '.join(map(str, seeds))}")
    print(result.to_markdown())
    names = ", ".join(path.name for path in result.files.values())
    print(f"wrote {names} to {output}")
    return EXIT_OK


def _run_datasets(args):
    from flowrec.compare import DATASETS
    from flowrec.datasets import get_data_home

    home = get_data_home(args.data_home)
    print(f"data folder: {home}")
    for name, spec in DATASETS.items():
        print(f"\n{name}: {spec.description}")
        print(f"  splits: {', '.join(spec.splits)} (default {spec.splits[0]})")
        if not spec.files:
            print("  files: none (generated)")
            continue
        found = [path for path in spec.files if (home / path).exists()]
        if found:
            print(f"  files: found {home / found[0]}")
        else:
            print(f"  files: not found; looked for {', '.join(spec.files)}")
    return EXIT_OK


def _configure_logging():
    # Warnings and errors only: info lines would break up the progress bar.
    logging.basicConfig(level=logging.WARNING, format="flowrec: %(levelname)s: %(message)s",
                        stream=sys.stderr)


def main(argv=None):
    """Run the ``flowrec`` command line and return its exit code.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; None reads ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success, 1 when training fails, 2 for invalid arguments, unknown
        models or datasets and missing data files, 130 when interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:
        # argparse exits with 0 after --help and with 2 after a usage error.
        return exit_request.code if isinstance(exit_request.code, int) else EXIT_USAGE

    _configure_logging()
    try:
        if args.command == "compare":
            return _run_compare(args)
        return _run_datasets(args)
    except KeyboardInterrupt:
        print("flowrec: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader of stdout went away (for example `flowrec datasets | head`):
        # point stdout at devnull so the interpreter's final flush stays quiet
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except DatasetNotFoundError as error:
        print(f"flowrec: error: {_one_line(error)}", file=sys.stderr)
        print("flowrec: save the file there, or point --data-home (or FLOWREC_DATA) at the "
              "folder that holds it; `flowrec datasets` lists where each dataset is looked for",
              file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, TypeError, FileNotFoundError, ImportError) as error:
        print(f"flowrec: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except (FlowrecError, OSError) as error:
        print(f"flowrec: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_FAILURE


def _one_line(error):
    return " ".join(str(error).split())


if __name__ == "__main__":
    sys.exit(main())
