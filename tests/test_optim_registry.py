"""Tests of the optimizer registry: names, classes, factories and errors."""

import builtins
import functools

import pytest
import torch

from flowrec.optim import OPTIMIZER_NAMES, FlowAdam, make_optimizer, needs_closure

EXPECTED_CLASSES = {
    "flowadam": "FlowAdam",
    "adam": "Adam",
    "adamw": "AdamW",
    "sgd": "SGD",
    "lion": "Lion",
    "adabelief": "AdaBelief",
}


def make_weight():
    return torch.nn.Parameter(torch.tensor([1.0, -2.0]))


def quadratic_closure(optimizer, weight):
    def closure():
        optimizer.zero_grad()
        weight.grad = 2 * weight.detach()
        return torch.tensor(float(weight.detach().pow(2).sum()))

    return closure


def test_optimizer_names_cover_registry():
    assert set(OPTIMIZER_NAMES) == set(EXPECTED_CLASSES)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_every_name_builds_and_steps_with_closure(name):
    weight = make_weight()
    optimizer = make_optimizer(name, [weight], lr=1e-2)
    assert type(optimizer).__name__ == EXPECTED_CLASSES[name]
    assert optimizer.param_groups[0]["lr"] == 1e-2
    loss = optimizer.step(quadratic_closure(optimizer, weight))
    assert float(loss) == pytest.approx(5.0)
    assert float(weight.detach().pow(2).sum()) < 5.0


def test_names_are_case_insensitive():
    assert isinstance(make_optimizer("FlowAdam", [make_weight()], lr=1e-3), FlowAdam)


def test_options_are_passed_and_not_mutated():
    options = {"weight_decay": 0.1, "betas": (0.8, 0.9)}
    optimizer = make_optimizer("adamw", [make_weight()], lr=1e-3, **options)
    assert optimizer.param_groups[0]["weight_decay"] == 0.1
    assert optimizer.param_groups[0]["betas"] == (0.8, 0.9)
    assert options == {"weight_decay": 0.1, "betas": (0.8, 0.9)}


def test_flowadam_options_are_passed():
    optimizer = make_optimizer("flowadam", [make_weight()], lr=1e-3, integrator="rk4", warmup=7)
    assert optimizer.integrator == "rk4"
    assert optimizer.warmup == 7


def test_optimizer_class_spec():
    optimizer = make_optimizer(torch.optim.RMSprop, [make_weight()], lr=1e-3, alpha=0.9)
    assert isinstance(optimizer, torch.optim.RMSprop)
    assert optimizer.param_groups[0]["alpha"] == 0.9


def test_factory_spec():
    factory = functools.partial(torch.optim.SGD, momentum=0.5)
    optimizer = make_optimizer(factory, [make_weight()], lr=0.1)
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["momentum"] == 0.5


def test_factory_with_kwargs_gets_options():
    received = {}

    def factory(params, lr, **options):
        received.update(options)
        return torch.optim.SGD(params, lr=lr)

    make_optimizer(factory, [make_weight()], lr=0.1, custom=3)
    assert received == {"custom": 3}


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown optimizer name 'adagrad'; use one of \['flowadam'"):
        make_optimizer("adagrad", [make_weight()], lr=1e-3)


@pytest.mark.parametrize("name", ["adam", "flowadam", "lion"])
def test_unknown_option_names_the_option(name):
    with pytest.raises(TypeError, match=r"Invalid option\(s\) \['momentun'\] for optimizer"):
        make_optimizer(name, [make_weight()], lr=1e-3, momentun=0.9)


def test_invalid_option_value_names_the_value():
    with pytest.raises(ValueError, match="Invalid learning rate: -1.0"):
        make_optimizer("flowadam", [make_weight()], lr=-1.0)
    with pytest.raises(ValueError, match="Invalid weight_decay value: -0.5"):
        make_optimizer("adam", [make_weight()], lr=1e-3, weight_decay=-0.5)


def test_non_optimizer_class_raises():
    with pytest.raises(TypeError, match="Invalid optimizer class Linear"):
        make_optimizer(torch.nn.Linear, [make_weight()], lr=1e-3)


def test_invalid_spec_type_raises():
    with pytest.raises(TypeError, match="Invalid optimizer spec of type int"):
        make_optimizer(3, [make_weight()], lr=1e-3)


def test_factory_returning_non_optimizer_raises():
    def factory(params, lr):
        return object()

    with pytest.raises(TypeError, match="returned object, not a torch.optim.Optimizer"):
        make_optimizer(factory, [make_weight()], lr=1e-3)


@pytest.mark.parametrize("name", ["lion", "adabelief"])
def test_missing_pytorch_optimizer_raises_import_error(name, monkeypatch):
    real_import = builtins.__import__

    def fake_import(module, *args, **kwargs):
        if module == "pytorch_optimizer":
            raise ImportError("No module named 'pytorch_optimizer'")
        return real_import(module, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r'pip install "flowrec\[baselines\]"'):
        make_optimizer(name, [make_weight()], lr=1e-3)


def test_needs_closure():
    weight = make_weight()
    assert needs_closure(make_optimizer("flowadam", [weight], lr=1e-3))
    for name in ("adam", "adamw", "sgd", "lion", "adabelief"):
        assert not needs_closure(make_optimizer(name, [weight], lr=1e-3))
