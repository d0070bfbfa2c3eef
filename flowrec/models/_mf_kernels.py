r"""Loss, gradient and prediction kernels of the biased low-rank matrix factorization.

Prediction: :math:`\hat r_{ui} = \mu + b_u + b_i + p_u \cdot q_i`.

Loss over the :math:`N` training ratings, with frequency-weighted ("weighted-λ")
regularization, so every rating decays the factors it touches, as one epoch of
SGD with per-rating weight decay does:

.. math::

    L = \frac{1}{N} \sum_{k} \Big[ e_k^2
        + \lambda (\lVert p_{u_k} \rVert^2 + \lVert q_{i_k} \rVert^2)
        + \lambda_b (b_{u_k}^2 + b_{i_k}^2) \Big],
    \qquad e_k = \hat r_{u_k i_k} - r_k .

Writing :math:`n_u`, :math:`n_i` for the rating counts, the gradient is

.. math::

    \nabla_{p_u} L = \frac{2}{N} \Big( \sum_{k: u_k = u} e_k q_{i_k} + \lambda n_u p_u \Big),
    \qquad
    \nabla_{b_u} L = \frac{2}{N} \Big( \sum_{k: u_k = u} e_k + \lambda_b n_u b_u \Big),

and symmetrically for items. :func:`mf_loss_and_grad` never gathers factor
rows: the dot products :math:`p_{u_k} \cdot q_{i_k}` come from a sampled dense
product (``torch.sparse.sampled_addmm``) on the CSR pattern of the ratings, and
the scatter sums :math:`\sum_k e_k q_{i_k}` from two CSR-times-dense products
(users-by-items and its transpose). That avoids the (n_ratings, n_factors)
temporaries of gather and ``index_add_`` and of autograd. :func:`mf_loss` is
the autograd reference used by the tests and ``benchmarks/epoch_cost.py``.
"""

import warnings
from dataclasses import dataclass

import torch

__all__ = ["MFData", "make_mf_data", "mf_predict", "mf_loss", "mf_loss_and_grad"]


@dataclass
class MFData:
    """Training ratings and constants the kernels need, as tensors on the training device.

    Build it with :func:`make_mf_data`, which sorts the ratings by (user, item)
    and prepares the CSR index arrays.

    Attributes
    ----------
    users, items : Tensor of shape (n_ratings,), int64
        Contiguous user and item indices, sorted by (user, item), without repeated pairs.
    ratings : Tensor of shape (n_ratings,)
    user_counts : Tensor of shape (n_users,)
        Ratings per user, in the parameter dtype.
    item_counts : Tensor of shape (n_items,)
    global_mean : float
    reg, reg_bias : float
        Weights of the factor and bias penalties.
    user_rows : Tensor of shape (n_users + 1,), int64
        CSR row offsets of the users-by-items pattern.
    item_rows : Tensor of shape (n_items + 1,), int64
        CSR row offsets of the transposed (items-by-users) pattern.
    item_major : Tensor of shape (n_ratings,), int64
        Permutation from item-major to the stored (user-major) rating order.
    """

    users: torch.Tensor
    items: torch.Tensor
    ratings: torch.Tensor
    user_counts: torch.Tensor
    item_counts: torch.Tensor
    global_mean: float
    reg: float
    reg_bias: float
    user_rows: torch.Tensor
    item_rows: torch.Tensor
    item_major: torch.Tensor


def make_mf_data(users, items, ratings, n_users, n_items, *, global_mean, reg, reg_bias):
    """Sort the ratings by (user, item) and build the :class:`MFData` the kernels take.

    ``users`` and ``items`` are int64 tensors of contiguous indices with no
    repeated (user, item) pair. The tensors stay on the device of ``ratings``.
    """
    order = torch.argsort(users * n_items + items)
    users, items, ratings = users[order], items[order], ratings[order]
    user_counts = torch.bincount(users, minlength=n_users)
    item_counts = torch.bincount(items, minlength=n_items)
    user_rows = torch.zeros(n_users + 1, dtype=torch.int64, device=users.device)
    user_rows[1:] = torch.cumsum(user_counts, 0)
    item_rows = torch.zeros(n_items + 1, dtype=torch.int64, device=users.device)
    item_rows[1:] = torch.cumsum(item_counts, 0)
    item_major = torch.argsort(items * n_users + users)
    return MFData(
        users=users, items=items, ratings=ratings,
        user_counts=user_counts.to(ratings.dtype), item_counts=item_counts.to(ratings.dtype),
        global_mean=float(global_mean), reg=float(reg), reg_bias=float(reg_bias),
        user_rows=user_rows, item_rows=item_rows, item_major=item_major,
    )


def mf_predict(parameters, users, items, global_mean):
    """Return predicted ratings for index pairs, shape (n_pairs,)."""
    prediction = (parameters["user_factors"].index_select(0, users)
                  * parameters["item_factors"].index_select(0, items)).sum(dim=1)
    prediction += global_mean
    if "user_bias" in parameters:
        prediction += parameters["user_bias"].index_select(0, users)
        prediction += parameters["item_bias"].index_select(0, items)
    return prediction


def mf_loss(parameters, data):
    """Return the loss through autograd; the slow reference for :func:`mf_loss_and_grad`."""
    P = parameters["user_factors"]
    Q = parameters["item_factors"]
    error = mf_predict(parameters, data.users, data.items, data.global_mean) - data.ratings
    penalty = data.reg * ((data.user_counts * (P * P).sum(1)).sum()
                          + (data.item_counts * (Q * Q).sum(1)).sum())
    if "user_bias" in parameters:
        b_u, b_i = parameters["user_bias"], parameters["item_bias"]
        penalty = penalty + data.reg_bias * ((data.user_counts * b_u * b_u).sum()
                                             + (data.item_counts * b_i * b_i).sum())
    return ((error * error).sum() + penalty) / data.users.shape[0]


def _csr(row_offsets, columns, values, size):
    """Build a CSR tensor from index arrays that :func:`make_mf_data` made valid, skipping the checks."""
    with warnings.catch_warnings():
        # torch 2.x warns once per process that sparse CSR support is in beta.
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
        return torch.sparse_csr_tensor(row_offsets, columns, values, size=size, check_invariants=False)


def mf_loss_and_grad(parameters, data):
    """Return the loss as a 0-d tensor and write the exact gradient into each parameter's ``.grad``.

    Runs without autograd. Memory beyond the parameters and their gradients is
    a few vectors of length n_ratings.
    """
    P = parameters["user_factors"]
    Q = parameters["item_factors"]
    users, items = data.users, data.items
    n_users, n_items = P.shape[0], Q.shape[0]
    scale = 2.0 / users.shape[0]

    # residuals: sampled dense product p_u . q_i on the rating pattern, plus biases
    pattern = _csr(data.user_rows, items, data.ratings, (n_users, n_items))
    error = torch.sparse.sampled_addmm(pattern, P, Q.T, beta=0.0).values()
    error += data.global_mean - data.ratings
    has_bias = "user_bias" in parameters
    if has_bias:
        b_u, b_i = parameters["user_bias"], parameters["item_bias"]
        error += b_u.index_select(0, users)
        error += b_i.index_select(0, items)

    # loss, with penalties weighted by rating counts
    P_sq = torch.einsum("ij,ij->i", P, P)
    Q_sq = torch.einsum("ij,ij->i", Q, Q)
    loss = error.dot(error) + data.reg * (data.user_counts.dot(P_sq) + data.item_counts.dot(Q_sq))
    if has_bias:
        loss += data.reg_bias * (data.user_counts.dot(b_u * b_u) + data.item_counts.dot(b_i * b_i))
    loss = loss / users.shape[0]

    # factor gradients: residual matrix times the other factors, plus the penalty term
    residuals = _csr(data.user_rows, items, error, (n_users, n_items))
    residuals_t = _csr(data.item_rows, users[data.item_major], error[data.item_major], (n_items, n_users))
    grad_P = (residuals @ Q).addcmul_(P, (data.reg * data.user_counts).unsqueeze(1))
    grad_Q = (residuals_t @ P).addcmul_(Q, (data.reg * data.item_counts).unsqueeze(1))
    P.grad = grad_P.mul_(scale)
    Q.grad = grad_Q.mul_(scale)

    if has_bias:
        grad_b_u = torch.mul(b_u, data.reg_bias * data.user_counts)
        grad_b_u.index_add_(0, users, error)
        grad_b_i = torch.mul(b_i, data.reg_bias * data.item_counts)
        grad_b_i.index_add_(0, items, error)
        b_u.grad = grad_b_u.mul_(scale)
        b_i.grad = grad_b_i.mul_(scale)
    return loss
