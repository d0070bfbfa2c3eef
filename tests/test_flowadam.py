"""Tests of FlowAdam: Adam equivalence, detection, ODE steps, injection, state."""

import ast
import copy
import inspect
import io
import math
import re

import pytest
import torch

from flowrec.optim import FlowAdam, FlowTrace, SwitchEvent, gradient_flow_step
from flowrec.optim._detection import DifficultyDetector


# problems with known behaviour


def make_quadratic_closure(params, matrices, optimizer_ref):
    """Closure of sum_i 0.5 * p_i^T A_i p_i that sets .grad by hand."""

    def closure():
        optimizer_ref[0].zero_grad()
        loss = 0.0
        for param, matrix in zip(params, matrices):
            grad = matrix @ param.detach()
            param.grad = grad
            loss = loss + 0.5 * float(param.detach() @ grad)
        return torch.tensor(loss)

    return closure


def low_rank_problem(seed=0, n=30, rank=2, density=0.5, dtype=torch.float64, device="cpu"):
    """Return parameters and a backward()-based closure factory for noisy completion."""
    generator = torch.Generator().manual_seed(seed)
    left = torch.randn(n, rank, generator=generator, dtype=dtype)
    right = torch.randn(n, rank, generator=generator, dtype=dtype)
    target = left @ right.T / math.sqrt(rank) + 0.1 * torch.randn(n, n, generator=generator, dtype=dtype)
    mask = (torch.rand(n, n, generator=generator) < density).to(dtype)
    u = (0.01 * torch.randn(n, 8, generator=generator, dtype=dtype)).to(device).requires_grad_()
    v = (0.01 * torch.randn(n, 8, generator=generator, dtype=dtype)).to(device).requires_grad_()
    target = target.to(device)
    mask = mask.to(device)
    n_observed = mask.sum()

    def make_closure(optimizer_ref):
        def closure():
            optimizer_ref[0].zero_grad()
            residual = (u @ v.T - target) * mask
            loss = 0.5 * residual.pow(2).sum() / n_observed
            loss.backward()
            return loss

        return closure

    return [u, v], make_closure


def run_low_rank(n_steps=150, seed=0, **options):
    params, make_closure = low_rank_problem(seed=seed)
    ref = [None]
    options.setdefault("lr", 1e-2)
    options.setdefault("warmup", 20)
    options.setdefault("cooldown", 20)
    options.setdefault("ode_steps", 10)
    optimizer = FlowAdam(params, **options)
    ref[0] = optimizer
    closure = make_closure(ref)
    for _ in range(n_steps):
        optimizer.step(closure)
    return params, optimizer


# Adam mode


def make_groups(dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    weights = [torch.randn(5, 3, generator=generator, dtype=dtype),
               torch.randn(3, generator=generator, dtype=dtype),
               torch.randn(4, generator=generator, dtype=dtype)]
    return [weight.requires_grad_() for weight in weights]


def mlp_loss(weights, data):
    first, second, third = weights
    hidden = torch.tanh(data @ first + second)
    return (hidden.sum(dim=1) * third.sum()).pow(2).mean() + (first ** 2).sum() * 0.01


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_mode_matches_torch_adam(dtype, decoupled):
    data = torch.randn(16, 5, generator=torch.Generator().manual_seed(3), dtype=dtype)
    ours = make_groups(dtype)
    theirs = [weight.detach().clone().requires_grad_() for weight in ours]

    def groups(weights):
        return [
            {"params": weights[:2], "lr": 1e-2, "weight_decay": 0.1},
            {"params": weights[2:], "lr": 3e-3, "betas": (0.8, 0.99), "weight_decay": 0.0},
        ]

    flow = FlowAdam(groups(ours), lr=1e-3, weight_decay=0.05, switching=False,
                    decoupled_weight_decay=decoupled)
    adam = torch.optim.Adam(groups(theirs), lr=1e-3, weight_decay=0.05,
                            decoupled_weight_decay=decoupled)

    def closure_for(optimizer, weights):
        def closure():
            optimizer.zero_grad()
            loss = mlp_loss(weights, data)
            loss.backward()
            return loss
        return closure

    for _ in range(40):
        loss_ours = flow.step(closure_for(flow, ours))
        loss_theirs = adam.step(closure_for(adam, theirs))
        torch.testing.assert_close(loss_ours, loss_theirs)
    for mine, reference in zip(ours, theirs):
        torch.testing.assert_close(mine, reference)
    assert flow.trace.modes == ["adam"] * 40


def test_adam_mode_matches_before_first_switch():
    params, make_closure = low_rank_problem()
    reference = [param.detach().clone().requires_grad_() for param in params]
    target, mask = problem_data()
    flow_ref = [None]
    flow_ref[0] = FlowAdam(params, lr=1e-2, warmup=20)
    flow_closure = make_closure(flow_ref)
    adam = torch.optim.Adam(reference, lr=1e-2)

    def adam_closure():
        adam.zero_grad()
        left, right = reference
        residual = (left @ right.T - target) * mask
        loss = 0.5 * residual.pow(2).sum() / mask.sum()
        loss.backward()
        return loss

    for _ in range(20):
        flow_ref[0].step(flow_closure)
        adam.step(adam_closure)
    assert flow_ref[0].trace.modes == ["adam"] * 20
    for mine, theirs in zip(params, reference):
        torch.testing.assert_close(mine, theirs)


def problem_data(seed=0, n=30, rank=2, density=0.5, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    left = torch.randn(n, rank, generator=generator, dtype=dtype)
    right = torch.randn(n, rank, generator=generator, dtype=dtype)
    target = left @ right.T / math.sqrt(rank) + 0.1 * torch.randn(n, n, generator=generator, dtype=dtype)
    mask = (torch.rand(n, n, generator=generator) < density).to(dtype)
    return target, mask


# detection and switching


def test_isotropic_quadratic_stays_in_adam_mode():
    weight = torch.randn(50, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    weight.requires_grad_()
    ref = [None]
    ref[0] = FlowAdam([weight], lr=1e-2, warmup=5, cooldown=5)
    closure = make_quadratic_closure([weight], [torch.eye(50, dtype=torch.float64)], ref)
    for _ in range(600):
        ref[0].step(closure)
    assert ref[0].trace.modes == ["adam"] * 600
    assert ref[0].trace.events == []
    assert ref[0].statistics["coupling"] == 0.0


def test_diagonal_quadratic_stays_in_adam_mode():
    scales = torch.logspace(0, 3, 20, dtype=torch.float64)
    weight = torch.randn(20, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    weight.requires_grad_()
    ref = [None]
    ref[0] = FlowAdam([weight], lr=1e-2, warmup=5, cooldown=5)
    closure = make_quadratic_closure([weight], [torch.diag(scales)], ref)
    for _ in range(400):
        ref[0].step(closure)
    assert set(ref[0].trace.modes) == {"adam"}


def test_low_rank_factorization_switches_to_ode():
    _, optimizer = run_low_rank(n_steps=40)
    trace = optimizer.trace
    assert "ode" in trace.modes
    first = trace.events[0]
    assert first.from_mode == "adam"
    assert first.to_mode == "ode"
    assert first.trigger == "coupling"
    assert first.value > first.threshold
    assert first.step >= 20 - 1
    back = trace.events[1]
    assert back.to_mode == "adam"
    assert back.trigger == "horizon"
    assert trace.modes[first.step + 1:back.step + 1] == ["ode"] * 10


def test_phases_respect_warmup_and_cooldown():
    _, optimizer = run_low_rank(n_steps=130, thresholds={"coupling": (-1.0, -1.0)},
                                warmup=10, cooldown=10, ode_steps=5)
    modes = optimizer.trace.modes
    runs = []
    current, length = modes[0], 0
    for mode in modes:
        if mode == current:
            length += 1
        else:
            runs.append((current, length))
            current, length = mode, 1
    runs.append((current, length))
    assert runs[0] == ("adam", 10)
    for mode, length in runs[1:-1]:
        assert length == (5 if mode == "ode" else 10)
    assert len(optimizer.trace.events) >= 8


def test_trace_counts_every_closure_call():
    params, make_closure = low_rank_problem()
    ref = [None]
    ref[0] = FlowAdam(params, lr=1e-2, warmup=20, cooldown=20, ode_steps=5, integrator="rk4")
    inner = make_closure(ref)
    calls = [0]

    def counting_closure():
        calls[0] += 1
        return inner()

    for _ in range(60):
        ref[0].step(counting_closure)
    trace = ref[0].trace
    assert "ode" in trace.modes
    assert trace.total_grad_evals == calls[0]
    assert len(trace) == 60
    # rk4: 3 stages after the first, plus the acceptance test, plus the start
    # evaluation on the first step of a phase
    previous_mode = "adam"
    for mode, evals in zip(trace.modes, trace.grad_evals):
        if mode == "adam":
            assert evals == 1
        elif previous_mode == "adam":
            assert evals == 5
        else:
            assert evals == 4
        previous_mode = mode
    assert "FlowTrace(steps=60" in repr(trace)


def test_trace_counts_closure_calls_without_step_control():
    params, make_closure = low_rank_problem()
    ref = [None]
    ref[0] = FlowAdam(params, lr=1e-2, warmup=20, cooldown=20, ode_steps=5, integrator="heun",
                      ode_step_control=False)
    inner = make_closure(ref)
    calls = [0]

    def counting_closure():
        calls[0] += 1
        return inner()

    for _ in range(60):
        ref[0].step(counting_closure)
    trace = ref[0].trace
    assert "ode" in trace.modes
    assert trace.total_grad_evals == calls[0]
    for mode, evals in zip(trace.modes, trace.grad_evals):
        assert evals == (2 if mode == "ode" else 1)
    assert trace.rejections == []


def test_switching_is_deterministic():
    first_params, first = run_low_rank(n_steps=50, ode_steps=5)
    second_params, second = run_low_rank(n_steps=50, ode_steps=5)
    assert first.trace.state_dict() == second.trace.state_dict()
    for a, b in zip(first_params, second_params):
        assert torch.equal(a, b)


def test_detector_hysteresis():
    detector = DifficultyDetector(("coupling",), {"coupling": (0.5, 0.2), "oscillation": (0.0, 0.2),
                                                  "stall": (1e-4, 1e-3)}, beta=0.0)
    flags = []
    for value in [0.1, 0.6, 0.4, 0.3, 0.21, 0.19, 0.4, 0.51]:
        detector.update({"coupling": value})
        flags.append(detector.flagged["coupling"])
    assert flags == [False, True, True, True, True, False, False, True]


def test_detector_low_direction_triggers():
    detector = DifficultyDetector(("oscillation",), {"coupling": (0.3, 0.2), "oscillation": (0.0, 0.2),
                                                     "stall": (1e-4, 1e-3)}, beta=0.0)
    detector.update({"oscillation": -0.1})
    assert detector.hard_trigger() == "oscillation"
    detector.update({"oscillation": 0.1})
    assert detector.hard_trigger() == "oscillation"
    detector.update({"oscillation": 0.3})
    assert detector.hard_trigger() is None
    detector.update({"oscillation": math.nan})
    assert detector.averages["oscillation"] == 0.3


def test_stall_trigger_fires_on_flat_loss():
    weight = torch.zeros(3, requires_grad=True)
    ref = [None]
    ref[0] = FlowAdam([weight], lr=1e-3, triggers=("stall",), warmup=5, cooldown=5, ode_steps=2,
                      ode_dt=0.1)

    def closure():
        ref[0].zero_grad()
        weight.grad = torch.tensor([1.0, 0.0, 0.0])
        return torch.tensor(1.0)

    for _ in range(12):
        ref[0].step(closure)
    assert ref[0].trace.events[0].trigger == "stall"
    assert ref[0].trace.events[0].step == 4


# injection


def test_injection_modes_give_different_trajectories():
    results = {}
    for injection in ("soft", "hard", "none"):
        params, optimizer = run_low_rank(n_steps=35, injection=injection, ode_steps=5)
        results[injection] = torch.cat([param.detach().flatten() for param in params])
        assert optimizer.trace.events[1].trigger == "horizon"
    assert not torch.equal(results["soft"], results["hard"])
    assert not torch.equal(results["soft"], results["none"])
    assert not torch.equal(results["hard"], results["none"])


@pytest.mark.parametrize("injection", ["soft", "hard", "none"])
def test_injection_sets_first_moment(injection):
    params, make_closure = low_rank_problem()
    ref = [None]
    ref[0] = FlowAdam(params, lr=1e-2, warmup=20, ode_steps=10, ode_dt=0.5, injection=injection,
                      injection_weight=0.25)
    closure = make_closure(ref)
    optimizer = ref[0]
    while optimizer.mode == "adam":
        optimizer.step(closure)
    start = [param.detach().clone() for param in params]
    moments = [optimizer.state[param]["exp_avg"].clone() for param in params]
    while optimizer.mode == "ode":
        optimizer.step(closure)
    elapsed = optimizer.trace.events[-1].value
    assert elapsed == pytest.approx(5.0)
    targets = [(origin - param.detach()) / elapsed for origin, param in zip(start, params)]

    for param, moment, target in zip(params, moments, targets):
        state = optimizer.state[param]
        if injection == "hard":
            torch.testing.assert_close(state["exp_avg"], target)
        else:
            torch.testing.assert_close(state["exp_avg"], moment)
        if injection == "soft":
            torch.testing.assert_close(state["injection_target"], target)
        else:
            assert "injection_target" not in state

    # the next Adam step blends before the usual moment update
    optimizer.step(closure)
    beta1 = 0.9
    for param, moment, target in zip(params, moments, targets):
        grad = param.grad
        blended = {"soft": moment + 0.25 * (target - moment), "hard": target, "none": moment}[injection]
        expected = blended + (1 - beta1) * (grad - blended)
        torch.testing.assert_close(optimizer.state[param]["exp_avg"], expected)
        assert "injection_target" not in optimizer.state[param]


def test_injection_ramp_spreads_blend():
    params, make_closure = low_rank_problem()
    ref = [None]
    ref[0] = FlowAdam(params, lr=1e-2, warmup=20, ode_steps=5, ode_dt=0.5, injection_ramp=3)
    closure = make_closure(ref)
    optimizer = ref[0]
    while optimizer.mode == "adam":
        optimizer.step(closure)
    while optimizer.mode == "ode":
        optimizer.step(closure)
    target = optimizer.state[params[0]]["injection_target"].clone()
    for ramp_step in range(3):
        assert "injection_target" in optimizer.state[params[0]]
        moment = optimizer.state[params[0]]["exp_avg"].clone()
        optimizer.step(closure)
        blended = moment + (0.5 / 3) * (target - moment)
        expected = blended + 0.1 * (params[0].grad - blended)
        torch.testing.assert_close(optimizer.state[params[0]]["exp_avg"], expected)
    assert "injection_target" not in optimizer.state[params[0]]


# ODE steps


def linear_flow(method, n_steps, horizon=1.0):
    matrix = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    theta = torch.tensor([1.0, -1.0], dtype=torch.float64, requires_grad=True)

    def closure():
        theta.grad = matrix @ theta.detach()
        return 0.5 * float(theta.detach() @ theta.grad)

    evals = 0
    for _ in range(n_steps):
        _, n_evals, clipped = gradient_flow_step([theta], closure, horizon / n_steps, method=method)
        evals += n_evals
        assert not clipped
    exact = torch.linalg.matrix_exp(-horizon * matrix) @ torch.tensor([1.0, -1.0], dtype=torch.float64)
    return float((theta.detach() - exact).norm()), evals


@pytest.mark.parametrize("method, order, stages", [("euler", 1, 1), ("heun", 2, 2), ("rk4", 4, 4)])
def test_integrator_order_of_accuracy(method, order, stages):
    coarse, coarse_evals = linear_flow(method, 16)
    fine, fine_evals = linear_flow(method, 32)
    ratio = coarse / fine
    assert ratio == pytest.approx(2**order, rel=0.15)
    assert coarse_evals == 16 * stages
    assert fine_evals == 32 * stages


def test_integrator_includes_weight_decay():
    theta = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)

    def closure():
        theta.grad = torch.zeros(2, dtype=torch.float64)
        return 0.0

    for _ in range(100):
        gradient_flow_step([theta], closure, 0.01, method="rk4", weight_decays=[0.5])
    expected = torch.tensor([1.0, 2.0], dtype=torch.float64) * math.exp(-0.5)
    torch.testing.assert_close(theta.detach(), expected)


def test_integrator_clips_displacement():
    theta = torch.tensor([3.0, 4.0], requires_grad=True)

    def closure():
        theta.grad = torch.tensor([100.0, -50.0])
        return 0.0

    before = theta.detach().clone()
    _, _, clipped = gradient_flow_step([theta], closure, 10.0, clip=0.05)
    assert clipped
    assert float((theta.detach() - before).norm()) == pytest.approx(0.05 * 5.0, rel=1e-5)


def test_integrator_clip_floor_moves_zero_parameters():
    theta = torch.zeros(4, requires_grad=True)

    def closure():
        theta.grad = torch.ones(4)
        return 0.0

    gradient_flow_step([theta], closure, 1.0, clip=0.1, clip_floor=1e-3)
    assert float(theta.detach().norm()) == pytest.approx(1e-4, rel=1e-4)


def test_integrator_rejects_unknown_method():
    theta = torch.zeros(1, requires_grad=True)
    with pytest.raises(ValueError, match="Invalid integrator 'midpoint'"):
        gradient_flow_step([theta], lambda: 0.0, 0.1, method="midpoint")


def test_ode_steps_respect_clip_bound():
    params, make_closure = low_rank_problem()
    ref = [None]
    ref[0] = FlowAdam(params, lr=1e-2, warmup=20, ode_steps=30, ode_dt=1e4, ode_clip=0.02)
    closure = make_closure(ref)
    optimizer = ref[0]
    ode_moves = 0
    for _ in range(80):
        before = torch.cat([param.detach().flatten().clone() for param in params])
        mode = optimizer.mode
        optimizer.step(closure)
        after = torch.cat([param.detach().flatten() for param in params])
        if mode == "ode":
            ode_moves += 1
            bound = 0.02 * max(float(before.norm()), 1e-3)
            assert float((after - before).norm()) <= bound * (1 + 1e-9)
    assert ode_moves == 30


def test_auto_step_size_adapts_to_curvature():
    params, make_closure = low_rank_problem()
    ref = [None]
    ref[0] = FlowAdam(params, lr=1e-2, warmup=20, ode_steps=20, ode_clip=None, ode_dt="auto",
                      ode_dt_scale=0.5)
    closure = make_closure(ref)
    optimizer = ref[0]
    losses = []
    for _ in range(60):
        mode = optimizer.mode
        loss = float(optimizer.step(closure).detach())
        if mode == "ode":
            losses.append(loss)
    assert len(losses) == 20
    assert all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < losses[1]


def flat(tensors):
    return torch.cat([tensor.detach().flatten().clone() for tensor in tensors])


def test_match_step_size_uses_recent_adam_step():
    params, make_closure = low_rank_problem()
    ref = [None]
    ref[0] = FlowAdam(params, lr=1e-2, warmup=20, ode_steps=5, ode_clip=None, ode_step_control=False)
    closure = make_closure(ref)
    optimizer = ref[0]
    displacements = []
    while optimizer.mode == "adam":
        before = flat(params)
        optimizer.step(closure)
        displacements.append(flat(params) - before)
        last_grad = flat(param.grad for param in params)
    start = flat(params)
    optimizer.step(closure)
    ode_grad = flat(param.grad for param in params)
    first_ode_move = flat(params) - start

    # dt = ||displacement into the last Adam point|| / ||gradient there||
    dt = float(displacements[-2].norm()) / float(last_grad.norm())
    torch.testing.assert_close(first_ode_move, -dt * ode_grad)


# step-size control of ODE phases


def stiff_quadratic(seed=0, n=10):
    """Return (Hessian, its largest eigenvalue, start point) of a rotated quadratic.

    The eigenvalues run from 1 to 100, so explicit Euler is stable only for
    dt < 2 / 100.
    """
    generator = torch.Generator().manual_seed(seed)
    rotation, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    eigenvalues = torch.logspace(0, 2, n, dtype=torch.float64)
    hessian = rotation @ torch.diag(eigenvalues) @ rotation.T
    start = torch.randn(n, generator=generator, dtype=torch.float64)
    return hessian, float(eigenvalues.max()), start


def stiff_quadratic_optimizer(dtype=torch.float64, **options):
    """Return (weight, optimizer, closure, lambda_max) with an ODE phase at steps 30-69.

    ``ode_dt_scale=10`` makes the matched step size about 0.039, twice the
    Euler stability limit 0.02, and the clip is off so nothing bounds the
    sub-steps but the step-size control.
    """
    hessian, lambda_max, start = stiff_quadratic()
    hessian = hessian.to(dtype)
    weight = start.to(dtype).requires_grad_()
    settings = {"lr": 0.05, "warmup": 30, "ode_steps": 40, "thresholds": {"coupling": (-1.0, -1.0)},
                "ode_dt_scale": 10.0, "ode_clip": None}
    settings.update(options)
    optimizer = FlowAdam([weight], **settings)

    def closure():
        optimizer.zero_grad()
        weight.grad = hessian @ weight.detach()
        return 0.5 * (weight.detach() @ weight.grad)

    return weight, optimizer, closure, lambda_max


def ode_phase(trace):
    """Return the step indices of the first ODE phase."""
    return [index for index, mode in enumerate(trace.modes) if mode == "ode"]


def test_step_control_keeps_phase_loss_non_increasing():
    _, optimizer, closure, lambda_max = stiff_quadratic_optimizer()
    for _ in range(71):
        optimizer.step(closure)
    trace = optimizer.trace
    phase = ode_phase(trace)
    assert phase == list(range(30, 70))

    # the matched step size is above the stability limit 2 / lambda_max
    assert trace.rejections[0].step == 31
    assert trace.rejections[0].dt > 2 / lambda_max

    # every ODE step starts at an accepted point, so its recorded loss never rises
    losses = [trace.losses[index] for index in phase] + [trace.losses[70]]
    for before, after in zip(losses, losses[1:]):
        assert after <= before * (1 + 1e-6)
    assert losses[-1] < 0.1 * losses[0]
    assert len(trace.rejections) >= 3
    for rejection in trace.rejections:
        assert rejection.loss > rejection.accepted_loss
        assert rejection.accepted_loss == trace.losses[rejection.step]


def test_without_step_control_loss_rises():
    _, optimizer, closure, lambda_max = stiff_quadratic_optimizer(ode_step_control=False)
    for _ in range(71):
        optimizer.step(closure)
    trace = optimizer.trace
    phase = ode_phase(trace)
    dt = trace.events[1].value / 40
    assert dt > 2 / lambda_max
    losses = [trace.losses[index] for index in phase] + [trace.losses[70]]
    rises = sum(after > before for before, after in zip(losses, losses[1:]))
    assert rises >= 30
    assert losses[-1] > losses[0]
    assert trace.rejections == []


def test_rejected_sub_step_restores_parameters():
    weight, optimizer, closure, _ = stiff_quadratic_optimizer()
    for _ in range(31):
        optimizer.step(closure)
    before = weight.detach().clone()
    evals = optimizer.trace.total_grad_evals
    optimizer.step(closure)
    assert [rejection.step for rejection in optimizer.trace.rejections] == [31]
    assert torch.equal(weight.detach(), before)
    assert optimizer.trace.total_grad_evals == evals + 1

    # the retry reuses the cached loss and gradient: one closure call, at the new point
    optimizer.step(closure)
    assert optimizer.trace.losses[32] == optimizer.trace.losses[31]
    assert optimizer.trace.grad_evals[32] == 1
    assert not torch.equal(weight.detach(), before)


def test_step_size_rule_and_accepted_flow_time():
    _, optimizer, closure, _ = stiff_quadratic_optimizer(injection="hard")
    for _ in range(30):
        optimizer.step(closure)
    start = optimizer.param_groups[0]["params"][0].detach().clone()
    for _ in range(40):
        optimizer.step(closure)
    trace = optimizer.trace
    end = optimizer.param_groups[0]["params"][0].detach().clone()

    # replay the rule: x0.5 after a rejection, x1.2 after an acceptance, capped at the first dt
    first_dt = trace.rejections[0].dt
    rejected = {rejection.step: rejection.dt for rejection in trace.rejections}
    dt, elapsed = first_dt, 0.0
    for index in range(30, 70):
        if index in rejected:
            assert rejected[index] == pytest.approx(dt, rel=1e-12)
            dt *= 0.5
        else:
            elapsed += dt
            dt = min(1.2 * dt, first_dt)
    assert trace.events[1].trigger == "horizon"
    assert trace.events[1].value == pytest.approx(elapsed, rel=1e-12)

    # the injected velocity covers accepted sub-steps only
    target = (start - end) / trace.events[1].value
    torch.testing.assert_close(optimizer.state[optimizer.param_groups[0]["params"][0]]["exp_avg"], target)


def test_last_sub_step_of_phase_is_checked():
    weight, optimizer, closure, _ = stiff_quadratic_optimizer(ode_steps=2)
    for _ in range(31):
        optimizer.step(closure)
    before = weight.detach().clone()
    # the second and last ODE step: its sub-step is rejected and undone before Adam resumes
    optimizer.step(closure)
    assert optimizer.mode == "adam"
    assert [rejection.step for rejection in optimizer.trace.rejections] == [31]
    assert optimizer.trace.grad_evals[30:32] == [2, 1]
    assert torch.equal(weight.detach(), before)
    optimizer.step(closure)
    assert optimizer.trace.losses[32] == optimizer.trace.losses[31]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_state_dict_round_trip_after_rejection(dtype):
    straight_weight, straight, straight_closure, _ = stiff_quadratic_optimizer(dtype=dtype)
    for _ in range(60):
        straight.step(straight_closure)
    rejected_steps = [rejection.step for rejection in straight.trace.rejections]
    split = rejected_steps[1] + 1
    assert 30 < split < 60

    first_weight, first, first_closure, _ = stiff_quadratic_optimizer(dtype=dtype)
    for _ in range(split):
        first.step(first_closure)
    # the last step was rejected: the next one retries from the cached gradient
    assert first.trace.rejections[-1].step == split - 1
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    saved_weight = first_weight.detach().clone()

    resumed_weight, resumed, resumed_closure, _ = stiff_quadratic_optimizer(dtype=dtype)
    with torch.no_grad():
        resumed_weight.copy_(saved_weight)
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer, weights_only=False))
    for _ in range(60 - split):
        resumed.step(resumed_closure)

    assert resumed.trace.state_dict() == straight.trace.state_dict()
    assert resumed_weight.dtype == dtype
    assert torch.equal(resumed_weight, straight_weight)


# closure, gradients and inputs


def test_step_without_closure_raises():
    weight = torch.zeros(2, requires_grad=True)
    optimizer = FlowAdam([weight])
    with pytest.raises(ValueError, match="requires a closure"):
        optimizer.step()


def test_parameters_without_grad_are_skipped():
    used = torch.ones(2, requires_grad=True)
    unused = torch.ones(2, requires_grad=True)
    ref = [None]
    ref[0] = FlowAdam([used, unused], lr=0.1, switching=False)

    def closure():
        ref[0].zero_grad()
        loss = used.pow(2).sum()
        loss.backward()
        return loss

    ref[0].step(closure)
    assert torch.equal(unused.detach(), torch.ones(2))
    assert len(ref[0].state[unused]) == 0
    assert not torch.equal(used.detach(), torch.ones(2))


def test_ode_phase_skips_parameters_without_grad():
    params, make_closure = low_rank_problem()
    unused = torch.ones(3, dtype=torch.float64, requires_grad=True)
    ref = [None]
    ref[0] = FlowAdam([{"params": params}, {"params": [unused], "weight_decay": 0.1}],
                      lr=1e-2, warmup=20, ode_steps=5)
    closure = make_closure(ref)
    for _ in range(30):
        ref[0].step(closure)
    assert "ode" in ref[0].trace.modes
    assert torch.equal(unused.detach(), torch.ones(3, dtype=torch.float64))
    assert len(ref[0].state[unused]) == 0


def test_works_with_lr_scheduler():
    weight = torch.ones(3, requires_grad=True)
    ref = [None]
    ref[0] = FlowAdam([weight], lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(ref[0], step_size=2, gamma=0.5)

    def closure():
        ref[0].zero_grad()
        loss = weight.pow(2).sum()
        loss.backward()
        return loss

    for _ in range(4):
        ref[0].step(closure)
        scheduler.step()
    assert ref[0].param_groups[0]["lr"] == pytest.approx(0.025)
    assert len(ref[0].trace) == 4


def test_sparse_gradient_raises():
    embedding = torch.nn.Embedding(5, 2, sparse=True)
    ref = [None]
    ref[0] = FlowAdam(embedding.parameters())

    def closure():
        ref[0].zero_grad()
        loss = embedding(torch.tensor([1, 2])).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="does not support sparse gradients"):
        ref[0].step(closure)


def test_closure_returning_none_is_recorded_as_nan():
    weight = torch.ones(2, requires_grad=True)
    ref = [None]
    ref[0] = FlowAdam([weight], lr=0.1)

    def closure():
        weight.grad = torch.ones(2)

    assert ref[0].step(closure) is None
    assert math.isnan(ref[0].trace.losses[0])


@pytest.mark.parametrize("options, message", [
    ({"lr": -1.0}, r"Invalid learning rate: -1\.0\. Use a float >= 0"),
    ({"eps": -1e-8}, r"Invalid eps: -1e-08"),
    ({"betas": (1.0, 0.999)}, r"Invalid beta parameter at index 0: 1\.0"),
    ({"betas": (0.9, -0.1)}, r"Invalid beta parameter at index 1: -0\.1"),
    ({"betas": 0.9}, r"Invalid betas: 0\.9"),
    ({"weight_decay": -0.1}, r"Invalid weight_decay value: -0\.1"),
    ({"triggers": ("curvature",)}, r"Invalid triggers: \('curvature',\)"),
    ({"triggers": "coupling"}, r"Invalid triggers: 'coupling'"),
    ({"thresholds": {"speed": (1, 0)}}, r"Invalid thresholds key: 'speed'"),
    ({"thresholds": {"coupling": (0.1, 0.2)}}, r"exit 0\.2 is above enter 0\.1"),
    ({"thresholds": {"stall": (0.1, 0.0)}}, r"exit 0\.0 is below enter 0\.1"),
    ({"thresholds": {"stall": 0.1}}, r"Invalid thresholds for 'stall': 0\.1"),
    ({"stat_beta": 1.0}, r"Invalid stat_beta: 1\.0"),
    ({"warmup": -1}, r"Invalid warmup: -1\. Use an int >= 0"),
    ({"cooldown": 2.5}, r"Invalid cooldown: 2\.5"),
    ({"ode_steps": 0}, r"Invalid ode_steps: 0\. Use an int >= 1"),
    ({"integrator": "rk45"}, r"Invalid integrator: 'rk45'"),
    ({"ode_dt": 0.0}, r"Invalid ode_dt: 0\.0"),
    ({"ode_dt": "fast"}, r"Invalid ode_dt: 'fast'"),
    ({"ode_dt_scale": -1}, r"Invalid ode_dt_scale: -1"),
    ({"ode_clip": 0}, r"Invalid ode_clip: 0"),
    ({"ode_step_control": "yes"}, r"Invalid ode_step_control: 'yes'\. Use True or False"),
    ({"ode_step_control": 1}, r"Invalid ode_step_control: 1"),
    ({"ode_shrink": 1.0}, r"Invalid ode_shrink: 1\.0\. Use a float in \(0, 1\)"),
    ({"ode_shrink": 0.0}, r"Invalid ode_shrink: 0\.0"),
    ({"ode_shrink": math.nan}, r"Invalid ode_shrink: nan"),
    ({"ode_grow": 0.9}, r"Invalid ode_grow: 0\.9\. Use a float >= 1"),
    ({"ode_grow": math.inf}, r"Invalid ode_grow: inf"),
    ({"ode_rtol": -1e-6}, r"Invalid ode_rtol: -1e-06\. Use a float >= 0"),
    ({"ode_rtol": "1e-6"}, r"Invalid ode_rtol: '1e-6'"),
    ({"injection": "blend"}, r"Invalid injection: 'blend'"),
    ({"injection_weight": 1.5}, r"Invalid injection_weight: 1\.5"),
    ({"injection_ramp": 0}, r"Invalid injection_ramp: 0"),
])
def test_invalid_hyperparameters_raise(options, message):
    weight = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=message):
        FlowAdam([weight], **options)


def test_documented_defaults_match_signature():
    doc = inspect.getdoc(FlowAdam)
    documented = dict(re.findall(r"^(\w+) : [^\n]*?default=(.+)$", doc, flags=re.MULTILINE))
    signature = inspect.signature(FlowAdam.__init__)
    checked = 0
    for name, parameter in signature.parameters.items():
        if parameter.default is inspect.Parameter.empty or name == "thresholds":
            continue
        assert name in documented, f"{name} has no documented default"
        text = documented[name]
        value = text.strip('"') if text.startswith('"') else ast.literal_eval(text)
        assert value == parameter.default, name
        checked += 1
    assert checked == 22


# state_dict


def collect(params):
    return [param.detach().clone() for param in params]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("split", [4, 6])
def test_state_dict_round_trip_with_switch(dtype, split, device="cpu"):
    options = {"lr": 1e-2, "warmup": 3, "cooldown": 3, "ode_steps": 3,
               "thresholds": {"coupling": (-1.0, -1.0)}, "injection_ramp": 2}

    def build(seed=0):
        params, make_closure = low_rank_problem(seed=seed, dtype=dtype, device=device)
        groups = [{"params": [params[0]]}, {"params": [params[1]], "lr": 5e-3, "weight_decay": 0.01}]
        ref = [None]
        ref[0] = FlowAdam(groups, **options)
        return params, ref[0], make_closure(ref)

    straight_params, straight, straight_closure = build()
    for _ in range(12):
        straight.step(straight_closure)

    first_params, first, first_closure = build()
    # split 4 saves inside an ODE phase, split 6 while an injection ramp is pending
    for _ in range(split):
        first.step(first_closure)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    saved_params = collect(first_params)

    resumed_params, resumed, resumed_closure = build()
    with torch.no_grad():
        for param, value in zip(resumed_params, saved_params):
            param.copy_(value)
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer, weights_only=False))
    assert resumed.mode == first.mode
    for _ in range(12 - split):
        resumed.step(resumed_closure)

    modes = straight.trace.modes
    assert "ode" in modes[4:10]
    assert resumed.trace.state_dict() == straight.trace.state_dict()
    for mine, reference in zip(resumed_params, straight_params):
        assert mine.dtype == dtype
        assert torch.equal(mine, reference)
    assert resumed.statistics == straight.statistics


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_state_dict_round_trip_on_cuda():
    test_state_dict_round_trip_with_switch(torch.float32, 4, device="cuda")


def test_state_dict_does_not_alias_live_state():
    params, make_closure = low_rank_problem()
    ref = [None]
    ref[0] = FlowAdam(params, lr=1e-2, warmup=5, ode_steps=3)
    closure = make_closure(ref)
    for _ in range(10):
        ref[0].step(closure)
    state = ref[0].state_dict()
    saved = copy.deepcopy(state["flowadam"])
    for _ in range(10):
        ref[0].step(closure)
    assert state["flowadam"] == saved


def test_load_state_dict_rejects_other_optimizer_state():
    weight = torch.zeros(2, requires_grad=True)
    adam_state = torch.optim.Adam([weight]).state_dict()
    with pytest.raises(ValueError, match="has no FlowAdam entry"):
        FlowAdam([weight]).load_state_dict(adam_state)


def test_trace_state_round_trip():
    trace = FlowTrace()
    trace.record("adam", 1.0, 1)
    trace.record("ode", 0.5, 4)
    trace.events.append(SwitchEvent(0, "adam", "ode", "coupling", 0.4, 0.3))
    copy_ = FlowTrace()
    copy_.load_state_dict(trace.state_dict())
    assert copy_.modes == ["adam", "ode"]
    assert copy_.grad_evals == [1, 4]
    assert copy_.total_grad_evals == 5
    assert copy_.events == trace.events
