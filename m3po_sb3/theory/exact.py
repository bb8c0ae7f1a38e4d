"""
The exact check of the bounds of :mod:`m3po_sb3.theory.bounds` on finite MDPs.

:func:`check_bounds` computes, for a finite MDP, the true return, the model returns (branched as in eqs. 4-8, and
full), ``eps_m`` and ``eps_pi`` by their definitions, and every bound; :func:`random_checks` runs it on random
MDPs and :func:`adversarial_search` looks for the problems where a bound is tightest. See ``docs/theory.md``.
"""

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from m3po_sb3.theory.bounds import BOUND_NAMES, check_gamma, check_k, check_r_max, all_bounds

# The infinite horizon is truncated at the first T with gamma**T * r_max / (1 - gamma) below this.
TRUNCATION_ERROR = 1e-10
# A bound "held" when gap <= bound + BOUND_TOLERANCE (covers the truncation and float round-off).
BOUND_TOLERANCE = 1e-9
_ROW_SUM_ATOL = 1e-8


@dataclass(frozen=True)
class BoundCheck:
    """
    What :func:`check_bounds` measured on one finite MDP. The returns are expected discounted returns; the
    branched model return follows eqs. 4-8, the full model return rolls ``pi`` on ``p_theta`` from the start.

    :param true_return: return of ``pi`` in the real MDP
    :param branched_model_return: model return under k-step branched rollouts that keep every step (eqs. 4-8)
    :param full_model_return: model return of ``pi`` rolled out on ``p_theta`` from the initial distribution
    :param eps_m: ``max_{t<T} E_{s_t ~ p_piD, a_t ~ pi_D}[D_TV(p(.|s_t, a_t) || p_theta(.|s_t, a_t))]``
    :param eps_pi: ``max_s D_TV(pi(.|s) || pi_D(.|s))``
    :param r_max: the reward bound used in the bounds
    :param gamma: discount factor
    :param k: rollout length
    :param horizon: the truncation T of the infinite sums and of the max over t
    :param bounds: every bound at ``(gamma, k, eps_m, eps_pi, r_max)``, keyed by :data:`BOUND_NAMES`
    """

    true_return: float
    branched_model_return: float
    full_model_return: float
    eps_m: float
    eps_pi: float
    r_max: float
    gamma: float
    k: int
    horizon: int
    bounds: Dict[str, float]

    @property
    def branched_gap(self) -> float:
        """``|true return - branched model return|``, what Theorems 3 and 4.2 bound."""
        return abs(self.true_return - self.branched_model_return)

    @property
    def full_gap(self) -> float:
        """``|true return - full model return|``, what Theorem 4.1 bounds."""
        return abs(self.true_return - self.full_model_return)

    def gap(self, name: str) -> float:
        """
        :param name: one of :data:`BOUND_NAMES`
        :return: the return gap that bound speaks of
        """
        if name not in self.bounds:
            raise ValueError(f"unknown bound {name!r}, expected one of {BOUND_NAMES}")
        return self.full_gap if name == "full_rollout" else self.branched_gap

    def held(self, name: str) -> bool:
        """
        :param name: one of :data:`BOUND_NAMES`
        :return: whether the gap is within the bound (up to :data:`BOUND_TOLERANCE`)
        """
        return self.gap(name) <= self.bounds[name] + BOUND_TOLERANCE

    def ratio(self, name: str) -> float:
        """
        :param name: one of :data:`BOUND_NAMES`
        :return: ``gap / bound`` (how tight the bound is; above 1 means violated); 0 when both are 0
        """
        gap, bound = self.gap(name), self.bounds[name]
        if bound > 0.0:
            return gap / bound
        return 0.0 if gap <= BOUND_TOLERANCE else math.inf


def _as_array(name: str, value: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf")
    return array


def _as_distribution(name: str, value: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    array = _as_array(name, value, shape)
    if np.any(array < 0.0):
        raise ValueError(f"{name} has negative probabilities")
    if not np.allclose(array.sum(axis=-1), 1.0, rtol=0.0, atol=_ROW_SUM_ATOL):
        raise ValueError(f"{name} must sum to 1 over its last axis (a distribution per row)")
    return array


def truncation_horizon(gamma: float, r_max: float) -> int:
    """
    The smallest ``T >= 1`` with ``gamma^T r_max / (1 - gamma) < TRUNCATION_ERROR``: dropping the steps
    ``t >= T`` moves any return by less than that.

    :param gamma: discount factor in [0, 1)
    :param r_max: bound on the absolute reward
    :return: the horizon T
    """
    gamma, r_max = check_gamma(gamma), check_r_max(r_max)
    if gamma == 0.0:
        return 1
    horizon = max(1, math.ceil(math.log(TRUNCATION_ERROR * (1.0 - gamma) / r_max) / math.log(gamma)))
    while gamma**horizon * r_max / (1.0 - gamma) >= TRUNCATION_ERROR:  # guard the log's round-off
        horizon += 1
    return horizon


def _state_marginals(initial: np.ndarray, state_transition: np.ndarray, horizon: int) -> np.ndarray:
    """Rows t = 0..horizon-1 of ``initial @ state_transition^t``, by doubling (log2(horizon) products)."""
    marginals, power = initial[None, :], state_transition
    while len(marginals) < horizon:
        marginals = np.concatenate([marginals, marginals @ power])
        power = power @ power
    return marginals[:horizon]


def check_bounds(
    transitions: np.ndarray,
    rewards: np.ndarray,
    initial: np.ndarray,
    gamma: float,
    data_policy: np.ndarray,
    policy: np.ndarray,
    model: np.ndarray,
    k: int,
    r_max: Optional[float] = None,
) -> BoundCheck:
    """
    Compute exactly, on a finite MDP, both sides of every bound.

    - True return and full model return: ``mu_0 (I - gamma P_pi)^-1 r_pi`` (a linear solve, exact).
    - Branched model return (eqs. 4-8): the t = 0 term uses ``p_piD(s_0, a_0)`` (data-policy actions); at
      ``t >= 1`` it averages, over the ``n = 1..min(t, k)`` branches that reach t, the time-t state distribution
      ``p_piD(s_{t-n}) (P_theta^pi)^n`` of a branch rooted at time ``t - n`` in the data's time-``(t - n)``
      marginal (footnote 3: states carry their time step) and rolled n steps with ``pi`` on ``p_theta``. Eq. 7-8
      stop at ``s_t``; the action at t is drawn from ``pi``, as in the rollouts that store it.
    - ``eps_m``: the max over ``t < T`` of the expected TV distance under ``p_piD(s_t) pi_D(a_t|s_t)``;
      ``eps_pi``: the max over every state of the TV distance between the policies.

    The sums over t and the max over t stop at ``T = truncation_horizon(gamma, r_max)``, which changes the
    returns by less than 1e-10 and leaves every bound valid: the truncated gap only involves the model error at
    ``t < T``.

    :param transitions: real dynamics ``p(s'|s, a)``, shape (S, A, S)
    :param rewards: ``r(s, a)``, shape (S, A)
    :param initial: initial state distribution, shape (S,)
    :param gamma: discount factor in [0, 1)
    :param data_policy: ``pi_D(a|s)``, shape (S, A)
    :param policy: ``pi(a|s)``, shape (S, A)
    :param model: ``p_theta(s'|s, a)``, shape (S, A, S)
    :param k: rollout length, a positive integer
    :param r_max: reward bound for the bounds, at least ``max |r|``; defaults to ``max |r|`` (the tightest)
    :return: the measured returns, errors and bounds
    """
    gamma, k = check_gamma(gamma), check_k(k)
    transitions = np.asarray(transitions, dtype=np.float64)
    if transitions.ndim != 3 or transitions.shape[0] != transitions.shape[2]:
        raise ValueError(f"transitions must have shape (S, A, S), got {transitions.shape}")
    n_states, n_actions = transitions.shape[:2]
    transitions = _as_distribution("transitions", transitions, (n_states, n_actions, n_states))
    model = _as_distribution("model", model, (n_states, n_actions, n_states))
    initial = _as_distribution("initial", initial, (n_states,))
    data_policy = _as_distribution("data_policy", data_policy, (n_states, n_actions))
    policy = _as_distribution("policy", policy, (n_states, n_actions))
    rewards = _as_array("rewards", rewards, (n_states, n_actions))
    reward_scale = float(np.max(np.abs(rewards)))
    if r_max is None:
        if reward_scale == 0.0:
            raise ValueError("rewards are all zero: pass r_max > 0 explicitly")
        r_max = reward_scale
    r_max = check_r_max(r_max)
    if r_max < reward_scale:
        raise ValueError(f"r_max={r_max} is below max |r| = {reward_scale}")

    horizon = truncation_horizon(gamma, r_max)
    real_pi = np.einsum("sa,sax->sx", policy, transitions)
    model_pi = np.einsum("sa,sax->sx", policy, model)
    real_data = np.einsum("sa,sax->sx", data_policy, transitions)
    reward_pi = np.sum(policy * rewards, axis=1)
    identity = np.eye(n_states)
    true_return = float(initial @ np.linalg.solve(identity - gamma * real_pi, reward_pi))
    full_model_return = float(initial @ np.linalg.solve(identity - gamma * model_pi, reward_pi))

    marginals = _state_marginals(initial, real_data, horizon)  # p_piD(s_t), t = 0..T-1
    model_tv = 0.5 * np.sum(np.abs(transitions - model), axis=2)
    eps_m = float(np.max(marginals @ np.sum(data_policy * model_tv, axis=1)))
    eps_pi = float(np.max(0.5 * np.sum(np.abs(policy - data_policy), axis=1)))

    # step_rewards[t] sums, over the branches reaching t, the expected reward of a branch rolled n steps.
    step_rewards = np.zeros(horizon)
    value = reward_pi
    for n in range(1, min(k, horizon - 1) + 1):
        value = model_pi @ value  # (P_theta^pi)^n r_pi
        step_rewards[n:] += marginals[: horizon - n] @ value
    times = np.arange(horizon)
    step_rewards[1:] /= np.minimum(times[1:], k)  # the averages of eqs. 5 and 6
    step_rewards[0] = initial @ np.sum(data_policy * rewards, axis=1)
    branched_model_return = float(np.sum(gamma**times * step_rewards))

    return BoundCheck(
        true_return=true_return,
        branched_model_return=branched_model_return,
        full_model_return=full_model_return,
        eps_m=eps_m,
        eps_pi=eps_pi,
        r_max=r_max,
        gamma=gamma,
        k=k,
        horizon=horizon,
        bounds=all_bounds(gamma, k, eps_m, eps_pi, r_max),
    )


# ---------------------------------------------------------------------------------------------------------------
# Random and adversarial MDPs
# ---------------------------------------------------------------------------------------------------------------


def random_problem(
    rng: np.random.Generator,
    n_states: int,
    n_actions: int,
    gamma: float,
    k: int,
    model_noise: float,
    policy_noise: float,
) -> Dict[str, Any]:
    """
    A random finite MDP with a model and a policy near the true dynamics and the data policy: the model is
    ``(1 - model_noise) p + model_noise q`` and ``pi = (1 - policy_noise) pi_D + policy_noise q'`` with random
    ``q, q'``, so ``eps_m <= model_noise`` and ``eps_pi <= policy_noise``. Rewards are uniform in [-1, 1].

    :param rng: random generator
    :param n_states: number of states
    :param n_actions: number of actions
    :param gamma: discount factor
    :param k: rollout length
    :param model_noise: weight in [0, 1] of the random part of the model
    :param policy_noise: weight in [0, 1] of the random part of the policy
    :return: the keyword arguments of :func:`check_bounds`
    """
    if not (0.0 <= model_noise <= 1.0 and 0.0 <= policy_noise <= 1.0):
        raise ValueError("model_noise and policy_noise must lie in [0, 1]")
    transitions = rng.dirichlet(np.ones(n_states), size=(n_states, n_actions))
    data_policy = rng.dirichlet(np.ones(n_actions), size=n_states)
    model_part = rng.dirichlet(np.ones(n_states), size=(n_states, n_actions))
    policy_part = rng.dirichlet(np.ones(n_actions), size=n_states)
    return dict(
        transitions=transitions,
        rewards=rng.uniform(-1.0, 1.0, size=(n_states, n_actions)),
        initial=rng.dirichlet(np.ones(n_states)),
        gamma=gamma,
        data_policy=data_policy,
        policy=(1.0 - policy_noise) * data_policy + policy_noise * policy_part,
        model=(1.0 - model_noise) * transitions + model_noise * model_part,
        k=k,
    )


def random_checks(n_mdps: int, seed: int = 0) -> List[BoundCheck]:
    """
    :func:`check_bounds` on ``n_mdps`` random problems: 2-5 states, 2-3 actions, ``gamma ~ U[0, 0.99]``,
    ``k`` in 1..10, model and policy noise ``~ U[0, 0.5]``.

    :param n_mdps: number of random MDPs
    :param seed: seed of the generator
    :return: one check per MDP
    """
    rng = np.random.default_rng(seed)
    checks = []
    for _ in range(n_mdps):
        problem = random_problem(
            rng,
            n_states=int(rng.integers(2, 6)),
            n_actions=int(rng.integers(2, 4)),
            gamma=float(rng.uniform(0.0, 0.99)),
            k=int(rng.integers(1, 11)),
            model_noise=float(rng.uniform(0.0, 0.5)),
            policy_noise=float(rng.uniform(0.0, 0.5)),
        )
        checks.append(check_bounds(**problem))
    return checks


def summarize(checks: Sequence[BoundCheck]) -> List[Tuple[str, float, float, float]]:
    """
    :param checks: results of :func:`check_bounds`
    :return: per bound, ``(name, fraction held, median gap/bound, worst gap/bound)``
    """
    rows = []
    for name in BOUND_NAMES:
        ratios = np.array([check.ratio(name) for check in checks])
        held = np.mean([check.held(name) for check in checks])
        rows.append((name, float(held), float(np.median(ratios)), float(np.max(ratios))))
    return rows


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _decode(params: Dict[str, np.ndarray], k: int, gamma_range: Tuple[float, float]) -> Dict[str, Any]:
    low, high = gamma_range
    return dict(
        transitions=_softmax(params["transitions"]),
        rewards=np.tanh(params["rewards"]),
        initial=_softmax(params["initial"]),
        gamma=float(low + (high - low) / (1.0 + np.exp(-params["gamma"][0]))),
        data_policy=_softmax(params["data_policy"]),
        policy=_softmax(params["policy"]),
        model=_softmax(params["model"]),
        k=k,
    )


def _search_score(check: BoundCheck, bound: str) -> float:
    # The gap less the tolerance, over the bound: a gap and a bound both near 0 (eps -> 0) would otherwise
    # give ratios set by the truncation and round-off, not by the theory.
    if check.bounds[bound] == 0.0:
        return -math.inf
    return (check.gap(bound) - BOUND_TOLERANCE) / check.bounds[bound]


@dataclass(frozen=True)
class AdversarialResult:
    """
    The worst case an adversarial search found for one bound.

    :param bound: name of the bound, one of :data:`BOUND_NAMES`
    :param ratio: the largest ``gap / bound`` found (above 1 is a violation)
    :param check: the exact check of that problem
    :param problem: the problem itself, as keyword arguments of :func:`check_bounds`
    """

    bound: str
    ratio: float
    check: BoundCheck
    problem: Dict[str, Any]


def adversarial_search(
    bound: str,
    n_restarts: int = 8,
    n_steps: int = 300,
    seed: int = 0,
    max_states: int = 4,
    max_actions: int = 3,
    gamma_range: Tuple[float, float] = (0.5, 0.95),
) -> AdversarialResult:
    """
    Try to break one bound: a (1+1) evolution strategy on the logits of every table (dynamics, model, policies,
    initial distribution), the rewards (through ``tanh``) and ``gamma`` (through a sigmoid onto ``gamma_range``),
    maximising ``(gap - BOUND_TOLERANCE) / bound``, restarted from random points with random sizes and ``k`` in
    1..5. ``r_max`` is ``max |r|``, the tightest value the theory allows.

    :param bound: one of :data:`BOUND_NAMES`
    :param n_restarts: number of independent searches
    :param n_steps: mutations per search
    :param seed: seed of the generator
    :param max_states: largest number of states
    :param max_actions: largest number of actions
    :param gamma_range: interval of the discount factor, within [0, 1) (the horizon, hence the cost, grows
        near 1; near 0 every bound is trivially tight)
    :return: the worst case found
    """
    if bound not in BOUND_NAMES:
        raise ValueError(f"unknown bound {bound!r}, expected one of {BOUND_NAMES}")
    if n_restarts < 1 or n_steps < 0:
        raise ValueError(f"need n_restarts >= 1 and n_steps >= 0, got {n_restarts} and {n_steps}")
    if not 0.0 <= gamma_range[0] <= gamma_range[1] < 1.0:
        raise ValueError(f"gamma_range must be an interval within [0, 1), got {gamma_range}")
    rng = np.random.default_rng(seed)
    best: Optional[AdversarialResult] = None
    for _ in range(n_restarts):
        n_states, n_actions = int(rng.integers(2, max_states + 1)), int(rng.integers(2, max_actions + 1))
        k = int(rng.integers(1, 6))
        shapes = {
            "transitions": (n_states, n_actions, n_states),
            "model": (n_states, n_actions, n_states),
            "rewards": (n_states, n_actions),
            "initial": (n_states,),
            "data_policy": (n_states, n_actions),
            "policy": (n_states, n_actions),
            "gamma": (1,),
        }
        params = {name: rng.normal(0.0, 2.0, size=shape) for name, shape in shapes.items()}
        problem = _decode(params, k, gamma_range)
        check = check_bounds(**problem)
        score, step = _search_score(check, bound), 1.0
        for _ in range(n_steps):
            # Mutate one table at a time: small moves in one place climb better than noise everywhere.
            name = list(shapes)[int(rng.integers(len(shapes)))]
            candidate = dict(params)
            candidate[name] = params[name] + step * rng.normal(size=shapes[name])
            candidate_problem = _decode(candidate, k, gamma_range)
            candidate_check = check_bounds(**candidate_problem)
            candidate_score = _search_score(candidate_check, bound)
            if candidate_score >= score:
                params, problem, check, score = candidate, candidate_problem, candidate_check, candidate_score
                step = min(step * 1.5, 5.0)
            else:
                step = max(step * 0.95, 0.05)
        if best is None or check.ratio(bound) > best.ratio:
            best = AdversarialResult(bound=bound, ratio=check.ratio(bound), check=check, problem=problem)
    assert best is not None  # n_restarts >= 1
    return best
