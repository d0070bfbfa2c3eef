"""Compare FlowAdam with Adam, Lion, AdaBelief and SGD on low-rank recovery.

Each method fits a noisy, partly observed low-rank matrix with rank-``fit_rank``
factors (full-batch squared loss, no explicit regularization) and a
well-conditioned least-squares control, under the same budget of gradient
evaluations (closure calls). For each method the learning rate is picked from a
small grid by the mean validation error over the seeds, and the table reports
the test error at that learning rate.

Problems
--------
* ``recovery-<density>``: truth ``M = A @ B.T / sqrt(rank)`` with standard
  Gaussian ``A`` and ``B`` (entries of ``M`` have variance 1), observations
  ``M + noise * N(0, 1)`` on a random ``density`` share of the cells. A tenth
  of the observed cells is the validation split; the test error is
  ``||P - M|| / ||M||`` over the unobserved cells.
* ``least-squares``: ``y = X @ w + noise`` with Gaussian ``X`` of shape
  (n_samples, n_features) and ``n_samples = 4 * n_features`` training rows, so
  ``X.T @ X / n`` is well conditioned. The test error is
  ``||X_test (w_hat - w)|| / ||X_test w||``.

Each run also records the test error at the checkpoint (every 50 gradient
evaluations) with the lowest validation error, reported as "early-stopped".

Run ``python benchmarks/low_rank_recovery.py --help`` for the options. The
full default run took 569 s with 2 worker processes on 2 busy CPU cores; ``--seeds 1
--evals 1000`` gives a quick look.
"""

import argparse
import concurrent.futures
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flowrec.optim import make_optimizer  # noqa: E402

LR_GRIDS = {
    "flowadam-soft": (1e-4, 3e-4, 1e-3, 3e-3),
    "flowadam-hard": (1e-4, 3e-4, 1e-3, 3e-3),
    "flowadam-none": (1e-4, 3e-4, 1e-3, 3e-3),
    "adam": (1e-4, 3e-4, 1e-3, 3e-3),
    "lion": (3e-5, 1e-4, 3e-4, 1e-3),
    "adabelief": (1e-4, 3e-4, 1e-3, 3e-3),
    "sgd": (1.0, 3.0, 10.0, 30.0),
}

# the least-squares control has curvature near 1, so SGD needs smaller steps
LS_LR_SCALE = {"sgd": 0.03}

CHECK_EVERY = 50


def make_recovery(seed, n, rank, density, noise):
    """Return (truth, noisy targets, train mask, validation mask, test mask) as float64 tensors."""
    generator = torch.Generator().manual_seed(seed)
    left = torch.randn(n, rank, generator=generator, dtype=torch.float64)
    right = torch.randn(n, rank, generator=generator, dtype=torch.float64)
    truth = left @ right.T / math.sqrt(rank)
    targets = truth + noise * torch.randn(n, n, generator=generator, dtype=torch.float64)
    draws = torch.rand(n, n, generator=generator, dtype=torch.float64)
    observed = draws < density
    validation = draws < 0.1 * density
    train = observed & ~validation
    test = ~observed
    return truth, targets, train, validation, test


def recovery_task(seed, n, rank, fit_rank, density, noise):
    """Return (params, closure factory, error function) for one recovery problem."""
    truth, targets, train, validation, test = make_recovery(seed, n, rank, density, noise)
    train_weight = train.double()
    n_train = train_weight.sum()
    generator = torch.Generator().manual_seed(10_000 + seed)
    u = (0.01 * torch.randn(n, fit_rank, generator=generator, dtype=torch.float64)).requires_grad_()
    v = (0.01 * torch.randn(n, fit_rank, generator=generator, dtype=torch.float64)).requires_grad_()

    def loss_fn():
        residual = (u @ v.T - targets) * train_weight
        return 0.5 * residual.pow(2).sum() / n_train

    def errors():
        with torch.no_grad():
            prediction = u @ v.T
            validation_error = (prediction - targets)[validation].norm() / targets[validation].norm()
            test_error = (prediction - truth)[test].norm() / truth[test].norm()
        return float(validation_error), float(test_error)

    return [u, v], loss_fn, errors


def least_squares_task(seed, n_features, noise):
    generator = torch.Generator().manual_seed(seed)
    n_train, n_validation, n_test = 4 * n_features, n_features, 4 * n_features
    features = torch.randn(n_train + n_validation + n_test, n_features, generator=generator, dtype=torch.float64)
    weights = torch.randn(n_features, generator=generator, dtype=torch.float64) / math.sqrt(n_features)
    targets = features @ weights + noise * torch.randn(len(features), generator=generator, dtype=torch.float64)
    x_train, y_train = features[:n_train], targets[:n_train]
    x_validation, y_validation = features[n_train:n_train + n_validation], targets[n_train:n_train + n_validation]
    x_test = features[n_train + n_validation:]
    estimate = (0.01 * torch.randn(n_features, generator=generator, dtype=torch.float64)).requires_grad_()

    def loss_fn():
        return 0.5 * (x_train @ estimate - y_train).pow(2).mean()

    def errors():
        with torch.no_grad():
            validation_error = (x_validation @ estimate - y_validation).norm() / y_validation.norm()
            test_error = (x_test @ (estimate - weights)).norm() / (x_test @ weights).norm()
        return float(validation_error), float(test_error)

    return [estimate], loss_fn, errors


def build_optimizer(method, params, lr):
    if method.startswith("flowadam-"):
        return make_optimizer("flowadam", params, lr=lr, injection=method.split("-", 1)[1])
    return make_optimizer(method, params, lr=lr)


def run_one(method, lr, task, evals):
    """Fit one task with one method; return final and early-stopped errors and the trace summary."""
    params, loss_fn, errors = task
    optimizer = build_optimizer(method, params, lr)

    def closure():
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    used = 0
    next_check = CHECK_EVERY
    best = (math.inf, math.inf)
    while used < evals:
        loss = optimizer.step(closure)
        trace = getattr(optimizer, "trace", None)
        used = trace.total_grad_evals if trace is not None else used + 1
        if not math.isfinite(float(loss.detach())):
            break
        if used >= next_check:
            best = min(best, errors())
            next_check += CHECK_EVERY
    validation_error, test_error = errors()
    if not math.isfinite(validation_error):
        validation_error = test_error = math.inf
    best = min(best, (validation_error, test_error))
    trace = getattr(optimizer, "trace", None)
    switches = len(trace.events) if trace is not None else 0
    ode_share = trace.modes.count("ode") / len(trace.modes) if trace is not None else 0.0
    return {
        "validation": validation_error,
        "test": test_error,
        "es_validation": best[0],
        "es_test": best[1],
        "evals": used,
        "switches": switches,
        "ode_share": ode_share,
    }


def summarize(runs_by_lr, key_validation, key_test):
    """Pick the lr with the lowest mean validation error; return (lr, test values, runs)."""
    best_lr = min(runs_by_lr, key=lambda lr: np.mean([run[key_validation] for run in runs_by_lr[lr]]))
    runs = runs_by_lr[best_lr]
    return best_lr, [run[key_test] for run in runs], runs


def format_error(values):
    values = np.asarray(values)
    if not np.all(np.isfinite(values)):
        return "diverged"
    return f"{values.mean():.3f} ± {values.std():.3f}"


def _init_worker():
    torch.set_num_threads(1)


def _run_job(job, args):
    _, density, method, lr, seed = job
    if density is None:
        task = least_squares_task(seed, args.n_features, args.noise)
    else:
        task = recovery_task(seed, args.size, args.rank, args.fit_rank, density, args.noise)
    return run_one(method, lr, task, args.evals)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=200, help="rows and columns of the matrix (default: 200)")
    parser.add_argument("--rank", type=int, default=5, help="rank of the true matrix (default: 5)")
    parser.add_argument("--fit-rank", type=int, default=20, help="rank of the fitted factors (default: 20)")
    parser.add_argument("--densities", type=float, nargs="+", default=[0.1, 0.2],
                        help="shares of observed cells, one problem each (default: 0.1 0.2)")
    parser.add_argument("--noise", type=float, default=0.1, help="noise standard deviation (default: 0.1)")
    parser.add_argument("--n-features", type=int, default=100,
                        help="features of the least-squares control (default: 100)")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds per problem (default: 3)")
    parser.add_argument("--evals", type=int, default=3000,
                        help="gradient evaluations (closure calls) per run (default: 3000)")
    parser.add_argument("--methods", nargs="+", default=list(LR_GRIDS), choices=list(LR_GRIDS),
                        help="methods to run (default: all)")
    parser.add_argument("--no-control", action="store_true", help="skip the least-squares control")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default: 2)")
    parser.add_argument("--output", type=Path, help="also write the Markdown table to this file")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)

    problems = [(f"recovery-{density:g}", density) for density in args.densities]
    if not args.no_control:
        problems.append(("least-squares", None))

    lines = [
        "| problem | method | lr | test error (final) | test error (early-stopped) | grad evals | switches | ODE steps |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    started = time.perf_counter()
    jobs = []
    for problem, density in problems:
        for method in args.methods:
            grid = LR_GRIDS[method]
            if density is None:
                grid = tuple(lr * LS_LR_SCALE.get(method, 1.0) for lr in grid)
            for lr in grid:
                for seed in range(args.seeds):
                    jobs.append((problem, density, method, lr, seed))

    with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs, initializer=_init_worker) as pool:
        results = list(pool.map(_run_job, jobs, [args] * len(jobs)))

    grouped = {}
    for (problem, _, method, lr, _), result in zip(jobs, results):
        grouped.setdefault((problem, method), {}).setdefault(lr, []).append(result)

    for problem, _ in problems:
        adam_error = None
        for method in args.methods:
            runs_by_lr = grouped[(problem, method)]
            lr, tests, runs = summarize(runs_by_lr, "validation", "test")
            es_lr, es_tests, _ = summarize(runs_by_lr, "es_validation", "es_test")
            mean_test = float(np.mean(tests))
            if method == "adam":
                adam_error = mean_test
            lines.append(
                f"| {problem} | {method} | {lr:g} | {format_error(tests)} | "
                f"{format_error(es_tests)} (lr {es_lr:g}) | {np.mean([r['evals'] for r in runs]):.0f} | "
                f"{np.mean([r['switches'] for r in runs]):.1f} | {100 * np.mean([r['ode_share'] for r in runs]):.0f}% |"
            )
            print(lines[-1], flush=True)
        if adam_error is not None:
            print(f"# {problem}: tuned Adam final test error {adam_error:.3f}", flush=True)

    elapsed = time.perf_counter() - started
    table = "\n".join(lines)
    footer = (
        f"\n\n{args.seeds} seeds, {args.evals} gradient evaluations per run, "
        f"size {args.size}, rank {args.rank}, fit rank {args.fit_rank}, noise {args.noise}, "
        f"{args.jobs} worker processes; {elapsed:.0f} s.\n"
    )
    print(footer.strip())
    if args.output is not None:
        args.output.write_text(table + footer)


if __name__ == "__main__":
    main()
