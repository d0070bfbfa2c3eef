"""Optimizers: FlowAdam and the registry that builds optimizers by name."""

from ._trace import FlowTrace, RejectedStep, SwitchEvent
from ._integrators import INTEGRATORS, gradient_flow_step
from .flowadam import INJECTIONS, FlowAdam
from .registry import OPTIMIZER_NAMES, make_optimizer, needs_closure

__all__ = [
    "FlowAdam",
    "FlowTrace",
    "SwitchEvent",
    "RejectedStep",
    "INTEGRATORS",
    "INJECTIONS",
    "OPTIMIZER_NAMES",
    "gradient_flow_step",
    "make_optimizer",
    "needs_closure",
]
