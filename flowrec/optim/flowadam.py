"""FlowAdam: Adam that switches to gradient-flow integration on hard landscapes."""

import logging
import math
import numbers

import torch
from torch.optim import Optimizer

from ._detection import DEFAULT_THRESHOLDS, TRIGGERS, DifficultyDetector
from ._integrators import INTEGRATORS, gradient_flow_step
from ._trace import FlowTrace, RejectedStep, SwitchEvent

__all__ = ["FlowAdam", "INJECTIONS"]

logger = logging.getLogger(__name__)

#: Ways of carrying the ODE phase's velocity into Adam's first moment.
INJECTIONS = ("soft", "hard", "none")

# key of the optimizer-wide state inside state_dict()
_FLOW_STATE_KEY = "flowadam"


class FlowAdam(Optimizer):
    r"""Adam that integrates the gradient flow when the landscape turns hard.

    FlowAdam runs Adam steps (``mode == "adam"``) and watches statistics of
    the gradients. When they show that a diagonal preconditioner fits the
    landscape badly, it switches to ``mode == "ode"`` for ``ode_steps`` calls
    of :meth:`step`, each an explicit integrator step of the gradient flow
    :math:`d\theta/dt = -(\nabla L(\theta) + \lambda\theta)`. When the phase
    ends, the mean velocity of the phase, converted to gradient units, is
    blended into Adam's first moment (soft momentum injection) and Adam steps
    resume.

    Parameters
    ----------
    params : iterable
        Parameters or parameter groups, as for any ``torch.optim.Optimizer``.
    lr : float, default=1e-3
        Adam learning rate. Not used by ODE steps.
    betas : tuple of (float, float), default=(0.9, 0.999)
        Smoothing factors of Adam's first and second moments.
    eps : float, default=1e-8
        Term added to Adam's denominator.
    weight_decay : float, default=0.0
        L2 coefficient. In Adam mode it is added to the gradient (as
        ``torch.optim.Adam``) or, with ``decoupled_weight_decay=True``,
        applied as ``param *= 1 - lr * weight_decay`` (as ``torch.optim.AdamW``).
        In ODE mode the flow always includes ``-weight_decay * param``.
    decoupled_weight_decay : bool, default=False
        Apply weight decay as AdamW does.
    switching : bool, default=True
        Allow ODE phases. With False every step is a ``torch.optim.Adam``
        step, up to float rounding, and no switch statistics are gathered.
    triggers : tuple of str, default=("coupling",)
        Statistics that may start an ODE phase; any subset of
        ``"coupling"``, ``"oscillation"`` and ``"stall"`` (see Notes).
    thresholds : dict, optional
        ``{trigger: (enter, exit)}`` overriding the defaults
        ``{"coupling": (0.1, 0.05), "oscillation": (0.0, 0.2),
        "stall": (1e-4, 1e-3)}``.
    stat_beta : float, default=0.9
        Smoothing factor of the statistic averages.
    warmup : int, default=50
        Adam steps before the first ODE phase may start.
    cooldown : int, default=50
        Adam steps after an ODE phase before the next may start.
    ode_steps : int, default=100
        ``step()`` calls in each ODE phase.
    integrator : {"euler", "heun", "rk4"}, default="euler"
        Explicit Runge-Kutta method of the ODE steps. Each stage costs one
        closure call: 1, 2 and 4 per step.
    ode_dt : float, "match" or "auto", default="match"
        Step size in flow time. A float is used for every ODE step.
        ``"match"`` fixes, at the start of each phase, ``dt = ode_dt_scale *
        ||theta_t - theta_{t-1}|| / ||g_t||``, where ``theta_t`` is the point
        of the last Adam step and ``g_t`` its gradient, so the ODE steps start
        about as long as the recent Adam steps. ``"auto"`` starts at
        ``ode_dt_scale / curvature`` and then sets ``dt = min(2 * dt,
        ode_dt_scale / lambda)`` before each ODE step (with step-size
        control, the factor 2 is ``ode_grow`` or ``ode_shrink``), where ``curvature``
        and ``lambda`` are secant estimates ``||g_k - g_{k-1}|| / ||theta_k
        - theta_{k-1}||`` along Adam's steps (averaged) and along the flow.
    ode_dt_scale : float, default=1.0
        Multiplier of the ``"match"`` and ``"auto"`` step sizes. Before two
        Adam steps have run, both rules fall back to ``dt = ode_dt_scale``.
    ode_clip : float or None, default=0.05
        Cap on each ODE step's displacement, relative to the norm of all
        parameters (with a floor of 1e-3 on that norm). None disables it.
    ode_step_control : bool, default=True
        Test every ODE sub-step and undo those that raise the loss (see
        Notes). False takes every sub-step as computed.
    ode_shrink : float, default=0.5
        Factor applied to ``dt`` after a rejected sub-step, in (0, 1).
    ode_grow : float, default=1.2
        Factor applied to ``dt`` after an accepted sub-step, at least 1.
        ``dt`` never grows beyond the phase's first step size (``"auto"``:
        beyond ``ode_dt_scale / lambda``).
    ode_rtol : float, default=1e-6
        Relative tolerance of the test: a sub-step is rejected when its loss
        exceeds the loss at its start point by more than ``ode_rtol`` times
        the magnitude of that loss.
    injection : {"soft", "hard", "none"}, default="soft"
        What happens to Adam's first moment when an ODE phase ends:
        ``"soft"`` blends it with the phase's mean velocity in gradient units,
        ``"hard"`` replaces it, ``"none"`` keeps it.
    injection_weight : float, default=0.5
        Blend weight of the soft injection, in (0, 1].
    injection_ramp : int, default=1
        Number of Adam steps over which the soft blend is spread: each of the
        first ``injection_ramp`` Adam steps after a phase moves the first
        moment ``injection_weight / injection_ramp`` of the way to the
        injected velocity.

    Attributes
    ----------
    mode : {"adam", "ode"}
        Mode the next ``step()`` call will use.
    trace : FlowTrace
        Mode, loss and closure calls of every step, and the switch events.
    statistics : dict
        Current smoothed value of each trigger statistic (None before the
        first value) and the curvature estimate.

    Notes
    -----
    **Adam steps.** With ``switching=False`` the update is the one of
    ``torch.optim.Adam`` (``amsgrad=False``, ``maximize=False``), including
    bias correction of both moments.

    **Statistics.** After each Adam step's closure call, with ``g_t`` the
    gradient Adam uses (L2 term included unless decay is decoupled),
    ``y = g_t - g_{t-1}`` and ``s`` the displacement of the previous Adam
    step, FlowAdam computes:

    * ``coupling``: :math:`\sum_i \max(0, -y_i s_i) / \sum_i |y_i s_i|`.
      On a separable convex function, such as any quadratic with a diagonal
      Hessian, every ``y_i s_i >= 0`` and the value is exactly 0. Where the
      Hessian couples coordinates (rotated ill-conditioned quadratics,
      factorizations) moving one coordinate changes the gradient of others
      and the value rises. Adam's diagonal preconditioner cannot model that
      coupling.
    * ``oscillation``: the cosine between ``g_t`` and ``g_{t-1}``.
    * ``stall``: ``(slow - fast) / |slow|`` of two loss averages (smoothing
      0.5 and 0.95): the recent relative loss decrease.

    Each is smoothed with ``stat_beta`` (the first value starts the average).
    A trigger is flagged when its average passes ``enter`` (above for
    ``coupling``, below for the others) and unflagged only when it passes
    back beyond ``exit``. An ODE phase starts after an Adam step when an
    enabled trigger is flagged and at least ``warmup`` (first phase) or
    ``cooldown`` (later phases) Adam steps have run since the start or the
    last phase. Statistics are not updated in ODE mode, and the first Adam
    step after a phase has no secant pair.

    **ODE phases.** A phase is ``ode_steps`` calls of :meth:`step`. Each call
    takes one sub-step of the chosen integrator from the current point; the
    displacement of all parameters together is scaled down to at most
    ``ode_clip * max(||theta||, 1e-3)``. Adam's moments are left untouched
    during the phase.

    **Step-size control.** Gradient flow never raises the loss, so a
    sub-step that does has outrun the flow, as explicit Euler does on a
    quadratic when ``dt > 2 / lambda_max``. With ``ode_step_control=True``
    each call evaluates the closure at the point its sub-step reached. The
    sub-step is accepted when that loss is at most ``L0 + ode_rtol * |L0|``,
    with ``L0`` the loss at the sub-step's start, and ``dt`` grows by
    ``ode_grow``. Otherwise the parameters go back to the start point, the
    step is recorded in ``trace.rejections`` and ``dt`` shrinks by
    ``ode_shrink``. ``dt`` never exceeds the phase's first step size (for
    ``"auto"``, ``ode_dt_scale / lambda`` along the last sub-step). The next
    call starts from the loss and gradients of that test, so an Euler step
    costs one closure call, plus one for the first step of a phase. A NaN
    loss at the new point is rejected. When the closure returns None, or the
    start loss is NaN, every sub-step is accepted. The test compares values
    of the same closure, so it assumes the closure computes the same
    function on every call (full-batch training).
    With ``ode_step_control=False`` each call evaluates the closure at the
    current point and takes the sub-step as computed.

    **Injection.** At the end of a phase of flow time ``T`` the mean velocity
    is ``v = (theta_end - theta_start) / T``, where ``T`` sums the ``dt`` of
    accepted sub-steps only and ``theta_end`` is the last accepted point. A
    phase whose sub-steps were all rejected injects nothing. In gradient units the target is
    ``-v`` (minus ``weight_decay * (theta_start + theta_end) / 2`` when decay
    is decoupled, because then Adam's first moment does not contain the L2
    term). ``"soft"`` sets ``m <- (1 - w) m + w * target`` with ``w =
    injection_weight`` (spread over ``injection_ramp`` steps), ``"hard"``
    sets ``m <- target``, ``"none"`` leaves ``m``. The second moment and the
    bias-correction step count are unchanged.

    **Closure.** :meth:`step` requires a closure because ODE steps evaluate
    gradients at new points. It must zero the gradients, compute the loss, set
    ``.grad`` (by ``backward()`` or by assignment) and return the loss.
    Parameters whose ``.grad`` is None are skipped. Sparse gradients raise
    ``RuntimeError``.

    With switching on, each Adam step copies one vector of 7 sums to the
    host to evaluate the statistics, and the optimizer keeps four tensors per
    parameter (two more than Adam). An ODE phase adds two more (the phase's
    start point and the gradients at the current point), or four with
    ``ode_dt="auto"`` and ``ode_step_control=False``, and each ODE step
    copies the parameters once to be able to undo its sub-step.

    Examples
    --------
    >>> import torch
    >>> from flowrec.optim import FlowAdam
    >>> weight = torch.nn.Parameter(torch.ones(3))
    >>> opt = FlowAdam([weight], lr=0.1)
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = (weight ** 2).sum()
    ...     loss.backward()
    ...     return loss
    >>> loss = opt.step(closure)
    >>> loss.item(), opt.mode, opt.trace.modes
    (3.0, 'adam', ['adam'])
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        *,
        decoupled_weight_decay=False,
        switching=True,
        triggers=("coupling",),
        thresholds=None,
        stat_beta=0.9,
        warmup=50,
        cooldown=50,
        ode_steps=100,
        integrator="euler",
        ode_dt="match",
        ode_dt_scale=1.0,
        ode_clip=0.05,
        ode_step_control=True,
        ode_shrink=0.5,
        ode_grow=1.2,
        ode_rtol=1e-6,
        injection="soft",
        injection_weight=0.5,
        injection_ramp=1,
    ):
        _check_adam_hyperparameters(lr, betas, eps, weight_decay)
        merged_thresholds = _check_switch_options(
            triggers, thresholds, stat_beta, warmup, cooldown, ode_steps, integrator,
            ode_dt, ode_dt_scale, ode_clip, injection, injection_weight, injection_ramp,
        )
        _check_step_control_options(ode_step_control, ode_shrink, ode_grow, ode_rtol)
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "decoupled_weight_decay": bool(decoupled_weight_decay),
        }
        super().__init__(params, defaults)

        self.switching = bool(switching)
        self.triggers = tuple(triggers)
        self.thresholds = merged_thresholds
        self.stat_beta = stat_beta
        self.warmup = warmup
        self.cooldown = cooldown
        self.ode_steps = ode_steps
        self.integrator = integrator
        self.ode_dt = ode_dt
        self.ode_dt_scale = ode_dt_scale
        self.ode_clip = ode_clip
        self.ode_step_control = ode_step_control
        self.ode_shrink = ode_shrink
        self.ode_grow = ode_grow
        self.ode_rtol = ode_rtol
        self.injection = injection
        self.injection_weight = injection_weight
        self.injection_ramp = injection_ramp

        self.trace = FlowTrace()
        self._detector = DifficultyDetector(self.triggers, self.thresholds, stat_beta)
        self._flow = _initial_flow_state()
        # closure's return value at the current point, kept between ODE steps
        # with step-size control so that the next step does not re-evaluate it
        self._cached_loss = None

    # public read-only views

    @property
    def mode(self):
        """Mode the next ``step()`` call will use: ``"adam"`` or ``"ode"``."""
        return self._flow["mode"]

    @property
    def statistics(self):
        """Smoothed trigger statistics and the curvature estimate."""
        values = dict(self._detector.averages)
        values["curvature"] = self._flow["curvature"]
        return values

    # state_dict round trip

    def state_dict(self):
        """Return the optimizer state, including the mode, statistics and trace."""
        state = super().state_dict()
        state[_FLOW_STATE_KEY] = {
            "flow": dict(self._flow),
            "detector": self._detector.state_dict(),
            "trace": self.trace.state_dict(),
            "cached_loss": _detached(self._cached_loss),
        }
        return state

    def load_state_dict(self, state_dict):
        """Load a state from :meth:`state_dict`, including mode, statistics and trace."""
        state_dict = dict(state_dict)
        flow_state = state_dict.pop(_FLOW_STATE_KEY, None)
        if flow_state is None:
            raise ValueError(
                "The state dict has no FlowAdam entry; pass the output of "
                "FlowAdam.state_dict(), not that of another optimizer."
            )
        super().load_state_dict(state_dict)
        self._flow = dict(flow_state["flow"])
        self._detector.load_state_dict(flow_state["detector"])
        self.trace.load_state_dict(flow_state["trace"])
        self._cached_loss = _detached(flow_state.get("cached_loss"))
        # states saved before step-size control existed lack these keys
        for key, value in _initial_flow_state().items():
            self._flow.setdefault(key, value)

    # stepping

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one Adam step or one ODE step and return the closure's loss.

        Parameters
        ----------
        closure : callable
            Zeroes the gradients, computes the loss, sets ``.grad`` and
            returns the loss. Required.

        Returns
        -------
        loss : object
            The closure's value at the parameters before this step.
        """
        if closure is None:
            raise ValueError(
                "FlowAdam.step() requires a closure because ODE steps evaluate "
                "gradients at new points; pass a function that zeroes the "
                "gradients, computes the loss, sets .grad and returns the loss."
            )

        mode = self._flow["mode"]
        cached = mode == "ode" and self._flow["ode_cached"]
        if cached:
            # the previous ODE step evaluated the closure at this point
            loss = self._cached_loss
        else:
            with torch.enable_grad():
                loss = closure()
        loss_value = _loss_to_float(loss)

        if mode == "adam":
            n_evals = 1
            self._adam_step(loss_value)
        else:
            n_evals = self._ode_step(closure, loss, cached) + (0 if cached else 1)

        self.trace.record(mode, loss_value, n_evals)
        self._flow["n_steps"] += 1
        return loss

    def _groups_with_grads(self):
        """Yield ``(group, params)`` with the parameters that have a gradient."""
        for group in self.param_groups:
            params = []
            for param in group["params"]:
                if param.grad is None:
                    continue
                if param.grad.is_sparse:
                    raise RuntimeError(
                        "FlowAdam does not support sparse gradients; use dense "
                        "gradients (for example nn.Embedding(..., sparse=False))."
                    )
                params.append(param)
            yield group, params

    def _adam_step(self, loss_value):
        flow = self._flow
        gather_statistics = self.switching
        sums = None
        secant_valid = flow["secant_valid"]

        for group, params in self._groups_with_grads():
            lr = group["lr"]
            beta1, beta2 = group["betas"]
            eps = group["eps"]
            weight_decay = group["weight_decay"]
            decoupled = group["decoupled_weight_decay"]

            for param in params:
                grad = param.grad
                state = self.state[param]
                if "step" not in state:
                    _init_adam_state(state, param)
                if gather_statistics and "prev_grad" not in state:
                    state["prev_grad"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["prev_update"] = torch.zeros_like(param, memory_format=torch.preserve_format)

                # the gradient Adam uses, with coupled L2 applied as in torch.optim.Adam
                if weight_decay != 0 and not decoupled:
                    grad = grad.add(param, alpha=weight_decay)

                if gather_statistics:
                    param_sums = _secant_sums(grad, state["prev_grad"], state["prev_update"])
                    sums = param_sums if sums is None else sums + param_sums.to(sums.device)
                    state["prev_grad"].copy_(grad)
                    state["prev_update"].copy_(param)

                self._inject(state)
                _adam_update(param, grad, state, lr, beta1, beta2, eps, weight_decay, decoupled)

                if gather_statistics:
                    # prev_update held the old parameter; turn it into the displacement
                    state["prev_update"].sub_(param).neg_()

        if not gather_statistics:
            flow["adam_steps_since_phase"] += 1
            return

        if flow["injection_left"] > 0:
            flow["injection_left"] -= 1
        statistics = {"stall": self._detector.loss_progress(loss_value)}
        if sums is not None and secant_valid:
            values = sums.tolist()
            statistics.update(_statistics_from_sums(values))
            if values[3] > 0:
                flow["speed_dt"] = math.sqrt(values[6] / values[3])
            curvature = statistics.pop("curvature")
            if curvature is not None and math.isfinite(curvature) and curvature > 0:
                previous = flow["curvature"]
                flow["curvature"] = (
                    curvature if previous is None
                    else self.stat_beta * previous + (1 - self.stat_beta) * curvature
                )
        self._detector.update(statistics)
        flow["secant_valid"] = sums is not None
        flow["adam_steps_since_phase"] += 1

        # start an ODE phase when a trigger is flagged and enough Adam steps ran
        required = self.warmup if flow["phases"] == 0 else self.cooldown
        if flow["adam_steps_since_phase"] < required:
            return
        trigger = self._detector.hard_trigger()
        if trigger is None:
            return
        enter, _ = self.thresholds[trigger]
        value = self._detector.averages[trigger]
        self._switch("ode", trigger, value, enter)

    def _ode_step(self, closure, loss, cached):
        """Take one ODE sub-step and return the closure calls it made.

        With ``cached`` True, ``loss`` and the ``ode_grad`` buffers come from
        the previous step's acceptance test, not from a closure call made by
        this step. The returned count excludes the start evaluation.
        """
        flow = self._flow
        if flow["ode_step_in_phase"] == 0:
            self._start_phase()
        params, weight_decays, grads = self._sub_step_inputs(cached)

        if self.ode_dt == "auto" and not self.ode_step_control and flow["ode_step_in_phase"] > 0:
            flow["phase_dt"] = self._adapt_dt(params, weight_decays)

        dt = flow["phase_dt"]
        start = [param.detach().clone() for param in params]
        _, n_calls, _ = gradient_flow_step(
            params, closure, dt, method=self.integrator, weight_decays=weight_decays,
            clip=self.ode_clip, first_loss=loss, first_grads=grads,
        )
        flow["ode_step_in_phase"] += 1

        if self.ode_step_control:
            n_calls += self._check_sub_step(closure, loss, params, weight_decays, grads, start, dt)
        else:
            flow["ode_time"] += dt
            if self.ode_dt == "auto":
                # keep the gradient and the displacement to measure the next secant
                for param, weight_decay, grad, origin in zip(params, weight_decays, grads, start):
                    state = self.state[param]
                    _buffer(state, "flow_grad", param).copy_(_with_decay(grad, origin, weight_decay))
                    _buffer(state, "flow_update", param).copy_(param).sub_(origin)

        if flow["ode_step_in_phase"] >= self.ode_steps:
            self._finish_phase()
            self._switch("adam", "horizon", flow["ode_time"], float(self.ode_steps))
        return n_calls

    def _start_phase(self):
        """Set the phase's step size and keep its start point."""
        flow = self._flow
        flow["phase_dt"] = self._initial_dt()
        flow["dt_limit"] = flow["phase_dt"]
        flow["ode_time"] = 0.0
        # parameters without a gradient now do not move and get no injection
        for _, params in self._groups_with_grads():
            for param in params:
                self.state[param]["ode_start"] = param.detach().clone()

    def _sub_step_inputs(self, cached):
        """Return the moving parameters, their L2 coefficients and their gradients.

        The gradients are the ``ode_grad`` buffers: cached by the previous
        step's acceptance test, or copied from ``.grad`` now.
        """
        params, weight_decays, grads = [], [], []
        if cached:
            for group in self.param_groups:
                for param in group["params"]:
                    grad = self.state[param].get("ode_grad")
                    if grad is not None:
                        params.append(param)
                        weight_decays.append(group["weight_decay"])
                        grads.append(grad)
            return params, weight_decays, grads
        # copy the gradients, because later closure calls may overwrite .grad in place
        for group, group_params in self._groups_with_grads():
            for param in group_params:
                params.append(param)
                weight_decays.append(group["weight_decay"])
                grads.append(_buffer(self.state[param], "ode_grad", param).copy_(param.grad))
        return params, weight_decays, grads

    def _check_sub_step(self, closure, start_loss, params, weight_decays, grads, start, dt):
        """Accept or undo the sub-step just taken, set the next dt; return 1 (closure calls).

        The closure is evaluated at the new point. Gradient flow never raises
        the loss, so a sub-step whose loss exceeds the start loss by more than
        ``ode_rtol`` times its magnitude was too long: the parameters go back
        to ``start`` and dt shrinks. Otherwise the new point is accepted, its
        loss and gradients are cached for the next step, and dt grows.
        """
        flow = self._flow
        with torch.enable_grad():
            trial_loss = closure()
        trial_value = _loss_to_float(trial_loss)
        start_value = _loss_to_float(start_loss)
        accepted = (
            start_loss is None or trial_loss is None or math.isnan(start_value)
            or trial_value <= start_value + self.ode_rtol * abs(start_value)
        )

        # the step size cap: the phase's first dt, or ode_dt_scale / lambda for "auto"
        limit = flow["dt_limit"]
        if self.ode_dt == "auto":
            previous = [_with_decay(grad, origin, weight_decay)
                        for grad, origin, weight_decay in zip(grads, start, weight_decays)]
            displacements = [param.detach() - origin for param, origin in zip(params, start)]
            curvature = self._flow_curvature(params, weight_decays, previous, displacements)
            limit = math.inf if curvature is None else self.ode_dt_scale / curvature

        if accepted:
            flow["ode_time"] += dt
            flow["phase_dt"] = min(self.ode_grow * dt, limit)
            self._cached_loss = _detached(trial_loss)
            # the next sub-step moves the parameters that have a gradient here
            for param in params:
                if param.grad is None:
                    self.state[param].pop("ode_grad", None)
            for _, group_params in self._groups_with_grads():
                for param in group_params:
                    _buffer(self.state[param], "ode_grad", param).copy_(param.grad)
        else:
            # the ode_grad buffers still hold the gradients at the start point
            for param, origin in zip(params, start):
                param.copy_(origin)
            self._cached_loss = _detached(start_loss)
            flow["phase_dt"] = min(self.ode_shrink * dt, limit)
            rejection = RejectedStep(step=flow["n_steps"], dt=float(dt), loss=trial_value,
                                     accepted_loss=start_value)
            self.trace.rejections.append(rejection)
            logger.debug("FlowAdam rejected an ODE sub-step: %s", rejection)
        flow["ode_cached"] = True
        return 1

    def _initial_dt(self):
        """Return the step size of a new ODE phase."""
        if self.ode_dt not in ("auto", "match"):
            return float(self.ode_dt)
        flow = self._flow
        if self.ode_dt == "match" and flow["speed_dt"] is not None:
            return self.ode_dt_scale * flow["speed_dt"]
        if flow["curvature"] is not None:
            # NOTE: the Adam-phase secant measures curvature along Adam's
            # steps, which is often far below the top curvature, so this
            # first step may be large. The displacement clip bounds it, and
            # _adapt_dt corrects the step size from the second ODE step on.
            return self.ode_dt_scale / flow["curvature"]
        logger.warning(
            "FlowAdam has no secant estimate at the start of an ODE phase "
            "(fewer than two Adam steps ran); using ode_dt=%g. Set warmup >= 2 "
            "or pass ode_dt as a number.",
            self.ode_dt_scale,
        )
        return float(self.ode_dt_scale)

    def _adapt_dt(self, params, weight_decays):
        """Return the next step size from the secant of the previous ODE step.

        Used by ``ode_dt="auto"`` without step-size control. The step size
        becomes ``ode_dt_scale / lambda`` with ``lambda = ||g_k - g_{k-1}|| /
        ||theta_k - theta_{k-1}||`` measured along the flow, and grows by at
        most a factor of 2 per step.
        """
        previous, displacements, moved = [], [], []
        for param in params:
            state = self.state[param]
            if "flow_grad" in state:
                moved.append(param)
                previous.append(state["flow_grad"])
                displacements.append(state["flow_update"])
        decays = [weight_decay for param, weight_decay in zip(params, weight_decays)
                  if "flow_grad" in self.state[param]]
        dt = self._flow["phase_dt"]
        curvature = self._flow_curvature(moved, decays, previous, displacements)
        if curvature is None:
            return 2.0 * dt
        return min(2.0 * dt, self.ode_dt_scale / curvature)

    def _flow_curvature(self, params, weight_decays, previous_grads, displacements):
        """Return the secant curvature ``||g - g_prev|| / ||displacement||``, or None.

        ``g`` is each parameter's ``.grad`` plus its L2 term; ``previous_grads``
        must include the L2 term at the previous point. None means that the
        secant is undefined (no displacement or no gradient change).
        """
        sums = None
        for param, weight_decay, previous, displacement in zip(
                params, weight_decays, previous_grads, displacements):
            if param.grad is None:
                continue
            grad = _with_decay(param.grad, param, weight_decay)
            diff = grad.double() - previous.double()
            param_sums = torch.stack([diff.pow(2).sum(), displacement.double().pow(2).sum()])
            sums = param_sums if sums is None else sums + param_sums.to(sums.device)
        if sums is None:
            return None
        diff_sq, update_sq = sums.tolist()
        if update_sq == 0 or diff_sq == 0:
            return None
        return math.sqrt(diff_sq / update_sq)

    def _finish_phase(self):
        """Compute each parameter's injection target and drop the phase buffers."""
        flow = self._flow
        # with step-size control, elapsed counts accepted sub-steps only, and
        # rejected ones were undone, so the velocity is that of accepted steps
        elapsed = flow["ode_time"]
        flow["ode_cached"] = False
        self._cached_loss = None
        for group in self.param_groups:
            weight_decay = group["weight_decay"]
            decoupled = group["decoupled_weight_decay"]
            for param in group["params"]:
                state = self.state[param]
                state.pop("flow_grad", None)
                state.pop("flow_update", None)
                state.pop("ode_grad", None)
                start = state.pop("ode_start", None)
                # elapsed is 0 when every sub-step was rejected: nothing moved
                if start is None or self.injection == "none" or elapsed == 0:
                    continue
                # target = -(end - start) / T, in the units of Adam's first moment
                target = start.sub(param).div_(elapsed)
                if decoupled and weight_decay != 0:
                    target.sub_(start.add_(param).mul_(0.5 * weight_decay))
                if "step" not in state:
                    _init_adam_state(state, param)
                if self.injection == "hard":
                    state["exp_avg"].copy_(target)
                else:
                    state["injection_target"] = target
        flow["injection_left"] = self.injection_ramp if self.injection == "soft" else 0

    def _inject(self, state):
        """Apply one soft-injection blend to this parameter's first moment."""
        if self._flow["injection_left"] <= 0:
            state.pop("injection_target", None)
            return
        target = state.get("injection_target")
        if target is None:
            return
        state["exp_avg"].lerp_(target, self.injection_weight / self.injection_ramp)
        if self._flow["injection_left"] == 1:
            del state["injection_target"]

    def _switch(self, to_mode, trigger, value, threshold):
        flow = self._flow
        event = SwitchEvent(
            step=flow["n_steps"], from_mode=flow["mode"], to_mode=to_mode,
            trigger=trigger, value=float(value), threshold=float(threshold),
        )
        self.trace.events.append(event)
        logger.debug("FlowAdam switch: %s", event)
        flow["mode"] = to_mode
        if to_mode == "ode":
            flow["ode_step_in_phase"] = 0
        else:
            flow["phases"] += 1
            flow["adam_steps_since_phase"] = 0
            flow["secant_valid"] = False


def _initial_flow_state():
    return {
        "mode": "adam",
        "n_steps": 0,
        "phases": 0,
        "adam_steps_since_phase": 0,
        "ode_step_in_phase": 0,
        "ode_time": 0.0,
        "phase_dt": None,
        "dt_limit": None,
        "ode_cached": False,
        "curvature": None,
        "speed_dt": None,
        "secant_valid": False,
        "injection_left": 0,
    }


def _buffer(state, key, param):
    """Return ``state[key]``, creating it as zeros shaped like ``param``."""
    if key not in state:
        state[key] = torch.zeros_like(param, memory_format=torch.preserve_format)
    return state[key]


def _with_decay(grad, param, weight_decay):
    """Return ``grad + weight_decay * param``, without copying when the decay is 0."""
    return grad if weight_decay == 0 else grad.add(param, alpha=weight_decay)


def _detached(loss):
    """Return a detached copy of a tensor loss; other values unchanged."""
    if isinstance(loss, torch.Tensor):
        return loss.detach().clone()
    return loss


def _init_adam_state(state, param):
    # a float32 CPU scalar, as torch.optim.Adam stores it when not capturable
    state["step"] = torch.tensor(0.0, dtype=torch.float32)
    state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)


def _adam_update(param, grad, state, lr, beta1, beta2, eps, weight_decay, decoupled):
    """Apply one Adam update in place, with the operations of torch.optim.Adam."""
    step_t = state["step"]
    exp_avg = state["exp_avg"]
    exp_avg_sq = state["exp_avg_sq"]

    step_t += 1
    if weight_decay != 0 and decoupled:
        param.mul_(1 - lr * weight_decay)

    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)

    step = step_t.item()
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2**0.5

    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-step_size)


def _secant_sums(grad, prev_grad, prev_update):
    """Return the per-parameter sums behind the statistics, as a float64 vector.

    Order: sum max(0, -y*s), sum |y*s|, g.g_prev, |g|^2, |g_prev|^2, |y|^2, |s|^2.
    Products are formed in the parameter's dtype and summed in float64, which
    took half the time of converting every tensor to float64 first.
    """
    f64 = torch.float64
    diff = grad - prev_grad
    product = diff * prev_update
    return torch.stack([
        product.neg().clamp_(min=0).sum(dtype=f64),
        product.abs().sum(dtype=f64),
        (grad * prev_grad).sum(dtype=f64),
        grad.square().sum(dtype=f64),
        prev_grad.square().sum(dtype=f64),
        diff.square().sum(dtype=f64),
        prev_update.square().sum(dtype=f64),
    ])


def _statistics_from_sums(sums):
    negative, total, dot, grad_sq, prev_sq, diff_sq, update_sq = sums
    statistics = {"coupling": None, "oscillation": None, "curvature": None}
    if total > 0:
        statistics["coupling"] = negative / total
    if grad_sq > 0 and prev_sq > 0:
        statistics["oscillation"] = dot / math.sqrt(grad_sq * prev_sq)
    if update_sq > 0:
        statistics["curvature"] = math.sqrt(diff_sq / update_sq)
    return statistics


def _loss_to_float(loss):
    if loss is None:
        return math.nan
    if isinstance(loss, torch.Tensor):
        return float(loss.detach())
    return float(loss)


def _check_adam_hyperparameters(lr, betas, eps, weight_decay):
    if isinstance(lr, torch.Tensor) or not _is_real(lr) or not lr >= 0:
        raise ValueError(f"Invalid learning rate: {lr!r}. Use a float >= 0, such as 1e-3.")
    if not _is_real(eps) or not eps >= 0:
        raise ValueError(f"Invalid eps: {eps!r}. Use a float >= 0, such as 1e-8.")
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"Invalid betas: {betas!r}. Use a pair of floats in [0, 1), such as (0.9, 0.999).")
    for index, beta in enumerate(betas):
        if not _is_real(beta) or not 0.0 <= beta < 1.0:
            raise ValueError(
                f"Invalid beta parameter at index {index}: {beta!r}. Use a float in [0, 1)."
            )
    if not _is_real(weight_decay) or not weight_decay >= 0:
        raise ValueError(f"Invalid weight_decay value: {weight_decay!r}. Use a float >= 0.")


def _check_switch_options(triggers, thresholds, stat_beta, warmup, cooldown, ode_steps,
                          integrator, ode_dt, ode_dt_scale, ode_clip, injection,
                          injection_weight, injection_ramp):
    """Validate the switching options and return the merged threshold table."""
    if isinstance(triggers, str) or not all(name in TRIGGERS for name in triggers):
        raise ValueError(
            f"Invalid triggers: {triggers!r}. Use a tuple of names from {sorted(TRIGGERS)}."
        )
    merged = dict(DEFAULT_THRESHOLDS)
    for name, pair in (thresholds or {}).items():
        if name not in TRIGGERS:
            raise ValueError(
                f"Invalid thresholds key: {name!r}. Use names from {sorted(TRIGGERS)}."
            )
        if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(map(_is_real, pair)):
            raise ValueError(
                f"Invalid thresholds for {name!r}: {pair!r}. Use a pair (enter, exit) of floats."
            )
        enter, exit_ = (float(value) for value in pair)
        if TRIGGERS[name] == "above" and exit_ > enter:
            raise ValueError(
                f"Invalid thresholds for {name!r}: exit {exit_} is above enter {enter}. "
                "This trigger flags high values, so use exit <= enter."
            )
        if TRIGGERS[name] == "below" and exit_ < enter:
            raise ValueError(
                f"Invalid thresholds for {name!r}: exit {exit_} is below enter {enter}. "
                "This trigger flags low values, so use exit >= enter."
            )
        merged[name] = (enter, exit_)

    if not _is_real(stat_beta) or not 0.0 <= stat_beta < 1.0:
        raise ValueError(f"Invalid stat_beta: {stat_beta!r}. Use a float in [0, 1), such as 0.9.")
    for name, value, minimum in (("warmup", warmup, 0), ("cooldown", cooldown, 0),
                                 ("ode_steps", ode_steps, 1), ("injection_ramp", injection_ramp, 1)):
        if not _is_int(value) or value < minimum:
            raise ValueError(f"Invalid {name}: {value!r}. Use an int >= {minimum}.")
    if integrator not in INTEGRATORS:
        raise ValueError(f"Invalid integrator: {integrator!r}. Use one of {sorted(INTEGRATORS)}.")
    if ode_dt not in ("auto", "match") and (not _is_real(ode_dt) or not ode_dt > 0):
        raise ValueError(f"Invalid ode_dt: {ode_dt!r}. Use a float > 0, \"match\" or \"auto\".")
    if not _is_real(ode_dt_scale) or not ode_dt_scale > 0:
        raise ValueError(f"Invalid ode_dt_scale: {ode_dt_scale!r}. Use a float > 0, such as 1.0.")
    if ode_clip is not None and (not _is_real(ode_clip) or not ode_clip > 0):
        raise ValueError(f"Invalid ode_clip: {ode_clip!r}. Use a float > 0, such as 0.05, or None.")
    if injection not in INJECTIONS:
        raise ValueError(f"Invalid injection: {injection!r}. Use one of {list(INJECTIONS)}.")
    if not _is_real(injection_weight) or not 0.0 < injection_weight <= 1.0:
        raise ValueError(
            f"Invalid injection_weight: {injection_weight!r}. Use a float in (0, 1], such as 0.5."
        )
    return merged


def _check_step_control_options(ode_step_control, ode_shrink, ode_grow, ode_rtol):
    if not isinstance(ode_step_control, bool):
        raise ValueError(f"Invalid ode_step_control: {ode_step_control!r}. Use True or False.")
    if not _is_real(ode_shrink) or not 0.0 < ode_shrink < 1.0:
        raise ValueError(f"Invalid ode_shrink: {ode_shrink!r}. Use a float in (0, 1), such as 0.5.")
    if not _is_real(ode_grow) or not ode_grow >= 1.0:
        raise ValueError(f"Invalid ode_grow: {ode_grow!r}. Use a float >= 1, such as 1.2.")
    if not _is_real(ode_rtol) or not ode_rtol >= 0:
        raise ValueError(f"Invalid ode_rtol: {ode_rtol!r}. Use a float >= 0, such as 1e-6.")


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
