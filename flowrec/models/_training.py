"""Full-batch training loop shared by every flowrec estimator.

:func:`train_full_batch` runs one ``optimizer.step(closure)`` per epoch. The
closure calls a model's ``loss_and_grad`` kernel, which computes the full-batch
loss and writes each parameter's ``.grad`` without autograd. The loop adds
what every model needs around that: gradient-evaluation counts, history,
validation RMSE with early stopping, ``tol`` convergence, divergence checks,
a tqdm bar and interrupt handling.
"""

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from flowrec.exceptions import DivergenceError
from flowrec.optim import make_optimizer

__all__ = ["TrainingResult", "train_full_batch", "build_optimizer"]

logger = logging.getLogger(__name__)

HISTORY_COLUMNS = [
    "epoch", "loss", "val_rmse", "eval_rmse", "mode", "grad_evals", "seconds", "epoch_seconds",
]


@dataclass
class TrainingResult:
    """Outcome of :func:`train_full_batch`.

    Attributes
    ----------
    parameters : dict of str to Tensor
        The final parameters: the best validation epoch when validation was
        used, otherwise the last completed epoch.
    history : DataFrame
        One row per completed epoch with the columns in ``HISTORY_COLUMNS``.
    n_epochs : int
        Completed epochs.
    n_grad_evals : int
        Closure calls, which is the number of full-batch gradient evaluations.
    best_epoch : int
        Epoch whose parameters were returned.
    converged : bool
        True when the ``tol`` criterion or early stopping ended training.
    interrupted : bool
        True when a KeyboardInterrupt ended training.
    fit_time : float
        Wall-clock seconds spent in the loop.
    """

    parameters: dict
    history: pd.DataFrame
    n_epochs: int
    n_grad_evals: int
    best_epoch: int
    converged: bool = False
    interrupted: bool = False
    fit_time: float = 0.0
    interrupt: BaseException | None = field(default=None, repr=False)


# A loss this many times above the first epoch's counts as divergence even while
# it is finite: Adam-type steps are bounded by lr, so a too-large lr makes the
# loss explode without ever overflowing to inf.
LOSS_GROWTH_LIMIT = 1e3


def build_optimizer(spec, parameters, *, lr, options=None):
    """Create a torch optimizer with :func:`flowrec.optim.make_optimizer`; ``options`` is copied, not modified."""
    options = dict(options or {})
    if "lr" in options:
        raise ValueError(
            f"optimizer_options must not contain 'lr' (got lr={options['lr']!r}); set the "
            "learning rate with the estimator's lr parameter"
        )
    return make_optimizer(spec, parameters, lr=lr, **options)


def _optimizer_mode(optimizer, name):
    mode = getattr(optimizer, "mode", None)
    return str(mode) if mode is not None else name


def _snapshot(epoch, parameters):
    """Return ``(epoch, copies of the parameters)``.

    Callers assign the result in one statement, so a KeyboardInterrupt during
    the copies leaves the previous snapshot whole.
    """
    return epoch, {name: tensor.detach().clone() for name, tensor in parameters.items()}


def _all_finite(parameters):
    return all(bool(torch.isfinite(tensor).all()) for tensor in parameters.values())


def train_full_batch(
    parameters,
    loss_and_grad,
    *,
    optimizer="flowadam",
    optimizer_options=None,
    lr=0.01,
    n_epochs=100,
    tol=None,
    validation_rmse=None,
    eval_rmse=None,
    patience=10,
    verbose=False,
    description="training",
):
    """Train ``parameters`` with one full-batch optimizer step per epoch.

    Parameters
    ----------
    parameters : dict of str to Tensor
        Leaf tensors, updated in place. They need not require grad, because
        ``loss_and_grad`` writes each ``.grad`` itself.
    loss_and_grad : callable
        ``loss_and_grad(parameters) -> Tensor``: returns the full-batch loss as
        a 0-d tensor and sets ``tensor.grad`` for every parameter.
    optimizer : str, Optimizer subclass or callable, default="flowadam"
        Any spec :func:`flowrec.optim.make_optimizer` accepts.
    optimizer_options : dict, default=None
        Extra keyword arguments for the optimizer; not modified.
    lr : float, default=0.01
        Learning rate.
    n_epochs : int, default=100
        Maximum number of epochs (optimizer steps).
    tol : float, default=None
        Stop when the relative loss change between two epochs falls below
        ``tol``. None runs all ``n_epochs`` epochs. When set and training
        reaches ``n_epochs`` first, a warning is logged.
    validation_rmse : callable, default=None
        ``validation_rmse(parameters) -> float``. When given, it is recorded
        every epoch, training stops after ``patience`` epochs without a new
        minimum, and the parameters of the best epoch are returned.
    eval_rmse : callable, default=None
        ``eval_rmse(parameters) -> float``, recorded every epoch in the
        ``eval_rmse`` column for learning curves only: it never stops training
        or selects an epoch, so it may score a test set.
    patience : int, default=10
        Epochs without validation improvement before stopping.
    verbose : bool, default=False
        Show a tqdm bar with loss, validation RMSE and optimizer mode.
    description : str, default="training"
        Label of the progress bar and log lines.

    Returns
    -------
    TrainingResult

    Raises
    ------
    DivergenceError
        If the loss or a parameter becomes NaN or infinite, or the loss grows
        above ``LOSS_GROWTH_LIMIT`` times its first-epoch value. ``parameters``
        is then left in that state, so callers must not keep it.
    KeyboardInterrupt
        Not raised here: an interrupt ends the loop, the parameters of the last
        completed (or best validated) epoch are returned with
        ``interrupted=True`` and the exception in ``interrupt`` so that the
        caller can store the model and re-raise it. An interrupt before the
        first epoch completes is re-raised at once.
    """
    if n_epochs < 1:
        raise ValueError(f"n_epochs must be a positive int, got {n_epochs!r}")
    tensors = list(parameters.values())
    optimizer_name = spec_name(optimizer)
    opt = build_optimizer(optimizer, tensors, lr=lr, options=optimizer_options)

    grad_evals = 0

    def closure():
        nonlocal grad_evals
        grad_evals += 1
        with torch.no_grad():
            return loss_and_grad(parameters)

    rows = []
    last_completed = None  # (epoch, parameters) of the last completed epoch
    best = None  # (epoch, parameters) of the lowest validation RMSE so far
    best_val = math.inf
    epochs_without_improvement = 0
    previous_loss = None
    converged = False
    interrupt = None
    start = time.perf_counter()

    bar = tqdm(range(1, n_epochs + 1), desc=description, disable=not verbose, leave=True)
    try:
        for epoch in bar:
            epoch_start = time.perf_counter()
            # FlowAdam decides its mode for the next step at the end of a step, so
            # the mode read before the step is the one this epoch runs in.
            mode = _optimizer_mode(opt, optimizer_name)
            loss = opt.step(closure)
            loss = float(loss) if loss is not None else math.nan

            # check divergence before anything is recorded
            first_loss = rows[0][1] if rows else loss
            exploded = first_loss > 0 and loss > LOSS_GROWTH_LIMIT * first_loss
            if not math.isfinite(loss) or not _all_finite(parameters) or exploded:
                if not math.isfinite(loss):
                    cause = f"the loss became {loss}"
                elif exploded:
                    cause = (f"the loss grew from {first_loss:.4g} at epoch 1 to {loss:.4g}, "
                             f"over {LOSS_GROWTH_LIMIT:g} times its first value")
                else:
                    cause = "a parameter became NaN or infinite"
                raise DivergenceError(
                    f"training diverged at epoch {epoch}: {cause}; lower the learning rate "
                    f"(lr={lr}, try lr={lr / 10:g}) or choose another optimizer",
                    epoch=epoch,
                )

            val = math.nan
            if validation_rmse is not None:
                with torch.no_grad():
                    val = float(validation_rmse(parameters))

            monitored = math.nan
            if eval_rmse is not None:
                with torch.no_grad():
                    monitored = float(eval_rmse(parameters))

            now = time.perf_counter()
            rows.append((epoch, loss, val, monitored, mode, grad_evals, now - start,
                         now - epoch_start))
            last_completed = _snapshot(epoch, parameters)
            if verbose:
                bar.set_postfix(loss=f"{loss:.4g}", val_rmse=f"{val:.4f}", mode=mode, refresh=False)

            # early stopping on validation RMSE
            if validation_rmse is not None:
                if val < best_val:
                    best = _snapshot(epoch, parameters)
                    best_val = val
                    epochs_without_improvement = 0
                else:
                    epochs_without_improvement += 1
                    if epochs_without_improvement >= patience:
                        logger.info(
                            "%s: validation RMSE did not improve for %d epochs, stopping at epoch %d "
                            "and restoring epoch %d (val_rmse=%.5f)",
                            description, patience, epoch, best[0], best_val,
                        )
                        converged = True
                        break

            # relative loss change
            if tol is not None and previous_loss is not None:
                change = abs(previous_loss - loss) / max(abs(previous_loss), 1e-12)
                if change < tol:
                    logger.info("%s: relative loss change %.3g < tol=%g at epoch %d",
                                description, change, tol, epoch)
                    converged = True
                    break
            previous_loss = loss
    except KeyboardInterrupt as exc:
        if last_completed is None:
            raise
        interrupt = exc
        # drop a history row whose parameters were not snapshotted yet
        del rows[last_completed[0]:]
        logger.warning("%s: interrupted after epoch %d; keeping the model of epoch %d",
                       description, last_completed[0], (best or last_completed)[0])
    finally:
        bar.close()

    if tol is not None and not converged and interrupt is None:
        logger.warning(
            "%s: reached n_epochs=%d without the relative loss change falling below tol=%g; "
            "increase n_epochs or tol",
            description, n_epochs, tol,
        )

    best_epoch, final = best if best is not None else last_completed
    history = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    history["val_rmse"] = history["val_rmse"].astype(np.float64)
    history["eval_rmse"] = history["eval_rmse"].astype(np.float64)
    return TrainingResult(
        parameters=final,
        history=history,
        n_epochs=len(rows),
        n_grad_evals=grad_evals,
        best_epoch=best_epoch,
        converged=converged,
        interrupted=interrupt is not None,
        fit_time=time.perf_counter() - start,
        interrupt=interrupt,
    )


def spec_name(spec):
    """Return a short name for an optimizer spec, used in history when the optimizer has no ``mode``."""
    if isinstance(spec, str):
        return spec.lower()
    return getattr(spec, "__name__", type(spec).__name__).lower()
