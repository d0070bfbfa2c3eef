"""Synthetic low-rank matrices and tensors with a known ground truth.

The generators draw a random low-rank ground truth, scale it so that its
entries have root-mean-square 1 (so ``noise`` is a noise-to-signal ratio),
observe a random subset of entries with Gaussian noise and hold out part of
that subset as a test set. Train and test cells are disjoint.
"""

import numbers
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from flowrec.datasets._base import check_random_state


@dataclass(repr=False)
class SyntheticMatrix:
    """Output of :func:`make_low_rank_matrix`.

    Attributes
    ----------
    train, test : pandas.DataFrame
        Observed entries with columns ``user_id``, ``item_id`` (int64,
        0-based row and column of ``matrix``) and ``rating`` (float64, the
        true value plus noise). No cell is in both.
    matrix : numpy.ndarray of shape (n_users, n_items)
        The noiseless ground truth, equal to ``user_factors @ item_factors.T``.
    user_factors : numpy.ndarray of shape (n_users, rank)
    item_factors : numpy.ndarray of shape (n_items, rank)
        Orthogonal columns scaled by the square roots of ``singular_values``.
    singular_values : numpy.ndarray of shape (rank,)
        Nonzero singular values of ``matrix``, largest first.
    params : dict
        The arguments the data was generated with.
    """

    train: pd.DataFrame
    test: pd.DataFrame
    matrix: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    singular_values: np.ndarray
    params: dict = field(default_factory=dict)

    def __repr__(self):
        n_users, n_items = self.matrix.shape
        return (
            f"SyntheticMatrix(shape=({n_users}, {n_items}), rank={self.params['rank']}, "
            f"n_train={len(self.train)}, n_test={len(self.test)})"
        )


@dataclass(repr=False)
class SyntheticTensor:
    """Output of :func:`make_low_rank_tensor`.

    Attributes
    ----------
    train, test : pandas.DataFrame
        Observed entries with one int64 column per mode, ``i0``, ``i1``,
        ..., holding 0-based indices into ``tensor``, and ``value``
        (float64, the true value plus noise). No cell is in both.
    tensor : numpy.ndarray of shape ``shape``
        The noiseless ground truth, the CP (PARAFAC) tensor
        ``sum_r weights[r] * factors[0][:, r] x factors[1][:, r] x ...``.
    factors : list of numpy.ndarray
        One array of shape (shape[m], rank) per mode, with unit-norm columns.
    weights : numpy.ndarray of shape (rank,)
        Component weights, largest first.
    params : dict
        The arguments the data was generated with.
    """

    train: pd.DataFrame
    test: pd.DataFrame
    tensor: np.ndarray
    factors: list
    weights: np.ndarray
    params: dict = field(default_factory=dict)

    def __repr__(self):
        return (
            f"SyntheticTensor(shape={self.tensor.shape}, rank={self.params['rank']}, "
            f"n_train={len(self.train)}, n_test={len(self.test)})"
        )


def make_low_rank_matrix(
    n_users=200,
    n_items=200,
    rank=5,
    density=0.2,
    noise=0.1,
    condition_number=1.0,
    test_size=0.2,
    random_state=None,
):
    """Generate a partly observed low-rank rating matrix with a known truth.

    The truth is ``U @ diag(s) @ V.T`` with random orthonormal ``U`` and
    ``V`` and singular values ``s`` spaced geometrically from the largest to
    the largest divided by ``condition_number``, scaled so that the entries
    have root-mean-square 1. A random ``density`` share of the cells is
    observed with Gaussian noise of standard deviation ``noise``, and
    ``test_size`` of those observed cells are held out as the test set.
    Some users or items may have no training entry when the density is low.

    Parameters
    ----------
    n_users, n_items : int, default=200
        Matrix shape.
    rank : int, default=5
        Rank of the truth, at most ``min(n_users, n_items)``.
    density : float in (0, 1], default=0.2
        Share of cells observed, train and test together.
    noise : float >= 0, default=0.1
        Standard deviation of the noise added to observed entries.
    condition_number : float >= 1, default=1.0
        Ratio of the largest to the smallest nonzero singular value; must be
        1 when ``rank=1``.
    test_size : float in [0, 1) or int >= 0, default=0.2
        Share of the observed cells held out, or their number.
    random_state : int, numpy.random.Generator or None, default=None
        Seed or generator; the same seed gives the same data.

    Returns
    -------
    SyntheticMatrix

    Examples
    --------
    >>> from flowrec.datasets import make_low_rank_matrix
    >>> data = make_low_rank_matrix(50, 40, rank=3, density=0.5, random_state=0)
    >>> data.matrix.shape, len(data.train) + len(data.test)
    ((50, 40), 1000)
    >>> round(float(data.singular_values[0] / data.singular_values[-1]), 6)
    1.0
    """
    # check parameters
    n_users = _check_int("n_users", n_users, minimum=1)
    n_items = _check_int("n_items", n_items, minimum=1)
    rank = _check_int("rank", rank, minimum=1)
    if rank > min(n_users, n_items):
        raise ValueError(
            f"rank must be at most min(n_users, n_items) = {min(n_users, n_items)}, got {rank}"
        )
    density, noise, condition_number = _check_common(density, noise, condition_number, rank)
    n_observed = _n_observed(density, n_users * n_items)
    n_test = _n_test_cells(test_size, n_observed)
    rng = check_random_state(random_state)

    # draw the ground truth
    user_basis, _ = np.linalg.qr(rng.standard_normal((n_users, rank)))
    item_basis, _ = np.linalg.qr(rng.standard_normal((n_items, rank)))
    spectrum = np.geomspace(1.0, 1.0 / condition_number, rank)
    spectrum *= np.sqrt(n_users * n_items / np.sum(spectrum**2))
    user_factors = user_basis * np.sqrt(spectrum)
    item_factors = item_basis * np.sqrt(spectrum)
    matrix = user_factors @ item_factors.T

    # observe cells and split them
    cells = rng.choice(n_users * n_items, size=n_observed, replace=False)
    rows, columns = np.divmod(cells, n_items)
    values = matrix[rows, columns] + noise * rng.standard_normal(n_observed)
    table = pd.DataFrame(
        {"user_id": rows.astype("int64"), "item_id": columns.astype("int64"), "rating": values}
    )
    train, test = _split_cells(table, n_test)

    params = {
        "n_users": n_users,
        "n_items": n_items,
        "rank": rank,
        "density": density,
        "noise": noise,
        "condition_number": condition_number,
        "test_size": test_size,
        "random_state": random_state,
    }
    return SyntheticMatrix(train, test, matrix, user_factors, item_factors, spectrum, params)


def make_low_rank_tensor(
    shape=(30, 30, 30),
    rank=3,
    density=0.2,
    noise=0.1,
    condition_number=1.0,
    test_size=0.2,
    random_state=None,
):
    """Generate a partly observed low-rank (CP) tensor with a known truth.

    The truth is a sum of ``rank`` outer products of random unit-norm
    vectors, one per mode, with weights spaced geometrically from the
    largest to the largest divided by ``condition_number``. The whole
    tensor is scaled so that its entries have root-mean-square 1. Cells are
    observed, noised and split as in :func:`make_low_rank_matrix`.

    Parameters
    ----------
    shape : tuple of int, default=(30, 30, 30)
        Size of each mode; at least two modes.
    rank : int, default=3
        Number of CP components.
    density : float in (0, 1], default=0.2
        Share of cells observed, train and test together.
    noise : float >= 0, default=0.1
        Standard deviation of the noise added to observed entries.
    condition_number : float >= 1, default=1.0
        Ratio of the largest to the smallest component weight; must be 1
        when ``rank=1``.
    test_size : float in [0, 1) or int >= 0, default=0.2
        Share of the observed cells held out, or their number.
    random_state : int, numpy.random.Generator or None, default=None
        Seed or generator; the same seed gives the same data.

    Returns
    -------
    SyntheticTensor
        ``train`` and ``test`` have columns ``i0``, ``i1``, ... and ``value``.

    Examples
    --------
    >>> from flowrec.datasets import make_low_rank_tensor
    >>> data = make_low_rank_tensor((10, 8, 6), rank=2, density=0.5, random_state=0)
    >>> list(data.train.columns)
    ['i0', 'i1', 'i2', 'value']
    """
    # check parameters
    if not isinstance(shape, (tuple, list)) or len(shape) < 2:
        raise ValueError(f"shape must be a tuple of at least 2 positive ints, got {shape!r}")
    shape = tuple(_check_int(f"shape[{mode}]", size, minimum=1) for mode, size in enumerate(shape))
    rank = _check_int("rank", rank, minimum=1)
    density, noise, condition_number = _check_common(density, noise, condition_number, rank)
    n_cells = int(np.prod(shape))
    n_observed = _n_observed(density, n_cells)
    n_test = _n_test_cells(test_size, n_observed)
    rng = check_random_state(random_state)

    # draw the ground truth
    factors = []
    for size in shape:
        factor = rng.standard_normal((size, rank))
        factors.append(factor / np.linalg.norm(factor, axis=0))
    weights = np.geomspace(1.0, 1.0 / condition_number, rank)
    tensor = _cp_to_dense(weights, factors)
    scale = 1.0 / np.sqrt(np.mean(tensor**2))
    weights *= scale
    tensor *= scale

    # observe cells and split them
    cells = rng.choice(n_cells, size=n_observed, replace=False)
    indices = np.unravel_index(cells, shape)
    values = tensor[indices] + noise * rng.standard_normal(n_observed)
    columns = {f"i{mode}": index.astype("int64") for mode, index in enumerate(indices)}
    table = pd.DataFrame({**columns, "value": values})
    train, test = _split_cells(table, n_test)

    params = {
        "shape": shape,
        "rank": rank,
        "density": density,
        "noise": noise,
        "condition_number": condition_number,
        "test_size": test_size,
        "random_state": random_state,
    }
    return SyntheticTensor(train, test, tensor, factors, weights, params)


def _cp_to_dense(weights, factors):
    dense = np.zeros(tuple(factor.shape[0] for factor in factors))
    for component, weight in enumerate(weights):
        outer = np.array(weight)
        for factor in factors:
            outer = np.multiply.outer(outer, factor[:, component])
        dense += outer
    return dense


def _check_int(name, value, *, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def _check_real(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _check_common(density, noise, condition_number, rank):
    density = _check_real("density", density)
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density}")
    noise = _check_real("noise", noise)
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    condition_number = _check_real("condition_number", condition_number)
    if condition_number < 1:
        raise ValueError(f"condition_number must be >= 1, got {condition_number}")
    if rank == 1 and condition_number != 1:
        raise ValueError(
            f"condition_number must be 1 when rank=1, got {condition_number}; a single "
            "component has no spread of singular values"
        )
    return density, noise, condition_number


def _n_observed(density, n_cells):
    n_observed = int(round(density * n_cells))
    if n_observed < 1:
        raise ValueError(
            f"density={density} observes no cell of {n_cells}; raise density or the shape"
        )
    return n_observed


def _n_test_cells(test_size, n_observed):
    if isinstance(test_size, bool):
        raise TypeError("test_size must be a float in [0, 1) or an int, got a bool")
    if isinstance(test_size, numbers.Integral):
        if not 0 <= test_size < n_observed:
            raise ValueError(
                f"test_size as an int must be between 0 and {n_observed - 1} "
                f"(observed cells - 1), got {test_size}"
            )
        return int(test_size)
    if isinstance(test_size, numbers.Real) and 0 <= test_size < 1:
        return min(int(round(test_size * n_observed)), n_observed - 1)
    raise ValueError(f"test_size must be a float in [0, 1) or an int, got {test_size!r}")


def _split_cells(table, n_test):
    """Put the last ``n_test`` rows (already in random order) in test."""
    n_train = len(table) - n_test
    train = table.iloc[:n_train].reset_index(drop=True)
    test = table.iloc[n_train:].reset_index(drop=True)
    return train, test
