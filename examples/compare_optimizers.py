"""Compare FlowAdam with Adam, Lion, AdaBelief and a plain torch optimizer on one model.

Every row trains the same LowRankMF on the synthetic low-rank recovery
problem; only the optimizer changes. Rows may be preset names, estimator
objects with their own settings (here Lion with a 10 times smaller learning
rate and 300 epochs) or a ``torch.optim.Optimizer`` subclass.

Usage::

    python examples/compare_optimizers.py [OUTPUT_DIR]

Writes results.csv, summary.csv, summary.md and comparison.png into
OUTPUT_DIR (default: compare-optimizers) and prints the summary table.
"""

import sys

import torch

from flowrec.compare import compare
from flowrec.models import LowRankMF


def main(output="compare-optimizers"):
    models = {
        "flowadam": "flowadam",
        "adam": "adam",
        "lion": "lion",
        "lion, lr 0.005": LowRankMF(optimizer="lion", lr=0.005, n_epochs=300),
        "adabelief": "adabelief",
        "rmsprop": torch.optim.RMSprop,
    }
    result = compare(models, dataset="synthetic", seeds=(0, 1, 2), output=output)
    print(result.to_markdown())
    print(f"figures and tables written to {output}/")


if __name__ == "__main__":
    main(*sys.argv[1:2])
