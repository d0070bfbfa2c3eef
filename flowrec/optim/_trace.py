"""Record of FlowAdam's modes, switches, closure calls and losses."""

from dataclasses import asdict, dataclass

__all__ = ["SwitchEvent", "RejectedStep", "FlowTrace"]


@dataclass(frozen=True)
class SwitchEvent:
    """One mode switch of FlowAdam.

    Attributes
    ----------
    step : int
        Index (counting from 0) of the ``step()`` call after which the mode changed.
    from_mode, to_mode : {"adam", "ode"}
        Mode before and after the switch.
    trigger : str
        What caused the switch: a detection trigger name (``"coupling"``,
        ``"oscillation"``, ``"stall"``) for Adam to ODE, ``"horizon"`` when an
        ODE phase has run its ``ode_steps`` steps.
    value : float
        Value of the trigger's statistic at the switch (for ``"horizon"``, the
        flow time integrated in the phase).
    threshold : float
        Threshold the statistic crossed (for ``"horizon"``, the number of ODE steps).
    """

    step: int
    from_mode: str
    to_mode: str
    trigger: str
    value: float
    threshold: float


@dataclass(frozen=True)
class RejectedStep:
    """One ODE sub-step that FlowAdam's step-size control undid.

    Attributes
    ----------
    step : int
        Index (counting from 0) of the ``step()`` call that took the sub-step.
    dt : float
        Step size of the rejected sub-step. The next sub-step starts from the
        same point with ``dt * ode_shrink``.
    loss : float
        Closure's loss at the point the sub-step reached.
    accepted_loss : float
        Loss at the point the sub-step started from, to which the parameters
        were restored.
    """

    step: int
    dt: float
    loss: float
    accepted_loss: float


class FlowTrace:
    """Per-step record kept by :class:`~flowrec.optim.FlowAdam`.

    All lists have one entry per ``step()`` call, except ``events`` and
    ``rejections``.

    Attributes
    ----------
    modes : list of str
        Mode used by each step, ``"adam"`` or ``"ode"``.
    losses : list of float
        Loss returned by the closure at the start of each step (NaN when the
        closure returned None).
    grad_evals : list of int
        Closure calls made by each step: 1 in Adam mode. In ODE mode, the
        integrator stages after the first, plus 1 for the evaluation at the
        start of the phase (or at every step with ``ode_step_control=False``),
        plus 1 for the acceptance test with ``ode_step_control=True``.
    events : list of SwitchEvent
        Mode switches, in order.
    rejections : list of RejectedStep
        ODE sub-steps undone by the step-size control, in order.
    """

    def __init__(self):
        self.modes = []
        self.losses = []
        self.grad_evals = []
        self.events = []
        self.rejections = []

    def __len__(self):
        return len(self.modes)

    def __repr__(self):
        return (
            f"FlowTrace(steps={len(self.modes)}, ode_steps={self.modes.count('ode')}, "
            f"switches={len(self.events)}, rejections={len(self.rejections)}, "
            f"grad_evals={self.total_grad_evals})"
        )

    @property
    def total_grad_evals(self):
        """Total number of closure calls over all steps."""
        return sum(self.grad_evals)

    def record(self, mode, loss, n_evals):
        """Append one step's mode, loss and closure call count."""
        self.modes.append(mode)
        self.losses.append(loss)
        self.grad_evals.append(n_evals)

    def state_dict(self):
        """Return the trace as plain Python lists and dicts."""
        return {
            "modes": list(self.modes),
            "losses": list(self.losses),
            "grad_evals": list(self.grad_evals),
            "events": [asdict(event) for event in self.events],
            "rejections": [asdict(rejection) for rejection in self.rejections],
        }

    def load_state_dict(self, state):
        """Replace the trace's content with ``state`` from :meth:`state_dict`."""
        self.modes = list(state["modes"])
        self.losses = list(state["losses"])
        self.grad_evals = list(state["grad_evals"])
        self.events = [SwitchEvent(**event) for event in state["events"]]
        # states saved before step-size control existed have no rejections
        self.rejections = [RejectedStep(**rejection) for rejection in state.get("rejections", [])]
