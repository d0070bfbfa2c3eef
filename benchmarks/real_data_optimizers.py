"""Compare FlowAdam with Adam, Lion and AdaBelief for LowRankMF on real ratings.

For each optimizer, LowRankMF is fitted on the training part of a dataset over
a small grid of regularization strengths (``reg``, the per-rating factor
penalty) and learning rates. A tenth of the training ratings is held out as a
validation split (LowRankMF's ``validation_fraction``, drawn with the seed).
Every run takes the same number of epochs, and because FlowAdam's ODE steps use
the Euler integrator (one closure call each), every run also uses the same
number of gradient evaluations. LowRankMF keeps the epoch with the lowest
validation RMSE (early stopping without cutting the budget short).

Selection uses only the validation split. For each optimizer and ``reg`` the
learning rate with the lowest validation RMSE (mean over seeds) is picked, and
the overall row picks ``reg`` the same way. The test set is scored only for
the picked settings' models, and never feeds back into a choice.

Datasets
--------
* ``movielens-100k``: the official folds ``u1`` .. ``u5`` (``--folds``).
* ``jester-1``: Jester dataset 1 part 1 (ratings -10..10), split 80/20 at
  random with the seed. ``--jester-users`` keeps a random subsample of users
  (drawn with the seed) to bound the run time. NMAE is MAE / 20.

Run ``python benchmarks/real_data_optimizers.py --help`` for the options.
"""

import argparse
import json
import math
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flowrec.exceptions import DivergenceError  # noqa: E402
from flowrec.datasets import load_jester, load_movielens_100k_split, random_split  # noqa: E402
from flowrec.models import LowRankMF  # noqa: E402
from flowrec.optim import make_optimizer  # noqa: E402

# Each method is (registry name, options passed through optimizer_options).
# "flowadam-tuned" changes two FlowAdam options. The first ODE phase may start
# after 5 Adam steps instead of 50, and the ODE step size follows the secant
# curvature along the flow ("auto"). The default "match" copies Adam's last
# step length, which made the Euler steps oscillate near convergence. Both
# were picked on the validation error of MovieLens u1 with seed 0 (see
# docs/benchmarks.md).
METHODS = {
    "flowadam": ("flowadam", {}),
    "flowadam-tuned": ("flowadam", {"warmup": 5, "ode_dt": "auto"}),
    "adam": ("adam", {}),
    "lion": ("lion", {}),
    "adabelief": ("adabelief", {}),
    "sgd": ("sgd", {}),
}
DEFAULT_METHODS = ("flowadam", "flowadam-tuned", "adam", "lion", "adabelief")

# Lion's sign update moves every coordinate by lr, so it needs smaller steps.
# Plain gradient descent on the mean loss needs steps of order 100, because a
# factor's gradient is scaled by its share of the ratings.
DEFAULT_LRS = {"lion": (0.001, 0.003, 0.01), "sgd": (10.0, 30.0, 100.0)}
DEFAULT_ADAM_LRS = (0.003, 0.01, 0.05)
# LowRankMF trains on ratings divided by their standard deviation, so one grid
# serves both datasets. 0.12 is the best value for Adam on both, and the
# others are weak regularization.
DEFAULT_REGS = (0.12, 0.04, 0.01)

RATING_COLUMNS = ["user_id", "item_id", "rating"]
PAIR_COLUMNS = ["user_id", "item_id"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-home", required=True,
                        help="data folder with ml-100k/ and jester/ subfolders")
    parser.add_argument("--dataset", choices=("movielens-100k", "jester-1"), default="movielens-100k")
    parser.add_argument("--folds", default="u1,u2,u3,u4,u5",
                        help="comma-separated MovieLens 100K folds (default: all five)")
    parser.add_argument("--seeds", default="0,1",
                        help="comma-separated seeds of the initialization and validation split "
                             "(and of the Jester split and subsample); default: 0,1")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help=f"comma-separated methods from {list(METHODS)} "
                             f"(default: {','.join(DEFAULT_METHODS)})")
    parser.add_argument("--regs", default=",".join(map(str, DEFAULT_REGS)),
                        help="comma-separated values of LowRankMF's reg "
                             f"(default: {','.join(map(str, DEFAULT_REGS))})")
    parser.add_argument("--lrs", default=None,
                        help="comma-separated learning rates for every method; default: "
                             f"{DEFAULT_ADAM_LRS} for Adam-type methods, {DEFAULT_LRS['lion']} for Lion, "
                             f"{DEFAULT_LRS['sgd']} for SGD")
    parser.add_argument("--epochs", type=int, default=200,
                        help="epochs per fit, one full-batch step each (default: 200)")
    parser.add_argument("--n-factors", type=int, default=32, help="factor length (default: 32)")
    parser.add_argument("--jester-users", type=int, default=4000,
                        help="users kept from Jester 1-1, drawn with the seed; 0 keeps all 24,983 "
                             "(default: 4000)")
    parser.add_argument("--flowadam-options", default=None,
                        help="JSON object replacing the options of flowadam-tuned, for example "
                             "'{\"warmup\": 20, \"ode_steps\": 20}'")
    parser.add_argument("--output", default=None, help="write the Markdown tables to this file")
    parser.add_argument("--json", default=None, help="write every run as JSON lines to this file")
    args = parser.parse_args(argv)

    args.folds = [fold.strip() for fold in args.folds.split(",") if fold.strip()]
    args.seeds = [int(seed) for seed in args.seeds.split(",")]
    args.methods = [method.strip() for method in args.methods.split(",")]
    unknown = [method for method in args.methods if method not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; use names from {list(METHODS)}")
    args.regs = [float(value) for value in args.regs.split(",")]
    if args.lrs is not None:
        args.lrs = [float(value) for value in args.lrs.split(",")]
    if args.flowadam_options is not None:
        options = json.loads(args.flowadam_options)
        if "thresholds" in options:
            options["thresholds"] = {name: tuple(pair) for name, pair in options["thresholds"].items()}
        METHODS["flowadam-tuned"] = ("flowadam", options)
    return args


def load_splits(args, seed):
    """Return a list of (split name, train frame, test frame, rating range) for one seed."""
    if args.dataset == "movielens-100k":
        splits = []
        for fold in args.folds:
            train, test = load_movielens_100k_split(fold, data_home=args.data_home)
            splits.append((fold, train[RATING_COLUMNS], test[RATING_COLUMNS], 4.0))
        return splits

    ratings = load_jester("1-1", data_home=args.data_home).ratings
    if args.jester_users:
        users = np.sort(ratings["user_id"].unique())
        keep = np.random.default_rng(seed).choice(users, size=min(args.jester_users, len(users)),
                                                  replace=False)
        ratings = ratings[ratings["user_id"].isin(keep)]
    train, test = random_split(ratings, test_size=0.2, random_state=seed)
    return [("1-1", train[RATING_COLUMNS], test[RATING_COLUMNS], 20.0)]


def lr_grid(args, method):
    if args.lrs is not None:
        return args.lrs
    return DEFAULT_LRS.get(METHODS[method][0], DEFAULT_ADAM_LRS)


def fit_one(args, method, reg, lr, seed, train, test, rating_range):
    """Fit one LowRankMF and return a dict with its validation and test results."""
    name, options = METHODS[method]
    optimizers = []

    def factory(params, lr, **kwargs):
        optimizer = make_optimizer(name, params, lr=lr, **kwargs)
        optimizers.append(optimizer)
        return optimizer

    model = LowRankMF(
        n_factors=args.n_factors, reg=reg, optimizer=factory, optimizer_options=options,
        lr=lr, n_epochs=args.epochs, validation_fraction=0.1, patience=args.epochs,
        random_state=seed, device="cpu",
    )
    try:
        model.fit(train)
    except DivergenceError as error:
        # a diverged setting scores infinity on validation and is never picked
        print(f"{method} reg={reg} lr={lr} seed={seed}: {error}", flush=True)
        return {"method": method, "reg": reg, "lr": lr, "seed": seed, "diverged": True,
                **{key: math.inf for key in ("best_val_rmse", "final_val_rmse", "test_rmse",
                                             "test_mae", "test_nmae")},
                "best_epoch": 0, "epochs": error.epoch, "grad_evals": 0, "ode_phases": 0,
                "ode_epochs": 0, "coupling": None, "seconds": 0.0}
    prediction = model.predict(test[PAIR_COLUMNS])
    error = prediction - test["rating"].to_numpy()
    history = model.history_
    modes = history["mode"].tolist()
    phases = sum(1 for before, after in zip(["adam"] + modes, modes) if before != "ode" and after == "ode")

    statistics = getattr(optimizers[0], "statistics", {})
    return {
        "method": method,
        "reg": reg,
        "lr": lr,
        "seed": seed,
        "diverged": False,
        "best_val_rmse": float(history["val_rmse"].min()),
        "final_val_rmse": float(history["val_rmse"].iloc[-1]),
        "test_rmse": float(np.sqrt(np.mean(error ** 2))),
        "test_mae": float(np.mean(np.abs(error))),
        "test_nmae": float(np.mean(np.abs(error)) / rating_range),
        "best_epoch": int(model.best_epoch_),
        "epochs": int(model.n_epochs_),
        "grad_evals": int(model.n_grad_evals_),
        "ode_phases": phases,
        "ode_epochs": sum(mode == "ode" for mode in modes),
        "coupling": statistics.get("coupling"),
        "seconds": float(model.fit_time_),
    }


def mean_sd(values):
    values = np.asarray(values, dtype=float)
    sd = values.std(ddof=1) if len(values) > 1 else 0.0
    return values.mean(), sd


def select(runs, key_fields):
    """Group runs by ``key_fields`` and pick, per group, the (reg, lr) with the lowest mean validation RMSE.

    Returns ``{group key: ((reg, lr), runs of that setting)}``.
    """
    groups = {}
    for run in runs:
        groups.setdefault(tuple(run[field] for field in key_fields), {}).setdefault(
            (run["reg"], run["lr"]), []).append(run)
    chosen = {}
    for key, settings in groups.items():
        best = min(settings.items(), key=lambda item: np.mean([run["best_val_rmse"] for run in item[1]]))
        chosen[key] = best
    return chosen


def format_rows(chosen, error_name, error_key):
    lines = [
        f"| method | reg | lr | val RMSE | test RMSE | test {error_name} | best epoch | grad evals | ODE phases | ODE epochs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, ((reg, lr), runs) in chosen.items():
        val = mean_sd([run["best_val_rmse"] for run in runs])
        rmse = mean_sd([run["test_rmse"] for run in runs])
        other = mean_sd([run[error_key] for run in runs])
        lines.append(
            f"| {key[0]} | {reg:g} | {lr:g} | {val[0]:.4f} | {rmse[0]:.4f} ± {rmse[1]:.4f} "
            f"| {other[0]:.4f} ± {other[1]:.4f} | {np.mean([r['best_epoch'] for r in runs]):.0f} "
            f"| {np.mean([r['grad_evals'] for r in runs]):.0f} "
            f"| {np.mean([r['ode_phases'] for r in runs]):.1f} "
            f"| {np.mean([r['ode_epochs'] for r in runs]):.0f} |"
        )
    return lines


def report(args, split_name, runs):
    """Return Markdown lines: the overall choice per method, then the choice per method and reg."""
    error_name, error_key = ("NMAE", "test_nmae") if args.dataset == "jester-1" else ("MAE", "test_mae")
    lines = [f"### {args.dataset} {split_name}", ""]
    overall = select(runs, ["method"])
    lines += ["reg and lr picked on validation RMSE:", ""]
    lines += format_rows(overall, error_name, error_key)
    per_reg = select(runs, ["method", "reg"])
    per_reg = dict(sorted(per_reg.items(), key=lambda item: (-item[0][1], args.methods.index(item[0][0]))))
    lines += ["", "lr picked on validation RMSE for each reg:", ""]
    lines += format_rows(per_reg, error_name, error_key)
    lines += [""]
    return lines


def summary(args, runs_by_split):
    """Return Markdown lines with the test RMSE of each method averaged over splits.

    Column "picked" uses the reg and lr picked on validation in each split,
    the other columns the lr picked for that reg. The change is relative to
    Adam in the same column.
    """
    columns = ["picked"] + list(args.regs)
    table = {method: {column: [] for column in columns} for method in args.methods}
    for runs in runs_by_split.values():
        for (method,), (_, picked) in select(runs, ["method"]).items():
            table[method]["picked"].append(np.mean([run["test_rmse"] for run in picked]))
        for (method, reg), (_, picked) in select(runs, ["method", "reg"]).items():
            table[method][reg].append(np.mean([run["test_rmse"] for run in picked]))
    header = " | ".join(["picked reg"] + [f"reg {reg:g}" for reg in args.regs])
    lines = [
        f"### {args.dataset}: test RMSE, mean over {len(runs_by_split)} split(s), "
        "change against Adam",
        "",
        f"| method | {header} |",
        "| --- |" + " --- |" * len(columns),
    ]
    for method in args.methods:
        cells = []
        for column in columns:
            value = np.mean(table[method][column])
            if "adam" in table:
                reference = np.mean(table["adam"][column])
                cells.append(f"{value:.4f} ({100 * (value / reference - 1):+.1f}%)")
            else:
                cells.append(f"{value:.4f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines + [""]


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    runs_by_split = {}
    json_file = open(args.json, "w") if args.json else None
    try:
        for seed in args.seeds:
            for split_name, train, test, rating_range in load_splits(args, seed):
                for method in args.methods:
                    for reg in args.regs:
                        for lr in lr_grid(args, method):
                            run = fit_one(args, method, reg, lr, seed, train, test, rating_range)
                            run["split"] = split_name
                            runs_by_split.setdefault(split_name, []).append(run)
                            print(f"{split_name} seed={seed} {method:15s} reg={reg:<6g} lr={lr:<6g} "
                                  f"val={run['best_val_rmse']:.4f} (epoch {run['best_epoch']}) "
                                  f"test={run['test_rmse']:.4f} phases={run['ode_phases']} "
                                  f"{run['seconds']:.1f}s", flush=True)
                            if json_file:
                                json_file.write(json.dumps(run) + "\n")
    finally:
        if json_file:
            json_file.close()
    seconds = time.perf_counter() - start

    command = " ".join(sys.argv[1:] if argv is None else argv).replace(args.data_home, "DIR")
    lines = [
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"torch {torch.__version__}, 1 thread. Command: "
        f"`python benchmarks/real_data_optimizers.py {command}`",
        "",
        f"Seeds {args.seeds}; {args.epochs} epochs per fit; {args.n_factors} factors; "
        f"flowadam-tuned options: `{METHODS['flowadam-tuned'][1]}`.",
        "",
    ]
    lines += summary(args, runs_by_split)
    for split_name, runs in runs_by_split.items():
        lines += report(args, split_name, runs)
    n_runs = sum(len(runs) for runs in runs_by_split.values())
    lines += [f"{n_runs} fits in {seconds:.0f} s.", ""]
    text = "\n".join(lines)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    main()
