"""Explicit Runge-Kutta steps of the gradient flow used by FlowAdam's ODE mode.

The flow is ``d(theta)/dt = -(grad L(theta) + weight_decay * theta)``. Each
stage of a method costs one closure evaluation. The full step displacement is
clipped as one vector over every parameter that takes part (see
:func:`gradient_flow_step`).
"""

import torch

__all__ = ["INTEGRATORS", "gradient_flow_step"]

# Butcher tableaux of the explicit methods: stage coefficients ``a``, whose
# row i contains the weights of earlier stage slopes for stage i, and final
# weights ``b``.
_TABLEAUX = {
    "euler": ((), (1.0,)),
    "heun": (((1.0,),), (0.5, 0.5)),
    "rk4": (((0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), (1 / 6, 1 / 3, 1 / 3, 1 / 6)),
}

#: Names of the available integrators, mapped to their order of accuracy.
INTEGRATORS = {"euler": 1, "heun": 2, "rk4": 4}


def _velocity(params, weight_decays, grads=None):
    """Return ``-(grad + weight_decay * param)`` for each parameter.

    ``grads`` replaces the ``.grad`` of each parameter when given. A parameter
    whose gradient is None at this stage gets only the decay term, which is a
    zero velocity when ``weight_decay`` is 0.
    """
    if grads is None:
        grads = [param.grad for param in params]
    velocities = []
    for param, weight_decay, grad in zip(params, weight_decays, grads):
        if grad is None:
            velocity = torch.zeros_like(param)
        else:
            if grad.is_sparse:
                raise RuntimeError(
                    "FlowAdam does not support sparse gradients; use dense "
                    "gradients (for example nn.Embedding(..., sparse=False))."
                )
            velocity = grad.detach().neg()
        if weight_decay != 0:
            velocity.add_(param.detach(), alpha=-weight_decay)
        velocities.append(velocity)
    return velocities


def gradient_flow_step(params, closure, dt, *, method="euler", weight_decays=None,
                       clip=None, clip_floor=1e-3, first_loss=None, first_grads=None):
    """Advance the parameters by one explicit step of the gradient flow.

    Parameters
    ----------
    params : list of torch.Tensor
        Parameters to move in place. Their ``.grad`` must already hold the
        gradient at the current point when ``first_loss`` is given.
    closure : callable
        Zeroes the gradients, computes the loss at the current parameter values,
        sets ``.grad`` and returns the loss. Called once per stage, except for
        the first stage when ``first_loss`` is given.
    dt : float
        Step size in flow time. Must be positive.
    method : {"euler", "heun", "rk4"}, default="euler"
        Explicit Runge-Kutta method. Euler has 1 stage, Heun 2 and RK4 4.
    weight_decays : list of float, optional
        L2 coefficient of each parameter in the flow. Defaults to 0 for all.
    clip : float, optional
        Cap on the norm of the step displacement, relative to the parameter
        norm: the displacement of all parameters together, as one vector, is
        scaled down to at most ``clip * max(||theta||, clip_floor)``, where
        ``||theta||`` is the norm of all parameters together before the step.
        None disables clipping.
    clip_floor : float, default=1e-3
        Smallest parameter norm used by the cap, so that parameters at or near
        zero can still move.
    first_loss : object, optional
        Loss already evaluated at the current point. When given, the first
        stage reuses the gradients in ``.grad`` instead of calling the closure.
    first_grads : list of torch.Tensor, optional
        Gradients at the current point, one per parameter. When given, the
        first stage uses them instead of ``.grad`` and does not call the
        closure, and the returned loss is ``first_loss``.

    Returns
    -------
    loss : object
        The closure's value at the point where the step started.
    n_evals : int
        Number of closure calls made.
    clipped : bool
        Whether the displacement was scaled down.
    """
    if method not in _TABLEAUX:
        raise ValueError(
            f"Invalid integrator {method!r}; use one of {sorted(_TABLEAUX)}."
        )
    if not dt > 0:
        raise ValueError(f"Invalid ODE step size: {dt}. Use a positive number.")
    if weight_decays is None:
        weight_decays = [0.0] * len(params)
    stage_weights, final_weights = _TABLEAUX[method]

    n_evals = 0
    loss = first_loss
    if loss is None and first_grads is None:
        with torch.enable_grad():
            loss = closure()
        n_evals += 1

    with torch.no_grad():
        start = [param.detach().clone() for param in params]
        slopes = [_velocity(params, weight_decays, first_grads)]

        # later stages: move to start + dt * sum(a_ij * k_j) and re-evaluate
        for row in stage_weights:
            for index, param in enumerate(params):
                point = start[index].clone()
                for weight, slope in zip(row, slopes):
                    if weight != 0:
                        point.add_(slope[index], alpha=dt * weight)
                param.copy_(point)
            with torch.enable_grad():
                closure()
            n_evals += 1
            slopes.append(_velocity(params, weight_decays))

        # combine the stage slopes into the displacement
        displacements = []
        for index in range(len(params)):
            displacement = torch.zeros_like(start[index])
            for weight, slope in zip(final_weights, slopes):
                displacement.add_(slope[index], alpha=dt * weight)
            displacements.append(displacement)

        # clip the displacement relative to the parameter norm
        clipped = False
        if clip is not None and params:
            step_norm = _global_norm(displacements)
            param_norm = max(_global_norm(start), clip_floor)
            max_norm = clip * param_norm
            if step_norm > max_norm:
                scale = max_norm / step_norm
                for displacement in displacements:
                    displacement.mul_(scale)
                clipped = True

        for param, origin, displacement in zip(params, start, displacements):
            param.copy_(origin.add_(displacement))

    return loss, n_evals, clipped


def _global_norm(tensors):
    """Return the 2-norm of all tensors together, as a Python float."""
    if not tensors:
        return 0.0
    squares = [tensor.double().pow(2).sum() for tensor in tensors]
    return float(torch.stack([s.to(squares[0].device) for s in squares]).sum().sqrt())
