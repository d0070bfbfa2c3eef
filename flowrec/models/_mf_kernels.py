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

and symmetrically for items. :func:`mf_loss_and_grad` computes it with two
gathers and ``index_add_`` scatters, which is several times faster than
autograd through fancy indexing. :func:`mf_loss` is the autograd reference
used by the tests and ``benchmarks/epoch_cost.py``.
"""

from dataclasses import dataclass

import torch

__all__ = ["MFData", "mf_predict", "mf_loss", "mf_loss_and_grad"]


@dataclass
class MFData:
    """Training ratings and constants the kernels need, as tensors on the training device.

    Attributes
    ----------
    users, items : Tensor of shape (n_ratings,), int64
        Contiguous user and item indices.
    ratings : Tensor of shape (n_ratings,)
    user_counts : Tensor of shape (n_users,)
        Ratings per user, in the parameter dtype.
    item_counts : Tensor of shape (n_items,)
    global_mean : float
    reg, reg_bias : float
        Weights of the factor and bias penalties.
    """

    users: torch.Tensor
    items: torch.Tensor
    ratings: torch.Tensor
    user_counts: torch.Tensor
    item_counts: torch.Tensor
    global_mean: float
    reg: float
    reg_bias: float


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


def mf_loss_and_grad(parameters, data):
    """Return the loss as a 0-d tensor and write the exact gradient into each parameter's ``.grad``.

    Runs without autograd. Memory beyond the parameters is O(n_ratings × n_factors)
    for the gathered factor rows.
    """
    P = parameters["user_factors"]
    Q = parameters["item_factors"]
    users, items = data.users, data.items
    scale = 2.0 / users.shape[0]

    P_rows = P.index_select(0, users)
    Q_rows = Q.index_select(0, items)
    error = (P_rows * Q_rows).sum(dim=1)
    error += data.global_mean - data.ratings
    has_bias = "user_bias" in parameters
    if has_bias:
        b_u, b_i = parameters["user_bias"], parameters["item_bias"]
        error += b_u.index_select(0, users)
        error += b_i.index_select(0, items)

    # penalties, weighted by rating counts
    P_sq = (P * P).sum(dim=1)
    Q_sq = (Q * Q).sum(dim=1)
    loss = error.dot(error) + data.reg * (data.user_counts.dot(P_sq) + data.item_counts.dot(Q_sq))
    if has_bias:
        loss += data.reg_bias * (data.user_counts.dot(b_u * b_u) + data.item_counts.dot(b_i * b_i))
    loss = loss / users.shape[0]

    # factor gradients: scatter error-weighted rows, then add the penalty term
    grad_P = torch.mul(P, (data.reg * data.user_counts).unsqueeze(1))
    grad_P.index_add_(0, users, Q_rows.mul_(error.unsqueeze(1)))
    grad_Q = torch.mul(Q, (data.reg * data.item_counts).unsqueeze(1))
    grad_Q.index_add_(0, items, P_rows.mul_(error.unsqueeze(1)))
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
