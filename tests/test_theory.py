"""Tests of m3po_sb3.theory: the bounds at hand-computed points, their relations, and the exact check."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m3po_sb3.theory import (
    BOUND_NAMES,
    BOUND_TOLERANCE,
    adversarial_search,
    all_bounds,
    branched_rollout_bound,
    branched_rollout_bound_sum,
    check_bounds,
    corollary1_model_terms,
    full_rollout_bound,
    janner_branched_bound,
    main,
    plot_bounds,
    random_checks,
    random_problem,
    summarize,
    truncation_horizon,
)

GAMMAS = (0.0, 0.1, 0.5, 0.9, 0.99, 0.999)
KS = (1, 2, 3, 4, 7, 10, 30, 100)
EPS = ((0.0, 0.0), (0.1, 0.0), (0.0, 0.05), (0.1, 0.05), (1.0, 1.0), (0.003, 0.2))


# --- hand-computed values --------------------------------------------------------------------------------------
# gamma = 0.5, k = 2, eps_m = 0.1, eps_pi = 0.05, r_max = 1, so eps = eps_pi + eps_m = 0.15:
# Th. 4.1: 2 (0.5 * 0.2 / 0.25 + 2 * 0.05 / 0.5) = 2 (0.4 + 0.2) = 1.2
# Th. 4.2: 2 (0.5^3 * 0.05 / 0.25 + (0.25 + 2) * 0.05 / 0.5 + 2 * 0.2 / 0.5) = 2 (0.025 + 0.225 + 0.8) = 2.1
# eq. 11: (1.25 / 0.25) * 0.1 + (0.5 - 0.5 + 0.125) / 0.25 * 0.15 + (0.25 - 0.5) / (-0.5) * 0.15
#         + 0.25 / 0.5 * 3 * 0.15 = 0.5 + 0.075 + 0.075 + 0.225 = 0.875
# eq. 20 sum: 2 eps_pi = 0.1; t = 1: 0.5 (2 * 0.05 + 2 * 0.15) = 0.2;
#         t >= 2: 0.1 * sum_{t>=2} t 0.5^t = 0.1 * (2 - 0.5) = 0.15 and 3 * 0.15 * sum_{t>=2} 0.5^t = 0.225;
#         total 0.675 = 0.875 - 2 * 0.5 * 0.05 / 0.25.
# gamma = 0.9, k = 1, eps_m = 0.1, eps_pi = 0, r_max = 2: eq. 11 keeps only 2 * 0.9 / 0.1 * 2 * 0.1 = 3.6, which is
# also C_Th2,m (eq. 26); C_Th1,m = 2 * 2 * 0.9 * 0.1 / 0.01 = 36 (eq. 25).
# gamma = 0: only the t = 0 term 2 eps_pi r_max survives in eqs. 11 and 20; Th. 4.1 gives 4 eps_pi r_max,
# Th. 4.2 gives 2 r_max (2 eps_pi + k (eps_m + 2 eps_pi)) = 2 (0.2 + 3 * 0.4) = 2.8 at k = 3.
@pytest.mark.parametrize(
    "function, kwargs, expected",
    [
        (full_rollout_bound, dict(gamma=0.5, eps_m=0.1, eps_pi=0.05, r_max=1.0), 1.2),
        (janner_branched_bound, dict(gamma=0.5, k=2, eps_m=0.1, eps_pi=0.05, r_max=1.0), 2.1),
        (branched_rollout_bound, dict(gamma=0.5, k=2, eps_m=0.1, eps_pi=0.05, r_max=1.0), 0.875),
        (branched_rollout_bound_sum, dict(gamma=0.5, k=2, eps_m=0.1, eps_pi=0.05, r_max=1.0), 0.675),
        (branched_rollout_bound, dict(gamma=0.9, k=1, eps_m=0.1, eps_pi=0.0, r_max=2.0), 3.6),
        (branched_rollout_bound_sum, dict(gamma=0.9, k=1, eps_m=0.1, eps_pi=0.0, r_max=2.0), 3.6),
        (branched_rollout_bound, dict(gamma=0.0, k=3, eps_m=0.2, eps_pi=0.1, r_max=1.0), 0.2),
        (branched_rollout_bound_sum, dict(gamma=0.0, k=3, eps_m=0.2, eps_pi=0.1, r_max=1.0), 0.2),
        (full_rollout_bound, dict(gamma=0.0, eps_m=0.2, eps_pi=0.1, r_max=1.0), 0.4),
        (janner_branched_bound, dict(gamma=0.0, k=3, eps_m=0.2, eps_pi=0.1, r_max=1.0), 2.8),
    ],
)
def test_bounds_at_hand_computed_points(function, kwargs, expected):
    value = function(**kwargs)
    assert isinstance(value, float)
    assert value == pytest.approx(expected, rel=1e-12)


def test_corollary1_at_a_hand_computed_point():
    assert corollary1_model_terms(gamma=0.9, eps_m=0.1, r_max=2.0) == pytest.approx((36.0, 3.6), rel=1e-12)


# --- the printed closed form against the sum it came from ----------------------------------------------------
@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("eps_m, eps_pi", EPS)
def test_printed_closed_form_exceeds_the_sum_by_2_gamma_eps_pi(gamma, k, eps_m, eps_pi):
    r_max = 1.7
    printed = branched_rollout_bound(gamma=gamma, k=k, eps_m=eps_m, eps_pi=eps_pi, r_max=r_max)
    exact_sum = branched_rollout_bound_sum(gamma=gamma, k=k, eps_m=eps_m, eps_pi=eps_pi, r_max=r_max)
    excess = 2.0 * r_max * gamma * eps_pi / (1.0 - gamma) ** 2
    assert printed - exact_sum == pytest.approx(excess, rel=1e-9, abs=1e-9 * printed)
    assert printed >= exact_sum - 1e-9 * printed


@pytest.mark.parametrize("gamma", (0.0, 0.3, 0.9))
@pytest.mark.parametrize("k", (1, 2, 5))
def test_sum_matches_its_truncated_series(gamma, k):
    eps_m, eps_pi = 0.07, 0.02
    eps = eps_m + eps_pi
    series = 2.0 * eps_pi + sum(
        gamma**t * (2 * t * eps_pi + (min(t, k) + 1) * eps) for t in range(1, 2000)  # eqs. 16 and 19
    )
    assert branched_rollout_bound_sum(gamma=gamma, k=k, eps_m=eps_m, eps_pi=eps_pi, r_max=1.0) == pytest.approx(
        series, rel=1e-12
    )


# --- Corollary 1 ----------------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    gamma=st.floats(0.0, 1.0, exclude_max=True),
    eps_m=st.floats(0.0, 1.0),
    r_max=st.floats(1e-3, 1e3),
)
def test_corollary1_holds_for_every_gamma(gamma, eps_m, r_max):
    c_th1, c_th2 = corollary1_model_terms(gamma=gamma, eps_m=eps_m, r_max=r_max)
    assert c_th2 <= c_th1
    assert c_th2 - c_th1 == pytest.approx(-2.0 * r_max * gamma**2 * eps_m / (1.0 - gamma) ** 2, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_corollary1_terms_are_the_model_terms_of_the_bounds(gamma):
    eps_m, r_max = 0.3, 1.5
    c_th1, c_th2 = corollary1_model_terms(gamma=gamma, eps_m=eps_m, r_max=r_max)
    assert c_th1 == pytest.approx(full_rollout_bound(gamma=gamma, eps_m=eps_m, eps_pi=0.0, r_max=r_max))
    assert c_th2 == pytest.approx(branched_rollout_bound(gamma=gamma, k=1, eps_m=eps_m, eps_pi=0.0, r_max=r_max))


# --- input validation -----------------------------------------------------------------------------------------
BOUND_CALLS = [
    lambda **kw: full_rollout_bound(kw["gamma"], kw["eps_m"], kw["eps_pi"], kw["r_max"]),
    lambda **kw: janner_branched_bound(**kw),
    lambda **kw: branched_rollout_bound(**kw),
    lambda **kw: branched_rollout_bound_sum(**kw),
    lambda **kw: corollary1_model_terms(kw["gamma"], kw["eps_m"], kw["r_max"]),
]


@pytest.mark.parametrize("call", BOUND_CALLS)
@pytest.mark.parametrize(
    "override, message",
    [
        (dict(gamma=1.0), "gamma"),
        (dict(gamma=-0.1), "gamma"),
        (dict(gamma=float("nan")), "gamma"),
        (dict(eps_m=-0.01), "eps_m"),
        (dict(r_max=0.0), "r_max"),
        (dict(r_max=-1.0), "r_max"),
    ],
)
def test_bounds_reject_what_the_theory_excludes(call, override, message):
    kwargs = dict(gamma=0.9, k=2, eps_m=0.1, eps_pi=0.1, r_max=1.0)
    kwargs.update(override)
    with pytest.raises(ValueError, match=message):
        call(**kwargs)


@pytest.mark.parametrize("function", [janner_branched_bound, branched_rollout_bound, branched_rollout_bound_sum])
@pytest.mark.parametrize("k", [0, -1, 1.5, 2.0, True])
def test_bounds_reject_a_k_that_is_not_a_positive_integer(function, k):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        function(gamma=0.9, k=k, eps_m=0.1, eps_pi=0.1, r_max=1.0)


@pytest.mark.parametrize("function", [full_rollout_bound, janner_branched_bound, branched_rollout_bound])
def test_bounds_reject_a_negative_eps_pi(function):
    kwargs = dict(gamma=0.9, eps_m=0.1, eps_pi=-0.1, r_max=1.0)
    if function is not full_rollout_bound:
        kwargs["k"] = 1
    with pytest.raises(ValueError, match="eps_pi"):
        function(**kwargs)


# --- the exact check ------------------------------------------------------------------------------------------
def _tight_problem(k: int = 1) -> dict:
    """Real dynamics always go to the +1 state, the model always to the -1 state; one action, pi = pi_D."""
    transitions = np.zeros((2, 1, 2))
    transitions[:, 0, 0] = 1.0
    model = np.zeros((2, 1, 2))
    model[:, 0, 1] = 1.0
    policy = np.ones((2, 1))
    return dict(
        transitions=transitions,
        rewards=np.array([[1.0], [-1.0]]),
        initial=np.array([1.0, 0.0]),
        gamma=0.9,
        data_policy=policy,
        policy=policy,
        model=model,
        k=k,
    )


def _reference_branched_return(problem: dict) -> float:
    """Eqs. 4-8 term by term: for every t and every branch root i, roll the root's time-i marginal forward."""
    transitions, model, gamma, k = problem["transitions"], problem["model"], problem["gamma"], problem["k"]
    data_policy, policy, rewards, initial = (problem[key] for key in ("data_policy", "policy", "rewards", "initial"))
    data_step = np.einsum("sa,sax->sx", data_policy, transitions)
    model_step = np.einsum("sa,sax->sx", policy, model)
    reward_pi = np.sum(policy * rewards, axis=1)
    horizon = truncation_horizon(gamma, float(np.max(np.abs(rewards))))
    total = initial @ np.sum(data_policy * rewards, axis=1)
    for t in range(1, horizon):
        roots = range(t) if t < k else range(t - k, t)  # eq. 7 (i = 0..t-1) or eq. 8 (roots t-k..t-1)
        branches = [
            initial @ np.linalg.matrix_power(data_step, i) @ np.linalg.matrix_power(model_step, t - i) @ reward_pi
            for i in roots
        ]
        total += gamma**t * np.mean(branches)
    return float(total)


def test_theorem3_is_attained():
    check = check_bounds(**_tight_problem(k=1))
    assert (check.eps_m, check.eps_pi) == (1.0, 0.0)
    assert check.true_return == pytest.approx(10.0)
    assert check.branched_model_return == pytest.approx(1.0 - 9.0, abs=1e-9)  # t = 0 real, then -1 forever
    assert check.bounds["branched_sum"] == pytest.approx(18.0)
    assert check.ratio("branched_sum") == pytest.approx(1.0, abs=1e-9)
    assert all(check.held(name) for name in BOUND_NAMES)


def test_one_state_k1_exact_model_reduces_to_hand_value():
    # One state: the branched return is r . pi_D at t = 0, then r . pi at every t >= 1 (the model is exact).
    rewards = np.array([[1.0, -0.5, 0.25]])
    data_policy = np.array([[0.2, 0.5, 0.3]])
    policy = np.array([[0.6, 0.1, 0.3]])
    transitions = np.ones((1, 3, 1))
    check = check_bounds(transitions, rewards, np.ones(1), 0.8, data_policy, policy, transitions, k=1)
    r_data, r_pi = 0.2 - 0.25 + 0.075, 0.6 - 0.05 + 0.075
    assert check.branched_model_return == pytest.approx(r_data + 0.8 / 0.2 * r_pi, abs=1e-9)
    assert check.true_return == pytest.approx(r_pi / 0.2, abs=1e-12)
    assert check.full_model_return == pytest.approx(check.true_return, abs=1e-12)
    assert check.eps_m == 0.0
    assert check.eps_pi == pytest.approx(0.4)


def test_k1_exact_model_reduces_to_closed_form():
    # k = 1, p_theta = p: every t >= 1 is one real step of pi from the data marginal at t - 1, so the return is
    # mu_0 r_D + gamma mu_0 (I - gamma P_D)^-1 P_pi r_pi.
    problem = random_problem(np.random.default_rng(3), 4, 3, gamma=0.9, k=1, model_noise=0.0, policy_noise=0.4)
    check = check_bounds(**problem)
    data_step = np.einsum("sa,sax->sx", problem["data_policy"], problem["transitions"])
    policy_step = np.einsum("sa,sax->sx", problem["policy"], problem["transitions"])
    reward_data = np.sum(problem["data_policy"] * problem["rewards"], axis=1)
    reward_pi = np.sum(problem["policy"] * problem["rewards"], axis=1)
    expected = problem["initial"] @ (
        reward_data + 0.9 * np.linalg.solve(np.eye(4) - 0.9 * data_step, policy_step @ reward_pi)
    )
    assert check.branched_model_return == pytest.approx(expected, abs=1e-9)
    assert check.eps_m == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_branched_return_matches_eqs_4_to_8_term_by_term(k):
    problem = random_problem(np.random.default_rng(k), 3, 2, gamma=0.6, k=k, model_noise=0.3, policy_noise=0.3)
    assert check_bounds(**problem).branched_model_return == pytest.approx(
        _reference_branched_return(problem), abs=1e-9
    )


def test_eps_m_is_a_max_over_time_of_the_data_marginal():
    # The data policy walks 0 -> 1 -> 2 (absorbing); the model is wrong only in state 1, reached at t = 1 only.
    transitions = np.zeros((3, 1, 3))
    transitions[0, 0, 1] = transitions[1, 0, 2] = transitions[2, 0, 2] = 1.0
    model = transitions.copy()
    model[1, 0] = [0.0, 0.7, 0.3]
    policy = np.ones((3, 1))
    check = check_bounds(transitions, np.ones((3, 1)), np.array([1.0, 0.0, 0.0]), 0.5, policy, policy, model, k=2)
    assert check.eps_m == pytest.approx(0.7)  # a stationary or averaged marginal would give 0 or less


def test_truncation_horizon():
    for gamma in (0.0, 0.5, 0.9, 0.99):
        horizon = truncation_horizon(gamma, 2.0)
        assert gamma**horizon * 2.0 / (1.0 - gamma) < 1e-10
        assert horizon == 1 or gamma ** (horizon - 1) * 2.0 / (1.0 - gamma) >= 1e-10


@pytest.mark.parametrize(
    "override, message",
    [
        (dict(transitions=np.ones((2, 2))), "transitions must have shape"),
        (dict(model=np.full((2, 2, 3), 1.0 / 3.0)), "model must have shape"),
        (dict(initial=np.array([0.5, 0.6])), "initial must sum to 1"),
        (dict(data_policy=np.array([[1.5, -0.5], [0.5, 0.5]])), "data_policy has negative"),
        (dict(policy=np.array([[np.nan, 1.0], [0.5, 0.5]])), "policy contains NaN"),
        (dict(rewards=np.ones((2, 3))), "rewards must have shape"),
        (dict(rewards=np.zeros((2, 2))), "rewards are all zero"),
        (dict(r_max=0.5), "below max"),
        (dict(gamma=1.0), "gamma"),
        (dict(k=0), "k must be a positive integer"),
    ],
)
def test_check_bounds_validates_its_inputs(override, message):
    problem = random_problem(np.random.default_rng(0), 2, 2, gamma=0.9, k=2, model_noise=0.1, policy_noise=0.1)
    problem["rewards"] = np.array([[1.0, -1.0], [0.5, 0.0]])
    problem.update(override)
    with pytest.raises(ValueError, match=message):
        check_bounds(**problem)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_states=st.integers(2, 4),
    n_actions=st.integers(2, 3),
    gamma=st.floats(0.0, 0.95),
    k=st.integers(1, 6),
    model_noise=st.floats(0.0, 0.5),
    policy_noise=st.floats(0.0, 0.5),
)
def test_gap_never_exceeds_the_proven_bounds(seed, n_states, n_actions, gamma, k, model_noise, policy_noise):
    rng = np.random.default_rng(seed)
    check = check_bounds(**random_problem(rng, n_states, n_actions, gamma, k, model_noise, policy_noise))
    assert check.eps_m <= model_noise + 1e-12
    assert check.eps_pi <= policy_noise + 1e-12
    # Theorem 3 (both forms) bounds the branched gap, Theorem 4.1 the full-rollout gap.
    for name in ("branched", "branched_sum", "full_rollout"):
        assert check.gap(name) <= check.bounds[name] + BOUND_TOLERANCE, (name, check)


def test_adversarial_search_does_not_break_theorem3():
    found = adversarial_search("branched_sum", n_restarts=2, n_steps=40, seed=0, gamma_range=(0.5, 0.9))
    assert found.check.held("branched_sum")
    assert 0.0 <= found.ratio <= 1.0 + 1e-6
    assert found.check == check_bounds(**found.problem)


def test_random_checks_and_summary():
    rows = summarize(random_checks(20, seed=1))
    assert [row[0] for row in rows] == list(BOUND_NAMES)
    for _, held, median, worst in rows:
        assert held == 1.0
        assert 0.0 <= median <= worst <= 1.0


def test_command_line(capsys):
    main(["--n-mdps", "5", "--seed", "0", "--adversarial-steps", "3", "--adversarial-restarts", "1"])
    lines = capsys.readouterr().out.splitlines()
    for name in BOUND_NAMES:
        assert sum(line.split()[0] == name for line in lines) == 2  # the random table and the adversarial one
    assert sum("100.0%" in line for line in lines) == len(BOUND_NAMES)


def test_plot_bounds(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bounds.png"
    plot_bounds(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_all_bounds_are_finite_and_ordered_as_documented():
    bounds = all_bounds(gamma=0.9, k=1, eps_m=0.01, eps_pi=0.01, r_max=1.0)
    assert set(bounds) == set(BOUND_NAMES)
    assert all(math.isfinite(value) and value > 0.0 for value in bounds.values())
    assert bounds["branched_sum"] < bounds["branched"] < bounds["full_rollout"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(bound="nope"), "unknown bound"),
        (dict(bound="branched", n_restarts=0), "n_restarts"),
        (dict(bound="branched", gamma_range=(0.5, 1.0)), "gamma_range"),
    ],
)
def test_adversarial_search_validates_its_inputs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        adversarial_search(**kwargs)


def test_random_problem_rejects_noise_outside_the_unit_interval():
    with pytest.raises(ValueError, match="noise"):
        random_problem(np.random.default_rng(0), 2, 2, gamma=0.5, k=1, model_noise=1.5, policy_noise=0.0)
