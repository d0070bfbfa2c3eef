"""Build optimizers by name, class or factory for estimators and benchmarks."""

import inspect

import torch

from .flowadam import FlowAdam

__all__ = ["OPTIMIZER_NAMES", "make_optimizer", "needs_closure"]

#: Names accepted by :func:`make_optimizer`.
OPTIMIZER_NAMES = ("flowadam", "adam", "adamw", "sgd", "lion", "adabelief")

_BASELINES_HINT = 'pip install "flowrec[baselines]"'


def _pytorch_optimizer_class(name):
    try:
        import pytorch_optimizer
    except ImportError as error:
        raise ImportError(
            f"The {name!r} optimizer comes from the pytorch_optimizer package, "
            f"which is not installed; install it with: {_BASELINES_HINT}"
        ) from error
    return {"lion": pytorch_optimizer.Lion, "adabelief": pytorch_optimizer.AdaBelief}[name]


def _resolve_name(name):
    if name == "flowadam":
        return FlowAdam
    if name == "adam":
        return torch.optim.Adam
    if name == "adamw":
        return torch.optim.AdamW
    if name == "sgd":
        return torch.optim.SGD
    return _pytorch_optimizer_class(name)


def _check_options(factory, options, label, *, strict):
    """Raise TypeError naming each option that ``factory`` does not accept.

    With ``strict``, a ``**kwargs`` catch-all does not count as accepting a
    name: pytorch_optimizer's classes take ``**kwargs`` and ignore unknown
    keys, which would hide a misspelt option.
    """
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    parameters = signature.parameters.values()
    takes_any = any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters)
    if takes_any and not strict:
        return
    accepted = {
        parameter.name for parameter in parameters
        if parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    unknown = sorted(set(options) - accepted)
    if unknown:
        valid = sorted(accepted - {"self", "params", "lr"})
        raise TypeError(
            f"Invalid option(s) {unknown} for optimizer {label}; "
            f"valid options are {valid}."
        )


def make_optimizer(spec, params, *, lr, **options):
    """Build an optimizer from a name, an Optimizer class or a factory.

    Parameters
    ----------
    spec : str, type or callable
        One of :data:`OPTIMIZER_NAMES` (case-insensitive), a
        ``torch.optim.Optimizer`` subclass, or a callable
        ``factory(params, lr=lr, **options)`` that returns an optimizer.
        ``"lion"`` and ``"adabelief"`` come from the ``pytorch_optimizer``
        package, imported on first use.
    params : iterable
        Parameters or parameter groups to optimize.
    lr : float
        Learning rate.
    **options
        Further keyword arguments of the optimizer, such as ``weight_decay``.
        ``options`` is not modified.

    Returns
    -------
    torch.optim.Optimizer

    Raises
    ------
    ValueError
        ``spec`` is a string that is not a known name, or an option has an
        invalid value (raised by the optimizer).
    TypeError
        ``spec`` has an unsupported type, an option is not accepted by the
        optimizer, or a factory returned something that is not an optimizer.
    ImportError
        ``"lion"`` or ``"adabelief"`` was requested and ``pytorch_optimizer``
        is not installed.

    Examples
    --------
    >>> import torch
    >>> from flowrec.optim import make_optimizer
    >>> weight = torch.nn.Parameter(torch.zeros(2))
    >>> type(make_optimizer("adamw", [weight], lr=1e-2, weight_decay=0.1)).__name__
    'AdamW'
    """
    options = dict(options)
    if isinstance(spec, str):
        name = spec.lower()
        if name not in OPTIMIZER_NAMES:
            raise ValueError(
                f"Unknown optimizer name {spec!r}; use one of {list(OPTIMIZER_NAMES)}, "
                "a torch.optim.Optimizer subclass or a factory callable."
            )
        factory = _resolve_name(name)
        label = repr(name)
    elif isinstance(spec, type):
        if not issubclass(spec, torch.optim.Optimizer):
            raise TypeError(
                f"Invalid optimizer class {spec.__name__}: it is not a "
                "torch.optim.Optimizer subclass."
            )
        factory = spec
        label = spec.__name__
    elif callable(spec):
        factory = spec
        label = getattr(spec, "__name__", repr(spec))
    else:
        raise TypeError(
            f"Invalid optimizer spec of type {type(spec).__name__}; use a name from "
            f"{list(OPTIMIZER_NAMES)}, a torch.optim.Optimizer subclass or a callable."
        )

    _check_options(factory, options, label, strict=isinstance(spec, str))
    optimizer = factory(params, lr=lr, **options)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"The optimizer factory {label} returned {type(optimizer).__name__}, "
            "not a torch.optim.Optimizer."
        )
    return optimizer


def needs_closure(optimizer):
    """Return whether ``optimizer.step`` must be given a closure.

    FlowAdam requires one, because its ODE steps re-evaluate gradients. The
    torch and pytorch_optimizer optimizers accept a closure but do not require
    it. Passing a closure works with every optimizer that
    :func:`make_optimizer` builds.
    """
    return isinstance(optimizer, FlowAdam)
