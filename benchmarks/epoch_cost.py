"""Time one LowRankMF epoch: the hand-derived kernel against autograd, side by side.

Both compute the full-batch loss and gradient of the same objective on
MovieLens 100K u1.base. The runs alternate (kernel, autograd, kernel, ...) so
that load from other processes hits both alike, and the script reports the
median milliseconds per gradient evaluation, the ratio, and the largest
gradient difference.

Usage::

    python benchmarks/epoch_cost.py --data-home DIR [--n-factors 64] [--repeats 30] [--threads 1]

``DIR`` is the folder that contains ``ml-100k/`` (default: ``$FLOWREC_DATA``).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from flowrec.models._mf_kernels import make_mf_data, mf_loss, mf_loss_and_grad


def load_u1(data_home):
    path = Path(data_home) / "ml-100k" / "u1.base"
    if not path.is_file():
        sys.exit(f"{path} not found; pass --data-home with the folder that contains ml-100k/")
    frame = pd.read_csv(path, sep="\t", names=["user", "item", "rating", "timestamp"])
    users = torch.tensor(frame.user.to_numpy() - 1)
    items = torch.tensor(frame.item.to_numpy() - 1)
    ratings = torch.tensor(frame.rating.to_numpy(), dtype=torch.float32)
    return users, items, ratings


def make_problem(users, items, ratings, n_factors, seed=0):
    n_users, n_items = int(users.max()) + 1, int(items.max()) + 1
    generator = torch.Generator().manual_seed(seed)
    parameters = {
        "user_factors": 0.1 * torch.randn(n_users, n_factors, generator=generator),
        "item_factors": 0.1 * torch.randn(n_items, n_factors, generator=generator),
        "user_bias": torch.zeros(n_users),
        "item_bias": torch.zeros(n_items),
    }
    data = make_mf_data(users, items, ratings, n_users, n_items,
                        global_mean=float(ratings.mean()), reg=0.12, reg_bias=0.05)
    return parameters, data


def time_kernel(parameters, data):
    start = time.perf_counter()
    mf_loss_and_grad(parameters, data)
    return time.perf_counter() - start


def time_autograd(parameters, data):
    for tensor in parameters.values():
        tensor.grad = None
    start = time.perf_counter()
    mf_loss(parameters, data).backward()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", default=os.environ.get("FLOWREC_DATA"),
                        help="folder that contains ml-100k/ (default: $FLOWREC_DATA)")
    parser.add_argument("--n-factors", type=int, default=64, help="factor length (default: 64)")
    parser.add_argument("--repeats", type=int, default=30, help="timed runs of each (default: 30)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    args = parser.parse_args(argv)
    if args.data_home is None:
        parser.error("pass --data-home or set FLOWREC_DATA")
    torch.set_num_threads(args.threads)

    users, items, ratings = load_u1(args.data_home)
    kernel_parameters, data = make_problem(users, items, ratings, args.n_factors)
    autograd_parameters = {name: tensor.clone().requires_grad_(True)
                           for name, tensor in kernel_parameters.items()}

    # warm up, and check both compute the same gradient
    time_kernel(kernel_parameters, data)
    time_autograd(autograd_parameters, data)
    max_difference = max(
        float((kernel_parameters[name].grad - autograd_parameters[name].grad).abs().max())
        for name in kernel_parameters
    )

    kernel_times, autograd_times = [], []
    for _ in range(args.repeats):
        kernel_times.append(time_kernel(kernel_parameters, data))
        autograd_times.append(time_autograd(autograd_parameters, data))

    kernel_ms = 1e3 * statistics.median(kernel_times)
    autograd_ms = 1e3 * statistics.median(autograd_times)
    print(f"ml-100k u1.base: {ratings.numel()} ratings, {args.n_factors} factors, "
          f"{args.threads} thread(s), torch {torch.__version__}, median of {args.repeats}")
    print(f"  kernel    {kernel_ms:8.2f} ms per gradient evaluation")
    print(f"  autograd  {autograd_ms:8.2f} ms per gradient evaluation")
    print(f"  ratio     {autograd_ms / kernel_ms:8.2f} x (autograd / kernel)")
    print(f"  max |gradient difference| {max_difference:.2e} (float32)")


if __name__ == "__main__":
    main()
