"""Difficulty detection for FlowAdam: EMA statistics with hysteresis thresholds.

Each trigger smooths one per-step statistic with an exponential moving average
and keeps a ``flagged`` bit. The bit turns on when the average crosses the
trigger's ``enter`` threshold and turns off only when it crosses back past the
``exit`` threshold, so a statistic hovering near one threshold cannot flip it
on every step.
"""

import math

__all__ = ["TRIGGERS", "DEFAULT_THRESHOLDS", "DifficultyDetector"]

#: Trigger names mapped to the direction that means "hard": ``"above"`` flags
#: when the average rises above ``enter``, ``"below"`` when it falls below.
TRIGGERS = {
    "coupling": "above",
    "oscillation": "below",
    "stall": "below",
}

#: Default ``(enter, exit)`` thresholds of each trigger.
DEFAULT_THRESHOLDS = {
    "coupling": (0.1, 0.05),
    "oscillation": (0.0, 0.2),
    "stall": (1e-4, 1e-3),
}

# smoothing factors of the fast and slow loss averages behind "stall"
_FAST_LOSS_BETA = 0.5
_SLOW_LOSS_BETA = 0.95


class DifficultyDetector:
    """Smooth the per-step statistics and decide when the landscape is hard.

    Parameters
    ----------
    triggers : tuple of str
        Triggers that may start an ODE phase. Statistics of all triggers are
        tracked either way, so the trace and ``statistics`` show them.
    thresholds : dict
        ``{name: (enter, exit)}`` for every name in :data:`TRIGGERS`.
    beta : float
        Smoothing factor of the statistic averages, in [0, 1).
    """

    def __init__(self, triggers, thresholds, beta):
        self.triggers = tuple(triggers)
        self.thresholds = dict(thresholds)
        self.beta = beta
        self.averages = {name: None for name in TRIGGERS}
        self.flagged = {name: False for name in TRIGGERS}
        self.fast_loss = None
        self.slow_loss = None

    def update(self, statistics):
        """Fold one step's raw statistics into the averages and flags.

        ``statistics`` maps trigger names to float values; a missing or
        non-finite value leaves that trigger unchanged for this step.
        """
        for name, value in statistics.items():
            if value is None or not math.isfinite(value):
                continue
            previous = self.averages[name]
            average = value if previous is None else self.beta * previous + (1 - self.beta) * value
            self.averages[name] = average

            enter, exit_ = self.thresholds[name]
            if TRIGGERS[name] == "above":
                if average > enter:
                    self.flagged[name] = True
                elif average < exit_:
                    self.flagged[name] = False
            else:
                if average < enter:
                    self.flagged[name] = True
                elif average > exit_:
                    self.flagged[name] = False

    def loss_progress(self, loss):
        """Update the loss averages and return the relative progress.

        The progress is ``(slow - fast) / |slow|``: positive while the recent
        losses are below the long-run average. Returns None until both
        averages exist or when ``loss`` is not finite.
        """
        if loss is None or not math.isfinite(loss):
            return None
        if self.fast_loss is None:
            self.fast_loss = loss
            self.slow_loss = loss
            return None
        self.fast_loss = _FAST_LOSS_BETA * self.fast_loss + (1 - _FAST_LOSS_BETA) * loss
        self.slow_loss = _SLOW_LOSS_BETA * self.slow_loss + (1 - _SLOW_LOSS_BETA) * loss
        if self.slow_loss == 0:
            return None
        return (self.slow_loss - self.fast_loss) / abs(self.slow_loss)

    def hard_trigger(self):
        """Return the first enabled trigger whose flag is on, or None."""
        for name in self.triggers:
            if self.flagged[name]:
                return name
        return None

    def state_dict(self):
        """Return the averages, flags and loss averages as plain Python values."""
        return {
            "averages": dict(self.averages),
            "flagged": dict(self.flagged),
            "fast_loss": self.fast_loss,
            "slow_loss": self.slow_loss,
        }

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned."""
        self.averages = dict(state["averages"])
        self.flagged = dict(state["flagged"])
        self.fast_loss = state["fast_loss"]
        self.slow_loss = state["slow_loss"]
